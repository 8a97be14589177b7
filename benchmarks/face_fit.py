"""Face-model fit speed: wall time of ``face.fit.fit_face`` per clip length.

    .venv/bin/python benchmarks/face_fit.py [--frames 250,1500]

The input is the virtual actor's exact landmarks (a 4 s clip at 256², rendered once) tiled
in time to the requested length, with 0.3 px of noise so no two frames repeat. Prints one
row per length: total seconds and frames per second with the default FitConfig, and the
median reprojection error as a sanity check. Target: 1500 frames in under 60 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avatar3d.face.fit import fit_face
from avatar3d.runtime import set_quiet
from avatar3d.synth.clip import make_clip
from avatar3d.synth.config import SynthConfig


def actor_landmarks() -> tuple[np.ndarray, np.ndarray, int]:
    """Truth landmarks (T, 478, 2), depth hint (T, 478) and resolution of a short actor clip."""
    with tempfile.TemporaryDirectory() as out:
        make_clip(SynthConfig(out=Path(out), seconds=4, resolution=256, seed=3, supersample=1))
        with np.load(Path(out) / "truth.npz") as truth:
            truth = dict(truth)
    cam = np.einsum("tij,tnj->tni", truth["rotation"], truth["landmarks_3d"]) + truth["translation"][:, None]
    depth = -cam[..., 2]
    mean = depth.mean(1, keepdims=True)
    return truth["landmarks_2d"], (depth - mean) * truth["intrinsics"][0, 0] / mean, int(truth["resolution"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="250,1500")
    args = parser.parse_args()
    set_quiet(True)
    landmarks, depth, resolution = actor_landmarks()
    rng = np.random.default_rng(0)
    print(f"threads: {torch.get_num_threads()}, input: actor truth at {resolution}², tiled, 0.3 px noise")
    print(f"{'frames':>7} | {'wall s':>7} | {'frames/s':>8} | {'reprojection px':>15}")
    for count in (int(n) for n in args.frames.split(",")):
        # Tile back and forth so the motion stays smooth at the seams.
        order = np.concatenate([np.arange(len(landmarks)), np.arange(len(landmarks))[::-1]])
        index = np.resize(order, count)
        points = landmarks[index] + rng.normal(scale=0.3, size=(count, *landmarks.shape[1:]))
        started = time.perf_counter()
        fit = fit_face(points, depth[index], np.ones(count, bool), resolution)
        wall = time.perf_counter() - started
        print(f"{count:>7} | {wall:>7.1f} | {count / wall:>8.1f} | {np.nanmedian(fit.reprojection_px):>15.2f}")


if __name__ == "__main__":
    main()
