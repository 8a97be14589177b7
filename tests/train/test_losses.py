"""Training losses: the face albedo's slope against its normal."""

import torch

from avatar3d.render.sh import LIGHT_PRESETS, shade
from avatar3d.train.losses import albedo_slope


def test_albedo_slope_is_zero_for_even_albedo_and_sees_shading_baked_in():
    normals = torch.nn.functional.normalize(torch.randn(400, 3) + torch.tensor([0.0, 0.0, 2.0]), dim=-1)
    even = torch.full((400, 3), 0.6) + 0.05 * torch.randn(400, 1)  # noise, no trend with the normal
    assert float(albedo_slope(even, normals)) < 1e-3
    baked = 0.6 * shade(normals, LIGHT_PRESETS["top"])  # a light from above left in the albedo
    assert float(albedo_slope(baked, normals)) > 0.05
    assert float(albedo_slope(baked[:5], normals[:5])) == 0  # too few pixels to judge
