"""Metrics and losses against independent references."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from avatar3d.face import topology as topo
from avatar3d.train import metrics
from avatar3d.train.losses import patch_ssim_loss


def test_psnr_of_known_errors():
    real = np.zeros((4, 4, 3))
    assert metrics.image_psnr(real + 0.1, real) == pytest.approx(20.0)
    assert metrics.image_psnr(real + 0.01, real) == pytest.approx(40.0)


def test_ssim_is_one_for_equal_images_and_drops_with_noise():
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3))
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.ssim(np.clip(image + rng.normal(0, 0.2, image.shape), 0, 1), image) < 0.9


@pytest.mark.parametrize("seed", [0, 1])
def test_patch_ssim_matches_scikit_image_on_one_window(seed):
    rng = np.random.default_rng(seed)
    real = rng.random((3, 7, 7, 3))
    rendered = np.clip(real + rng.normal(0, 0.1, real.shape), 0, 1)
    # One 7x7 uniform window per patch: scikit-image's mean over the valid region is that window.
    expected = np.mean([structural_similarity(r, t, channel_axis=-1, data_range=1.0, win_size=7,
                                              use_sample_covariance=False) for r, t in zip(rendered, real)])
    loss = patch_ssim_loss(torch.from_numpy(rendered), torch.from_numpy(real))
    assert float(loss) == pytest.approx(1 - expected, abs=1e-6)


def test_face_box_and_mouth_distance_scale_to_512():
    points = np.zeros((478, 2))
    points[:, 0] = np.linspace(40, 80, 478)
    points[:, 1] = np.linspace(50, 70, 478)
    assert metrics.face_box(points, 128, pad=0.0) == (40, 40, 80, 80)
    shifted = points.copy()
    shifted[list(topo.LIPS)] += [3.0, 4.0]
    assert metrics.mouth_landmark_distance(shifted, points, 128) == pytest.approx(20.0)

