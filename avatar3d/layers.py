"""Small network pieces shared by the head and torso fields."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def mlp(inputs: int, hidden: int, outputs: int, layers: int = 1) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden``."""
    modules, width = [], inputs
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        width = hidden
    modules.append(nn.Linear(width, outputs))
    return nn.Sequential(*modules)


def linear_with_code(layer: nn.Linear, before: Tensor, code: Tensor, counts: list[int],
                     after: Tensor | None = None) -> Tensor:
    """``layer`` on the rows ``[before, the row's frame's code, after]`` without building them:
    the code's share is computed once per frame, not once per row (a whole frame's pixels
    share one code).

    Args:
        layer: Its inputs are I + C + J columns, in that order.
        before: (N, I) rows, grouped by frame.
        code: (B, C) the frames' codes.
        counts: Rows per frame (B ints summing to N).
        after: (N, J) or None (J = 0).

    Returns:
        (N, outputs), equal to ``layer(torch.cat([before, code per row, after], 1))`` up to rounding.
    """
    width = before.shape[1]
    per_frame = nn.functional.linear(code, layer.weight[:, width:width + code.shape[1]], layer.bias)
    if len(counts) > 1:
        per_frame = per_frame.repeat_interleave(torch.tensor(counts, device=code.device), 0)
    out = torch.addmm(per_frame, before, layer.weight[:, :width].T)
    return out if after is None else out.addmm_(after, layer.weight[:, width + code.shape[1]:].T)


def add_region_codes(base: Tensor, weight: Tensor, attention: Tensor, codes: Tensor, counts: list[int]) -> Tensor:
    """``base`` plus a linear layer's share of rows' region-code inputs ``[attention_k x code_k
    for k < K]``, without building those (N, K*C) inputs: per frame, each region's code times
    its weights is one (H,) vector, and a row's share is its attention over them.

    Args:
        base: (N, H) the layer's output from the rest of its inputs (bias included).
        weight: (H, K*C) its weights of the region-code inputs, region by region.
        attention: (N, K) each row's weights of the regions, rows grouped by frame.
        codes: (B, K, C) the frames' region codes.
        counts: Rows per frame (B ints summing to N).

    Returns:
        (N, H), ``base + cat_k(attention_k * code_k of the row's frame) @ weight.T`` up to rounding.
    """
    per_region = torch.einsum("hkc,bkc->bkh", weight.unflatten(1, (codes.shape[1], -1)), codes)  # (B, K, H)
    if len(counts) == 1:
        return torch.addmm(base, attention, per_region[0])
    return torch.cat([torch.addmm(rows, weights, shares)
                      for rows, weights, shares in zip(base.split(counts), attention.split(counts), per_region)])


def positional_encoding(x: Tensor, frequencies: int) -> Tensor:
    """(N, D) -> (N, D * (1 + 2 * frequencies)): x, sin and cos of 2^k pi x."""
    scaled = x[..., None] * (2.0 ** torch.arange(frequencies, device=x.device) * math.pi)
    return torch.cat([x, torch.sin(scaled).flatten(1), torch.cos(scaled).flatten(1)], 1)


class _TruncExp(torch.autograd.Function):
    """exp with its gradient clamped (instant-NGP's density activation)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x.clamp(max=15.0))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(-15.0, 15.0))


def trunc_exp(x: Tensor) -> Tensor:
    """exp(x), with the gradient of exp(clamp(x, -15, 15)) so that it never explodes."""
    return _TruncExp.apply(x)


class Standardise(nn.Module):
    """``(x - mean) / scale`` with the statistics of training data kept as buffers.

    Args:
        dims: Size D of the vectors.
    """

    def __init__(self, dims: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dims))
        self.register_buffer("scale", torch.ones(dims))

    @torch.no_grad()
    def fit(self, samples: Tensor, min_scale: float = 1e-4) -> "Standardise":
        """Takes mean and standard deviation (at least ``min_scale``) from (N, D) samples."""
        self.mean.copy_(samples.mean(0))
        if len(samples) > 1:
            self.scale.copy_(samples.std(0).clamp(min=min_scale))
        return self

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) standardised vectors."""
        return (x - self.mean) / self.scale
