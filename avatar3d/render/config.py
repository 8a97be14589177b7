"""Settings of ``avatar3d render`` (light: no torch import, for fast --help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatar3d.errors import BadArgumentError


def check_resolution(resolution: int | None) -> None:
    """An output side must be even (video encoders need it) and at least 16 pixels; None
    means the subject's own."""
    if resolution is not None and (resolution < 16 or resolution % 2):
        raise BadArgumentError(f"--resolution {resolution}: use an even number of pixels, at least 16")


@dataclass
class RenderFramesConfig:
    """Settings of ``avatar3d render``."""

    POSITIONAL = ("subject",)

    subject: Path
    """Prepared subject folder."""
    out: Path
    """Output folder: NNNNNN.png per frame and video.mp4."""
    frames: str = "val"
    """Frames to render: A:B (subject frame indices, B excluded), 'val' or 'all'."""
    run: Path | None = None
    """Render run folder; default: the subject's newest finished run under --runs."""
    runs: Path = Path("runs")
    """Root folder of runs."""
    orbit: float = 0.0
    """Swing the camera +-DEG degrees around the head (head only, over the background)."""
    resolution: int | None = None
    """Output side in pixels; default: the subject's."""

    def __post_init__(self):
        check_resolution(self.resolution)
