"""The subject calibration: a ridge map from the model's codes to the subject's."""

import numpy as np

from avatar3d.motion.calibrate import CodeMap, fit_code_map


def _distorted(rng, frames, dims=6):
    """Codes of varied spread, and the same frames through a known linear map plus an offset."""
    predicted = rng.normal(size=(frames, dims)) * np.linspace(1.0, 0.2, dims)
    matrix = np.eye(dims) * 0.6 + rng.normal(scale=0.2, size=(dims, dims))
    offset = rng.normal(size=dims)
    return predicted, matrix, offset


def test_the_map_recovers_a_linear_distortion_of_the_codes():
    rng = np.random.default_rng(0)
    predicted, matrix, offset = _distorted(rng, 2000)
    tracked = predicted @ matrix + offset + rng.normal(scale=0.01, size=predicted.shape)
    code_map = fit_code_map(predicted, tracked, shrink=0.0)
    assert np.allclose(code_map.weight, matrix, atol=0.01)
    new = rng.normal(size=(50, predicted.shape[1]))
    assert np.allclose(code_map(new), new @ matrix + offset, atol=0.05)


def test_shrinkage_pulls_the_map_towards_a_shift_and_scale_per_code():
    rng = np.random.default_rng(1)
    predicted, matrix, offset = _distorted(rng, 3)  # fewer frames than codes: unregularised, it would be singular
    tracked = predicted @ matrix + offset
    loose, tight = fit_code_map(predicted, tracked, shrink=0.1), fit_code_map(predicted, tracked, shrink=1e6)
    assert np.isfinite(loose.weight).all()
    assert np.allclose(tight.weight, np.diag(tracked.std(0) / predicted.std(0)), atol=1e-4)
    assert np.allclose(tight.target_mean - tight.source_mean, (tracked - predicted).mean(0))
    off_diagonal = loose.weight - np.diag(np.diag(loose.weight))
    assert np.abs(off_diagonal).max() > 0.05  # the data still mixes the codes


def test_a_poorly_predicting_model_keeps_the_subjects_spread():
    rng = np.random.default_rng(3)
    tracked = rng.normal(size=(3000, 4)) * [0.3, 0.2, 0.1, 0.05]
    predicted = tracked + rng.normal(size=tracked.shape) * tracked.std(0)  # half of its variance is noise
    mapped = fit_code_map(predicted, tracked)(predicted)
    assert np.allclose(mapped.std(0), tracked.std(0), rtol=1e-6)  # plain regression gives about 0.7 of it
    assert all(np.corrcoef(mapped[:, k], tracked[:, k])[0, 1] > 0.65 for k in range(4))


def test_constant_predictions_only_shift_and_identity_changes_nothing():
    tracked = np.random.default_rng(2).normal(size=(20, 4))
    code_map = fit_code_map(np.ones((20, 4)), tracked)
    assert np.allclose(code_map(np.ones((3, 4))), tracked.mean(0))
    codes = np.arange(8, dtype=np.float32).reshape(2, 4)
    same = CodeMap.identity(4)(codes)
    assert same.dtype == np.float32 and np.array_equal(same, codes)
