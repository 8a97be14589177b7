"""Multi-resolution hash-grid encoding (Instant-NGP).

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

`encode` is the functional op, dispatched by `avatar3d.render.backend` to its PyTorch
twin (`cuda_ext.torch_impl.encode`, which defines it) or a CPU or CUDA kernel;
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


def encode(points: Tensor, table: Tensor, resolutions: Sequence[int]) -> Tensor:
    """Encodes points with a multi-resolution hash grid.

    Differentiable with respect to ``table`` and ``points``. Runs the backend chosen by
    `avatar3d.render.backend.choose`: a kernel for float32 tensors where one builds, else
    the PyTorch twin.

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
    return backend.implementation("encode", points, table).encode(points, table, resolutions)


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
