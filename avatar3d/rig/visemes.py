"""Mouth shapes over time from timed phonemes, with coarticulation.

Each phoneme pulls five mouth controls towards a target with a strength (its dominance)
that decays away from the phoneme, after Cohen & Massaro (1993): a control's value at time t
is the dominance-weighted mean of the targets. A consonant that must reach its shape
(the lip closure of p/b/m, the lip tuck of f/v) has a high dominance on that control and a
low one on the jaw, so the jaw keeps following the neighbouring vowels while the lips close.
"""

from __future__ import annotations

import numpy as np

from avatar3d.rig.speech import Phoneme, phoneme_class

VISEME_NAMES = ("jaw_open", "lip_round", "lip_stretch", "lip_press", "lip_tuck")
"""jaw_open 0 closed .. 1 wide; lip_round (oo, w); lip_stretch (ee); lip_press: the lips
meet (p, b, m); lip_tuck: lower lip under the upper teeth (f, v)."""

# class: (targets, dominances), both in VISEME_NAMES order.
_SHAPES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # Lips together in pauses (the photo's own rest pose is a smile with parted lips).
    "silence": ((0.0, 0.0, 0.0, 1.0, 0.0), (1.0, 1.0, 1.0, 1.0, 1.0)),
    "bilabial": ((0.05, 0.0, 0.0, 1.0, 0.0), (1.5, 0.3, 0.3, 15.0, 1.0)),
    "labiodental": ((0.15, 0.0, 0.0, 0.0, 1.0), (1.0, 0.3, 0.3, 1.0, 12.0)),
    "dental": ((0.25, 0.0, 0.2, 0.0, 0.0), (0.5, 0.3, 0.5, 1.0, 1.0)),
    "alveolar": ((0.2, 0.0, 0.1, 0.0, 0.0), (0.4, 0.2, 0.3, 1.0, 1.0)),
    "postalveolar": ((0.2, 0.6, 0.0, 0.0, 0.0), (0.4, 1.0, 0.4, 1.0, 1.0)),
    "velar": ((0.3, 0.0, 0.0, 0.0, 0.0), (0.3, 0.2, 0.2, 1.0, 1.0)),
    "rounded_cons": ((0.15, 0.9, 0.0, 0.0, 0.0), (0.5, 3.0, 1.0, 1.0, 1.0)),
    "open_vowel": ((0.9, 0.0, 0.15, 0.0, 0.0), (2.0, 1.0, 1.0, 1.0, 1.0)),
    "mid_vowel": ((0.55, 0.0, 0.25, 0.0, 0.0), (2.0, 1.0, 1.0, 1.0, 1.0)),
    "close_vowel": ((0.25, 0.0, 0.7, 0.0, 0.0), (2.0, 1.0, 2.0, 1.0, 1.0)),
    "rounded_vowel": ((0.45, 0.85, 0.0, 0.0, 0.0), (2.0, 2.0, 1.0, 1.0, 1.0)),
}
# Dominance falls by e every 1/decay seconds outside a phoneme's core. Lip closures and
# tucks are brief and local: steep, so they seal the lips without swallowing the vowels.
_DECAY_PER_SECOND = {"bilabial": 70.0, "labiodental": 70.0, "silence": 30.0}
_DEFAULT_DECAY = 25.0


def viseme_track(phonemes: list[Phoneme], sample_rate: int, times: np.ndarray) -> np.ndarray:
    """Mouth controls at the given times.

    Args:
        phonemes: timed phonemes of the speech, in order.
        sample_rate: Hz of the phonemes' sample positions.
        times: (T,) seconds at which to evaluate.

    Returns:
        (T, 5) float32 controls in VISEME_NAMES order, each in [0, 1]; lips together and
        everything else zero when there are no phonemes.
    """
    times = np.asarray(times, dtype=np.float64)
    if not phonemes:
        return np.tile(np.float32(_SHAPES["silence"][0]), (len(times), 1))
    starts = np.array([p.start for p in phonemes], dtype=np.float64) / sample_rate
    ends = np.array([p.end for p in phonemes], dtype=np.float64) / sample_rate
    shapes = [_SHAPES[phoneme_class(p.label)] for p in phonemes]
    targets = np.array([s[0] for s in shapes])  # (P, 5)
    strengths = np.array([s[1] for s in shapes])  # (P, 5)

    # Full dominance over the middle half of each phoneme, exponential decay outside it.
    centres, halves = (starts + ends) / 2, (ends - starts) / 4
    distance = np.maximum(np.abs(times[:, None] - centres[None]) - halves[None], 0.0)  # (T, P)
    decay = np.array([_DECAY_PER_SECOND.get(phoneme_class(p.label), _DEFAULT_DECAY) for p in phonemes])
    dominance = strengths[None] * np.exp(-decay[None] * distance)[..., None]  # (T, P, 5)
    values = (dominance * targets[None]).sum(1) / dominance.sum(1)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def phoneme_at(phonemes: list[Phoneme], sample_rate: int, times: np.ndarray) -> list[str]:
    """Label of the phoneme sounding at each time (``"_"`` outside the speech), (T,) strings."""
    starts = np.array([p.start for p in phonemes]) / sample_rate
    ends = np.array([p.end for p in phonemes]) / sample_rate
    labels = []
    for t in np.asarray(times, dtype=np.float64):
        index = np.searchsorted(starts, t, side="right") - 1
        inside = index >= 0 and t < ends[index]
        labels.append(phonemes[index].label if inside else "_")
    return labels
