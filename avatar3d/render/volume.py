"""Volume rendering: occupancy grid, ray marching, compositing.

Pipeline for one batch of rays (see `avatar3d.render.rays` for making them)::

    t_starts, t_ends, valid = march(origins, directions, grid, near, far, step, S, jitter)
    points = origins[:, None] + directions[:, None] * (t_starts + t_ends)[..., None] / 2
    densities, colours = field(points[valid])   # (N,), (N, C): only the valid samples
    out = composite(densities, colours, t_starts, t_ends, valid, background)

Sample layout: every ray gets ``S = max_samples`` slots, as (R, S) tensors of
intervals with a bool ``valid`` mask, each ray's valid samples in its first
slots; the field is evaluated only at the N valid slots, whose values stay
*packed* (N, ...) in slot order, as in the ragged layout of CUDA ray marchers.
A ray has about ten valid samples, a tenth of what its steps through the box
would be, so callers cut the slots to the most any ray uses.

`march` and `composite` are the public ops, dispatched through
`avatar3d.render.backend.choose` to a kernel or to their twins,
`cuda_ext.torch_impl.march` and `cuda_ext.torch_impl.composite`.

Occupancy threshold: a cell is kept when its density could make a visible
contribution. Following instant-NGP, "visible" means an optical thickness of
at least 0.01 over one of the finest march steps, ``diag / 1024`` for a box of
diagonal ``diag``, so the default threshold is ``0.01 * 1024 / diag`` in
density units (2.96 for the box [-1, 1]^3; RAD-NeRF's fixed 10 corresponds to
steps three times shorter). As in instant-NGP the effective threshold is
``min(threshold, mean EMA density)``, so a grid whose densities are all still
small early in training does not empty itself.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from avatar3d.render import backend
from cuda_ext.torch_impl import grid_cells

MIN_OPTICAL_THICKNESS = 0.01
"""Optical thickness per finest step below which a cell counts as empty."""

FINEST_STEPS = 1024
"""Number of finest march steps across the box diagonal (sets the threshold)."""


class OccupancyGrid(torch.nn.Module):
    """Occupancy of a regular grid of cells over an axis-aligned box.

    State (buffers, saved with ``state_dict``):

    * ``density``: (R, R, R) float, EMA of the maximum density seen per cell,
      indexed ``[ix, iy, iz]`` along x, y, z.
    * ``mask``: (R, R, R) bool, True where the cell is occupied. All True until
      the first `update`, so marching starts out unculled.

    Args:
        box_min: (3,) lower corner of the box (sequence or tensor).
        box_max: (3,) upper corner of the box.
        resolution: Cells per axis R.
        threshold: Density above which a cell is occupied; None for
            ``0.01 * 1024 / diag`` (see the module doc).
        decay: EMA decay applied to the stored density at each update.
    """

    def __init__(
        self,
        box_min,
        box_max,
        resolution: int = 128,
        threshold: float | None = None,
        decay: float = 0.95,
    ) -> None:
        super().__init__()
        box_min = torch.as_tensor(box_min, dtype=torch.float32).reshape(3)
        box_max = torch.as_tensor(box_max, dtype=torch.float32).reshape(3)
        if not bool((box_max > box_min).all()):
            raise ValueError(f"empty box: min {box_min.tolist()}, max {box_max.tolist()}")
        if threshold is None:
            diag = float((box_max - box_min).norm())
            threshold = MIN_OPTICAL_THICKNESS * FINEST_STEPS / diag
        self.resolution = int(resolution)
        self.threshold = float(threshold)
        self.decay = float(decay)
        r = self.resolution
        self.register_buffer("box_min", box_min)
        self.register_buffer("box_max", box_max)
        self.register_buffer("density", torch.zeros(r, r, r))
        self.register_buffer("mask", torch.ones(r, r, r, dtype=torch.bool))

    @property
    def cell_size(self) -> Tensor:
        """(3,) edge lengths of one cell."""
        return (self.box_max - self.box_min) / self.resolution

    def cell_index(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Cell indices of (..., 3) points: (..., 3) long indices clamped into the grid and
        (...,) bool, True inside the closed box (`cuda_ext.torch_impl.grid_cells`)."""
        return grid_cells(points, self.box_min, self.box_max, self.resolution)

    def occupied(self, points: Tensor) -> Tensor:
        """Whether points fall in occupied cells.

        Args:
            points: (..., 3) positions.

        Returns:
            (...,) bool; False outside the box.
        """
        index, inside = self.cell_index(points)
        ix, iy, iz = index.unbind(-1)
        return self.mask[ix, iy, iz] & inside

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[Tensor], Tensor],
        step: int,
        every: int = 16,
        cells: int | None = None,
        chunk: int = 1 << 18,
    ) -> None:
        """Refresh the densities and the mask, on every ``every``-th step.

        At steps with ``step % every == 0``: one uniformly random point per
        cell (or per sampled cell) is evaluated, the cell's stored density
        becomes ``max(decay * stored, new)``, and the mask is recomputed as
        ``density > min(threshold, mean(density))``. Other steps do nothing.

        Args:
            density_fn: Maps (M, 3) points to (M,) densities (no grad needed).
            step: Training step.
            every: Update period in steps.
            cells: Number of random cells to refresh (with replacement); None
                for all R^3. Cells not drawn keep their stored density.
            chunk: Points per ``density_fn`` call.
        """
        if step % every != 0:
            return
        r = self.resolution
        flat = self.density.view(-1)
        device = flat.device
        if cells is None:
            ids = torch.arange(r**3, device=device)
        else:
            ids = torch.randint(0, r**3, (cells,), device=device)
        new = torch.empty(len(ids), device=device)
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            ijk = torch.stack([part // (r * r), (part // r) % r, part % r], dim=-1)
            local = ijk.to(flat.dtype) + torch.rand(len(part), 3, device=device)
            points = self.box_min + local * self.cell_size
            new[start : start + chunk] = density_fn(points).reshape(-1).to(flat)
        # Duplicate ids (cells drawn twice) keep the larger density.
        refreshed = torch.zeros_like(flat).scatter_reduce(0, ids, new, "amax", include_self=False)
        drawn = torch.zeros_like(flat, dtype=torch.bool)
        drawn[ids] = True
        flat.copy_(torch.where(drawn, torch.maximum(flat * self.decay, refreshed), flat))
        level = min(self.threshold, float(flat.mean()))
        self.mask.copy_(self.density > level)


def march(
    origins: Tensor,
    directions: Tensor,
    grid: OccupancyGrid,
    near: float,
    far: float,
    step_size: float,
    max_samples: int,
    jitter: bool = False,
    surface_band: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Equal-step samples along rays, skipping empty space (padded layout).

    Each ray is cut to ``[t_lo, t_hi]``, the intersection of ``[near, far]``
    with its segment inside the grid's box. Sample k covers
    ``[t_lo + (k + u) * step_size, t_lo + (k + 1 + u) * step_size]`` with
    ``u = 0``, or ``u ~ U[0, 1)`` per ray when ``jitter``; the end of the last
    sample is clipped to ``t_hi`` (so it may be shorter). A sample is valid
    when it starts before ``t_hi``, its midpoint is in an occupied cell, and
    ``k < max_samples`` (longer rays are truncated: choose
    ``max_samples >= (t_hi - t_lo) / step_size + 1``).

    With ``surface_band``, samples starting more than ``surface_band`` behind
    the surface the grid predicts are invalid too. This does the work of early
    ray termination in the padded layout, where every sample in an occupied
    cell would otherwise be kept, including those inside a solid head. The
    grid's stored (EMA maximum) densities bound the optical depth from above;
    where that bound first exceeds ln 2 (transmittance 1/2) is the predicted
    surface. The band must cover what the bound misses (e.g. a mouth cavity
    behind lips that close in other frames). Before the grid's first update
    (all densities 0) nothing is dropped.

    A ray's valid samples fill its first slots, in order along it; its other
    slots are zero-length at ``t_hi`` (``t_lo`` for a ray missing the box). So
    each row is non-decreasing and finite, and the slots past the most valid
    samples of any ray can be cut off.

    Args:
        origins: (R, 3) ray origins.
        directions: (R, 3) ray directions; unit length makes ``t`` a distance
            and ``step_size`` a length.
        grid: Occupancy grid; its box bounds the samples.
        near: Smallest ray parameter.
        far: Largest ray parameter.
        step_size: Sample spacing in ray parameter units.
        max_samples: Slots per ray S.
        jitter: Randomly offset each ray's samples (training).
        surface_band: Depth kept behind the predicted surface, ray-parameter
            units; None keeps every occupied sample.

    Returns:
        ``(t_starts, t_ends, valid)``: (R, S) ray parameters in the dtype of
        ``origins`` and (R, S) bool. Not differentiable.
    """
    offsets = torch.rand_like(origins[:, 0]) if jitter else torch.zeros_like(origins[:, 0])
    return backend.implementation("march", origins, directions).march(
        origins, directions, offsets, grid.box_min, grid.box_max, grid.mask, grid.density, near, far, step_size,
        max_samples, surface_band)


def composite(
    densities: Tensor,
    colours: Tensor,
    t_starts: Tensor,
    t_ends: Tensor,
    valid: Tensor,
    background: Tensor | None = None,
    stop_threshold: float = 1e-4,
) -> dict[str, Tensor]:
    """Alpha-composite samples along rays (emission-absorption model).

    With ``dt_i = t_end_i - t_start_i`` and invalid slots given zero optical
    thickness: ``alpha_i = 1 - exp(-sigma_i dt_i)``,
    ``T_i = exp(-sum_{j<i} sigma_j dt_j)``, ``w_i = T_i alpha_i``. Early ray
    termination: samples with ``T_i < stop_threshold`` get weight 0, which
    changes opacity and colour by less than ``stop_threshold`` (times the
    colour range); 0 disables it.

    Differentiable with respect to ``densities``, ``colours`` and
    ``background``.

    Args:
        densities: (N,) non-negative densities sigma of the valid slots, packed
            in slot order (``t_starts[valid]``'s order).
        colours: (N, C) their values (any number of channels).
        t_starts: (R, S) interval starts (from `march`).
        t_ends: (R, S) interval ends.
        valid: (R, S) bool, the N slots with a sample.
        background: None, (C,) or (R, C) colour behind the volume.
        stop_threshold: Transmittance below which samples are dropped.

    Returns:
        Dict with

        * ``rgb``: (R, C) composited colour, plus ``(1 - opacity) * background``.
        * ``opacity``: (R,) accumulated alpha ``sum_i w_i``.
        * ``depth``: (R,) expected ray parameter of the sample midpoints,
          *normalised* by opacity: ``sum_i w_i t_mid_i / max(opacity, eps)``
          (as nerfacc does; 0 where opacity is 0).
        * ``weights``: (R, S) ``w_i``.
        * ``transmittance``: (R, S) ``T_i``.
    """
    return backend.implementation("composite", densities, colours, t_starts, t_ends).composite(
        densities, colours, t_starts, t_ends, valid, background, stop_threshold)
