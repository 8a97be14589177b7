"""Volume rendering: occupancy grid, ray marching, compositing.

Pipeline for one batch of rays (see `avatar3d.render.rays` for making them)::

    t_starts, t_ends, valid = march(origins, directions, grid, near, far, step, S, jitter)
    points = origins[:, None] + directions[:, None] * (t_starts + t_ends)[..., None] / 2
    densities = torch.zeros_like(t_starts)                  # (R, S)
    colours = t_starts.new_zeros(*t_starts.shape, 3)        # (R, S, 3)
    densities[valid], colours[valid] = field(points[valid]) # only the valid samples
    out = composite(densities, colours, t_starts, t_ends, valid, background)

Sample layout: *padded*. Every ray gets exactly ``S = max_samples`` sample
slots, as dense (R, S) tensors with a bool ``valid`` mask, instead of the
packed (ragged) layout of CUDA ray marchers. Dense tensors keep every step a
plain vectorised torch op (no scatter/segment sums) and are fast on CPU; the
cost is wasted slots on short rays, which callers avoid evaluating by
indexing with ``valid``.

`march` and `composite` are the public ops, dispatched through
`avatar3d.render.backend.choose`: ``_march_torch`` is march's PyTorch
implementation (no kernel yet); composite runs a kernel or its twin,
`cuda_ext.torch_impl.composite`.

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

import math
from typing import Callable

import torch
from torch import Tensor

from avatar3d.render import backend

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
        """Cell indices of points.

        Args:
            points: (..., 3) positions.

        Returns:
            ``(index, inside)``: (..., 3) long cell indices (clamped into the
            grid) and (...,) bool, True for points inside the closed box.
        """
        lo, hi = self.box_min.to(points), self.box_max.to(points)
        inside = ((points >= lo) & (points <= hi)).all(-1)
        scaled = (points - lo) / (hi - lo) * self.resolution
        index = scaled.floor().long().clamp(0, self.resolution - 1)
        return index, inside

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


def ray_box_interval(origins: Tensor, directions: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Entry and exit ray parameters of an axis-aligned box (slab method).

    Returns:
        ``(t_enter, t_exit)``, each (R,); the ray misses when t_enter >= t_exit.
    """
    tiny = 1e-12
    safe = torch.where(directions.abs() < tiny, torch.full_like(directions, tiny), directions)
    safe = torch.where((directions.abs() < tiny) & (directions < 0), -safe, safe)
    t_a = (lo - origins) / safe
    t_b = (hi - origins) / safe
    return torch.minimum(t_a, t_b).amax(-1), torch.maximum(t_a, t_b).amin(-1)


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

    Invalid slots still hold sorted ray parameters: a slot in an empty cell
    keeps its interval, slots past ``t_hi`` (and all slots of a ray missing
    the box) are zero-length at ``t_hi`` (``t_lo`` for a miss). So each row
    is non-decreasing and finite.

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
    choice = backend.choose("march", origins, directions, grid.mask)
    if choice == "torch":
        return _march_torch(origins, directions, grid, near, far, step_size, max_samples, jitter, surface_band)
    raise NotImplementedError(f"no {choice} implementation of march")  # unreachable today


@torch.no_grad()
def _march_torch(
    origins: Tensor,
    directions: Tensor,
    grid: OccupancyGrid,
    near: float,
    far: float,
    step_size: float,
    max_samples: int,
    jitter: bool,
    surface_band: float | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """PyTorch implementation of `march` (same arguments and results)."""
    lo, hi = grid.box_min.to(origins), grid.box_max.to(origins)
    t_enter, t_exit = ray_box_interval(origins, directions, lo, hi)
    t_lo = t_enter.clamp(min=near)
    t_hi = torch.maximum(t_exit.clamp(max=far), t_lo)[:, None]
    offset = torch.rand_like(t_lo) if jitter else torch.zeros_like(t_lo)
    k = torch.arange(max_samples, device=origins.device, dtype=origins.dtype)
    raw = t_lo[:, None] + (k + offset[:, None]) * step_size
    in_range = raw < t_hi
    t_starts = torch.minimum(raw, t_hi)
    t_ends = torch.minimum(raw + step_size, t_hi)
    mids = origins[:, None] + directions[:, None] * ((t_starts + t_ends) / 2)[..., None]
    index, inside = grid.cell_index(mids)
    ix, iy, iz = index.unbind(-1)
    valid = in_range & inside & grid.mask[ix, iy, iz]
    if surface_band is not None:
        tau = torch.where(valid, grid.density[ix, iy, iz] * (t_ends - t_starts), torch.zeros_like(t_starts))
        opaque = torch.cumsum(tau, dim=-1) > math.log(2.0)
        surface = torch.where(opaque, t_starts, torch.full_like(t_starts, float("inf"))).amin(-1, keepdim=True)
        valid &= t_starts <= surface + surface_band
    return t_starts, t_ends, valid


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

    With ``dt_i = t_end_i - t_start_i`` and invalid samples given zero
    optical thickness: ``alpha_i = 1 - exp(-sigma_i dt_i)``,
    ``T_i = exp(-sum_{j<i} sigma_j dt_j)``, ``w_i = T_i alpha_i``. Early ray
    termination: samples with ``T_i < stop_threshold`` get weight 0, which
    changes opacity and colour by less than ``stop_threshold`` (times the
    colour range); 0 disables it. Values at invalid slots (even NaN) do not
    reach the results or the gradients.

    Differentiable with respect to ``densities``, ``colours`` and
    ``background``.

    Args:
        densities: (R, S) non-negative densities sigma.
        colours: (R, S, C) sample colours (any number of channels).
        t_starts: (R, S) interval starts (from `march`).
        t_ends: (R, S) interval ends.
        valid: (R, S) bool, samples to include.
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
