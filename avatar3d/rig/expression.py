"""How mouth controls and blinks move the actor's 478 face landmarks.

No licensed face model can be shipped, so expressions are procedural displacement fields
built from the rest landmarks alone: the jaw turns about a hinge in front of the ears,
lips round, stretch, press and tuck, eyelids close. Everything is in head space
(+y up, +z out of the face); the face is ~0.15 wide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar3d.face import topology as topo
from avatar3d.face.closure import close_pairs, press_lips

JAW_MAX_DEGREES = 10.0


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 beyond ``edge1``, a C1 cubic between (edges may be in either order)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _rotate_x(points: np.ndarray, pivot: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotates (N,3) points about the x axis through ``pivot`` by per-point angles (N,) radians."""
    rel = points - pivot
    cos, sin = np.cos(angle), np.sin(angle)
    y = rel[:, 1] * cos - rel[:, 2] * sin
    z = rel[:, 1] * sin + rel[:, 2] * cos
    return np.stack([rel[:, 0], y, z], 1) + pivot


@dataclass
class ExpressionRig:
    """Per-landmark weights precomputed from the rest face; see ``build_rig`` and ``apply``."""

    rest: np.ndarray  # (478, 3) rest landmarks, head space
    jaw_pivot: np.ndarray  # (3,) a point on the jaw hinge axis (parallel to x)
    jaw_weight: np.ndarray  # (478,) 1 moves fully with the jaw
    lip_weight: np.ndarray  # (478,) 1 on the lips, falling off around the mouth
    mouth_centre: np.ndarray  # (3,)
    mouth_width: float
    face_width: float


def build_rig(rest: np.ndarray) -> ExpressionRig:
    """Derives the jaw hinge and the weights from rest landmarks (478, 3), head space."""
    face_width = float(np.linalg.norm(rest[topo.FACE_SIDES[0]] - rest[topo.FACE_SIDES[1]]))
    corners = rest[list(topo.MOUTH_CORNERS)]
    mouth_centre = (rest[topo.MOUTH_TOP] + rest[topo.MOUTH_BOTTOM]) / 2
    mouth_width = float(np.linalg.norm(corners[0] - corners[1]))
    sides = rest[list(topo.FACE_SIDES)].mean(0)
    # The hinge sits near the ear-level ends of the face oval, a little behind them.
    jaw_pivot = np.array([mouth_centre[0], sides[1], sides[2] - 0.1 * face_width])

    x, y = rest[:, 0] - mouth_centre[0], rest[:, 1]
    mouth_y = corners[:, 1].mean()
    below = smoothstep(mouth_y + 0.01 * face_width, mouth_y - 0.12 * face_width, y)
    taper = 1.0 - 0.5 * smoothstep(0.25 * face_width, 0.5 * face_width, np.abs(x))
    jaw_weight = below * taper
    jaw_weight[list(topo.LOWER_LIP_OUTER + topo.LOWER_LIP_INNER)] = 1.0
    jaw_weight[list(topo.UPPER_LIP_OUTER + topo.UPPER_LIP_INNER)] = 0.0
    jaw_weight[list(topo.MOUTH_CORNERS + topo.INNER_CORNERS)] = 0.5
    jaw_weight[topo.NUM_SURFACE:] = 0.0  # irises

    dy = y - mouth_centre[1]
    lip_weight = np.exp(-((x / (0.7 * mouth_width)) ** 2 + (dy / (0.5 * mouth_width)) ** 2))
    lip_weight[list(topo.LIPS)] = 1.0
    lip_weight[topo.NUM_SURFACE:] = 0.0
    return ExpressionRig(rest, jaw_pivot, jaw_weight, lip_weight, mouth_centre, mouth_width, face_width)


def apply(rig: ExpressionRig, visemes: np.ndarray, blink: float) -> np.ndarray:
    """Landmarks (478, 3) for mouth controls (5,) in VISEME_NAMES order and eyelid closure 0..1."""
    jaw, rounding, stretch, press, tuck = (float(v) for v in visemes)
    points = _rotate_x(rig.rest, rig.jaw_pivot, np.radians(JAW_MAX_DEGREES) * jaw * rig.jaw_weight)

    centre_x, w, lips = rig.mouth_centre[0], rig.mouth_width, rig.lip_weight
    points[:, 0] = centre_x + (points[:, 0] - centre_x) * (1 - 0.3 * rounding * lips) * (1 + 0.12 * stretch * lips)
    points[:, 2] += 0.12 * w * rounding * lips
    inner_upper, inner_lower = list(topo.UPPER_LIP_INNER), list(topo.LOWER_LIP_INNER)
    points[inner_upper, 1] += 0.03 * w * rounding
    points[inner_lower, 1] -= 0.03 * w * rounding

    if tuck > 0:  # lower lip up and back under the upper teeth; upper lip lifts a little
        lower = list(topo.LOWER_LIP_INNER + topo.LOWER_LIP_OUTER)
        lift = points[topo.MOUTH_TOP, 1] - points[topo.MOUTH_BOTTOM, 1] - 0.05 * w
        points[lower, 1] += tuck * max(lift, 0.0)
        points[lower, 2] -= 0.08 * w * tuck
        points[list(topo.UPPER_LIP_INNER + topo.UPPER_LIP_OUTER), 1] += 0.04 * w * tuck

    press_lips(points, press)

    for upper_lid, lower_lid, crease in (
        (topo.RIGHT_UPPER_LID, topo.RIGHT_LOWER_LID, topo.RIGHT_UPPER_CREASE),
        (topo.LEFT_UPPER_LID, topo.LEFT_LOWER_LID, topo.LEFT_UPPER_CREASE),
    ):
        close_pairs(points, upper_lid, lower_lid, 0.95 * blink, 0.85, ((crease, upper_lid, 0.5),))
    return points
