"""3D Gaussians through a pinhole: projection against gsplat's pure-PyTorch reference, and a
whole render against what one Gaussian must look like."""

import math

import pytest
import torch

from avatar3d.camera import rotation_matrix
from avatar3d.render.splat import BLUR, covariances, project, rasterize


def gaussians(count=50, seed=0):
    generator = torch.Generator().manual_seed(seed)
    means = (torch.rand(count, 3, generator=generator) - 0.5) * torch.tensor([1.0, 0.8, 0.6])
    quats = torch.randn(count, 4, generator=generator)
    scales = torch.rand(count, 3, generator=generator) * 0.05 + 0.01
    return means, quats, scales


def camera(width=48, height=40):
    """A camera 2 units in front of the origin (towards +z), turned a little, looking at it."""
    K = torch.tensor([[60.0, 0.0, width / 2 + 1.5], [0.0, 62.0, height / 2 - 2.0], [0.0, 0.0, 1.0]])
    rotation = rotation_matrix(0.2, -0.1, 0.05)
    translation = torch.tensor([0.05, -0.02, -2.0])
    return K, rotation, translation, width, height


def test_covariances_and_projection_match_gsplat():
    reference = pytest.importorskip("gsplat.cuda._torch_impl")
    means, quats, scales = gaussians()
    covariance = covariances(quats, scales)
    gsplat_covariance, _ = reference._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    torch.testing.assert_close(covariance, gsplat_covariance, atol=1e-7, rtol=1e-5)

    K, rotation, translation, width, height = camera()
    means[0] = torch.tensor([5.0, 0.0, 0.0])  # off the image: culled
    projected = project(means, covariance, K, rotation, translation, width, height)
    # gsplat's cameras look along +z with y down: the same camera with its y and z axes flipped.
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    viewmat = torch.eye(4)
    viewmat[:3, :3], viewmat[:3, 3] = flip @ rotation, flip @ translation
    radii, means2d, depths, conics, _ = reference._fully_fused_projection(
        means, covariance, viewmat[None], K[None], width, height, eps2d=BLUR)
    seen = radii[0].all(-1)
    assert 30 < int(seen.sum()) < len(means) and not bool(seen[0])
    torch.testing.assert_close(projected.radii, radii[0].float())
    torch.testing.assert_close(projected.depths, depths[0])
    torch.testing.assert_close(projected.means2d[seen], means2d[0][seen], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(projected.conics[seen], conics[0][seen], atol=1e-5, rtol=1e-4)


def test_one_gaussian_lands_where_and_as_wide_as_it_should():
    """A round Gaussian of scale s at depth d straight ahead covers the pixels around the
    principal point with a profile of standard deviation sqrt((f s / d)^2 + BLUR) pixels."""
    K = torch.tensor([[40.0, 0.0, 20.0], [0.0, 40.0, 16.0], [0.0, 0.0, 1.0]])
    means, scale, depth = torch.tensor([[0.0, 0.0, -2.0]]), 0.1, 2.0
    projected = project(means, covariances(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.full((1, 3), scale)), K,
                        torch.eye(3), torch.zeros(3), 40, 32)
    image = rasterize(projected, torch.ones(1, 3), torch.tensor([0.8]), 40, 32, tile_size=8)["alpha"]
    row = image[15:17].mean(0)  # the rows either side of the centre line v = 16
    assert int(row.argmax()) in (19, 20) and float(image.max()) < 0.8
    sigma = math.sqrt((40 * scale / depth) ** 2 + BLUR)
    u = torch.arange(40) + 0.5
    profile = 0.8 * torch.exp(-0.5 * ((u - 20) ** 2 + 0.25) / sigma**2)  # 0.5 px off the centre line vertically
    visible = profile >= 1 / 255
    torch.testing.assert_close(row[visible], profile[visible], atol=2e-3, rtol=0)
    assert float(row[~visible].abs().max()) == 0


def test_gradients_reach_every_parameter():
    means, quats, scales = gaussians(seed=1)
    parameters = [means, quats, scales, torch.rand(len(means)) * 0.8, torch.rand(len(means), 3)]
    for parameter in parameters:
        parameter.requires_grad_(True)
    K, rotation, translation, width, height = camera()
    projected = project(parameters[0], covariances(parameters[1], parameters[2]), K, rotation, translation, width,
                        height)
    image = rasterize(projected, parameters[4], parameters[3], width, height, background=torch.tensor([0.1, 0.2, 0.3]))
    (image["rgb"] * torch.rand(height, width, 3)).sum().backward()
    for parameter in parameters:
        assert torch.isfinite(parameter.grad).all() and float(parameter.grad.abs().sum()) > 0


def test_opacities_shrink_faint_gaussians_boxes_and_leave_the_image_as_it_was():
    means, quats, scales = gaussians(count=200, seed=4)
    covariance = covariances(quats, scales)
    opacities = torch.rand(200, generator=torch.Generator().manual_seed(5)) ** 2
    opacities[:10] = 0.003  # below 1/255: nowhere visible
    K, rotation, translation, width, height = camera()
    full = project(means, covariance, K, rotation, translation, width, height)
    tight = project(means, covariance, K, rotation, translation, width, height, opacities=opacities)
    assert bool((tight.radii <= full.radii).all()) and float(tight.radii.sum()) < 0.85 * float(full.radii.sum())
    assert float(tight.radii[:10].abs().max()) == 0
    colours = torch.rand(200, 3, generator=torch.Generator().manual_seed(6))
    for a, b in zip(rasterize(full, colours, opacities, width, height, tile_size=8).values(),
                    rasterize(tight, colours, opacities, width, height, tile_size=8).values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
