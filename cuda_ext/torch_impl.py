"""The PyTorch twin of every op: the definition each kernel is tested against, and what runs
where no kernel does (other dtypes, devices without kernels, ``AVATAR3D_BACKEND=torch``).

Each function has the same arguments and results as its kernel wrapper in `cuda_ext.ops`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

PRIMES = (1, 2654435761, 805459861)
"""Hash-grid multipliers per axis (x, y, z); the first is 1 so x stays coherent in memory."""

SH_CONSTANTS = (0.282095, 0.488603, 1.092548, 0.315392, 0.546274)
"""The order-2 real SH basis' constants C0..C4 (`sh_basis` gives the functions)."""


def is_dense(resolution: int, dims: int, table_size: int) -> bool:
    """Whether a hash-grid level of ``resolution`` cells per axis is indexed densely (no hash)."""
    return (resolution + 1) ** dims <= table_size


def encode(points: Tensor, table: Tensor, resolutions: Sequence[int]) -> Tensor:
    """Multi-resolution hash-grid encoding (Instant-NGP).

    Level l has ``N_l = resolutions[l]`` cells per axis and vertices ``0..N_l``. A level whose
    dense grid, ``(N_l + 1)**D`` vertices, fits in the table's T rows is indexed densely, row
    ``x + y (N_l+1) + z (N_l+1)**2``; finer levels hash each vertex,
    ``(x * 1) xor (y * 2654435761) xor (z * 805459861)`` modulo T. Points are clamped to
    ``[0, 1]``; a point at 1 is in the last cell with weight 1 on its upper vertices. The 2**D
    corners are blended with D-linear weights. Integer math is int64; as T is a power of two,
    the int64 hash modulo T equals the kernels' wrapping uint32 hash modulo T.

    Per level and axis, the two candidate coordinates give two row terms and two weights,
    (N, 2) each; combining them across axes yields the corners, x varying fastest. Rows of
    all levels are gathered from the flattened table at once, so the backward pass scatters
    into the table gradient once.

    Args:
        points: (N, D) positions, D in {2, 3}.
        table: (L, T, F) features per level; T a power of two.
        resolutions: L ints, cells per axis of each level.

    Returns:
        (N, L * F) features in ``table``'s dtype, level-major. Differentiable in ``table`` and
        ``points`` (inside cells; the encoding has kinks on cell faces).
    """
    levels, size, features = table.shape
    count, dims = points.shape
    x = points.to(table.dtype).clamp(0.0, 1.0)
    step = torch.arange(2, device=points.device)  # lower, upper vertex along an axis
    rows, weights = [], []
    for level, resolution in enumerate(resolutions):
        position = x * resolution  # (N, D) in vertex units
        cell = position.detach().floor().long().clamp_(0, resolution - 1)
        fraction = position - cell.to(position.dtype)  # (N, D), differentiable in the points
        coords = cell[:, :, None] + step  # (N, D, 2) integer vertex coordinates
        if is_dense(resolution, dims, size):
            row = _combine([coords[:, d] * (resolution + 1) ** d for d in range(dims)], torch.add)
        else:
            row = _combine([coords[:, d] * PRIMES[d] for d in range(dims)], torch.bitwise_xor)
            row = row & (size - 1)
        rows.append(row + level * size)
        weights.append(_combine([torch.stack([1 - fraction[:, d], fraction[:, d]], -1) for d in range(dims)],
                                torch.mul))
    # index_select (backward: one index_add_) is about twice as fast as advanced indexing on CPU.
    rows = torch.stack(rows, 1)  # (N, L, C)
    values = table.reshape(levels * size, features).index_select(0, rows.view(-1))
    values = values.view(*rows.shape, features)  # (N, L, C, F)
    out = torch.einsum("nlcf,nlc->nlf", values, torch.stack(weights, 1))
    return out.reshape(count, levels * features)


def _combine(terms: list[Tensor], op) -> Tensor:
    """Combines per-axis (N, 2) terms into (N, 2**D) corner values, x varying fastest.

    Corner ``c`` takes the upper term of axis d where bit d of c is set; ``op`` (add, xor or
    multiply) folds the axes together.
    """
    out = terms[0]
    for term in terms[1:]:
        out = op(term[:, :, None], out[:, None, :]).flatten(1)  # the new axis varies slower
    return out


