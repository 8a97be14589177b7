"""Time the hot ops on the CPU, per backend: hash-grid encoding, landmark warp, compositing, SH shading,
Gaussian rasterisation.

Usage: ``python benchmarks/kernels.py [--threads N] [--repeats R]``

Prints one row per (op, backend): points per second for the forward pass alone and for
forward + backward (gradient of the table and of the points), median over repeats after
one warm-up call. Backends: ``torch`` (the PyTorch twins) and ``cpu`` (the kernels of
`cuda_ext`, when they build here). Sizes are those of a fast-preset training step: 2^15
samples; the head grid (3D, 8 levels, 2^16 rows, 16..512 cells), the torso grid (2D, 10
levels, 2^15 rows, 8..512 cells), a warp by 96 landmarks of 4 frames with the head's
radius, samples spread over the face; compositing of 2^15 / 32 rays of 32 slots, 80 % of them
sampled, with the head's 10 channels; shading of 2^15 normals under one light; rasterising 2^15
Gaussians of a head's size (3 channels) into a 256² image (projection and tile binning
included, which run in PyTorch on both backends).
"""

from __future__ import annotations

import argparse
import os

import torch

from avatar3d.face.model import FACE_WIDTH
from avatar3d.render.backend import ENV_VAR
from avatar3d.render.config import HeadConfig, TorsoConfig
from avatar3d.render.encoding import HashGrid
from avatar3d.render.head import warp_to_neutral
from avatar3d.render.sh import LIGHT_PRESETS, shade
from avatar3d.render.splat import covariances, project, rasterize
from avatar3d.render.volume import composite
from avatar3d.runtime import set_threads
from cuda_ext import build
from timing import median_seconds

SAMPLES = 2**15


def encode_case(dims: int):
    """(forward, forward + backward) callables of one grid on SAMPLES random points."""
    grid = HashGrid(HeadConfig().grid if dims == 3 else TorsoConfig().grid, dims=dims)
    points = torch.rand(SAMPLES, dims)

    def forward():
        with torch.no_grad():
            grid(points)

    def both():
        grid.zero_grad(set_to_none=True)
        grid(points.requires_grad_(True)).square().sum().backward()

    return forward, both


def warp_case():
    """(forward, forward + backward) callables of the warp on SAMPLES points over a face."""
    frames, landmarks = 4, 96
    anchors = (torch.rand(frames, landmarks, 3) - 0.5) * FACE_WIDTH
    shifts = torch.randn(frames, landmarks, 3) * 0.005
    points = (torch.rand(SAMPLES, 3) - 0.5) * 2 * FACE_WIDTH
    counts = [SAMPLES // frames] * frames
    radius = HeadConfig().warp_radius

    def forward():
        with torch.no_grad():
            warp_to_neutral(points, counts, anchors, shifts, radius)

    def both():
        warp_to_neutral(points.requires_grad_(True), counts, anchors, shifts, radius).square().sum().backward()

    return forward, both


def composite_case():
    """(forward, forward + backward) callables of compositing SAMPLES samples, 32 per ray."""
    rays, slots = SAMPLES // 32, 32
    t_starts = torch.arange(slots).float().expand(rays, slots) * 0.01
    valid = torch.rand(rays, slots) > 0.2
    densities = torch.rand(int(valid.sum())) * 20
    colours = torch.rand(len(densities), 10)

    def forward():
        with torch.no_grad():
            composite(densities, colours, t_starts, t_starts + 0.01, valid)

    def both():
        out = composite(densities.requires_grad_(True), colours.requires_grad_(True), t_starts, t_starts + 0.01, valid)
        (out["rgb"].square().sum() + out["depth"].sum()).backward()

    return forward, both


def shade_case():
    """(forward, forward + backward) callables of shading SAMPLES normals under one light."""
    normals = torch.nn.functional.normalize(torch.randn(SAMPLES, 3), dim=-1)
    light = LIGHT_PRESETS["left"].clone()

    def forward():
        with torch.no_grad():
            shade(normals, light)

    def both():
        shade(normals.requires_grad_(True), light.requires_grad_(True)).square().sum().backward()

    return forward, both


def rasterize_case():
    """(forward, forward + backward) callables of rendering SAMPLES Gaussians over a head-sized
    volume into 256 x 256 pixels."""
    size = 256
    means = (torch.rand(SAMPLES, 3) - 0.5) * torch.tensor([1.0, 1.2, 1.0]) * FACE_WIDTH * 1.5
    quats, scales = torch.randn(SAMPLES, 4), torch.rand(SAMPLES, 3) * 0.01 * FACE_WIDTH + 0.002 * FACE_WIDTH
    opacities, colours = torch.rand(SAMPLES) * 0.9, torch.rand(SAMPLES, 3)
    distance = 4 * FACE_WIDTH
    K = torch.tensor([[size * 2.0, 0.0, size / 2], [0.0, size * 2.0, size / 2], [0.0, 0.0, 1.0]])
    pose = (torch.eye(3), torch.tensor([0.0, 0.0, -distance]))

    def render(means, quats, scales, opacities, colours):
        projected = project(means, covariances(quats, scales), K, *pose, size, size)
        return rasterize(projected, colours, opacities, size, size)["rgb"]

    def forward():
        with torch.no_grad():
            render(means, quats, scales, opacities, colours)

    def both():
        inputs = [x.detach().requires_grad_(True) for x in (means, quats, scales, opacities, colours)]
        render(*inputs).square().sum().backward()

    return forward, both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="as avatar3d --threads (default: every usable CPU)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    args.threads = set_threads(args.threads)
    torch.manual_seed(0)
    backends = ["torch"] + (["cpu"] if build.missing("cpu") is None else [])
    print(f"torch {torch.__version__}, CPU, {args.threads} threads, median of {args.repeats}, {SAMPLES} samples")
    print(f"{'op':<16} {'backend':<8} {'forward pts/s':>14} {'fwd+bwd pts/s':>14} {'fwd+bwd ms':>11}")
    cases = {"encode 3D (head)": lambda: encode_case(3), "encode 2D (torso)": lambda: encode_case(2),
             "warp": warp_case, "composite": composite_case, "shade": shade_case, "rasterize": rasterize_case}
    for name, make in cases.items():
        forward, both = make()
        for backend in backends:
            os.environ[ENV_VAR] = backend
            forward_s = median_seconds(forward, args.repeats)
            both_s = median_seconds(both, args.repeats)
            print(f"{name:<16} {backend:<8} {SAMPLES / forward_s:>14,.0f} {SAMPLES / both_s:>14,.0f} "
                  f"{both_s * 1000:>11.1f}")
    os.environ.pop(ENV_VAR, None)


if __name__ == "__main__":
    main()
