"""3D Gaussians seen by a pinhole camera: EWA projection to 2D Gaussians, tile binning, and the
tile rasteriser (`cuda_ext`: kernels on CPU and CUDA, its PyTorch twin elsewhere).

The camera follows `avatar3d.camera`: OpenGL axes (x right, y up, looking along -z), intrinsics
K in pixels, pixel (row i, column j) centred at (j + 0.5, i + 0.5). A Gaussian's covariance is
``R(q) diag(s)^2 R(q)^T`` for a unit quaternion ``q = (w, x, y, z)`` and scales ``s``. Projection
follows 3D Gaussian splatting (Kerbl et al. 2023; gsplat's conventions): the covariance is carried
to the image by the perspective map's Jacobian at the mean, plus ``BLUR`` pixels² so no Gaussian
is thinner than a pixel, and each Gaussian covers a box of ``RADIUS_SIGMAS`` standard deviations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from avatar3d.render import backend
from cuda_ext.torch_impl import tile_bins

BLUR = 0.3
"""Pixels² added to every projected covariance (3DGS's screen-space low-pass filter)."""
RADIUS_SIGMAS = 3.33
"""Half-width of a Gaussian's box in standard deviations along x and y (as gsplat's)."""
VIEW_MARGIN = 0.3
"""The Jacobian of Gaussians beyond the view is taken at its edge plus this share of its
half-width (3DGS's guard against huge footprints of off-screen Gaussians)."""


def rotations(quats: Tensor) -> Tensor:
    """(N, 3, 3) rotation matrices of (N, 4) quaternions (w, x, y, z; any length)."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(-1, 3, 3)


def covariances(quats: Tensor, scales: Tensor) -> Tensor:
    """(N, 3, 3) covariances of Gaussians from their (N, 4) quaternions (w, x, y, z; any length)
    and (N, 3) scales (standard deviations along their axes)."""
    axes = rotations(quats) * scales[:, None, :]
    return axes @ axes.transpose(1, 2)


def quaternion_to(directions: Tensor) -> Tensor:
    """(N, 4) unit quaternions (w, x, y, z) of the shortest rotations of +z onto (N, 3) unit directions."""
    z = torch.tensor([0.0, 0.0, 1.0], device=directions.device).expand_as(directions)
    half = torch.nn.functional.normalize(z + directions, dim=-1)  # the bisector; 0 when opposite
    w = (z * half).sum(-1, keepdim=True)
    axis = torch.linalg.cross(z, half)
    quats = torch.cat([w, axis], -1)
    opposite = (directions[:, 2] < -1 + 1e-6)[:, None]  # a half turn about x
    return torch.where(opposite, torch.tensor([0.0, 1.0, 0.0, 0.0], device=directions.device).expand_as(quats), quats)


@dataclass
class Projected:
    """Gaussians on the image: ``means2d`` (N, 2) pixels, ``conics`` (N, 3) their 2D
    covariances' inverses (a, b, c: upper triangle), ``radii`` (N, 2) box half-widths in
    pixels (0: culled), ``depths`` (N,) distances along the view axis."""

    means2d: Tensor
    conics: Tensor
    radii: Tensor
    depths: Tensor


def project(means: Tensor, covariance: Tensor, K: Tensor, rotation: Tensor, translation: Tensor, width: int,
            height: int, near: float = 0.01, opacities: Tensor | None = None) -> Projected:
    """Projects 3D Gaussians into a ``width`` x ``height`` image.

    Args:
        means: (N, 3) centres, world space.
        covariance: (N, 3, 3) their covariances (`covariances`).
        K: (3, 3) intrinsics in pixels.
        rotation, translation: (3, 3), (3,) world-to-camera, ``p_cam = rotation @ p + translation``.
        width, height: Image size in pixels.
        near: Gaussians nearer than this (or behind the camera) are culled.
        opacities: (N,) the Gaussians' opacities, or None. Given, each box reaches only as far as
            the Gaussian's alpha is at least 1/255 (what `rasterize` skips beyond), not
            ``RADIUS_SIGMAS``: faint Gaussians cover fewer tiles, the image is the same.

    Returns:
        `Projected`, differentiable in ``means`` and ``covariance`` (and the camera). Culled:
        behind ``near``, boxes entirely off the image, opacities below 1/255.
    """
    points = means @ rotation.T + translation
    x, y, z = points.unbind(-1)
    depth = -z
    safe = torch.where(depth > near, depth, torch.ones_like(depth))  # culled ones get any finite value
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    means2d = torch.stack([cx + fx * x / safe, cy - fy * y / safe], -1)
    # The Jacobian at the mean, its direction clamped to a little beyond the view.
    x_limit = (VIEW_MARGIN * width / 2 + cx) / fx, (VIEW_MARGIN * width / 2 + width - cx) / fx
    y_limit = (VIEW_MARGIN * height / 2 + height - cy) / fy, (VIEW_MARGIN * height / 2 + cy) / fy
    tx = safe * torch.clamp(x / safe, -x_limit[0], x_limit[1])
    ty = safe * torch.clamp(y / safe, -y_limit[0], y_limit[1])
    zero = torch.zeros_like(safe)
    jacobian = torch.stack([fx / safe, zero, fx * tx / safe**2, zero, -fy / safe, -fy * ty / safe**2],
                           -1).reshape(-1, 2, 3)
    camera_covariance = rotation @ covariance @ rotation.T
    image_covariance = jacobian @ camera_covariance @ jacobian.transpose(1, 2)
    a = image_covariance[:, 0, 0] + BLUR
    b = (image_covariance[:, 0, 1] + image_covariance[:, 1, 0]) / 2
    c = image_covariance[:, 1, 1] + BLUR
    determinant = (a * c - b * b).clamp(min=1e-10)
    conics = torch.stack([c / determinant, -b / determinant, a / determinant], -1)
    sigmas = RADIUS_SIGMAS
    if opacities is not None:  # alpha = opacity exp(-d^2 / 2) >= 1/255 within d = sqrt(2 ln(255 opacity))
        sigmas = (2 * torch.log(255 * opacities.detach()).clamp(min=0)).sqrt().clamp(max=RADIUS_SIGMAS)[:, None]
    radii = torch.ceil(sigmas * torch.stack([a, c], -1).sqrt()).detach()
    seen = ((depth > near) & (a * c - b * b > 0) & (means2d[:, 0] + radii[:, 0] > 0)
            & (means2d[:, 0] - radii[:, 0] < width) & (means2d[:, 1] + radii[:, 1] > 0)
            & (means2d[:, 1] - radii[:, 1] < height))
    return Projected(means2d, conics, radii * seen[:, None].detach(), depth.detach())


def rasterize(projected: Projected, colours: Tensor, opacities: Tensor, width: int, height: int,
              tile_size: int = 16, background: Tensor | None = None) -> dict[str, Tensor]:
    """Alpha-composites projected Gaussians front to back (`cuda_ext.torch_impl.rasterize`'s rules).

    Args:
        projected: The Gaussians on the image (`project`).
        colours: (N, C) their colours (any channels).
        opacities: (N,) in [0, 1].
        width, height: Image size; tile_size: the side of the tiles lists are kept for.
        background: None or (C,).

    Returns:
        ``rgb`` (H, W, C) and ``alpha`` (H, W), differentiable in the projected Gaussians,
        colours, opacities and background.
    """
    offsets, ids = tile_bins(projected.means2d.detach(), projected.radii, projected.depths, width, height, tile_size)
    implementation = backend.implementation("rasterize", projected.means2d, projected.conics, colours, opacities)
    return implementation.rasterize(projected.means2d, projected.conics, colours, opacities, offsets, ids, width,
                                    height, tile_size, background)
