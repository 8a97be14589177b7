"""Settings of ``avatar3d view`` (light: no torch import, for fast --help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatar3d.errors import BadArgumentError

LOOPBACK = "127.0.0.1"


@dataclass
class ViewConfig:
    """Settings of ``avatar3d view``."""

    POSITIONAL = ("subject",)

    subject: Path
    """Prepared subject folder whose avatar to show."""
    run: Path | None = None
    """Render run folder; default: the subject's newest finished run under --runs."""
    runs: Path = Path("runs")
    """Root folder of runs (render runs, and motion models for --audio)."""
    audio: Path | None = None
    """Speech to play: its motion is generated at start (any file PyAV reads). Default: the training frames with the clip's own audio."""
    motion: Path | None = None
    """Motion file to play (written by `avatar3d motion`); with --audio, that audio plays along."""
    motion_model: Path | None = None
    """Motion checkpoint (motion.pt) that turns --audio into motion; default: the newest finished run under --runs/motion, else the shipped model."""
    port: int = 8080
    """Port to serve on."""
    host: str = LOOPBACK
    """Address to listen on. The viewer has no authentication: anything but 127.0.0.1 lets others on the network see and drive it."""
    resolution: int | None = None
    """Image height rendered when the camera is still, pixels; default: the subject's (lower while the camera moves or the line plays)."""
    out: Path = Path("view")
    """Folder where the 'write mp4' button writes its videos."""

    def __post_init__(self):
        if not 1 <= self.port <= 65535:
            raise BadArgumentError(f"--port {self.port}: use a port number within 1..65535")
        if self.resolution is not None and not 32 <= self.resolution <= 2048:
            raise BadArgumentError(f"--resolution {self.resolution}: use 32..2048 pixels")
