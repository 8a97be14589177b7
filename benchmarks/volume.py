"""Time `avatar3d.render.volume.march` + `composite` on CPU.

Usage: ``python benchmarks/volume.py [--threads N] [--repeats R] [--rays 4096] [--samples 64]``

Rays from a 256² camera 3 units from a box [-1, 1]^3 hold a sphere of radius
0.6 (density 20); the grid is either all occupied or updated from the sphere.
The field is the analytic sphere, so the timings are the renderer's own. Prints
one row per setting: milliseconds for march, composite forward, composite
forward + backward, and rays/s of march + composite (forward, and with
backward), median over repeats after one warm-up. Also times one full 128³
grid update.
"""

from __future__ import annotations

import argparse
import time

import torch

from avatar3d import camera
from avatar3d.render.rays import frame_pixels, pixel_rays
from avatar3d.render.volume import OccupancyGrid, composite, march
from avatar3d.runtime import set_threads
from timing import median_seconds

RADIUS = 0.6


def sphere_density(points: torch.Tensor) -> torch.Tensor:
    """Density 20 inside a sphere of radius `RADIUS` at the origin, 0 outside."""
    return torch.where(points.norm(dim=-1) < RADIUS, 20.0, 0.0)


def rays(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random pixel rays of a 256² camera at z = 3 looking at the origin."""
    K = camera.intrinsics(300.0, 256, 256)
    pixels = frame_pixels(256, 256)
    pixels = pixels[torch.randperm(len(pixels), generator=torch.Generator().manual_seed(0))[:n]]
    return pixel_rays(K, (torch.eye(3), torch.tensor([0.0, 0.0, 3.0])), pixels)


def bench(grid: OccupancyGrid, n_rays: int, samples: int, repeats: int) -> tuple[float, ...]:
    origins, directions = rays(n_rays)
    step = 2.0 * 3**0.5 / samples  # `samples` steps span the box diagonal
    t_starts, t_ends, valid = march(origins, directions, grid, 0.0, 10.0, step, samples, True)
    mids = origins[:, None] + directions[:, None] * ((t_starts + t_ends) / 2)[..., None]
    densities = sphere_density(mids[valid]).requires_grad_()
    colours = (mids[valid] * 0.5 + 0.5).clamp(0, 1).requires_grad_()
    bg = torch.ones(3)

    def run_march():
        march(origins, directions, grid, 0.0, 10.0, step, samples, True)

    def run_forward():
        with torch.no_grad():
            composite(densities, colours, t_starts, t_ends, valid, bg)

    def run_backward():
        out = composite(densities, colours, t_starts, t_ends, valid, bg)
        (out["rgb"].sum() + out["depth"].sum()).backward()

    ms_march = median_seconds(run_march, repeats) * 1000.0
    ms_fwd = median_seconds(run_forward, repeats) * 1000.0
    ms_bwd = median_seconds(run_backward, repeats) * 1000.0
    return ms_march, ms_fwd, ms_bwd, float(valid.float().sum(1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="as avatar3d --threads (default: every usable CPU)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rays", type=int, default=4096)
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()
    args.threads = set_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}, "
          f"{args.rays} rays x {args.samples} samples")
    full = OccupancyGrid([-1, -1, -1], [1, 1, 1], resolution=128)
    culled = OccupancyGrid([-1, -1, -1], [1, 1, 1], resolution=128)
    start = time.perf_counter()
    culled.update(sphere_density, step=0)
    update_ms = (time.perf_counter() - start) * 1000.0
    print(f"{'grid':>8} {'valid/ray':>9} {'march ms':>9} {'comp ms':>8} {'comp+bw ms':>10} "
          f"{'rays/s fwd':>11} {'rays/s train':>12}")
    for name, grid in (("full", full), ("sphere", culled)):
        ms_march, ms_fwd, ms_bwd, per_ray = bench(grid, args.rays, args.samples, args.repeats)
        fwd = args.rays / ((ms_march + ms_fwd) / 1000.0)
        train = args.rays / ((ms_march + ms_bwd) / 1000.0)
        print(f"{name:>8} {per_ray:>9.1f} {ms_march:>9.2f} {ms_fwd:>8.2f} {ms_bwd:>10.2f} "
              f"{fwd:>11,.0f} {train:>12,.0f}")
    print(f"one 128^3 grid update (analytic density): {update_ms:.0f} ms")


if __name__ == "__main__":
    main()
