"""Subject calibration: a linear map from the motion model's expression codes to the subject's own.

Why: the model learns codes from a corpus (the synthetic one holds exact rig landmarks,
measured from a rest face), while a subject's codes come from MediaPipe tracking and the
face fit, measured from the fit's canonical shape (the clip's mean face). The same mouth
movement therefore lands in the subject's code space shifted and linearly distorted. On the
demo subject, 79 % and 84 % of the predicted frames fell outside the subject's range on two
of the first four codes, the LLE post-net's clamp flattened them, and the driven mouth
opening correlated with the truth at r = 0.82 instead of 0.97.

A talking subject's own frames pair its audio with its tracked codes, so the map is fitted in
closed form there: ridge regression from the model's codes on the subject's audio to the
subject's codes, shrunk towards the identity so that a short clip cannot overfit it, then
each output code rescaled to the subject's own spread (least squares damps what it cannot
predict: with a weaker model, as on voices unlike the corpus, the mouth would move less than
the subject's does). Unlike fine-tuning (``avatar3d train motion --adapt``), it takes a
second and needs no training run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHRINK = 0.1
"""Ridge towards the identity, relative to the predictions' mean energy per code: 0.03–1 all gave
r 0.96–0.97 on the demo sentence; 0.003 gave 0.94."""


@dataclass(frozen=True)
class CodeMap:
    """``codes -> (codes - source_mean) @ weight + target_mean`` on (T, D) expression codes."""

    weight: np.ndarray  # (D, D)
    source_mean: np.ndarray  # (D,) the model's mean code on the subject's speech
    target_mean: np.ndarray  # (D,) the subject's mean code

    @classmethod
    def identity(cls, dims: int) -> "CodeMap":
        zeros = np.zeros(dims)
        return cls(np.eye(dims), zeros, zeros)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        """(T, D) codes in the model's space -> (T, D) codes in the subject's, of the input's dtype."""
        codes = np.asarray(codes)
        return ((codes - self.source_mean) @ self.weight + self.target_mean).astype(codes.dtype, copy=False)


def fit_code_map(predicted: np.ndarray, tracked: np.ndarray, shrink: float = SHRINK) -> CodeMap:
    """The ridge map taking the model's codes to the subject's on the same frames.

    Args:
        predicted: (N, D) the model's codes for the subject's own speech.
        tracked: (N, D) the subject's codes of the same N frames.
        shrink: Ridge weight towards the identity, relative to the mean energy per code of the
            centred predictions (scale-free: the same for 10 s and 10 min of speech).

    Returns:
        The map: its outputs on ``predicted`` have the mean and per-code spread of
        ``tracked``; where the predictions do not vary (no speech), only the means shift.
    """
    predicted, tracked = np.asarray(predicted, np.float64), np.asarray(tracked, np.float64)
    source_mean, target_mean = predicted.mean(0), tracked.mean(0)
    x, y = predicted - source_mean, tracked - target_mean
    dims = x.shape[1]
    ridge = max(shrink * float((x**2).sum()) / dims, 1e-12)
    eye = np.eye(dims)
    weight = np.linalg.solve(x.T @ x + ridge * eye, x.T @ y + ridge * eye)
    spread = (x @ weight).std(0)
    weight *= np.where(spread > 1e-9, y.std(0) / np.maximum(spread, 1e-9), 1.0)  # undo the regression's damping
    return CodeMap(weight, source_mean, target_mean)
