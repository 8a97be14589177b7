"""The 478-point MediaPipe face topology: triangles and named landmark groups.

Indices follow MediaPipe Face Mesh with refined iris (468 surface points + 10 iris points).
"Left"/"right" are the subject's own sides (the subject's right eye is on the image left).
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

NUM_LANDMARKS = 478
NUM_SURFACE = 468  # the tessellated points; 468..477 are the iris centres and rims

# Lips, in columns from the subject's right mouth corner to the left one. The upper and
# lower lists of one contour have the same length and pair up column by column.
MOUTH_CORNERS = (61, 291)
INNER_CORNERS = (78, 308)
UPPER_LIP_OUTER = (185, 40, 39, 37, 0, 267, 269, 270, 409)
LOWER_LIP_OUTER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
UPPER_LIP_INNER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LOWER_LIP_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
MOUTH_TOP, MOUTH_BOTTOM = 13, 14  # inner lip midpoints: the mouth opening is their distance

# Eyelids, in columns from the outer to the inner corner; upper and lower pair up.
RIGHT_EYE_CORNERS = (33, 133)
RIGHT_UPPER_LID = (246, 161, 160, 159, 158, 157, 173)
RIGHT_LOWER_LID = (7, 163, 144, 145, 153, 154, 155)
RIGHT_UPPER_CREASE = (247, 30, 29, 27, 28, 56, 190)  # the ring just above the upper lid
LEFT_EYE_CORNERS = (263, 362)
LEFT_UPPER_LID = (466, 388, 387, 386, 385, 384, 398)
LEFT_LOWER_LID = (249, 390, 373, 374, 380, 381, 382)
LEFT_UPPER_CREASE = (467, 260, 259, 257, 258, 286, 414)
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)

NOSE_TIP = 1
CHIN = 152
FOREHEAD = 10
FACE_SIDES = (234, 454)  # right and left ends of the face oval: the face width
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # closed loop, clockwise in the image

LIPS = MOUTH_CORNERS + INNER_CORNERS + UPPER_LIP_OUTER + LOWER_LIP_OUTER + UPPER_LIP_INNER + LOWER_LIP_INNER
EYELIDS = RIGHT_EYE_CORNERS + RIGHT_UPPER_LID + RIGHT_LOWER_LID + LEFT_EYE_CORNERS + LEFT_UPPER_LID + LEFT_LOWER_LID


TRIANGLES_FILE = Path(__file__).with_name("triangles.txt")
"""The face surface triangles, shipped with the package so that a head can be built without
MediaPipe (a GPU machine may not have it); `triangles_from_edges` of MediaPipe's tessellation."""


@functools.cache
def triangles() -> np.ndarray:
    """The face surface triangles, (852, 3) int64 into the 468 surface points (`TRIANGLES_FILE`).

    Winding is not made consistent here: callers that need normals orient them.
    """
    return np.loadtxt(TRIANGLES_FILE, dtype=np.int64, ndmin=2)


def triangles_from_edges(edges) -> np.ndarray:
    """The triangles (F, 3) int64 of a tessellation given as edges, pairs of point indices.

    MediaPipe publishes its tessellation (``FACEMESH_TESSELATION``) as edges only. Every
    3-cycle of that edge graph is a triangle, except the few 3-cycles that are not faces;
    those are recognised by all three of their edges being shared by three cycles (a
    manifold edge has at most two faces). Rows are sorted indices, in sorted order.
    """
    neighbours = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    cycles = {
        tuple(sorted((a, b, c)))
        for a in neighbours
        for b in neighbours[a]
        for c in neighbours[a] & neighbours[b]
    }
    edge_use = Counter(frozenset(e) for tri in cycles for e in itertools.combinations(tri, 2))
    faces = [
        tri for tri in sorted(cycles)
        if not all(edge_use[frozenset(e)] > 2 for e in itertools.combinations(tri, 2))
    ]
    return np.asarray(faces, dtype=np.int64)
