"""Settings of ``avatar3d drive``, ``avatar3d export mesh`` and ``avatar3d export gaussians`` (light: no torch
import, for fast --help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatar3d.errors import BadArgumentError
from avatar3d.motion.config import MotionConfig
from avatar3d.render.config import check_resolution

PASSES = ("alpha", "depth", "normal", "albedo", "shading", "residual")
PASS_FORMATS = ("png", "exr")


@dataclass
class DriveConfig(MotionConfig):
    """Settings of ``avatar3d drive``: the motion settings, the avatar and the outputs."""

    out: Path = Path("drive.mp4")
    """Output video: H.264 + AAC .mp4 (with --bg transparent: a ProRes 4444 .mov and an RGBA PNG folder beside it)."""
    run: Path | None = None
    """Render run folder; default: the subject's newest finished run under --runs."""
    bg: str = "plate"
    """Background: plate (the subject's own), an image or video file, a colour #RRGGBB, or transparent."""
    resolution: int | None = None
    """Output side in pixels; default: the subject's."""
    passes: str = ""
    """Comma-separated extra passes written as image sequences beside the video: alpha, depth, normal, albedo, shading, residual (albedo x shading + residual + (1 - alpha) x background = the video's frame)."""
    pass_format: str = "png"
    """Pass files: png (16-bit) or exr (32-bit float)."""
    light: str = "keep"
    """keep (the clip's own, learnt), a preset (neutral, studio, left, right, top, warm, cool, dim), a file of 9x3 SH coefficients (.npy/.txt/.json), an HDR environment map (.hdr/.exr, equirectangular), or from-bg (a rough estimate from --bg; a video's first frame)."""
    exposure: float = 0.0
    """Stops of light added (negative: removed)."""

    def __post_init__(self):
        super().__post_init__()
        wanted = self.pass_names()
        unknown = [name for name in wanted if name not in PASSES]
        if unknown:
            raise BadArgumentError(f"--passes {self.passes!r}: unknown {', '.join(unknown)}; choose from "
                                   f"{', '.join(PASSES)}")
        if self.pass_format not in PASS_FORMATS:
            raise BadArgumentError(f"--pass-format {self.pass_format!r}: use png or exr")
        check_resolution(self.resolution)

    def pass_names(self) -> list[str]:
        return [name.strip() for name in self.passes.split(",") if name.strip()]


@dataclass
class HeadExportConfig:
    """What the exports of the avatar's head take: the avatar and the expression."""

    POSITIONAL = ("subject",)

    subject: Path
    """Prepared subject folder."""
    out: Path
    """Output file."""
    run: Path | None = None
    """Render run folder; default: the subject's newest finished run under --runs."""
    runs: Path = Path("runs")
    """Root folder of runs."""
    frame: int | None = None
    """Subject frame whose expression to export; default: the neutral face (the canonical landmarks)."""


@dataclass
class MeshConfig(HeadExportConfig):
    """Settings of ``avatar3d export mesh``."""

    out: Path
    """Mesh file: .ply, .obj or .glb."""
    resolution: int = 192
    """Marching-cubes cells along the head box's longest side."""
    threshold: float = 10.0
    """Density of the surface (per head-space unit); higher hugs the head tighter."""

    def __post_init__(self):
        if Path(self.out).suffix.lower() not in (".ply", ".obj", ".glb"):
            raise BadArgumentError(f"--out {self.out}: use a .ply, .obj or .glb file name")
        if not 32 <= self.resolution <= 512:
            raise BadArgumentError(f"--resolution {self.resolution}: use 32..512 cells")


@dataclass
class GaussiansConfig(HeadExportConfig):
    """Settings of ``avatar3d export gaussians``."""

    out: Path
    """Gaussians file: .ply (the layout of 3D Gaussian splatting)."""
    yaws: str = "-40,0,40"
    """Comma-separated degrees about the head's vertical axis of the views the surface is taken from (0: the filmed camera; positive: from the image's right)."""
    resolution: int | None = None
    """Side in pixels of each view (one Gaussian per head pixel); default: the subject's."""

    def __post_init__(self):
        if Path(self.out).suffix.lower() != ".ply":
            raise BadArgumentError(f"--out {self.out}: use a .ply file name")
        self.yaw_list()
        if self.resolution is not None:
            check_resolution(self.resolution)

    def yaw_list(self) -> list[float]:
        try:
            yaws = [float(word) for word in self.yaws.split(",")]
        except ValueError:
            yaws = []
        if not yaws or not all(-90 < yaw < 90 for yaw in yaws):
            raise BadArgumentError(f"--yaws {self.yaws!r}: write degrees within -90..90 separated by commas, "
                                   "e.g. -40,0,40")
        return yaws
