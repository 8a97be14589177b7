"""Held-out motion scores: the sync ranking leaves out silence shifted into silence."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from avatar3d.motion.features import AUDIO_DIMS
from avatar3d.motion.sync import MAX_SHIFT, SyncExpert
from avatar3d.train.motion_eval import rank_accuracy, silent_windows


def test_silent_windows_need_five_silent_frames():
    labels = np.array(["_", "_", "_", "p", "'a", "_", "_", "_", "_", "_", ""])
    assert silent_windows(labels).tolist() == [
        True, False, False, False, False, False, False, True, True, True, True]  # fmt: skip


def test_rank_accuracy_leaves_out_silence_against_silence():
    torch.manual_seed(0)
    T = 60
    phonemes = np.array(["_"] * 20 + ["'a"] * 20 + ["_"] * 20)
    audio = torch.zeros(2 * T, AUDIO_DIMS)
    audio[40:80] = torch.randn(40, AUDIO_DIMS)  # speech rows of frames 20..39
    lips = torch.randn(T, 40, 3) * 0.01
    silent = silent_windows(phonemes)
    tally = rank_accuracy(SimpleNamespace(expert=SyncExpert()), audio, lips, silent, min_shift=2)
    both_silent = 0
    for shift in [s for s in range(-MAX_SHIFT, MAX_SHIFT + 1) if abs(s) >= 2]:
        lo, hi = max(0, -shift), min(T, T - shift)
        both_silent += int((silent[lo:hi] & silent[lo + shift : hi + shift]).sum())
    assert both_silent > 0
    assert tally["all"][1] - tally["speech"][1] == both_silent
    # Silent windows see identical audio at both shifts: a tie, never a win, whatever the expert.
    assert tally["all"][0] == tally["speech"][0]


def test_transcript_scores_count_closures_and_open_vowels():
    from avatar3d.rig.speech import Phoneme
    from avatar3d.train.motion_eval import transcript_scores

    rate, fps = 16000, 25.0
    # 2 s: silence, "a" 0.2-0.4, "p" 0.4-0.46 (shorter than two frames), "a" 0.46-0.7, "m" 0.7-0.8, "a" 0.8-1.0, silence
    cuts = [0, 0.2, 0.4, 0.46, 0.7, 0.8, 1.0, 2.0]
    labels = ["_", "a", "p", "a", "m", "a", "_"]
    phonemes = [Phoneme(label, int(a * rate), int(b * rate)) for label, a, b in zip(labels, cuts, cuts[1:])]
    subject = np.linspace(0.01, 0.11, 200)  # thresholds: closed 0.015, open 0.035
    opening = np.full(50, 0.1)
    opening[10] = 0.005  # closed at the p (frame 10's centre, 0.42 s, is its only one), open at the m
    scores = transcript_scores(opening, phonemes, rate, fps, subject)
    assert scores["bilabial_count"] == 2 and scores["bilabial_closure"] == 0.5
    assert scores["vowel_count"] == 3 and scores["vowel_open"] == 1.0
    assert scores["closure_ratio"] == pytest.approx(np.median([0.005, 0.1]) / 0.1)
    opening[:] = 0.02  # a mouth that never opens
    assert transcript_scores(opening, phonemes, rate, fps, subject)["vowel_open"] == 0.0
