"""Camera rays through pixels, for volume rendering.

Conventions are those of `avatar3d.camera`: camera space is
OpenGL-style (x right, y up, looking along -z), ``K`` is in pixels, and pixel
(row i, column j) has its centre at ``(u, v) = (j + 0.5, i + 0.5)``.

Rays are returned in the space that ``c2w`` maps camera space into. For the
head NeRF that is head space: the head is static and the camera moves, so
``c2w`` is the inverse of the head pose (``R_c2w = R_pose^T``,
``t_c2w = -R_pose^T t_pose`` for ``p_cam = R_pose p_head + t_pose``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from avatar3d.camera import unproject


def _split_c2w(c2w: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Rotation (3, 3) and translation (3,) of a (4, 4) matrix or an ``(R, t)`` pair."""
    if isinstance(c2w, (tuple, list)):
        R, t = c2w
        return R, t.reshape(3)
    return c2w[:3, :3], c2w[:3, 3]


def pixel_rays(
    K: Tensor, c2w: Tensor | tuple[Tensor, Tensor], pixels: Tensor
) -> tuple[Tensor, Tensor]:
    """Rays from the camera centre through pixel positions.

    The camera-space direction through ``(u, v)`` is
    ``((u - cx) / fx, -(v - cy) / fy, -1)`` (the inverse of
    `avatar3d.camera.project`), rotated by ``c2w`` and normalised.

    Args:
        K: (3, 3) intrinsics in pixels.
        c2w: Camera-to-world transform, either a (4, 4) matrix
            ``[[R, t], [0, 1]]`` or a pair ``(R (3, 3), t (3,))``, mapping
            ``p_world = R @ p_cam + t``.
        pixels: (N, 2) pixel positions ``(u, v)``; use `frame_pixels` for
            pixel centres.

    Returns:
        ``(origins, directions)``, each (N, 3) in the dtype of ``pixels``:
        the camera centre ``t`` repeated, and unit directions, in world space.
    """
    R, t = _split_c2w(c2w)
    directions = camera_directions(K, pixels) @ R.to(pixels).T
    return t.to(pixels).expand_as(directions).clone(), directions


def camera_directions(K: Tensor, pixels: Tensor) -> Tensor:
    """Unit camera-space directions through pixel positions.

    Args:
        K: (3, 3) intrinsics in pixels.
        pixels: (..., 2) pixel positions ``(u, v)``.

    Returns:
        (..., 3) unit vectors along ``((u - cx) / fx, -(v - cy) / fy, -1)``.
    """
    directions = unproject(pixels, torch.ones_like(pixels[..., 0]), K)  # the point at depth 1
    return directions / directions.norm(dim=-1, keepdim=True)


def frame_pixels(height: int, width: int) -> Tensor:
    """Centres of all pixels of an image, in row-major order.

    Args:
        height: Image height H in pixels.
        width: Image width W in pixels.

    Returns:
        (H * W, 2) float32 ``(u, v)``; row ``i * W + j`` is pixel (row i,
        column j) at ``(j + 0.5, i + 0.5)``, so ``.reshape(H, W, ...)`` of any
        per-ray result gives an image.
    """
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float32) + 0.5,
        torch.arange(width, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)
