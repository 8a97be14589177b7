"""Time `avatar3d.render.rasterizer.rasterize` on sphere meshes.

Usage: ``python benchmarks/rasterizer.py [--threads N] [--repeats R]``

Prints one row per (triangle count, resolution): milliseconds per frame
(median over repeats, after one warm-up call) and the fraction of pixels
covered. The sphere fills most of the frame, and with no back-face culling
both of its layers are rasterized, as for a real head mesh.
"""

from __future__ import annotations

import argparse
import math

import torch
import trimesh

from avatar3d import camera
from avatar3d.render import rasterizer
from avatar3d.runtime import set_threads
from timing import median_seconds


def sphere(n_faces: int) -> tuple[torch.Tensor, torch.Tensor]:
    """UV sphere of radius 1 with about ``n_faces`` triangles, 3 units in front of the camera.

    Returns:
        Camera-space vertices (V, 3) float32 and faces (F, 3) long.
    """
    # trimesh's uv_sphere(count=[n, n]) has about 3.6 * n^2 triangles.
    n = max(4, round(math.sqrt(n_faces / 3.6)))
    mesh = trimesh.creation.uv_sphere(radius=1.0, count=[n, n])
    verts = torch.tensor(mesh.vertices, dtype=torch.float32)
    verts[:, 2] -= 3.0
    return verts, torch.tensor(mesh.faces, dtype=torch.long)


def time_frame(points: torch.Tensor, faces: torch.Tensor, size: int, repeats: int) -> tuple[float, float]:
    """Median milliseconds per `rasterize` call, and the covered pixel fraction."""
    frags = rasterizer.rasterize(points, faces, size, size)  # also the warm-up
    ms = median_seconds(lambda: rasterizer.rasterize(points, faces, size, size), repeats, warm_up=False) * 1000.0
    return ms, float(frags.mask.float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="as avatar3d --threads (default: every usable CPU)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    args.threads = set_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}")
    print(f"{'triangles':>9} {'resolution':>10} {'ms/frame':>9} {'covered':>8}")
    for target in (1_000, 10_000, 50_000):
        verts, faces = sphere(target)
        for size in (256, 512):
            # Focal length so the sphere spans about 80% of the image width.
            points = camera.project(verts, camera.intrinsics(1.13 * size, size, size))
            ms, covered = time_frame(points, faces, size, args.repeats)
            print(f"{len(faces):>9} {f'{size}x{size}':>10} {ms:>9.1f} {covered:>8.2f}")


if __name__ == "__main__":
    main()
