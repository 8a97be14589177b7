;;; Speaks one text with a Festival voice and reports its segments (avatar3d.synth.festival).
;;; festival --script festival.scm VOICE OUT.wav STRETCH SEMITONES TEXT
;;;   STRETCH: duration factor (> 1 slower); SEMITONES: pitch shift (diphone voices only).
;;; Prints "RATE r" then one "SEG name end-seconds" line per segment.
(load (path-append datadir "init.scm"))  ; --script mode starts without Festival's own setup
(define (arg n) (format nil "%s" (nth n argv)))  ; arguments arrive as symbols
(eval (list (intern (string-append "voice_" (arg 0)))))
(set! stretch (parse-number (arg 2)))
(set! factor (pow 2.0 (/ (parse-number (arg 3)) 12.0)))
(if (string-equal (Parameter.get 'Synth_Method) "HTS")
    (set! hts_engine_params (append hts_engine_params (list (list "-r" (/ 1.0 stretch)))))
    (begin
      (Parameter.set 'Duration_Stretch (* stretch (Parameter.get 'Duration_Stretch)))
      (set! int_lr_params
            (list (list 'target_f0_mean (* factor (cadr (assoc 'target_f0_mean int_lr_params))))
                  (list 'target_f0_std (* factor (cadr (assoc 'target_f0_std int_lr_params))))
                  (assoc 'model_f0_mean int_lr_params)
                  (assoc 'model_f0_std int_lr_params)))))
(set! utt (eval (list 'Utterance 'Text (arg 4))))
(utt.synth utt)
(utt.save.wave utt (arg 1) 'riff)
(format t "RATE %d\n" (cadr (assoc 'sample_rate (wave.info (utt.wave utt)))))
(mapcar (lambda (s) (format t "SEG %s %f\n" (item.name s) (item.feat s "end")))
        (utt.relation.items utt 'Segment))
