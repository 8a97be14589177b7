"""Virtual-actor rendering speed: wall time of ``avatar3d synth`` per clip length and resolution.

    .venv/bin/python benchmarks/synth.py [--seconds 20] [--resolutions 128,256,512]

Prints one row per resolution: total seconds (speech, actor build, rendering, encoding),
frames per second and the real-time factor. Target: a 20 s clip at 256² in under 60 s on a
2-core CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from avatar3d.runtime import set_quiet
from avatar3d.synth.clip import make_clip
from avatar3d.synth.config import SynthConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--resolutions", default="128,256,512")
    args = parser.parse_args()
    set_quiet(True)
    print(f"threads: {torch.get_num_threads()}, clip: {args.seconds:g} s at 25 fps, supersample 2")
    print(f"{'resolution':>10} | {'wall s':>7} | {'frames/s':>8} | {'x real time':>11}")
    for resolution in (int(r) for r in args.resolutions.split(",")):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            make_clip(SynthConfig(out=Path(out), seconds=args.seconds, resolution=resolution))
            wall = time.perf_counter() - started
        frames = round(args.seconds * 25)
        print(f"{resolution:>10} | {wall:>7.1f} | {frames / wall:>8.1f} | {args.seconds / wall:>11.2f}")


if __name__ == "__main__":
    main()
