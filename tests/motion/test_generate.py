"""`avatar3d motion` and `avatar3d eval motion` on the session's prepared clip, with a tiny model."""

import json

import numpy as np

from avatar3d.cli import main
from avatar3d.motion.generate import SubjectMotion, mouth_points
from avatar3d.train.motion import MODEL

from conftest import write_stereo_speech  # tests/ is on sys.path (pytest rootdir conftest)


def _motion(subject_dir, model_path, audio, out, *extra) -> int:
    return main(["motion", str(subject_dir), "--audio", str(audio), "--motion", str(model_path), "--out", str(out),
                 *extra])


def test_motion_has_one_row_per_frame_of_the_speech(subject_dir, clip_dir, model_path, tmp_path):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=3.0)
    assert _motion(subject_dir, model_path, speech, tmp_path / "m.npz", "--blink", "none", "--pose", "train") == 0
    motion = dict(np.load(tmp_path / "m.npz"))
    subject = SubjectMotion.load(subject_dir)
    frames = len(motion["landmarks"])
    assert abs(frames - 3.0 * subject.fps) <= 1
    for key in ("codes", "mouth_opening", "eye_opening", "pose", "rotation", "translation"):
        assert len(motion[key]) == frames and np.isfinite(motion[key]).all()
    assert np.ptp(motion["eye_opening"]) == 0  # --blink none
    assert np.allclose(motion["pose"][: min(frames, len(subject.poses))], subject.poses[:frames], atol=1e-6)
    assert np.allclose(np.linalg.det(motion["rotation"]), 1, atol=1e-4)


def test_mouth_amplitude_zero_keeps_the_mouth_neutral(subject_dir, clip_dir, model_path, tmp_path):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=1.0)
    assert _motion(subject_dir, model_path, speech, tmp_path / "m.npz", "--mouth-amp", "0") == 0
    landmarks = np.load(tmp_path / "m.npz")["landmarks"]
    subject = SubjectMotion.load(subject_dir)
    mouth = mouth_points(subject.neutral)
    assert np.allclose(landmarks[:, mouth], subject.neutral[mouth], atol=1e-5)
    assert not np.allclose(landmarks[:, ~mouth], subject.neutral[~mouth], atol=1e-5)  # the rest still moves


