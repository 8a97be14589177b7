import itertools
from collections import Counter

import numpy as np

from avatar3d.face import signals
from avatar3d.face import topology as topo


def test_triangles_form_a_manifold_face_with_eye_and_mouth_holes():
    faces = topo.triangles()
    assert faces.shape == (852, 3)
    assert faces.max() == topo.NUM_SURFACE - 1 and len(np.unique(faces)) == topo.NUM_SURFACE
    edge_use = Counter(frozenset(e) for tri in faces.tolist() for e in itertools.combinations(tri, 2))
    assert max(edge_use.values()) == 2  # manifold: no edge shared by three triangles
    # Euler characteristic of a disc with three holes (two eyes, the mouth): V - E + F = -2.
    assert topo.NUM_SURFACE - len(edge_use) + len(faces) == -2
    boundary = {v for e, n in edge_use.items() if n == 1 for v in e}
    assert set(topo.UPPER_LIP_INNER) | set(topo.LOWER_LIP_INNER) <= boundary
    assert set(topo.RIGHT_UPPER_LID) | set(topo.LEFT_LOWER_LID) <= boundary


def test_shipped_triangles_are_those_of_mediapipes_tessellation():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    np.testing.assert_array_equal(topo.triangles(), topo.triangles_from_edges(FACEMESH_TESSELATION))


def test_paired_landmark_groups_match_in_length():
    assert len(topo.UPPER_LIP_INNER) == len(topo.LOWER_LIP_INNER)
    assert len(topo.UPPER_LIP_OUTER) == len(topo.LOWER_LIP_OUTER)
    assert len(topo.RIGHT_UPPER_LID) == len(topo.RIGHT_LOWER_LID) == len(topo.RIGHT_UPPER_CREASE)
    assert len(topo.LEFT_UPPER_LID) == len(topo.LEFT_LOWER_LID) == len(topo.LEFT_UPPER_CREASE)
    assert len(set(topo.FACE_OVAL)) == len(topo.FACE_OVAL) == 36


def test_signals_are_scale_and_translation_invariant():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(478, 3))
    moved = points * 3.7 + np.array([1.0, -2.0, 5.0])
    assert np.isclose(signals.mouth_opening(points), signals.mouth_opening(moved))
    assert np.isclose(signals.eye_opening(points), signals.eye_opening(moved))


def test_mouth_opening_measures_inner_lip_gap():
    points = np.zeros((478, 2))
    points[topo.FACE_SIDES[1]] = (10.0, 0.0)
    points[topo.MOUTH_BOTTOM] = (0.0, 1.5)
    assert np.isclose(signals.mouth_opening(points), 0.15)
