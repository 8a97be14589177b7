"""``avatar3d demo`` (what ``make demo`` runs): the main job on the built-in virtual actor.

For now: a virtual-actor clip with its ground truth, then the subject folder prepared from
it; later stages (training, driving) join as they land.
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


def run_demo(cfg: DemoConfig, device) -> None:
    from avatar3d.synth.clip import make_clip
    from avatar3d.synth.config import SynthConfig
    from data_prep.config import PrepConfig
    from data_prep.pipeline import run_prep  # the demo fronts every stage, like the CLI

    console.rule("[bold]1/2 virtual actor")
    video = make_clip(SynthConfig(out=cfg.out / "actor", seconds=cfg.seconds, resolution=cfg.resolution,
                                  seed=cfg.seed, passes="albedo,normal,label"))
    console.rule("[bold]2/2 prep")
    subject = run_prep(PrepConfig(video=video, out=cfg.out / "subject", resolution=cfg.resolution))
    console.print(f"\n[bold]demo done[/]: clip {video} (ground truth {video.parent / 'truth.npz'}, "
                  f"passes {video.parent / 'passes'}); subject {subject} (check {subject / 'preview.mp4'})")
