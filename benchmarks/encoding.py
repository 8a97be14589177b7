"""Time the hash-grid encoding (`avatar3d.render.encoding.HashGrid`) on the CPU.

Usage: ``python benchmarks/encoding.py [--threads N] [--repeats R]``

Prints one row per (dims, point count): points per second for the forward pass alone
and for forward + backward (gradient of the table and of the points), median over
repeats after one warm-up call. The grid is the default `HashGridConfig` (16 levels x
2 features, 2^19 rows, resolutions 16..2048); points are uniform in the unit cube.
"""

from __future__ import annotations

import argparse

import torch

from avatar3d.render.encoding import HashGrid, HashGridConfig
from timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, CPU, {args.threads} threads, median of {args.repeats}, "
          f"default HashGridConfig")
    print(f"{'dims':>4} {'points':>7} {'forward pts/s':>14} {'fwd+bwd pts/s':>14}")
    for dims in (3, 2):
        grid = HashGrid(HashGridConfig(), dims=dims)
        for log2_count in (16, 18):
            points = torch.rand(2**log2_count, dims)
            with torch.no_grad():
                forward = median_seconds(lambda: grid(points), args.repeats)

            def train_step() -> None:
                grid.zero_grad(set_to_none=True)
                grid(points.requires_grad_(True)).square().sum().backward()

            both = median_seconds(train_step, args.repeats)
            count = len(points)
            print(f"{dims:>4} {'2^' + str(log2_count):>7} {count / forward:>14,.0f} {count / both:>14,.0f}")


if __name__ == "__main__":
    main()
