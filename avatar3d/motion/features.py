"""The motion models' audio input: one normalised feature matrix per clip.

`avatar3d.audio.features.extract` gives two rows per video frame of log-mel, f0, voicing,
log energy and phone posteriors. Here they become one (2T, AUDIO_DIMS) float32 matrix,
normalised per clip so that voice, microphone gain and speaking pitch matter less than
what is said:

- log-mel: minus the clip's mean per band, over its spread (cepstral mean and variance
  normalisation), computed over rows louder than the clip's floor so pauses do not dilute it;
- f0: log f0 minus the clip's median voiced log f0 (intonation, not the speaker's register),
  0 where unvoiced;
- energy: log RMS minus the clip's 95th percentile (loudness relative to the speaker);
- voicing and phone posteriors as they are.
"""

from __future__ import annotations

import numpy as np

from avatar3d.audio import features as audio_features

MEL_BINS = 80
AUDIO_DIMS = MEL_BINS + 3 + len(audio_features.PHONES)
"""Columns of `feature_matrix`: mel, f0, voiced, energy, phones."""
FEATURE_GROUPS = {
    "mel": range(0, MEL_BINS),
    "pitch": range(MEL_BINS, MEL_BINS + 2),  # intonation and voicing
    "energy": range(MEL_BINS + 2, MEL_BINS + 3),
    "phones": range(MEL_BINS + 3, AUDIO_DIMS),
}
"""The columns of each kind of feature, which a model may hear or not (`group_mask`)."""


def group_mask(groups) -> np.ndarray:
    """(AUDIO_DIMS,) float32: 1 in the columns of the named `FEATURE_GROUPS`, 0 elsewhere."""
    mask = np.zeros(AUDIO_DIMS, np.float32)
    for name in groups:
        mask[list(FEATURE_GROUPS[name])] = 1.0
    return mask

SILENCE_BELOW = 4.0
"""Rows quieter than the loudest 5 % by more than this (natural log of RMS, ~35 dB) are pauses."""


def feature_matrix(features: dict) -> np.ndarray:
    """(2T, AUDIO_DIMS) float32 normalised features from `extract`'s output (or an npz of it)."""
    mel = np.asarray(features["mel"], np.float32)
    energy = np.asarray(features["energy"], np.float32)
    f0 = np.asarray(features["f0"], np.float32)
    voiced = np.asarray(features["voiced"], np.float32)
    phones = np.asarray(features["phones"], np.float32)
    loud = np.percentile(energy, 95) if len(energy) else 0.0
    speech = energy > loud - SILENCE_BELOW
    reference = mel[speech] if speech.sum() > 1 else mel
    mel = (mel - reference.mean(0)) / (reference.std(0) + 1.0)  # +1: silence-only clips stay finite and small
    log_f0 = np.log(np.maximum(f0, 1.0))
    has_f0 = f0 > 0
    centre = np.median(log_f0[has_f0]) if has_f0.any() else 0.0
    intonation = np.where(has_f0, (log_f0 - centre) * 4.0, 0.0)  # x4: a semitone is ~0.06 in log f0
    loudness = np.clip(energy - loud, -10.0, 2.0) / 4.0
    columns = [mel, intonation[:, None], voiced[:, None], loudness[:, None], phones]
    return np.concatenate(columns, 1).astype(np.float32)


def subject_features(subject, split: str) -> np.ndarray:
    """(2N, AUDIO_DIMS) features of a prepared `Subject`'s frames in ``split`` ("train" or
    "val"), normalised over its whole clip as `clip_features` normalises a driving clip."""
    start, stop = subject.manifest["split"][split]
    return feature_matrix(subject.arrays("audio_features"))[2 * start : 2 * stop]


def clip_features(samples: np.ndarray, sample_rate: int, num_frames: int, fps: float) -> np.ndarray:
    """(2T, AUDIO_DIMS) features of raw audio (any rate; (N, C) is downmixed)."""
    return feature_matrix(audio_features.extract(samples, sample_rate, num_frames, fps))
