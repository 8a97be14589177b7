"""Expression as landmark displacements, compressed by a PCA basis.

An expression is the displacement of the 478 head-frame landmarks from the person's own
neutral face, divided by the width of that face (`avatar3d.face.signals.face_width`), so
faces of any size share one space. A PCA basis fit on a training corpus turns the
(478 x 3) displacements into K codes. The basis travels in the motion checkpoint, so a
model trained on many people applies to any subject: the subject's own neutral face and
width turn codes back into its landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar3d.errors import BadInputError
from avatar3d.face import signals
from avatar3d.face import topology as topo

POINTS = topo.NUM_LANDMARKS * 3
LIP_POINTS = np.asarray(topo.LIPS)  # (40,) the landmarks the sync expert watches


SPEAKER_DIMS = 6


def speaker_shape(neutral: np.ndarray) -> np.ndarray:
    """(6,) float32 measures of a neutral face, in face widths, that change how its mouth moves.

    Inner-lip gap (a face at rest with parted lips needs a larger displacement to close
    them), mouth width, face height, upper and lower lip thickness, and how far the lips
    stand out in front of the face's sides.
    """
    width = float(signals.face_width(neutral))
    top, bottom = neutral[topo.MOUTH_TOP], neutral[topo.MOUTH_BOTTOM]
    corners = neutral[list(topo.MOUTH_CORNERS)]
    measures = [
        top[1] - bottom[1],
        np.linalg.norm(corners[0] - corners[1]),
        neutral[topo.FOREHEAD, 1] - neutral[topo.CHIN, 1],
        neutral[topo.UPPER_LIP_OUTER[4], 1] - top[1],
        bottom[1] - neutral[topo.LOWER_LIP_OUTER[4], 1],
        top[2] - neutral[list(topo.FACE_SIDES), 2].mean(),
    ]
    return (np.array(measures) / width).astype(np.float32)


def displacements(landmarks: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """(..., 478, 3) head-frame landmarks -> displacements from ``neutral`` (478, 3) in face widths."""
    return (landmarks - neutral) / float(signals.face_width(neutral))


def to_landmarks(displacement: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """Inverse of `displacements`: (..., 478, 3) face widths -> head-frame landmarks."""
    return neutral + displacement * float(signals.face_width(neutral))


@dataclass
class ExpressionBasis:
    """PCA of flattened displacements: ``codes = (d - mean) @ components.T``.

    Attributes:
        mean: (1434,) mean displacement, face widths.
        components: (K, 1434) orthonormal rows, largest variance first.
        variance: (K,) variance of each code over the fitting data, face widths².
    """

    mean: np.ndarray
    components: np.ndarray
    variance: np.ndarray

    @classmethod
    def fit(cls, displacement: np.ndarray, size: int) -> "ExpressionBasis":
        """Basis of the ``size`` main directions of (N, 478, 3) displacements."""
        flat = np.asarray(displacement, np.float64).reshape(len(displacement), POINTS)
        if len(flat) < 2 or not np.isfinite(flat).all():
            raise BadInputError(f"expression basis: need at least 2 finite frames, got {len(flat)}")
        mean = flat.mean(0)
        # Eigenvectors of the 1434 x 1434 covariance: cheaper than an SVD of N x 1434 for long corpora.
        covariance = np.cov(flat - mean, rowvar=False)
        values, vectors = np.linalg.eigh(covariance)
        order = np.argsort(values)[::-1][:size]
        return cls(mean.astype(np.float32), vectors[:, order].T.astype(np.float32),
                   np.maximum(values[order], 0).astype(np.float32))

    @property
    def size(self) -> int:
        """Number of codes K."""
        return len(self.components)

    def encode(self, displacement: np.ndarray) -> np.ndarray:
        """(..., 478, 3) displacements -> (..., K) codes."""
        flat = displacement.reshape(*displacement.shape[:-2], POINTS)
        return ((flat - self.mean) @ self.components.T).astype(np.float32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(..., K) codes -> (..., 478, 3) displacements."""
        flat = self.mean + codes @ self.components
        return flat.reshape(*codes.shape[:-1], topo.NUM_LANDMARKS, 3).astype(np.float32)

    def explained(self, displacement: np.ndarray) -> float:
        """Fraction of the variance of (N, 478, 3) displacements the basis keeps."""
        flat = displacement.reshape(len(displacement), POINTS) - self.mean
        residual = flat - (flat @ self.components.T) @ self.components
        return 1.0 - float((residual**2).sum() / max((flat**2).sum(), 1e-12))

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for a checkpoint."""
        return {"mean": self.mean, "components": self.components, "variance": self.variance}

    @classmethod
    def from_state(cls, state: dict) -> "ExpressionBasis":
        """Inverse of `state` (numpy arrays or tensors)."""
        arrays = {key: np.asarray(state[key], np.float32) for key in ("mean", "components", "variance")}
        if arrays["mean"].shape != (POINTS,) or arrays["components"].shape[1:] != (POINTS,):
            raise BadInputError("expression basis: the checkpoint's basis is not over 478 x 3 landmarks")
        return cls(**arrays)
