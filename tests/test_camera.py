"""Tests for avatar3d.camera and avatar3d.render.texture (image/uv conventions)."""

import math

import pytest
import torch

from avatar3d.camera import intrinsics, project, rotation_angles, rotation_matrix, unproject
from avatar3d.render.texture import sample_texture


def test_intrinsics_centre_and_focal():
    K = intrinsics(500.0, 640, 480)
    assert K.shape == (3, 3) and K.dtype == torch.float32
    assert torch.equal(K, torch.tensor([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]))


def test_project_follows_opengl_convention():
    K = intrinsics(100.0, 64, 48)
    uvd = project(torch.tensor([[0.0, 0.0, -2.0], [1.0, 1.0, -2.0]]), K)
    # On the optical axis: the image centre; x right -> u grows, y up -> v shrinks.
    assert torch.allclose(uvd[0], torch.tensor([32.0, 24.0, 2.0]))
    assert torch.allclose(uvd[1], torch.tensor([32.0 + 50.0, 24.0 - 50.0, 2.0]))


def test_project_unproject_round_trip():
    gen = torch.Generator().manual_seed(0)
    K = intrinsics(321.0, 200, 150)
    pts = torch.randn(4, 5, 3, generator=gen)
    pts[..., 2] = -(pts[..., 2].abs() + 0.5)
    uvd = project(pts, K)
    assert uvd.shape == (4, 5, 3)
    back = unproject(uvd[..., :2], uvd[..., 2], K)
    assert torch.allclose(back, pts, atol=1e-5)


def test_rotation_matrix_is_a_rotation():
    gen = torch.Generator().manual_seed(1)
    angles = (torch.rand(3, 50, generator=gen) * 2 - 1) * torch.tensor([[3.0], [1.5], [3.0]])
    R = rotation_matrix(*angles)
    assert R.shape == (50, 3, 3)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(50, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(50), atol=1e-5)


def test_rotation_matrix_axis_order_and_signs():
    a = 0.3
    yaw, pitch, roll = (rotation_matrix(*v) for v in ((a, 0, 0), (0, a, 0), (0, 0, a)))
    face = torch.tensor([0.0, 0.0, 1.0])
    up = torch.tensor([0.0, 1.0, 0.0])
    assert (yaw @ face)[0] > 0  # positive yaw turns the face to +x
    assert (pitch @ face)[1] < 0  # positive pitch looks down
    assert (roll @ up)[0] < 0  # positive roll tilts the top to -x
    R = rotation_matrix(0.2, -0.1, 0.3)
    expected = rotation_matrix(0.2, 0, 0) @ rotation_matrix(0, -0.1, 0) @ rotation_matrix(0, 0, 0.3)
    assert torch.allclose(R, expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotation_angles_round_trip(dtype):
    gen = torch.Generator().manual_seed(2)
    yaw = (torch.rand(100, generator=gen, dtype=dtype) * 2 - 1) * 3.0
    pitch = (torch.rand(100, generator=gen, dtype=dtype) * 2 - 1) * 1.5
    roll = (torch.rand(100, generator=gen, dtype=dtype) * 2 - 1) * 3.0
    out = rotation_angles(rotation_matrix(yaw, pitch, roll))
    for got, want in zip(out, (yaw, pitch, roll)):
        assert got.dtype == dtype
        assert torch.allclose(got, want, atol=1e-4)


def test_rotation_scalar_inputs():
    R = rotation_matrix(0.0, 0.0, 0.0)
    assert R.shape == (3, 3) and torch.equal(R, torch.eye(3))
    yaw, pitch, roll = rotation_angles(rotation_matrix(math.radians(10), math.radians(-20), math.radians(5)))
    assert math.isclose(float(yaw), math.radians(10), abs_tol=1e-6)
    assert math.isclose(float(pitch), math.radians(-20), abs_tol=1e-6)
    assert math.isclose(float(roll), math.radians(5), abs_tol=1e-6)


def test_sample_texture_exact_at_texel_centres():
    gen = torch.Generator().manual_seed(3)
    tex = torch.rand(5, 7, 3, generator=gen)
    ii, jj = torch.meshgrid(torch.arange(5), torch.arange(7), indexing="ij")
    uv = torch.stack([(jj + 0.5) / 7, (ii + 0.5) / 5], -1)  # (5, 7, 2)
    assert torch.allclose(sample_texture(tex, uv), tex, atol=1e-6)


def test_sample_texture_bilinear_and_clamped():
    tex = torch.tensor([[[0.0], [1.0]], [[2.0], [4.0]]])  # (2, 2, 1)
    # Midway between the four texel centres: the plain average.
    assert torch.allclose(sample_texture(tex, torch.tensor([0.5, 0.5])), torch.tensor([1.75]))
    # Midway between two horizontal neighbours on the top row.
    assert torch.allclose(sample_texture(tex, torch.tensor([0.5, 0.25])), torch.tensor([0.5]))
    # Corners and outside clamp to the border texels.
    corners = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-3.0, 0.25], [2.0, 0.75]])
    assert torch.allclose(sample_texture(tex, corners), torch.tensor([[0.0], [4.0], [0.0], [4.0]]))


def test_sample_texture_shapes():
    tex = torch.rand(8, 8, 4)
    assert sample_texture(tex, torch.rand(2, 3, 5, 2)).shape == (2, 3, 5, 4)
    assert sample_texture(tex, torch.rand(2)).shape == (4,)