def warp(points: Tensor, counts: Sequence[int], anchors: Tensor, shifts: Tensor, radius: float) -> Tensor:
    """Landmark warp: ``x - sum_k w_k s_k / max(sum_k w_k, 1)``, ``w_k = exp(-|x - l_k|^2 / 2 r^2)``.

    Args:
        points: (N, 3) samples, grouped by frame.
        counts: Samples per frame (B ints summing to N).
        anchors: (B, M, 3) each frame's landmarks l_k.
        shifts: (B, M, 3) their displacements s_k.
        radius: Gaussian radius r, in the points' units.

    Returns:
        (N, 3) warped points; differentiable in all tensors.
    """
    two_r2 = 2 * radius**2
    shifted = []
    for b, part in enumerate(points.split(list(counts))):
        if len(part) == 0:
            continue
        weights = torch.exp(-torch.cdist(part, anchors[b]).square() / two_r2)
        shift = weights @ shifts[b] / weights.sum(1, keepdim=True).clamp(min=1.0)
        shifted.append(part - shift)
    return torch.cat(shifted) if shifted else points


def composite(densities: Tensor, colours: Tensor, t_starts: Tensor, t_ends: Tensor, valid: Tensor,
              background: Tensor | None = None, stop_threshold: float = 1e-4) -> dict[str, Tensor]:
    """Alpha-composites samples along rays (emission-absorption), padded (R, S) layout.

    With ``dt_i = t_end_i - t_start_i`` and invalid samples given zero optical thickness:
    ``alpha_i = 1 - exp(-sigma_i dt_i)``, ``T_i = exp(-sum_{j<i} sigma_j dt_j)``,
    ``w_i = T_i alpha_i``, and 0 where ``T_i < stop_threshold`` (early termination; 0 disables
    it). Values at invalid slots (even NaN) reach neither results nor gradients.

    Args:
        densities: (R, S) non-negative densities.
        colours: (R, S, C) sample values (any number of channels).
        t_starts, t_ends: (R, S) sample intervals along each ray.
        valid: (R, S) bool, the samples to include.
        background: None, (C,) or (R, C), added as ``(1 - opacity) * background``.
        stop_threshold: Transmittance below which samples get no weight.

    Returns:
        ``rgb`` (R, C); ``opacity`` (R,) ``sum_i w_i``; ``depth`` (R,)
        ``sum_i w_i t_mid_i / max(opacity, eps)``; ``weights`` and ``transmittance`` (R, S).
        Differentiable in ``densities``, ``colours`` and ``background``.
    """
    dt = t_ends - t_starts
    tau = torch.where(valid, densities * dt, torch.zeros_like(densities))
    alpha = 1.0 - torch.exp(-tau)
    transmittance = torch.exp(-(torch.cumsum(tau, dim=-1) - tau))  # optical depth in front of each sample
    weights = transmittance * alpha
    if stop_threshold > 0:
        weights = torch.where(transmittance >= stop_threshold, weights, torch.zeros_like(weights))
    colours = torch.where(valid[..., None], colours, torch.zeros_like(colours))
    rgb = (weights[..., None] * colours).sum(-2)
    opacity = weights.sum(-1)
    eps = torch.finfo(weights.dtype).eps
    depth = (weights * (t_starts + t_ends) / 2).sum(-1) / opacity.clamp_min(eps)
    if background is not None:
        rgb = rgb + (1.0 - opacity)[..., None] * background.to(rgb)
    return {"rgb": rgb, "opacity": opacity, "depth": depth, "weights": weights, "transmittance": transmittance}


def sh_basis(normals: Tensor) -> Tensor:
    """Real SH basis up to order 2, in the order of `avatar3d.render.sh`'s module doc.

    Args:
        normals: (..., 3) unit normals (not re-normalised here).

    Returns:
        (..., 9) basis values in ``normals``' dtype.
    """
    c0, c1, c2, c3, c4 = SH_CONSTANTS
    x, y, z = normals.unbind(-1)
    return torch.stack([torch.full_like(x, c0), c1 * y, c1 * z, c1 * x, c2 * x * y, c2 * y * z,
                        c3 * (3.0 * z * z - 1.0), c2 * x * z, c4 * (x * x - y * y)], dim=-1)


def shade(normals: Tensor, coefficients: Tensor) -> Tensor:
    """Diffuse shading of unit normals by order-2 SH light, clamped at 0.

    Args:
        normals: (..., 3) unit normals.
        coefficients: (9, 3) SH shading coefficients per RGB channel, or (..., 9, 3), one
            light per normal.

    Returns:
        (..., 3) shading; differentiable in both inputs.
    """
    basis = sh_basis(normals)[..., None, :]  # (..., 1, 9)
    return (basis @ coefficients.to(normals.dtype))[..., 0, :].clamp(min=0.0)
