"""Bilinear texture lookup.

Texture coordinates: ``uv`` in [0, 1], u right and v down, with (0, 0) the
top-left corner of the top-left texel and (1, 1) the bottom-right corner of
the bottom-right texel, so ``uv = ((j + 0.5) / Wt, (i + 0.5) / Ht)`` hits the
centre of texel (row i, column j) exactly. This is `grid_sample` with
``align_corners=False``. Images and textures are (H, W, C) channels-last,
typically float32 RGB in [0, 1].
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def sample_texture(texture: Tensor, uv: Tensor) -> Tensor:
    """Sample a texture bilinearly with border clamping.

    Outside [0, 1], and within half a texel of the border, the nearest border
    texel is used (no wrapping). Differentiable with respect to both inputs.

    Args:
        texture: (Ht, Wt, C) texels.
        uv: (..., 2) texture coordinates (see module doc).

    Returns:
        (..., C) sampled values in ``texture``'s dtype.
    """
    lead = uv.shape[:-1]
    image = texture.permute(2, 0, 1).unsqueeze(0)  # (1, C, Ht, Wt)
    # grid_sample wants x, y in [-1, 1] spanning the outer texel edges.
    grid = (uv.to(texture.dtype) * 2.0 - 1.0).reshape(1, 1, -1, 2)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].t().reshape(*lead, texture.shape[-1])  # (N, C) -> (..., C)
