"""Training losses that are more than one line."""

from __future__ import annotations

from torch import Tensor

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
