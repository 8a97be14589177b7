"""Scores of a motion model on held-out utterances with known truth.

- ``mouth_corr``: Pearson correlation of predicted and true mouth opening over all frames.
- ``bilabial_closure``: fraction of p/b/m phonemes during which the predicted mouth closes:
  its opening at the phoneme's most closed frame falls below the speaker's closed threshold
  (`closed_threshold` of the speaker's true openings in that utterance).
  ``truth_bilabial_closure`` is the same count on the true openings, for reference.
- ``sync_offset_within_1``: fraction of utterances whose true lips the sync expert puts
  within ±1 frame of their audio.
- ``sync_rank``: fraction of (window, shift) pairs where the expert scores a true 5-frame
  pair above the same mouth with its audio shifted by 2..15 frames (``sync_rank_1`` counts
  shifts of 1 frame too, which move the audio by only 40 ms). Pairs whose true and
  shifted audio are both silence are left out: silence shifted into silence is the same
  audio, not a mismatch, so no expert can rank it (``sync_rank_with_silence`` keeps them).
- ``sync_offset_predicted``: mean |offset| the expert finds for the predicted lips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avatar3d.face import signals
from avatar3d.motion import corpus as corpora
from avatar3d.motion.basis import LIP_POINTS, to_landmarks
from avatar3d.motion.model import MotionModel
from avatar3d.motion.sync import MAX_SHIFT, MOUTH_FRAMES, audio_windows, lip_windows, sync_measure

def mouth_opening(displacement: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """(T,) mouth opening of (T, 478, 3) displacements on a face with ``neutral`` landmarks."""
    return signals.mouth_opening(to_landmarks(displacement, neutral))


def bilabial_segments(phonemes: np.ndarray) -> list[np.ndarray]:
    """Frame indices of each run of p/b/m frames (phoneme labels at frame centres)."""
    from avatar3d.rig.speech import phoneme_class

    is_bilabial = np.array([bool(p) and phoneme_class(str(p)) == "bilabial" for p in phonemes])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], is_bilabial.astype(int), [0]])))
    return [np.arange(start, stop) for start, stop in zip(edges[::2], edges[1::2])]


def silent_windows(phonemes: np.ndarray) -> np.ndarray:
    """(T,) bool: the 5-frame sync window centred on each frame holds only silence."""
    from avatar3d.rig.speech import phoneme_class

    silent = np.array([phoneme_class(str(p)) == "silence" for p in phonemes])
    padded = np.pad(silent, MOUTH_FRAMES // 2, mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, MOUTH_FRAMES).all(axis=1)


@torch.no_grad()
def rank_accuracy(
    model: MotionModel, audio: torch.Tensor, lips: torch.Tensor, silent: np.ndarray, min_shift: int
) -> dict[str, tuple[int, int]]:
    """(wins, pairs) of true windows scored above shifted ones, over every valid frame and shift.

    ``silent`` is :func:`silent_windows`. Returns the tally over pairs with speech in the
    true or the shifted window (``"speech"``) and over all pairs (``"all"``).
    """
    frames = torch.arange(len(lips))
    mouth = model.expert.embed_mouth(lip_windows(lips, frames))
    sound = model.expert.embed_audio(audio_windows(audio, frames))
    true = (mouth * sound).sum(-1).numpy()
    tally = {"speech": [0, 0], "all": [0, 0]}
    for shift in [s for s in range(-MAX_SHIFT, MAX_SHIFT + 1) if abs(s) >= min_shift]:
        lo, hi = max(0, -shift), min(len(lips), len(lips) - shift)
        won = true[lo:hi] > (mouth[lo:hi] * sound[lo + shift : hi + shift]).sum(-1).numpy()
        speech = ~(silent[lo:hi] & silent[lo + shift : hi + shift])
        tally["speech"][0] += int(won[speech].sum())
        tally["speech"][1] += int(speech.sum())
        tally["all"][0] += int(won.sum())
        tally["all"][1] += hi - lo
    return {key: (won, pairs) for key, (won, pairs) in tally.items()}


@torch.no_grad()
def evaluate_heldout(model: MotionModel, paths: list[Path]) -> dict:
    """The module doc's scores over the utterance files ``paths``."""
    predicted_all, true_all, closures, true_closures, offsets, predicted_offsets = [], [], [], [], [], []
    wins = {(shift, kind): [0, 0] for shift in (1, 2) for kind in ("speech", "all")}
    for path in paths:
        utterance = corpora.load_utterance(path)
        audio = torch.from_numpy(utterance["audio"])
        truth = utterance["displacement"].astype(np.float32)
        predicted = model.generate(utterance["audio"], utterance["neutral"])
        predicted_all.append(mouth_opening(predicted, utterance["neutral"]))
        true_all.append(mouth_opening(truth, utterance["neutral"]))
        threshold = closed_threshold(true_all[-1])
        for segment in bilabial_segments(utterance["phoneme"]):
            closures.append(bool(predicted_all[-1][segment].min() < threshold))
            true_closures.append(bool(true_all[-1][segment].min() < threshold))
        true_lips = torch.from_numpy(truth[:, LIP_POINTS])
        offsets.append(sync_measure(model.expert, audio, true_lips)["offset_frames"])
        predicted_offsets.append(sync_measure(model.expert, audio, torch.from_numpy(predicted[:, LIP_POINTS]))["offset_frames"])
        silent = silent_windows(utterance["phoneme"])
        for min_shift in (1, 2):
            for kind, (won, pairs) in rank_accuracy(model, audio, true_lips, silent, min_shift).items():
                wins[min_shift, kind][0] += won
                wins[min_shift, kind][1] += pairs
    predicted_all, true_all = np.concatenate(predicted_all), np.concatenate(true_all)
    return {
        "utterances": len(paths),
        "frames": len(true_all),
        "mouth_corr": float(np.corrcoef(predicted_all, true_all)[0, 1]),
        "bilabial_closure": float(np.mean(closures)) if closures else None,
        "bilabial_count": len(closures),
        "truth_bilabial_closure": float(np.mean(true_closures)) if true_closures else None,
        "sync_offset_within_1": float(np.mean(np.abs(offsets) <= 1)),
        "sync_rank": wins[2, "speech"][0] / max(wins[2, "speech"][1], 1),
        "sync_rank_1": wins[1, "speech"][0] / max(wins[1, "speech"][1], 1),
        "sync_rank_with_silence": wins[2, "all"][0] / max(wins[2, "all"][1], 1),
        "sync_offset_predicted": float(np.mean(np.abs(predicted_offsets))),
    }


