"""The fitted face mesh as a depth and normal prior for the head field.

Near-frontal footage barely constrains depth: a head NeRF fitted to it alone paints the
face on whatever surface is nearest the camera (the front of its box), which looks right
from the training cameras and wrong from any other. The face fit already knows where the
face is in 3D, so its mesh, rasterized through each frame's camera, gives the distance at
which a face pixel's ray should stop, and the normal a face pixel should have whatever
depth the field chose. The mesh has holes at the mouth and eyes, so the inside of an open
mouth and the eyeballs are left to the photometric loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from avatar3d.camera import project
from avatar3d.face import topology as topo
from avatar3d.mesh import vertex_normals
from avatar3d.render.rasterizer import interpolate, rasterize
from avatar3d.render.rays import camera_directions


def face_depth_maps(rotation: Tensor, translation: Tensor, landmarks: Tensor, K: Tensor, size: int) -> Tensor:
    """Camera depth of the fitted face surface, per frame and pixel.

    Args:
        rotation: (T, 3, 3) head poses, head space to camera space.
        translation: (T, 3) head translations: ``x_cam = rotation @ x_head + translation``.
        landmarks: (T, 478, 3) fitted landmarks in head space.
        K: (3, 3) intrinsics in pixels at ``size``.
        size: Frame side in pixels.

    Returns:
        (T, size, size) float32 depth ``-z`` in head-space units; +inf off the face.
    """
    faces = torch.from_numpy(topo.triangles())
    cam = _camera_surface(rotation, translation, landmarks)
    return torch.stack([rasterize(project(points, K), faces, size, size).depth for points in cam])


def _camera_surface(rotation: Tensor, translation: Tensor, landmarks: Tensor) -> Tensor:
    """(T, 468, 3) the face mesh's vertices (the landmarks' surface points) in camera space."""
    surface = landmarks[:, :topo.NUM_SURFACE].float()
    return torch.einsum("tij,tnj->tni", rotation.float(), surface) + translation.float()[:, None]


def _head_to_camera(camera_to_head: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """The head poses ``(rotation (B, 3, 3), translation (B, 3))``, on the CPU, of camera-to-head transforms."""
    R, t = (part.cpu() for part in camera_to_head)
    rotation = R.transpose(1, 2)
    return rotation, -(rotation @ t[:, :, None])[:, :, 0]


def _at_pixels(maps: Tensor, pixels: Tensor, scale: float = 1.0) -> Tensor:
    """Values (B, P, ...) of per-frame maps (B, s, s, ...) at pixels (B, P, 2) of frames
    ``scale`` times the maps' side (nearest map pixel)."""
    where = (pixels / scale).long().clamp(0, maps.shape[1] - 1)
    frame = torch.arange(len(maps))[:, None].expand(-1, where.shape[1])
    return maps[frame, where[..., 1], where[..., 0]]


def ray_distance(pixels: Tensor, depth: Tensor, K: Tensor) -> Tensor:
    """Distance along the unit ray through pixels to the point at camera depth ``depth``.

    Args:
        pixels: (..., 2) pixel positions (u, v).
        depth: (...,) depth ``-z`` (the rasterizer's); inf stays inf.
        K: (3, 3) intrinsics in pixels.

    Returns:
        (...,) ray parameter, comparable with the renderer's ``depth`` output.
    """
    return depth / -camera_directions(K, pixels)[..., 2]


def face_distances(camera_to_head: tuple[Tensor, Tensor], landmarks: Tensor, K: Tensor, size: int,
                   pixels: Tensor) -> Tensor:
    """Distance along pixel rays to the fitted face mesh, for the cameras the renderer uses.

    The mesh lives in head space, so it must be seen through the same (pose-corrected)
    cameras as the head field; distances from the uncorrected cameras would disagree by
    the correction's shift along the ray.

    Args:
        camera_to_head: ``(R (B, 3, 3), t (B, 3))`` camera-to-head transforms of B frames.
        landmarks: (B, 478, 3) the frames' landmarks in head space.
        K: (3, 3) intrinsics in pixels at ``size``.
        size: Frame side in pixels.
        pixels: (B, P, 2) pixel positions (u, v).

    Returns:
        (B, P) distances in head-space units on ``pixels``' device; +inf off the face.
    """
    with torch.no_grad():  # the rasterizer runs on the CPU
        depth = face_depth_maps(*_head_to_camera(camera_to_head), landmarks.cpu(), K.cpu(), size)
        distance = ray_distance(pixels.cpu(), _at_pixels(depth, pixels.cpu()), K.cpu())
    return distance.to(pixels.device)


NORMAL_MAP_SHRINK = 4
"""The face normal prior is rasterized at 1/4 of the frame side (normals vary slowly; the
rasterizer's cost grows with the pixel count)."""


def face_normals(camera_to_head: tuple[Tensor, Tensor], landmarks: Tensor, faces: Tensor, K: Tensor, size: int,
                 pixels: Tensor) -> Tensor:
    """The fitted face mesh's camera-space normals at pixels, through the renderer's cameras.

    Args:
        camera_to_head: ``(R (B, 3, 3), t (B, 3))`` camera-to-head transforms of B frames.
        landmarks: (B, 478, 3) the frames' landmarks in head space.
        faces: (F, 3) the face triangles, wound outwards (`avatar3d.mesh.orient_towards_camera`).
        K: (3, 3) intrinsics in pixels at ``size``.
        size: Frame side in pixels.
        pixels: (B, P, 2) pixel positions (u, v).

    Returns:
        (B, P, 3) unit normals (x right, y up, z towards the camera) on ``pixels``' device;
        0 off the face.
    """
    with torch.no_grad():  # the rasterizer runs on the CPU
        small = max(size // NORMAL_MAP_SHRINK, 1)
        K_small = K.cpu().clone()
        K_small[:2] *= small / size
        cam = _camera_surface(*_head_to_camera(camera_to_head), landmarks.cpu())
        maps = torch.stack([interpolate(vertex_normals(points, faces), faces,
                                        rasterize(project(points, K_small), faces, small, small)) for points in cam])
        normals = torch.nn.functional.normalize(_at_pixels(maps, pixels.cpu(), size / small), dim=-1, eps=1e-6)
    return normals.to(pixels.device)
