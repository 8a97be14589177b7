"""Scalar face signals measured from landmarks: mouth and eye opening.

Both are ratios of distances, so they are independent of image scale and of the units of
the landmarks (pixels or head space). Landmarks are (..., 478, D) with D = 2 or 3, as numpy
arrays or torch tensors (the renderer measures its conditions' landmarks on their device); the
result is of the same kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from avatar3d.face import topology as topo

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

Array = TypeVar("Array", "np.ndarray", "Tensor")


def _distance(landmarks: Array, a, b) -> Array:
    return ((landmarks[..., a, :] - landmarks[..., b, :]) ** 2).sum(-1) ** 0.5


def face_width(landmarks: Array) -> Array:
    """Distance between the two ends of the face oval, (...,)."""
    return _distance(landmarks, *topo.FACE_SIDES)


def mouth_opening(landmarks: Array) -> Array:
    """Gap between the inner lip midpoints over the face width, (...,). About 0 closed, 0.15 wide open."""
    return _distance(landmarks, topo.MOUTH_TOP, topo.MOUTH_BOTTOM) / face_width(landmarks)


def eye_opening(landmarks: Array) -> Array:
    """Mean over both eyes of lid gap over eye width, (...,). About 0.3 open, below 0.1 closed."""
    ratios = [
        _distance(landmarks, list(upper), list(lower)).mean(-1)
        / _distance(landmarks, *corners)
        for upper, lower, corners in (
            (topo.RIGHT_UPPER_LID, topo.RIGHT_LOWER_LID, topo.RIGHT_EYE_CORNERS),
            (topo.LEFT_UPPER_LID, topo.LEFT_LOWER_LID, topo.LEFT_EYE_CORNERS),
        )
    ]
    return (ratios[0] + ratios[1]) / 2
