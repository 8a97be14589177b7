"""Pinhole camera: intrinsics, projection to pixels and head-pose rotations.

Conventions used throughout avatar3d (face fit, renderer, virtual actor):

* Camera space is OpenGL-style: x right, y up, the camera looks along -z, so a
  visible point has depth ``-z > 0``. Head space at rest is aligned with it
  (+y up, +z out of the face, towards the camera).
* Intrinsics ``K`` are a 3x3 tensor ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in
  pixels. Skew is ignored.
* Pixel coordinates: u right, v down; pixel (row i, column j) has its centre at
  ``(u, v) = (j + 0.5, i + 0.5)``, so an image of width W spans u in [0, W].
* Projection: ``u = cx + fx * x / (-z)``, ``v = cy - fy * y / (-z)`` (the minus
  sign flips y-up camera space to v-down pixels).
"""

from __future__ import annotations

import torch
from torch import Tensor


def intrinsics(focal_px: float, width: int, height: int) -> Tensor:
    """Intrinsics with square pixels and the principal point at the image centre.

    Args:
        focal_px: Focal length in pixels (same for x and y).
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        K, (3, 3) float32, with ``cx = width / 2`` and ``cy = height / 2`` (the
        centre of the image rectangle, not of a pixel).
    """
    return torch.tensor(
        [[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]],
        dtype=torch.float32,
    )


def project(points_cam: Tensor, K: Tensor) -> Tensor:
    """Project camera-space points to pixels.

    Args:
        points_cam: (..., 3) points in camera space (OpenGL-style, see module doc).
        K: (3, 3) intrinsics in pixels.

    Returns:
        (..., 3) ``(u, v, depth)``: pixel coordinates and depth ``-z`` in the
        units of ``points_cam``. Points with depth <= 0 (behind the camera) give
        meaningless or infinite u, v; callers must drop them by depth.
    """
    x, y, z = points_cam.unbind(-1)
    depth = -z
    K = K.to(points_cam)
    u = K[0, 2] + K[0, 0] * x / depth
    v = K[1, 2] - K[1, 1] * y / depth
    return torch.stack([u, v, depth], dim=-1)


def unproject(uv: Tensor, depth: Tensor, K: Tensor) -> Tensor:
    """Lift pixels with known depth back to camera space (inverse of `project`).

    Args:
        uv: (..., 2) pixel coordinates (u right, v down).
        depth: (...,) depth ``-z`` along the optical axis (not ray length).
        K: (3, 3) intrinsics in pixels.

    Returns:
        (..., 3) camera-space points.
    """
    K = K.to(uv)
    u, v = uv.unbind(-1)
    x = (u - K[0, 2]) * depth / K[0, 0]
    y = -(v - K[1, 2]) * depth / K[1, 1]
    return torch.stack([x, y, -depth], dim=-1)


def _as_tensor(angle: Tensor | float) -> Tensor:
    return angle if isinstance(angle, Tensor) else torch.tensor(float(angle))


def rotation_matrix(yaw: Tensor | float, pitch: Tensor | float, roll: Tensor | float) -> Tensor:
    """Rotation matrix from head-pose angles, ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``.

    All rotations are right-handed about the axes of the fixed (camera/head)
    frame, so for a head at rest (face towards +z):

    * yaw about +y: positive turns the face towards +x (the viewer's right).
    * pitch about +x: positive tilts the face towards -y (looking down).
    * roll about +z: positive tilts the top of the head towards -x (the
      viewer's left).

    Roll is applied first, then pitch, then yaw. Rotate column vectors:
    ``p_rotated = R @ p``.

    Args:
        yaw: Radians, float or tensor of shape (...,).
        pitch: Radians, broadcastable with ``yaw``.
        roll: Radians, broadcastable with ``yaw``.

    Returns:
        (..., 3, 3) rotation matrices (float32 for float inputs, otherwise the
        angles' dtype).
    """
    yaw, pitch, roll = torch.broadcast_tensors(_as_tensor(yaw), _as_tensor(pitch), _as_tensor(roll))
    if not yaw.is_floating_point():
        yaw, pitch, roll = yaw.float(), pitch.float(), roll.float()
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cr, sr = torch.cos(roll), torch.sin(roll)
    # Product Ry @ Rx @ Rz written out, avoiding three batched matmuls.
    rows = [
        [cy * cr + sy * sp * sr, -cy * sr + sy * sp * cr, sy * cp],
        [cp * sr, cp * cr, -sp],
        [-sy * cr + cy * sp * sr, sy * sr + cy * sp * cr, cy * cp],
    ]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def rotation_angles(R: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Head-pose angles of a rotation matrix (inverse of `rotation_matrix`).

    The decomposition is unique for ``|pitch| < pi/2``, ``|yaw| < pi`` and
    ``|roll| < pi``, which covers every realistic head pose; at ``|pitch| = pi/2``
    (gimbal lock) yaw and roll are not separable and the split returned is
    arbitrary.

    Args:
        R: (..., 3, 3) rotation matrices.

    Returns:
        ``(yaw, pitch, roll)`` in radians, each (...,): yaw and roll in
        (-pi, pi], pitch in [-pi/2, pi/2].
    """
    pitch = torch.asin((-R[..., 1, 2]).clamp(-1.0, 1.0))
    yaw = torch.atan2(R[..., 0, 2], R[..., 2, 2])
    roll = torch.atan2(R[..., 1, 0], R[..., 1, 1])
    return yaw, pitch, roll


def rodrigues(omega: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3), radians."""
    theta2 = (omega * omega).sum(-1, keepdim=True)[..., None]
    # sin(θ)/θ and (1 - cos θ)/θ² by their Taylor series near 0, where the exact forms divide 0 by 0.
    small = theta2 < 1e-8
    theta = theta2.clamp_min(1e-8).sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-8))
    x, y, z = omega.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*omega.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=omega.dtype).expand_as(cross)
    return eye + a * cross + b * (cross @ cross)


def pose_vectors(rotation: Tensor, translation: Tensor) -> Tensor:
    """(T, 6) yaw, pitch, roll (radians) and translation of (T, 3, 3) rotations and (T, 3) translations."""
    yaw, pitch, roll = rotation_angles(rotation)
    return torch.cat([torch.stack([yaw, pitch, roll], 1), translation], 1)
