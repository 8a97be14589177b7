"""Multi-resolution hash-grid encoding (Instant-NGP), pure PyTorch reference.

A point in the unit cube (head, ``dims=3``) or unit square (torso, ``dims=2``) is
encoded as the concatenation, over L levels, of F features interpolated from a grid
of learned vectors:

- Level l has resolution ``N_l = floor(base * b**l)`` cells per axis, with the growth
  factor ``b = exp((ln finest - ln base) / (L - 1))``, so ``N_0 = base`` and
  ``N_{L-1} = finest``. Its vertices have integer coordinates ``0..N_l``.
- A level whose dense grid, ``(N_l + 1)**dims`` vertices, fits in the table of T rows
  is indexed densely: row ``x + y (N_l+1) + z (N_l+1)**2`` (x fastest), and only its
  first ``(N_l + 1)**dims`` rows are used. Finer levels hash each vertex:
  ``(x * 1) xor (y * 2654435761) xor (z * 805459861)`` modulo T, collisions included.
- The 2**dims vertices of the cell around the point are blended with trilinear
  (bilinear in 2D) weights.

Points outside ``[0, 1]`` are clamped to it; a point at exactly 1 lies in the last cell
with weight 1 on the upper vertices. Integer math is int64, so products of coordinates
(at most 2**31 here) and primes (< 2**32) never overflow. As T is a power of two,
the int64 hash modulo T equals the uint32 hash (wrapping products) modulo T, which is
what a CUDA kernel computes: both backends index the same rows.

`encode` is the functional op, dispatched through `avatar3d.render.backend.choose` to
this reference or to the compiled CPU kernel (`avatar3d.kernels`);
`HashGrid` is the module that owns the table. The op is differentiable with respect
to the table and to the points (inside cells; the encoding is only piecewise smooth,
with kinks on cell faces).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from avatar3d.errors import BadArgumentError
from avatar3d.render import backend
from avatar3d.render.config import HashGridConfig

PRIMES = (1, 2654435761, 805459861)
"""Per-axis hash multipliers (x, y, z); the first is 1 so x stays coherent in memory."""

INIT_RANGE = 1e-4
"""Table entries start uniform in ``[-INIT_RANGE, INIT_RANGE]``."""


def level_resolutions(config: HashGridConfig) -> tuple[int, ...]:
    """Cells per axis of each level, ``floor(base * b**l)``, coarsest first.

    Args:
        config: The grid's size.

    Returns:
        L ints, from ``base_resolution`` up to ``finest_resolution``.
    """
    base, finest, levels = config.base_resolution, config.finest_resolution, config.levels
    if levels == 1:
        return (base,)
    growth = math.exp((math.log(finest) - math.log(base)) / (levels - 1))
    # The tiny bias keeps exact products (e.g. base * b**(L-1) == finest) from
    # flooring one below through rounding error in exp/log.
    return tuple(math.floor(base * growth**level * (1 + 1e-12)) for level in range(levels))


def is_dense(resolution: int, dims: int, table_size: int) -> bool:
    """Whether a level of ``resolution`` cells per axis is indexed densely (no hash)."""
    return (resolution + 1) ** dims <= table_size


def encode(points: Tensor, table: Tensor, resolutions: Sequence[int]) -> Tensor:
    """Encodes points with a multi-resolution hash grid.

    Differentiable with respect to ``table`` and ``points``. Runs the backend chosen by
    `avatar3d.render.backend.choose`: the compiled CPU kernel for float32 CPU tensors where
    it builds, else the PyTorch reference.

    Args:
        points: (N, D) positions in ``[0, 1]**D``, D in {2, 3}; clamped to it.
        table: (L, T, F) float features per level; T a power of two.
        resolutions: L ints, cells per axis of each level (see `level_resolutions`).

    Returns:
        (N, L * F) features in ``table``'s dtype, level-major: level l's F features
        at columns ``l*F .. l*F + F - 1``.

    Example:
        >>> grid = HashGrid(HashGridConfig(levels=4, finest_resolution=64), dims=3)
        >>> encode(torch.rand(5, 3), grid.table, grid.resolutions).shape
        torch.Size([5, 8])
    """
    _check(points, table, resolutions)
    choice = backend.choose("encode", points, table)
    if choice == "cpu":
        from avatar3d.kernels.ops import encode_cpu

        return encode_cpu(points, table, resolutions)
    if choice == "torch":
        return _encode_torch(points, table, resolutions)
    raise NotImplementedError(f"no {choice} implementation of encode")  # unreachable: no CUDA kernel yet


class HashGrid(torch.nn.Module):
    """Learned multi-resolution hash-grid encoding of 2D or 3D points.

    Attributes:
        config: The grid's size.
        dims: 2 (torso, image space) or 3 (head).
        resolutions: Cells per axis of each level, coarsest first.
        table: (L, T, F) parameter; dense levels use their first ``(N_l + 1)**dims`` rows.
    """

    def __init__(self, config: HashGridConfig = HashGridConfig(), dims: int = 3):
        """Builds the table, initialised uniform in ``[-INIT_RANGE, INIT_RANGE]``.

        Raises:
            BadArgumentError: dims is not 2 or 3 (`HashGridConfig` checks its own fields).
        """
        super().__init__()
        if dims not in (2, 3):
            raise BadArgumentError(f"hash grid dims must be 2 or 3, got {dims}")
        self.config = config
        self.dims = dims
        self.resolutions = level_resolutions(config)
        shape = (config.levels, 2**config.log2_table_size, config.features_per_level)
        self.table = torch.nn.Parameter(torch.empty(shape).uniform_(-INIT_RANGE, INIT_RANGE))

    @property
    def output_dim(self) -> int:
        """Channels of the encoding, L * F."""
        return self.config.levels * self.config.features_per_level

    def forward(self, points: Tensor) -> Tensor:
        """Encodes (N, dims) points in ``[0, 1]**dims`` into (N, L * F) features.

        Features are in the table's dtype (float32 unless the module was converted).
        """
        if points.ndim != 2 or points.shape[1] != self.dims:
            raise ValueError(f"points must be (N, {self.dims}), got {tuple(points.shape)}")
        return encode(points, self.table, self.resolutions)


def _check(points: Tensor, table: Tensor, resolutions: Sequence[int]) -> None:
    """Raises ValueError when the arguments' shapes do not fit together."""
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"points must be (N, 2) or (N, 3), got {tuple(points.shape)}")
    if table.ndim != 3 or table.shape[0] != len(resolutions):
        raise ValueError(
            f"table must be (L, T, F) with L = {len(resolutions)} levels, got {tuple(table.shape)}"
        )
    size = table.shape[1]
    if size & (size - 1):
        raise ValueError(f"table rows per level must be a power of two, got {size}")


