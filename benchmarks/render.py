"""Training rays/s and rendering frames/s of the avatar, on the active backend.

Usage::

    python benchmarks/render.py SUBJECT [--run RUN] [--device cpu|cuda] [--steps N] [--preset fast|quality]
                                [--sizes 128,256,512] [--repeats N] [--json FILE] [key=value ...]

``AVATAR3D_BACKEND=torch`` measures the PyTorch reference where kernels exist.

Training: ``--steps`` head-stage steps of the preset (``key=value`` words change its
settings, as for ``avatar3d train render``; ``backend=gaussians`` for the Gaussian head)
after its warm-up (rays per step = frames x rays per frame; for Gaussians, whole frames:
pixels per step), timed per step; rays/s is the median. A ray costs the same at any frame
size, so this is measured once, on the subject. Rendering: whole frames of the first
validation frame at each of ``--sizes`` pixels (intrinsics scaled), the head alone
(transparent around it) and the whole avatar (head, torso, the subject's plate behind),
with a trained run's occupancy grid when ``--run`` is given (an untrained grid is all
occupied, the slowest case). ``--json`` also writes the numbers to a file
(`benchmarks/gpu_check.sh` puts two such files, one per backend, into one table).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from avatar3d import config as config_io
from avatar3d.render.avatar import load_avatar
from avatar3d.render.backend import ENV_VAR
from avatar3d.render.conditions import subject_conditions
from avatar3d.runtime import keep_freed_memory
from avatar3d.subject import Subject
from avatar3d.train.config import RenderTrainConfig
from avatar3d.train.render import WARMUP_STEPS, RenderTrainer
from timing import median_seconds

PARTS = {"head": False, "head+torso+bg": True}
"""What a frame holds -> whether the torso (and the plate behind it) is rendered."""


def preset_config(subject: Path, run: Path, preset: str, overrides: dict[str, str]) -> RenderTrainConfig:
    return config_io.build(RenderTrainConfig, config_io.load_preset(RenderTrainConfig, preset),
                           {"subject": subject, "run": run}, overrides)


def training_rays_per_second(cfg: RenderTrainConfig, device: torch.device, steps: int) -> float:
    trainer = RenderTrainer(cfg, device)
    for step in range(WARMUP_STEPS + 1):  # carve the grid first: steady-state cost
        trainer.step = step
        trainer._step(0.0)

    def train_step():
        trainer.step += 1
        trainer._step(0.3)

    seconds = median_seconds(train_step, steps, warm_up=False)
    if cfg.backend == "gaussians":  # whole frames: every pixel is a "ray"
        return cfg.gaussians.frames_per_step * trainer.subject.resolution**2 / seconds
    return trainer.cfg.frames_per_batch * trainer.rays_per_frame / seconds


def rendering_fps(subject: Path, avatar, device: torch.device, sizes: list[int],
                  repeats: int) -> dict[int, dict[str, float]]:
    """Frames/s {size: {part: fps}} of the first validation frame (`PARTS`)."""
    prepared = Subject.load(subject)
    frame = subject_conditions(prepared).select(prepared.manifest["split"]["val"][0]).to(device)
    plate = torch.from_numpy(prepared.background()).float().div(255).permute(2, 0, 1)[None]
    fps = {}
    for size in sizes:
        background = torch.nn.functional.interpolate(plate, size=(size, size), mode="area" if size < plate.shape[-1]
                                                     else "bilinear")[0].permute(1, 2, 0).contiguous().to(device)
        fps[size] = {
            part: 1.0 / median_seconds(lambda: avatar.render_frame(frame, background if torso else None, size,
                                                                   with_torso=torso), repeats)
            for part, torso in PARTS.items()}
    return fps


def backend_description(device: torch.device) -> str:
    """The forced backend, or what `avatar3d info` says of the device's kernels."""
    if os.environ.get(ENV_VAR):
        return f"{os.environ[ENV_VAR]} (forced by {ENV_VAR})"
    from avatar3d.info import kernel_backends

    return f"default; {device.type} kernels {kernel_backends().get(device.type, 'unknown')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subject", type=Path)
    parser.add_argument("--run", type=Path, default=None, help="trained run whose avatar renders (default: untrained)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--preset", default="fast", help="train render preset of the training measurement")
    parser.add_argument("--sizes", default="128,256,512", help="rendered frame sides, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="timed renders per size and part")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings of the preset")
    args = parser.parse_intermixed_args()
    keep_freed_memory()  # as the avatar3d command does
    device = torch.device(args.device)
    sizes = [int(size) for size in args.sizes.split(",")]
    overrides = config_io.parse_overrides(args.overrides)
    backend = backend_description(device)
    print(f"device {device}, backend {backend}, {torch.get_num_threads()} threads, subject {args.subject}, "
          f"run {args.run or 'untrained (all cells occupied)'}, preset {args.preset}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset_config(args.subject, Path(tmp) / "run", args.preset, overrides)
        rays = training_rays_per_second(cfg, device, args.steps)
        print(f"{'what':<36} {'value':>10}")
        print(f"{'training rays/s':<36} {rays:>10,.0f}")
        if args.run is None:
            avatar = RenderTrainer(replace(cfg, run=Path(tmp) / "untrained"), device).avatar.eval()
        else:
            avatar = load_avatar(args.run, device)
        fps = rendering_fps(args.subject, avatar, device, sizes, args.repeats)
    for size, parts in fps.items():
        for part, value in parts.items():
            print(f"{f'render fps @ {size}x{size}, {part}':<36} {value:>10.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "device": str(device), "backend": backend, "preset": args.preset, "run": str(args.run or ""),
            "training_rays_per_s": rays,
            "render_fps": {str(size): parts for size, parts in fps.items()}}, indent=1))


if __name__ == "__main__":
    main()
