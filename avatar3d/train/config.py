"""Settings of the training and evaluation commands (light: no torch import, for fast --help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatar3d.errors import BadArgumentError

PRESETS = {
    "fast": dict(max_minutes=9.0, head_steps=3000, torso_steps=1000, frames_per_batch=4, rays_per_frame=512,
                 grid_levels=8, grid_log2_table=16, grid_finest=512, occupancy_resolution=64,
                 steps_per_diagonal=256),
    "quality": dict(max_minutes=None, head_steps=30000, torso_steps=6000, frames_per_batch=8, rays_per_frame=4096,
                    grid_levels=16, grid_log2_table=19, grid_finest=2048, occupancy_resolution=128,
                    steps_per_diagonal=512),
}


@dataclass
class RenderTrainConfig:
    """Settings of ``avatar3d train render``; unset sizes come from the preset."""

    POSITIONAL = ("subject",)

    subject: Path
    """Prepared subject folder (from `avatar3d prep`)."""
    preset: str = "fast"
    """fast (a CPU in minutes) or quality (a GPU, 512 pixels)."""
    max_minutes: float | None = None
    """Stop after this many minutes of training in all (fast: 9; quality: no limit)."""
    run: Path | None = None
    """Run folder; an unfinished one resumes. Default: runs/SUBJECT/render/TIMESTAMP, or the newest unfinished one there."""
    runs: Path = Path("runs")
    """Root folder of runs."""
    fresh: bool = False
    """Start a new run even if the newest one is unfinished."""
    head_steps: int | None = None
    """Head-stage steps, an upper bound under a time budget (fast: 3000)."""
    torso_steps: int | None = None
    """Torso-stage steps, an upper bound under a time budget (fast: 1000)."""
    frames_per_batch: int | None = None
    """Frames per step."""
    rays_per_frame: int | None = None
    """Rays per frame per step; halved automatically if a GPU runs out of memory."""
    grid_levels: int | None = None
    """Head hash-grid levels."""
    grid_log2_table: int | None = None
    """log2 of head hash-grid rows per level."""
    grid_finest: int | None = None
    """Head hash-grid finest resolution (cells per axis)."""
    occupancy_resolution: int | None = None
    """Occupancy grid cells per axis."""
    steps_per_diagonal: int | None = None
    """Ray samples across the head box's diagonal."""
    learning_rate: float = 0.02
    """Adam learning rate at the start (decays tenfold over a stage)."""
    lip_weight: float = 2.0
    """Extra photometric weight inside the lips box."""
    alpha_weight: float = 0.3
    """Weight of the alpha-vs-mask loss."""
    ambient_weight: float = 1e-3
    """Weight of the |ambient coordinate| penalty."""
    ssim_weight: float = 0.05
    """Weight of the patch SSIM loss in the second half of the head stage."""
    checkpoint_every: int = 250
    """Steps between checkpoints."""
    validate_every: int = 500
    """Steps between validation renders (TensorBoard, curve.json)."""
    seed: int = 0
    """Random seed."""

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise BadArgumentError(f"--preset {self.preset!r}: use {' or '.join(PRESETS)}")
        for name, value in PRESETS[self.preset].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise BadArgumentError(f"--max-minutes must be positive, got {self.max_minutes}")


@dataclass
class RenderEvalConfig:
    """Settings of ``avatar3d eval render``."""

    POSITIONAL = ("subject",)

    subject: Path
    """Prepared subject folder."""
    run: Path | None = None
    """Render run folder; default: the subject's newest finished run under --runs."""
    runs: Path = Path("runs")
    """Root folder of runs."""
    out: Path | None = None
    """metrics.json to write; default: RUN/metrics.json."""
    max_frames: int | None = None
    """Evaluate at most this many validation frames (spread evenly); all when unset."""
    video: bool = True
    """Also write RUN/eval.mp4 (real, rendered, error, alpha)."""