def _encode_torch(points: Tensor, table: Tensor, resolutions: Sequence[int]) -> Tensor:
    """PyTorch reference of `encode` (same arguments and result).

    Per level and axis, the two candidate coordinates give two row terms and two
    weights, (N, 2) each; combining them across axes (sum or xor of terms, product of
    weights) yields the 2**D corners, x varying fastest. Rows of all levels are then
    gathered from the flattened table at once, so the backward pass scatters into the
    table gradient once instead of once per level.
    """
    levels, size, features = table.shape
    count, dims = points.shape
    x = points.to(table.dtype).clamp(0.0, 1.0)
    step = torch.arange(2, device=points.device)  # lower, upper vertex along an axis
    rows, weights = [], []
    for level, resolution in enumerate(resolutions):
        pos = x * resolution  # (N, D) in vertex units
        # A point at 1 goes to the last cell (fraction 1), whose upper vertex is N_l.
        cell = pos.detach().floor().long().clamp_(0, resolution - 1)
        frac = pos - cell.to(pos.dtype)  # (N, D), differentiable in the points
        coords = cell[:, :, None] + step  # (N, D, 2) integer vertex coordinates
        if is_dense(resolution, dims, size):
            row = _combine([coords[:, d] * (resolution + 1) ** d for d in range(dims)], torch.add)
        else:
            row = _combine([coords[:, d] * PRIMES[d] for d in range(dims)], torch.bitwise_xor)
            row = row & (size - 1)
        rows.append(row + level * size)
        weights.append(_combine([torch.stack([1 - frac[:, d], frac[:, d]], -1) for d in range(dims)], torch.mul))
    # index_select (backward: one index_add_) is about twice as fast as advanced indexing on CPU.
    rows = torch.stack(rows, 1)  # (N, L, C)
    values = table.reshape(levels * size, features).index_select(0, rows.view(-1))
    values = values.view(*rows.shape, features)  # (N, L, C, F)
    out = torch.einsum("nlcf,nlc->nlf", values, torch.stack(weights, 1))
    return out.reshape(count, levels * features)


def _combine(terms: list[Tensor], op) -> Tensor:
    """Combines per-axis (N, 2) terms into (N, 2**D) corner values, x varying fastest.

    Corner ``c`` takes the upper term of axis d where bit d of c is set; ``op`` (add,
    xor or multiply) folds the axes together.
    """
    out = terms[0]
    for term in terms[1:]:
        out = op(term[:, :, None], out[:, None, :]).flatten(1)  # the new axis varies slower
    return out
