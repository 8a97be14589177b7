"""The PyTorch twin of every op: the definition each kernel is tested against, and what runs
where no kernel does (other dtypes, devices without kernels, ``AVATAR3D_BACKEND=torch``).

Each function has the same arguments and results as its kernel wrapper in `cuda_ext.ops`.
"""

from __future__ import annotations

import math
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


def ray_box_interval(origins: Tensor, directions: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Entry and exit ray parameters of an axis-aligned box (slab method).

    Args:
        origins, directions: (R, 3) rays.
        lo, hi: (3,) the box's corners.

    Returns:
        ``(t_enter, t_exit)``, each (R,); the ray misses when t_enter >= t_exit.
    """
    tiny = 1e-12
    safe = torch.where(directions.abs() < tiny, torch.full_like(directions, tiny), directions)
    safe = torch.where((directions.abs() < tiny) & (directions < 0), -safe, safe)
    t_a = (lo - origins) / safe
    t_b = (hi - origins) / safe
    return torch.minimum(t_a, t_b).amax(-1), torch.maximum(t_a, t_b).amin(-1)


def grid_cells(points: Tensor, lo: Tensor, hi: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """Cells of a regular grid of ``resolution``**3 cells over the box ``[lo, hi]``.

    Returns:
        ``(index, inside)``: (..., 3) long cell indices (clamped into the grid) and (...,)
        bool, True for points inside the closed box.
    """
    lo, hi = lo.to(points), hi.to(points)
    inside = ((points >= lo) & (points <= hi)).all(-1)
    scaled = (points - lo) / (hi - lo) * resolution
    return scaled.floor().long().clamp(0, resolution - 1), inside


@torch.no_grad()
def march(origins: Tensor, directions: Tensor, offsets: Tensor, box_min: Tensor, box_max: Tensor, mask: Tensor,
          density: Tensor, near: float, far: float, step_size: float, max_samples: int,
          surface_band: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Equal-step samples along rays through an occupancy grid, padded (R, S) layout with each
    ray's valid samples first.

    Each ray is cut to ``[t_lo, t_hi]``, the intersection of ``[near, far]`` with its segment
    inside the box. Sample k < S covers ``[t_lo + (k + u) step, t_lo + (k + 1 + u) step]``, u
    the ray's offset, clipped to ``t_hi``. It is valid when it starts before ``t_hi`` and its
    midpoint is in the box, in a cell of ``mask``. With ``surface_band``, samples starting more
    than the band behind the predicted surface are invalid too: the first sample start where
    the optical depth of the stored densities over valid samples exceeds ln 2. A ray's valid
    samples fill its first slots, in order along it; its other slots are empty intervals at
    ``t_hi``. So the arrays can be cut to the most valid samples of any ray.

    Args:
        origins, directions: (R, 3) rays.
        offsets: (R,) u in [0, 1): zeros, or random for jittered training samples.
        box_min, box_max: (3,) the grid's box.
        mask: (G, G, G) bool occupied cells, indexed [x, y, z]; density: (G, G, G) their
            stored densities.
        near, far: Ray parameter range; step_size: sample spacing; max_samples: slots S.
        surface_band: Depth kept behind the predicted surface; None keeps every occupied sample.

    Returns:
        ``(t_starts, t_ends, valid)``: (R, S) ray parameters, non-decreasing and finite per
        row, and (R, S) bool. Not differentiable.
    """
    lo, hi = box_min.to(origins), box_max.to(origins)
    t_enter, t_exit = ray_box_interval(origins, directions, lo, hi)
    t_lo = t_enter.clamp(min=near)
    t_hi = torch.maximum(t_exit.clamp(max=far), t_lo)[:, None]
    k = torch.arange(max_samples, device=origins.device, dtype=origins.dtype)
    raw = t_lo[:, None] + (k + offsets[:, None]) * step_size
    t_starts = torch.minimum(raw, t_hi)
    t_ends = torch.minimum(raw + step_size, t_hi)
    mids = origins[:, None] + directions[:, None] * ((t_starts + t_ends) / 2)[..., None]
    index, inside = grid_cells(mids, lo, hi, mask.shape[0])
    ix, iy, iz = index.unbind(-1)
    valid = (raw < t_hi) & inside & mask[ix, iy, iz]
    if surface_band is not None:
        tau = torch.where(valid, density[ix, iy, iz] * (t_ends - t_starts), torch.zeros_like(t_starts))
        opaque = torch.cumsum(tau, dim=-1) > math.log(2.0)
        surface = torch.where(opaque, t_starts, torch.full_like(t_starts, float("inf"))).amin(-1, keepdim=True)
        valid &= t_starts <= surface + surface_band
    first = torch.argsort((~valid).to(torch.uint8), dim=1, stable=True)  # valid slots first, in order
    valid = valid.gather(1, first)
    t_starts = torch.where(valid, t_starts.gather(1, first), t_hi)
    t_ends = torch.where(valid, t_ends.gather(1, first), t_hi)
    return t_starts, t_ends, valid


def composite(densities: Tensor, colours: Tensor, t_starts: Tensor, t_ends: Tensor, valid: Tensor,
              background: Tensor | None = None, stop_threshold: float = 1e-4) -> dict[str, Tensor]:
    """Alpha-composites samples along rays (emission-absorption).

    Rays have S slots; the field's values at the valid ones come packed, in slot order
    (``t_starts[valid]``'s order). With ``dt_i = t_end_i - t_start_i`` and invalid slots
    given zero optical thickness: ``alpha_i = 1 - exp(-sigma_i dt_i)``,
    ``T_i = exp(-sum_{j<i} sigma_j dt_j)``, ``w_i = T_i alpha_i``, and 0 where
    ``T_i < stop_threshold`` (early termination; 0 disables it).

    Args:
        densities: (N,) non-negative densities of the N valid slots.
        colours: (N, C) their values (any number of channels).
        t_starts, t_ends: (R, S) slot intervals along each ray.
        valid: (R, S) bool, the slots with a sample; N of them.
        background: None, (C,) or (R, C), added as ``(1 - opacity) * background``.
        stop_threshold: Transmittance below which samples get no weight.

    Returns:
        ``rgb`` (R, C); ``opacity`` (R,) ``sum_i w_i``; ``depth`` (R,)
        ``sum_i w_i t_mid_i / max(opacity, eps)``; ``weights`` and ``transmittance`` (R, S).
        Differentiable in ``densities``, ``colours`` and ``background``.
    """
    dt = t_ends - t_starts
    tau = dt.new_zeros(valid.shape).index_put((valid,), densities.to(dt) * dt[valid])
    alpha = 1.0 - torch.exp(-tau)
    transmittance = torch.exp(-(torch.cumsum(tau, dim=-1) - tau))  # optical depth in front of each sample
    weights = transmittance * alpha
    if stop_threshold > 0:
        weights = torch.where(transmittance >= stop_threshold, weights, torch.zeros_like(weights))
    weighted = weights[valid][:, None] * colours  # (N, C)
    rgb = weighted.new_zeros(len(valid), colours.shape[1]).index_add(0, valid.nonzero()[:, 0], weighted)
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


SPLAT_MIN_ALPHA = 1.0 / 255.0
"""A Gaussian whose alpha at a pixel is below this is skipped there (`rasterize`)."""
SPLAT_MAX_ALPHA = 0.999
"""Alphas are clamped to this, so a pixel's transmittance never reaches 0 at once."""
SPLAT_MIN_TRANSMITTANCE = 1e-4
"""A pixel stops before the Gaussian that would take its transmittance to this or less."""


def tile_bins(means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int,
              tile_size: int) -> tuple[Tensor, Tensor]:
    """Lists, per tile of ``tile_size`` pixels square, the Gaussians whose box covers it, front to
    back: what `rasterize` walks. Not an op with a kernel: both backends use this.

    Args:
        means2d: (N, 2) pixel positions (x right, y down) of the Gaussians' centres.
        radii: (N, 2) half-widths of their boxes in pixels along x and y; a Gaussian with a
            radius <= 0 is culled.
        depths: (N,) float32 or float64 distances that order them (smaller in front), not negative
            for any Gaussian that is not culled.
        width, height: Image size in pixels.
        tile_size: Tile side in pixels.

    Returns:
        ``(offsets, ids)``: (tiles + 1,) int64, tile t's list is ``ids[offsets[t]:offsets[t+1]]``
        (tiles in row-major order, ``ceil(W / tile_size)`` per row), and (M,) int64 Gaussian
        indices, each tile's sorted by depth (ties by index).
    """
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    # Non-negative floats sort as their bit patterns do as integers, which sort many times faster
    # (culled Gaussians, which may be behind the camera, are dropped below wherever they sort).
    bits = depths.contiguous().view(torch.int32 if depths.element_size() == 4 else torch.int64)
    front_to_back = torch.argsort(bits, stable=True)  # ties by index
    means2d, radii = means2d[front_to_back], radii[front_to_back]
    lo = torch.floor((means2d - radii) / tile_size).long()
    hi = torch.ceil((means2d + radii) / tile_size).long()
    limit = torch.tensor([tiles_x, tiles_y], device=means2d.device)
    lo, hi = lo.clamp(min=0).minimum(limit), hi.clamp(min=0).minimum(limit)
    spans = (hi - lo).clamp(min=0) * (radii > 0).all(-1, keepdim=True)
    counts = spans.prod(-1)  # tiles per Gaussian
    covering = counts > 0
    front_to_back, lo, spans, counts = front_to_back[covering], lo[covering], spans[covering], counts[covering]
    # One entry per (Gaussian, tile it covers), Gaussians front to back; then a stable sort by tile.
    entry = torch.repeat_interleave(torch.arange(len(counts), device=means2d.device), counts)
    rank = torch.arange(len(entry), device=means2d.device) - (counts.cumsum(0) - counts)[entry]
    tile = (lo[entry, 1] + rank // spans[entry, 0]) * tiles_x + lo[entry, 0] + rank % spans[entry, 0]
    ids = front_to_back[entry[torch.sort(tile, stable=True).indices]]
    offsets = torch.zeros(tiles_x * tiles_y + 1, dtype=torch.int64, device=means2d.device)
    offsets[1:] = torch.bincount(tile, minlength=tiles_x * tiles_y).cumsum(0)
    return offsets, ids


def rasterize(means2d: Tensor, conics: Tensor, colours: Tensor, opacities: Tensor, offsets: Tensor, ids: Tensor,
              width: int, height: int, tile_size: int, background: Tensor | None = None) -> dict[str, Tensor]:
    """Alpha-composites 2D Gaussians into an image, front to back per tile list (3D Gaussian
    splatting's rasteriser).

    At pixel centre ``p`` (column + 0.5, row + 0.5) Gaussian g has
    ``sigma = 0.5 (a dx^2 + c dy^2) + b dx dy`` with ``(dx, dy) = means2d_g - p`` and
    ``conics_g = (a, b, c)`` (its 2D covariance's inverse, upper triangle), and
    ``alpha = min(SPLAT_MAX_ALPHA, opacity_g exp(-sigma))``; it is skipped where ``sigma < 0`` or
    ``alpha < SPLAT_MIN_ALPHA``, and the pixel stops before the Gaussian that would take its
    transmittance to ``SPLAT_MIN_TRANSMITTANCE`` or less. ``rgb = sum_k c_k alpha_k T_k``.

    Args:
        means2d: (N, 2) centres in pixels.
        conics: (N, 3) inverse 2D covariances (a, b, c).
        colours: (N, C) colours (any channels).
        opacities: (N,) opacities in [0, 1].
        offsets, ids: The tile lists (`tile_bins`).
        width, height: Image size; tile_size: their tiles' side.
        background: None, or (C,) added as ``(1 - alpha) * background``.

    Returns:
        ``rgb`` (H, W, C) and ``alpha`` (H, W); differentiable in means2d, conics, colours,
        opacities and background.
    """
    tiles_x = -(-width // tile_size)
    rows, columns = torch.meshgrid(torch.arange(height, device=means2d.device),
                                   torch.arange(width, device=means2d.device), indexing="ij")
    rows, columns = rows.reshape(-1), columns.reshape(-1)
    tile = (rows // tile_size) * tiles_x + columns // tile_size
    counts = offsets[1:] - offsets[:-1]
    longest = int(counts.max()) if len(counts) and len(ids) else 0
    slot = torch.arange(longest, device=means2d.device)
    listed = slot < counts[tile][:, None]  # (P, L)
    g = ids[(offsets[tile][:, None] + slot).clamp(max=max(len(ids) - 1, 0))] if longest else tile[:, None][:, :0]
    dx = means2d[g, 0] - (columns[:, None] + 0.5)
    dy = means2d[g, 1] - (rows[:, None] + 0.5)
    a, b, c = conics[g].unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = (opacities[g] * torch.exp(-sigma)).clamp(max=SPLAT_MAX_ALPHA)
    alpha = torch.where(listed & (sigma >= 0) & (alpha >= SPLAT_MIN_ALPHA), alpha, torch.zeros_like(alpha))
    log_after = torch.cumsum(torch.log1p(-alpha), dim=1)  # log transmittance behind each entry
    kept = log_after > math.log(SPLAT_MIN_TRANSMITTANCE)
    alpha = torch.where(kept, alpha, torch.zeros_like(alpha))
    weights = alpha * torch.exp(torch.cumsum(torch.log1p(-alpha), dim=1) - torch.log1p(-alpha))
    rgb = (weights[..., None] * colours[g]).sum(1).reshape(height, width, -1)
    coverage = weights.sum(1).reshape(height, width)
    if background is not None:
        rgb = rgb + (1.0 - coverage)[..., None] * background.to(rgb)
    return {"rgb": rgb, "alpha": coverage}
