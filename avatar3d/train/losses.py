"""Training losses that are more than one line."""

from __future__ import annotations

import torch
from torch import Tensor

from avatar3d.face.model import FACE_WIDTH

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def patch_ssim_loss(rendered: Tensor, real: Tensor) -> Tensor:
    """1 - mean SSIM of whole patches (one window per patch and channel).

    Args:
        rendered: (N, h, w, 3) rendered patches in [0, 1].
        real: (N, h, w, 3) observed patches.

    Returns:
        Scalar loss in [0, 2]; 0 when the patches are equal.
    """
    x, y = rendered.flatten(1, 2), real.flatten(1, 2)  # (N, h*w, 3)
    mx, my = x.mean(1), y.mean(1)
    vx, vy = x.var(1, unbiased=False), y.var(1, unbiased=False)
    cov = ((x - mx[:, None]) * (y - my[:, None])).mean(1)
    ssim = ((2 * mx * my + SSIM_C1) * (2 * cov + SSIM_C2)) / ((mx**2 + my**2 + SSIM_C1) * (vx + vy + SSIM_C2))
    return 1.0 - ssim.mean()


def face_depth_error(surface_spread: Tensor, face_distance: Tensor, is_head: Tensor) -> Tensor:
    """Mean distance of the rays' weight from the fitted face mesh, in face widths, on head pixels it covers.

    Args:
        surface_spread: (R,) ``sum_i w_i |t_i - face_distance|`` per ray (`Avatar.render_head`),
            head-space units.
        face_distance: (R,) distance along the same rays to the face mesh; +inf off the mesh.
        is_head: (R,) bool, the pixel shows the head.

    Returns:
        Scalar; 0 when no ray is on the face.
    """
    on_face = torch.isfinite(face_distance) & is_head.to(surface_spread.device)
    spread = torch.where(on_face, surface_spread, torch.zeros_like(surface_spread))
    return spread.sum() / on_face.sum().clamp(min=1) / FACE_WIDTH  # no host sync for "any ray on the face?"
