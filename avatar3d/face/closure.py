"""Closing paired landmarks in place: the lips (a press) and the eyelids.

Shared by the virtual actor's rig (`avatar3d.rig.expression`) and driven motion, which
presses the lips where a transcript or the motion model's closure head says they meet.
"""

from __future__ import annotations

import numpy as np

from avatar3d.face import topology as topo

LIP_FOLLOWERS = ((topo.UPPER_LIP_OUTER, topo.UPPER_LIP_INNER, 1.0), (topo.LOWER_LIP_OUTER, topo.LOWER_LIP_INNER, 1.0))
"""The outer lips move with their inner points."""


def close_pairs(points: np.ndarray, upper, lower, amount, upper_share: float, followers: tuple = ()) -> None:
    """Moves paired upper and lower points of (..., 478, 3) landmarks towards each other in place.

    ``amount`` (scalar or (...,)) of each pair's gap is closed, ``upper_share`` of that by the
    upper point. ``followers`` are (indices, source indices, fraction): points that move with
    a fraction of the named points' displacement (outer lips with inner lips, lid creases
    with lids).
    """
    upper, lower = list(upper), list(lower)
    amount = np.asarray(amount, dtype=points.dtype)[..., None, None]
    gap = points[..., lower, :] - points[..., upper, :]
    moved = np.concatenate([amount * upper_share * gap, -amount * (1 - upper_share) * gap], -2)  # (..., 2P, 3)
    column = {index: n for n, index in enumerate(upper + lower)}
    points[..., upper + lower, :] += moved
    for indices, sources, fraction in followers:
        points[..., list(indices), :] += fraction * moved[..., [column[s] for s in sources], :]


def press_lips(points: np.ndarray, amount) -> None:
    """Closes ``amount`` (0..1, scalar or (...,)) of the gap between the inner lips of
    (..., 478, 3) landmarks in place, the lower lip doing 60 % of the work."""
    close_pairs(points, topo.UPPER_LIP_INNER, topo.LOWER_LIP_INNER, amount, 0.4, LIP_FOLLOWERS)
