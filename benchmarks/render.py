"""Training rays/s and rendering frames/s of the avatar, on the active backend.

Usage::

    python benchmarks/render.py SUBJECT [--run RUN] [--device cpu|cuda] [--steps N]

``AVATAR3D_BACKEND=torch`` measures the PyTorch reference where kernels exist.

Training: ``--steps`` head-stage steps of the fast preset after its warm-up (rays per step
= frames x rays per frame), timed per step; rays/s is the median. A ray costs the same at
any frame size, so this is measured once, on the subject. Rendering: whole frames of the
first validation frame at 128, 256 and 512 pixels (intrinsics scaled), with a trained
run's occupancy grid when ``--run`` is given (an untrained grid is all occupied, the
slowest case).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from avatar3d import config as config_io
from avatar3d.render.avatar import load_avatar
from avatar3d.render.backend import ENV_VAR, kernels_missing
from avatar3d.render.conditions import subject_conditions
from avatar3d.subject import Subject
from avatar3d.train.config import RenderTrainConfig
from avatar3d.train.render import WARMUP_STEPS, RenderTrainer
from timing import median_seconds


def fast_preset(subject: Path, run: Path) -> RenderTrainConfig:
    return config_io.build(RenderTrainConfig, config_io.load_preset(RenderTrainConfig, "fast"),
                           {"subject": subject, "run": run})


def training_rays_per_second(subject: Path, device: torch.device, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = RenderTrainer(fast_preset(subject, Path(tmp) / "run"), device)
        for step in range(WARMUP_STEPS + 1):  # carve the grid first: steady-state cost
            trainer.step = step
            trainer._step(0.0)

        def train_step():
            trainer.step += 1
            trainer._step(0.3)

        seconds = median_seconds(train_step, steps, warm_up=False)
    return trainer.cfg.frames_per_batch * trainer.rays_per_frame / seconds


def rendering_fps(subject: Path, run: Path | None, device: torch.device, size: int, repeats: int = 3) -> float:
    prepared = Subject.load(subject)
    if run is None:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = RenderTrainer(fast_preset(subject, Path(tmp) / "run"), device)
            avatar = trainer.avatar.eval()
    else:
        avatar = load_avatar(run, device)
    frame = subject_conditions(prepared).select(prepared.manifest["split"]["val"][0]).to(device)
    background = torch.zeros(size, size, 3, device=device)
    return 1.0 / median_seconds(lambda: avatar.render_frame(frame, background, size), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subject", type=Path)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    if os.environ.get(ENV_VAR):
        backend = f"{os.environ[ENV_VAR]} (forced by {ENV_VAR})"
    else:
        missing = kernels_missing(device.type)
        backend = f"torch ({missing})" if missing else f"{device.type} kernels where they exist"
    print(f"device {device}, backend {backend}, {torch.get_num_threads()} threads, subject {args.subject}, "
          f"run {args.run or 'untrained (all cells occupied)'}")
    print(f"{'what':<26} {'value':>10}")
    print(f"{'training rays/s':<26} {training_rays_per_second(args.subject, device, args.steps):>10,.0f}")
    for size in (128, 256, 512):
        print(f"{f'render fps @ {size}x{size}':<26} {rendering_fps(args.subject, args.run, device, size):>10.2f}")


if __name__ == "__main__":
    main()
