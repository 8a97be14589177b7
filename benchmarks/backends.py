"""Rendering frames/s of the two head backends, NeRF and Gaussians, on one subject in one run.

Usage::

    python benchmarks/backends.py SUBJECT --nerf RUN --gaussians RUN [--sizes 256,512] [--repeats N]
                                  [--device cpu|cuda] [--json FILE]

Both runs' avatars render the subject's first validation frame whole at each of ``--sizes``,
the head alone and the whole avatar over the plate (`benchmarks/render.py`'s parts), taking
turns size by size so that a machine's changing load falls on both alike. Prints frames/s
per backend and the Gaussians' speed-up.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from avatar3d.render.avatar import load_avatar
from avatar3d.runtime import keep_freed_memory
from render import PARTS, rendering_fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subject", type=Path)
    parser.add_argument("--nerf", type=Path, required=True, help="a finished NeRF render run of the subject")
    parser.add_argument("--gaussians", type=Path, required=True, help="a finished Gaussian render run of the subject")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="256,512", help="rendered frame sides, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="timed renders per size, part and backend")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    keep_freed_memory()  # as the avatar3d command does
    device = torch.device(args.device)
    avatars = {"nerf": load_avatar(args.nerf, device), "gaussians": load_avatar(args.gaussians, device)}
    for name, avatar in avatars.items():
        if avatar.backend != name:
            parser.error(f"--{name} {getattr(args, name)} is a {avatar.backend} run")
    print(f"device {device}, {torch.get_num_threads()} threads, subject {args.subject}, "
          f"{len(avatars['gaussians'].head)} Gaussians")
    fps = {name: {} for name in avatars}
    for size in (int(size) for size in args.sizes.split(",")):
        for name, avatar in avatars.items():
            fps[name].update(rendering_fps(args.subject, avatar, device, [size], args.repeats))
    print(f"{'frame':<28} {'nerf fps':>10} {'gaussians fps':>14} {'speed-up':>9}")
    for size in fps["nerf"]:
        for part in PARTS:
            nerf, gaussians = fps["nerf"][size][part], fps["gaussians"][size][part]
            print(f"{f'{size}x{size}, {part}':<28} {nerf:>10.2f} {gaussians:>14.2f} {gaussians / nerf:>8.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "render_fps": {
            name: {str(size): parts for size, parts in values.items()} for name, values in fps.items()}}, indent=1))


if __name__ == "__main__":
    main()
