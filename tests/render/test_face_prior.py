"""The fitted face mesh as a depth and normal prior: depth maps, ray distances and normals against a plane."""

import numpy as np
import torch

from avatar3d.face import topology as topo
from avatar3d.camera import intrinsics, rotation_matrix
from avatar3d.mesh import orient_towards_camera
from avatar3d.render.face_prior import face_depth_maps, face_distances, face_normals, ray_distance
from avatar3d.render.rays import frame_pixels, pixel_rays
from avatar3d.train.losses import face_depth_error


def _flat_face(depth: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A face spread on the plane z = 0 of head space (478 points in a grid), seen at ``depth``."""
    side = int(np.ceil(np.sqrt(topo.NUM_LANDMARKS)))
    grid = np.stack(np.meshgrid(np.linspace(-0.1, 0.1, side), np.linspace(-0.1, 0.1, side)), -1).reshape(-1, 2)
    landmarks = torch.zeros(1, topo.NUM_LANDMARKS, 3)
    landmarks[0, :, :2] = torch.from_numpy(grid[: topo.NUM_LANDMARKS]).float()
    return torch.eye(3)[None], torch.tensor([[0.0, 0.0, -depth]]), landmarks


def test_depth_of_a_plane_facing_the_camera_is_its_distance():
    K = intrinsics(64.0, 32, 32)
    rotation, translation, landmarks = _flat_face(1.5)
    depth = face_depth_maps(rotation, translation, landmarks, K, 32)[0]
    covered = torch.isfinite(depth)
    assert covered.any() and not covered.all()  # the mesh's triangles cover some pixels, not the corners
    assert torch.allclose(depth[covered], torch.tensor(1.5), atol=1e-5)


def test_ray_distance_reaches_the_point_at_that_depth():
    K = intrinsics(50.0, 40, 40)
    R = rotation_matrix(0.3, -0.2, 0.1)
    pixels = frame_pixels(40, 40)
    origins, directions = pixel_rays(K, (R, torch.tensor([0.1, 0.2, 0.3])), pixels)
    depth = torch.linspace(0.5, 3.0, len(pixels))
    distance = ray_distance(pixels, depth, K)
    # The camera-space point at that depth, reached along the (rotated) unit ray:
    reached = (origins + directions * distance[:, None] - torch.tensor([0.1, 0.2, 0.3])) @ R
    assert torch.allclose(-reached[:, 2], depth, atol=1e-5)
    assert torch.isinf(ray_distance(pixels[:1], torch.tensor([float("inf")]), K)).all()


def test_depth_of_a_turned_plane_is_where_each_pixel_ray_meets_it():
    K = intrinsics(64.0, 32, 32)
    _, translation, landmarks = _flat_face(1.5)
    rotation = rotation_matrix(0.4, -0.2, 0.0)[None]
    depth = face_depth_maps(rotation, translation, landmarks, K, 32)[0].reshape(-1)
    covered = torch.isfinite(depth)
    u, v = frame_pixels(32, 32)[covered].unbind(-1)
    rays = torch.stack([(u - 16) / 64, -(v - 16) / 64, -torch.ones_like(u)], -1)  # camera space, depth 1
    normal = rotation[0] @ torch.tensor([0.0, 0.0, 1.0])
    expected = (normal @ translation[0]) / (rays @ normal)
    assert covered.sum() > 50
    assert torch.allclose(depth[covered], expected, atol=1e-4)


def test_face_distances_reach_the_head_space_mesh_from_any_camera():
    K = intrinsics(64.0, 32, 32)
    _, _, landmarks = _flat_face(0.0)  # the face on the plane z = 0 of head space
    R = rotation_matrix(torch.tensor([0.3, -0.1]), torch.tensor([0.1, 0.2]), torch.tensor([0.0, -0.3]))
    t = torch.tensor([[0.2, -0.1, 1.4], [-0.1, 0.0, 1.8]])  # camera centres in head space
    pixels = frame_pixels(32, 32)[None].expand(2, -1, -1)
    distance = face_distances((R, t), landmarks.expand(2, -1, -1), K, 32, pixels)
    for b in range(2):
        origins, directions = pixel_rays(K, (R[b], t[b]), pixels[b])
        on_face = torch.isfinite(distance[b])
        assert on_face.sum() > 20
        hit = origins[on_face] + directions[on_face] * distance[b, on_face, None]
        assert hit[:, 2].abs().max() < 1e-4  # on the plane


def test_face_depth_error_counts_only_head_pixels_on_the_face():
    spread = torch.tensor([0.15, 2.0, 0.0, 4.0])
    face = torch.tensor([1.15, float("inf"), 3.0, 0.0])
    is_head = torch.tensor([True, True, True, False])
    # Rays 0 and 2 count: spreads 0.15 and 0, mean 0.075 head-space units = half a face width.
    assert torch.isclose(face_depth_error(spread, face, is_head), torch.tensor(0.5))
    assert face_depth_error(spread, face, torch.zeros(4, dtype=torch.bool)) == 0


def test_normals_of_a_turned_flat_face_are_its_normal_in_camera_space(truth):
    K = intrinsics(64.0, 32, 32)
    landmarks = torch.from_numpy(truth["rest_landmarks"]).float()[None].clone()
    landmarks[..., 2] = 0  # the actor's face pressed flat: every normal is +z in head space
    faces = torch.from_numpy(orient_towards_camera(landmarks[0, : topo.NUM_SURFACE].numpy(), topo.triangles()))
    R = rotation_matrix(0.3, -0.2, 0.1)  # head to camera
    t = torch.tensor([0.0, 0.0, -0.6])
    pixels = frame_pixels(32, 32)[None]
    normals = face_normals((R.T[None], (-R.T @ t)[None]), landmarks, faces, K, 32, pixels)[0]
    covered = normals.abs().sum(-1) > 0
    assert covered.sum() > 50 and not covered.all()
    assert torch.allclose(normals[covered], R @ torch.tensor([0.0, 0.0, 1.0]), atol=1e-4)