def closed_threshold(mouth_opening_values: np.ndarray, fraction: float = 0.1) -> float:
    """A subject's closed-mouth threshold: 10 % of the way from its 5th to 95th percentile opening
    (``fraction`` of the way, for other thresholds)."""
    low, high = np.percentile(mouth_opening_values, [5, 95])
    return float(low + fraction * (high - low))


OPEN_FRACTION = 0.3
"""A vowel counts as open when the mouth passes 30 % of the way from the subject's 5th to 95th
percentile opening."""
MIN_VOWEL_S = 0.08
"""Vowels this long or longer are scored by ``vowel_open`` (shorter ones are mostly unstressed)."""


def phone_frames(start: int, end: int, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """Frames whose centres fall within samples [start, end), or, for a phone shorter than a
    frame, the frame holding its midpoint."""
    first = int(np.ceil(start / sample_rate * fps - 0.5))
    last = int(np.ceil(end / sample_rate * fps - 0.5))
    frames = np.arange(first, last) if last > first else np.array([int((start + end) / 2 / sample_rate * fps)])
    return frames[(frames >= 0) & (frames < num_frames)]


def transcript_scores(opening: np.ndarray, phonemes: list, sample_rate: int, fps: float,
                      subject_opening: np.ndarray) -> dict:
    """Lip-sync scores of a mouth track against the aligned phonemes of its speech.

    Args:
        opening: (T,) mouth opening per video frame (`avatar3d.face.signals.mouth_opening`).
        phonemes: the speech's `avatar3d.rig.speech.Phoneme` s, sample positions.
        sample_rate, fps: the phonemes' sample rate and the track's frame rate.
        subject_opening: the subject's own mouth openings, which set its thresholds.

    Returns:
        ``bilabial_closure``: fraction of p/b/m (neighbouring ones merged: "mp" is one
        closure) whose smallest opening is below `closed_threshold`; ``closure_ratio``: the
        median over them of that smallest opening over the median opening at vowel
        midpoints; ``vowel_open``: fraction of vowels of `MIN_VOWEL_S` or more whose largest
        opening passes the `OPEN_FRACTION` threshold; and the counts.
    """
    from avatar3d.rig.speech import phoneme_class

    classes = [phoneme_class(p.label) for p in phonemes]
    frames = [phone_frames(p.start, p.end, sample_rate, fps, len(opening)) for p in phonemes]
    closures, run = [], []
    for cls, span in zip(classes + ["silence"], frames + [np.zeros(0, int)]):
        if cls == "bilabial":
            run.append(span)
        elif run:
            closures.append(np.concatenate(run))
            run = []
    closures = [span for span in closures if len(span)]
    vowels = [(p, span) for p, cls, span in zip(phonemes, classes, frames) if cls.endswith("vowel") and len(span)]
    midpoints = [int((p.start + p.end) / 2 / sample_rate * fps) for p, _ in vowels]
    vowel_level = float(np.median(opening[np.clip(midpoints, 0, len(opening) - 1)])) if midpoints else np.nan
    smallest = np.array([opening[span].min() for span in closures])
    long_vowels = [span for p, span in vowels if (p.end - p.start) / sample_rate >= MIN_VOWEL_S]
    open_at = closed_threshold(subject_opening, OPEN_FRACTION)
    return {
        "bilabial_closure": float(np.mean(smallest < closed_threshold(subject_opening))) if len(smallest) else None,
        "closure_ratio": float(np.median(smallest) / vowel_level) if len(smallest) and vowel_level > 0 else None,
        "vowel_open": float(np.mean([opening[span].max() > open_at for span in long_vowels])) if long_vowels else None,
        "bilabial_count": len(closures),
        "vowel_count": len(long_vowels),
    }


def evaluate_motion(cfg) -> dict:
    """``avatar3d eval motion``: drives the subject with the audio and scores the motion.

    ``sync_score`` and ``sync_offset_frames`` always (the sync expert on the driven lips);
    ``mouth_corr`` and ``bilabial_closure`` when ``cfg.truth`` (a virtual-actor truth.npz of
    the same audio) is given; with a transcript (``cfg.text`` or ``cfg.text_file``),
    `transcript_scores` of the audio-only motion and, as ``guided_*``, of the
    transcript-guided motion. Writes ``cfg.metrics`` and returns the scores.
    """
    import dataclasses
    import json

    from avatar3d.errors import BadInputError
    from avatar3d.files import atomic_path
    from avatar3d.motion.generate import generate_motion, load_speech
    from avatar3d.motion.transcript import aligned_phonemes, read_transcript

    speech = load_speech(cfg.audio)
    text = read_transcript(cfg.text, cfg.text_file)
    audio_only = dataclasses.replace(cfg, text=None, text_file=None)
    motion, features, subject, model = generate_motion(audio_only, speech)
    result = {"frames": len(motion["landmarks"]), **driven_sync(model, features, motion, subject.neutral)}
    subject_opening = signals.mouth_opening(subject.landmarks)
    if text is not None:
        phonemes = aligned_phonemes(*speech, text, str(cfg.audio))
        fps = float(motion["fps"])
        result |= transcript_scores(motion["mouth_opening"], phonemes, speech[1], fps, subject_opening)
        guided = generate_motion(audio_only, speech, phonemes)[0]
        scores = transcript_scores(guided["mouth_opening"], phonemes, speech[1], fps, subject_opening)
        result |= {f"guided_{key}": value for key, value in scores.items() if not key.endswith("_count")}
    if cfg.truth is not None:
        try:
            with np.load(cfg.truth) as truth:
                true_opening, true_phonemes = truth["mouth_opening"], truth["phoneme"]
        except (OSError, KeyError, ValueError):
            raise BadInputError(f"--truth {cfg.truth}: not a virtual-actor truth.npz (made by `avatar3d synth`)") from None
        count = min(len(true_opening), len(motion["mouth_opening"]))
        predicted = motion["mouth_opening"][:count]
        threshold = closed_threshold(subject_opening)
        closures = [bool(predicted[s].min() < threshold) for s in bilabial_segments(true_phonemes[:count]) if len(s)]
        result |= {"mouth_corr": float(np.corrcoef(predicted, true_opening[:count])[0, 1]),
                   "bilabial_closure": float(np.mean(closures)) if closures else None,
                   "bilabial_count": len(closures), "closed_threshold": threshold}
    with atomic_path(cfg.metrics) as partial:
        partial.write_text(json.dumps(result, indent=1))
    return result


def driven_sync(model: MotionModel, features: np.ndarray, motion: dict, neutral: np.ndarray) -> dict:
    """The sync expert on driven lips: ``sync_score`` and ``sync_offset_frames``."""
    from avatar3d.motion.basis import displacements

    lips = displacements(motion["landmarks"], neutral)[:, LIP_POINTS].astype(np.float32)
    sync = sync_measure(model.expert, torch.from_numpy(features), torch.from_numpy(lips))
    return {"sync_score": sync["score"], "sync_offset_frames": sync["offset_frames"]}


@torch.no_grad()
def evaluate_subject(model: MotionModel, train: dict, val: dict) -> dict:
    """Scores of a subject-adapted model against the subject's own fitted motion.

    ``{split}_mouth_corr``: predicted vs fitted mouth opening from the split's audio;
    ``{split}_video_offset_frames``: the sync expert's audio-video offset of the real video
    (non-zero means the subject's sound and picture are out of step).
    """
    result = {}
    for name, utterance in (("train", train), ("val", val)):
        if len(utterance["displacement"]) < 2:
            continue
        audio = torch.from_numpy(utterance["audio"])
        predicted = model.generate(utterance["audio"], utterance["neutral"])
        truth = utterance["displacement"]
        result[f"{name}_mouth_corr"] = float(np.corrcoef(mouth_opening(predicted, utterance["neutral"]),
                                                         mouth_opening(truth, utterance["neutral"]))[0, 1])
        lips = torch.from_numpy(truth[:, LIP_POINTS].astype(np.float32))
        result[f"{name}_video_offset_frames"] = sync_measure(model.expert, audio, lips)["offset_frames"]
        result[f"{name}_frames"] = len(truth)
    return result
