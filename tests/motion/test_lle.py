import numpy as np
import pytest
from scipy.spatial import cKDTree
from sklearn.manifold._locally_linear import barycenter_weights

from avatar3d.errors import BadArgumentError, BadInputError
from avatar3d.motion import lle
from avatar3d.motion.lle import LLEProjector, barycentric_weights


def _torus(angles: np.ndarray) -> np.ndarray:
    """(N, 2) angles -> (N, 8) points of a curved 2-D surface, a stand-in for a subject's expressions."""
    a, b = angles.T
    return np.stack([np.cos(a), np.sin(a), np.cos(b), np.sin(b),
                     np.cos(a + b), np.sin(a - b), np.cos(2 * a), np.sin(2 * b)], 1)


@pytest.mark.parametrize("neighbours, dims, reg", [(8, 6, 1e-3), (5, 12, 1e-3), (12, 3, 1e-1), (1, 4, 1e-3)])
def test_weights_match_scikit_learn(neighbours, dims, reg):
    rng = np.random.default_rng(neighbours)
    points, queries = rng.normal(size=(200, dims)), rng.normal(size=(50, dims))
    indices = np.stack([rng.choice(len(points), neighbours, replace=False) for _ in queries])
    expected = barycenter_weights(queries, points, indices, reg=reg)
    np.testing.assert_allclose(barycentric_weights(queries, points[indices], reg), expected, atol=1e-6, rtol=1e-6)


def test_weights_sum_to_one_and_rebuild_a_convex_combination():
    rng = np.random.default_rng(1)
    near = rng.normal(size=(40, 4, 6))  # K = 4 <= D = 6: affinely independent almost surely
    truth = rng.dirichlet(np.ones(4), size=40)
    queries = np.einsum("mk,mkd->md", truth, near)
    weights = barycentric_weights(queries, near, regularisation=1e-9)
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-12)
    assert np.abs(np.einsum("mk,mkd->md", weights, near) - queries).max() < 1e-4
    np.testing.assert_allclose(weights, truth, atol=1e-4)
    # Neighbours all equal to the query: the Gram matrix is 0, the absolute ridge gives uniform weights.
    np.testing.assert_allclose(barycentric_weights(np.ones((1, 3)), np.ones((1, 5, 3))), 0.2)


def test_blend_zero_without_clamping_keeps_the_prediction():
    rng = np.random.default_rng(2)
    predicted = rng.normal(size=(30, 6)).astype(np.float32) * 5
    out = LLEProjector(rng.normal(size=(100, 6)), blend=0, quantiles=None).project(predicted)
    assert out.dtype == np.float32 and out.shape == (30, 6)
    np.testing.assert_array_equal(out, predicted)


def test_full_blend_maps_a_bank_row_to_itself():
    rng = np.random.default_rng(3)
    bank = rng.normal(size=(200, 6))
    out = LLEProjector(bank, neighbours=10, blend=1, quantiles=None).project(bank[:20])
    spacing, _ = cKDTree(bank).query(bank[:20], k=[2])  # distance to the nearest other row
    assert (np.linalg.norm(out - bank[:20], axis=1) < 0.1 * spacing[:, 0]).all()
    # With one neighbour the reconstruction is the nearest row by Euclidean distance.
    queries = rng.normal(size=(50, 6))
    nearest = bank[np.linalg.norm(queries[:, None] - bank, axis=2).argmin(1)]
    np.testing.assert_allclose(LLEProjector(bank, neighbours=1, blend=1, quantiles=None).project(queries), nearest)


def test_far_predictions_are_clamped_to_the_bank_quantiles():
    rng = np.random.default_rng(4)
    bank = rng.normal(size=(300, 5)) * np.arange(1, 6)
    projector = LLEProjector(bank, blend=0.25)
    low, high = np.quantile(bank, [0.03, 0.97], axis=0)
    np.testing.assert_allclose(projector.project(np.full((1, 5), 100.0))[0], high)
    np.testing.assert_allclose(projector.project(np.full((1, 5), -100.0))[0], low)
    out = projector.project(rng.normal(size=(50, 5)) * 10)
    assert ((out >= low - 1e-12) & (out <= high + 1e-12)).all()
    assert (out == high).any() and (out > low).any()  # the bounds bind, yet do not flatten everything


def test_projection_pulls_noisy_codes_towards_the_bank():
    rng = np.random.default_rng(5)
    bank = _torus(rng.uniform(0, 2 * np.pi, size=(600, 2)))
    noisy = _torus(rng.uniform(0, 2 * np.pi, size=(100, 2))) + rng.normal(scale=0.2, size=(100, 8))
    out = LLEProjector(bank, blend=0.5, quantiles=None).project(noisy)
    tree = cKDTree(bank)
    assert tree.query(out)[0].mean() < 0.85 * tree.query(noisy)[0].mean()


def test_chunks_empty_input_and_short_banks(monkeypatch):
    rng = np.random.default_rng(6)
    bank, predicted = rng.normal(size=(80, 4)), rng.normal(size=(50, 4)).astype(np.float32)
    projector = LLEProjector(bank, blend=0.7)
    whole = projector.project(predicted)
    monkeypatch.setattr(lle, "CHUNK", 7)  # 50 frames in uneven chunks must give the same codes
    np.testing.assert_array_equal(projector.project(predicted), whole)
    assert projector.project(np.zeros((0, 4), np.float32)).shape == (0, 4)
    assert projector.project(np.zeros((0, 4), np.float32)).dtype == np.float32
    assert LLEProjector(bank[:3], neighbours=10).neighbours == 3
    assert LLEProjector(bank[:1]).project(predicted).shape == (50, 4)


@pytest.mark.parametrize("make, error, words", [
    (lambda bank: LLEProjector(bank).project(np.zeros((3, 5))), BadInputError, r"\(3, 5\).* 4 codes"),
    (lambda bank: LLEProjector(bank).project(np.full((3, 4), np.nan)), BadInputError, "NaN"),
    (lambda bank: LLEProjector(bank, blend=1.5), BadArgumentError, "blend"),
    (lambda bank: LLEProjector(bank, blend=-0.1), BadArgumentError, "blend"),
    (lambda bank: LLEProjector(bank, neighbours=0), BadArgumentError, "neighbours"),
    (lambda bank: LLEProjector(bank, quantiles=(0.9, 0.1)), BadArgumentError, "quantiles"),
    (lambda bank: LLEProjector(bank, quantiles=(0.1,)), BadArgumentError, "quantiles"),
    (lambda bank: LLEProjector(np.where(bank > 1, np.nan, bank)), BadInputError, "NaN"),
    (lambda bank: LLEProjector(bank[:0]), BadInputError, "bank"),
    (lambda bank: LLEProjector(bank[0]), BadInputError, "bank"),
])
def test_bad_inputs_raise_user_errors(make, error, words):
    bank = np.random.default_rng(7).normal(size=(20, 4))
    with pytest.raises(error, match=words) as caught:
        make(bank)
    assert "\n" not in str(caught.value)