def test_silent_audio_warns_and_bad_audio_is_refused(subject_dir, model_path, tmp_path, capsys):
    from avatar3d.audio.io import write_wav

    write_wav(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    assert _motion(subject_dir, model_path, tmp_path / "silence.wav", tmp_path / "m.npz") == 0
    assert "silent" in capsys.readouterr().err  # the console prints to stderr
    (tmp_path / "junk.wav").write_bytes(b"RIFF junk")
    assert _motion(subject_dir, model_path, tmp_path / "junk.wav", tmp_path / "j.npz") == 2
    write_wav(tmp_path / "empty.wav", np.zeros(10, np.float32), 16000)
    assert _motion(subject_dir, model_path, tmp_path / "empty.wav", tmp_path / "e.npz") == 2
    err = capsys.readouterr().err
    assert "junk.wav" in err and "empty" in err and "Traceback" not in err
    assert not (tmp_path / "j.npz").exists() and not (tmp_path / "e.npz").exists()


def test_eval_motion_scores_sync_and_truth(subject_dir, clip_dir, model_path, tmp_path):
    out = tmp_path / "metrics.json"
    assert main(["eval", "motion", str(subject_dir), "--audio", str(clip_dir / "audio.wav"), "--motion",
                 str(model_path), "--truth", str(clip_dir / "truth.npz"), "--metrics", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert -1 <= metrics["mouth_corr"] <= 1 and abs(metrics["sync_offset_frames"]) <= 15
    assert metrics["bilabial_count"] > 0 and 0 <= metrics["bilabial_closure"] <= 1


def test_adaptation_fine_tunes_on_the_subject_and_the_anchor_holds_it(subject_dir, model_path, tmp_path):
    from avatar3d.motion.model import MotionModel

    base = MotionModel.load(model_path)
    drift = {}
    for anchor in ("0", "1000"):
        run = tmp_path / f"anchor{anchor}"
        assert main(["train", "motion", "--adapt", str(subject_dir), "--motion", str(model_path), "--adapt-steps", "15",
                     "--crop-frames", "40", "--batch", "2", "--anchor-weight", anchor, "--run", str(run)]) == 0
        adapted = MotionModel.load(run / MODEL)
        drift[anchor] = sum(float(((p - q) ** 2).sum()) for p, q in zip(adapted.vae.state_dict().values(), base.vae.state_dict().values()))
        metrics = json.loads((run / "metrics.json").read_text())
        assert -1 <= metrics["train_mouth_corr"] <= 1 and metrics["train_frames"] > 40
    assert 0 < drift["1000"] < 0.5 * drift["0"]


def test_speech_detector_tells_speech_from_noise_and_hum(clip_dir):
    from avatar3d.audio.io import read_audio
    from avatar3d.motion.features import clip_features
    from avatar3d.motion.generate import is_speech

    speech, rate = read_audio(clip_dir / "audio.wav")
    speech = speech[: 3 * rate]
    times = np.arange(3 * rate) / rate
    noise = np.random.default_rng(0).normal(scale=0.1, size=3 * rate).astype(np.float32)
    hum = (0.1 * np.sin(2 * np.pi * 100 * times)).astype(np.float32)
    found = {name: is_speech(audio, clip_features(audio, rate, 75, 25.0))
             for name, audio in (("speech", speech), ("noise", noise), ("hum", hum), ("quiet", speech * 1e-4))}
    assert found == {"speech": True, "noise": False, "hum": False, "quiet": False}


def test_shipped_model_is_small_and_is_the_fallback(tmp_path):
    from avatar3d.motion.generate import DEFAULT_MODEL, find_motion_model
    from avatar3d.motion.model import MotionModel

    assert DEFAULT_MODEL.stat().st_size < 10 * 2**20
    model = MotionModel.load(DEFAULT_MODEL)
    assert model.vae.config.codes == model.basis.size
    assert find_motion_model(None, tmp_path / "no-runs") == DEFAULT_MODEL


def test_motion_and_render_runs_share_one_layout_and_the_newest_finished_one_is_found(tmp_path):
    from avatar3d.files import FINISHED, newest_finished_run, runs_folder
    from avatar3d.motion.generate import find_motion_model

    subject = tmp_path / "actor"
    runs = tmp_path / "runs"
    assert runs_folder(runs, "render", subject) == runs / "actor" / "render"
    for owner, stamp, finished in ((None, "20260101-000000", True), (None, "20260102-000000", False),
                                   (subject, "20260101-000000", True), (subject, "20260103-000000", True),
                                   (subject, "20260104-000000", False)):
        run = runs_folder(runs, "motion", owner) / stamp
        run.mkdir(parents=True)
        if finished:
            (run / FINISHED).write_text("")
    assert newest_finished_run(runs, "motion") == runs / "all-subjects" / "motion" / "20260101-000000"
    assert newest_finished_run(runs, "render", subject) is None
    assert find_motion_model(None, runs, subject) == runs / "actor" / "motion" / "20260103-000000" / "motion.pt"
    assert find_motion_model(None, runs, tmp_path / "other") == runs / "all-subjects" / "motion" / "20260101-000000" / "motion.pt"


def test_calibration_brings_the_models_codes_to_the_subjects_own(subject_dir):
    from avatar3d.motion.generate import DEFAULT_MODEL, subject_code_map
    from avatar3d.motion.model import MotionModel

    model = MotionModel.load(DEFAULT_MODEL)
    subject = SubjectMotion.load(subject_dir)
    assert len(subject.audio) == 2 * len(subject.landmarks)
    bank = subject.codes(model)
    raw = model.basis.encode(model.generate(subject.audio, subject.neutral))
    mapped = subject_code_map(model, subject, bank)(raw)
    assert np.mean((mapped - bank) ** 2) < 0.5 * np.mean((raw - bank) ** 2)


def test_pose_from_a_reference_video_is_tracked_once_and_keeps_the_subjects_framing(subject_dir, clip_dir,
                                                                                        model_path, tmp_path):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=2.0)
    runs = tmp_path / "runs"
    args = ("--pose", str(clip_dir / "video.mp4"), "--runs", str(runs), "--blink", "none")
    assert _motion(subject_dir, model_path, speech, tmp_path / "m.npz", *args) == 0
    (reference,) = (runs / "pose-references").iterdir()
    tracked = (reference / "landmarks.npz").stat().st_mtime_ns
    assert _motion(subject_dir, model_path, speech, tmp_path / "m2.npz", *args) == 0
    assert (reference / "landmarks.npz").stat().st_mtime_ns == tracked  # prepared once
    poses = np.load(tmp_path / "m.npz")["pose"]
    subject = SubjectMotion.load(subject_dir)
    assert len(poses) == 50
    # the reference's own frames start where the subject's do: retargeted, they are near its median pose
    assert np.abs(np.median(poses, 0) - np.median(subject.poses[:50], 0))[:3].max() < np.radians(2)
    assert _motion(subject_dir, model_path, speech, tmp_path / "m3.npz", "--pose", str(tmp_path / "none.mp4")) == 2


def test_a_transcript_closes_the_lips_on_every_bilabial(subject_dir, model_path, tmp_path):
    """With the shipped model (the tiny one's motion is noise, and takes 30 % of the codes)."""
    from avatar3d.audio.io import write_wav
    from avatar3d.rig.speech import synthesize

    text = "Maybe the bumpy map of Bombay will help me."
    speech = synthesize(text, "en-gb-f", 170)
    write_wav(tmp_path / "line.wav", speech.samples, speech.sample_rate)
    (tmp_path / "line.txt").write_text(text + "\n")
    out = tmp_path / "metrics.json"
    assert main(["eval", "motion", str(subject_dir), "--audio", str(tmp_path / "line.wav"), "--text-file",
                 str(tmp_path / "line.txt"), "--runs", str(tmp_path / "no-runs"), "--metrics", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["bilabial_count"] >= 8  # runs of p/b/m, neighbours merged: m, b, mp, m, p, b, mb, p(m)
    # closed at every p/b/m, and there at most a third of the opening at vowel midpoints
    assert scores["guided_bilabial_closure"] == 1.0 and scores["guided_closure_ratio"] < 0.35
    assert scores["vowel_count"] >= 5 and 0.0 <= scores["guided_vowel_open"] <= 1.0
    assert 0.0 <= scores["bilabial_closure"] <= 1.0  # the audio alone: scored, not required here

    assert _motion(subject_dir, model_path, tmp_path / "line.wav", tmp_path / "guided.npz", "--text", text) == 0
    assert _motion(subject_dir, model_path, tmp_path / "line.wav", tmp_path / "plain.npz") == 0
    guided, plain = np.load(tmp_path / "guided.npz"), np.load(tmp_path / "plain.npz")
    assert guided["landmarks"].shape == plain["landmarks"].shape
    assert not np.allclose(guided["mouth_opening"], plain["mouth_opening"])


def test_a_transcript_of_other_words_is_a_one_line_error(subject_dir, clip_dir, model_path, tmp_path, capsys):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=3.0)
    assert _motion(subject_dir, model_path, speech, tmp_path / "m.npz", "--text",
                   "Zebras quietly juggle seventeen violins in Moscow tonight.") == 2
    assert _motion(subject_dir, model_path, speech, tmp_path / "m.npz", "--text", "a", "--text-file", "x.txt") == 2
    assert _motion(subject_dir, model_path, speech, tmp_path / "m.npz", "--text-file", str(tmp_path / "none.txt")) == 2
    err = capsys.readouterr().err
    assert "speech.wav" in err and "--text-file" in err and "none.txt" in err and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()
