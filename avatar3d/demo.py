"""``avatar3d demo`` (what ``make demo`` runs): the main job on the built-in virtual actor.

For now: a virtual-actor clip with its ground truth, the subject folder prepared from it,
the avatar trained on it (fast preset) and scored on held-out frames; driving from new
speech joins when it lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatar3d.runtime import console


@dataclass
class DemoConfig:
    """Settings of ``avatar3d demo``."""

    out: Path = Path("demo")
    """Folder for every output of the demo."""
    seconds: float = 12.0
    """Length of the virtual actor's clip, seconds."""
    resolution: int = 256
    """Frame side in pixels."""
    seed: int = 0
    """Random seed of the clip."""
    train_minutes: float = 9.0
    """Time budget of the avatar's training, minutes."""


def run_demo(cfg: DemoConfig, device) -> None:
    from avatar3d.synth.clip import make_clip
    from avatar3d.synth.config import SynthConfig
    from data_prep.config import PrepConfig
    from data_prep.pipeline import run_prep  # the demo fronts every stage, like the CLI

    from avatar3d.train.config import RenderEvalConfig, RenderTrainConfig
    from avatar3d.train.render import train_render
    from avatar3d.train.render_eval import evaluate_render

    console.rule("[bold]1/4 virtual actor")
    video = make_clip(SynthConfig(out=cfg.out / "actor", seconds=cfg.seconds, resolution=cfg.resolution,
                                  seed=cfg.seed, passes="albedo,normal,label"))
    console.rule("[bold]2/4 prep")
    subject = run_prep(PrepConfig(video=video, out=cfg.out / "subject", resolution=cfg.resolution))
    console.rule("[bold]3/4 train render")
    run = train_render(RenderTrainConfig(subject=subject, run=cfg.out / "render", max_minutes=cfg.train_minutes),
                       device)
    console.rule("[bold]4/4 eval render")
    evaluate_render(RenderEvalConfig(subject=subject, run=run), device)
    console.print(f"\n[bold]demo done[/]: clip {video} (ground truth {video.parent / 'truth.npz'}); "
                  f"subject {subject} (check {subject / 'preview.mp4'}); avatar {run} "
                  f"(metrics.json, eval.mp4; `tensorboard --logdir {run}`)")
