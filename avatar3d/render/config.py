"""Settings of the renderer's components and of ``avatar3d render`` (light: no torch import,
for fast --help; the training configs nest the component configs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from avatar3d.errors import BadArgumentError


def require_positive_integers(config, names: tuple[str, ...]) -> None:
    """BadArgumentError naming the field unless each named field of ``config`` is an int >= 1
    (`avatar3d.config.build` puts the settings' group, e.g. ``gaussians:``, in front)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise BadArgumentError(f"{name}={value!r}: use a positive integer")


def check_resolution(resolution: int | None) -> None:
    """An output side must be even (video encoders need it) and at least 16 pixels; None
    means the subject's own."""
    if resolution is not None and (resolution < 16 or resolution % 2):
        raise BadArgumentError(f"--resolution {resolution}: use an even number of pixels, at least 16")


@dataclass(frozen=True)
class HashGridConfig:
    """Size of a multi-resolution hash grid (`avatar3d.render.encoding`)."""

    levels: int = 16
    """Number of resolution levels L."""
    features_per_level: int = 2
    """Features F stored per grid vertex and level; the encoding has L*F channels."""
    log2_table_size: int = 19
    """log2 of the table rows T per level (16 to 19 is typical); finer levels hash into it."""
    base_resolution: int = 16
    """Cells per axis of the coarsest level."""
    finest_resolution: int = 2048
    """Cells per axis of the finest level."""

    def __post_init__(self):
        limits = {
            "levels": (1, 64),
            "features_per_level": (1, 64),
            "log2_table_size": (1, 30),
            "base_resolution": (1, 2**20),
            "finest_resolution": (self.base_resolution, 2**20),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise BadArgumentError(
                    f"hash grid {name}={value!r} is out of range: use an integer in [{low}, {high}]"
                )


@dataclass(frozen=True)
class LandmarkDrivenConfig:
    """What both head backends have (`avatar3d.render.head.LandmarkDriven`): a hash grid over the
    head box, networks of some width, the frames' region codes and the landmark warp."""

    grid: HashGridConfig = field(default_factory=lambda: HashGridConfig(
        levels=8, log2_table_size=16, base_resolution=16, finest_resolution=512))
    """Hash grid over the head box."""
    hidden: int = 64
    """Width of the hidden layers."""
    region_code_dims: int = 16
    """Size of each of the mouth, eye and rest codes."""
    warp_landmarks: int = 96
    """Moving landmarks that drive the warp."""
    warp_radius: float = 0.012
    """Gaussian radius of a landmark's pull on nearby points, head-space units (0.08 face widths)."""

    def __post_init__(self):
        require_positive_integers(self, ("hidden", "region_code_dims", "warp_landmarks"))
        if not self.warp_radius > 0:
            raise BadArgumentError(f"warp_radius={self.warp_radius!r}: use a positive distance")


@dataclass(frozen=True)
class HeadConfig(LandmarkDrivenConfig):
    """Size of the head field (`avatar3d.render.head`)."""

    geometry_features: int = 15
    """Features passed from the density network to the colour network."""
    ambient_dims: int = 2
    """Ambient (hyper-space) coordinates per sample."""
    appearance_dims: int = 4
    """Size of the per-frame appearance code."""


@dataclass(frozen=True)
class GaussianConfig(LandmarkDrivenConfig):
    """Size and upkeep of the Gaussian head (`avatar3d.render.gaussians`)."""

    grid: HashGridConfig = field(default_factory=lambda: HashGridConfig(
        levels=8, log2_table_size=15, base_resolution=16, finest_resolution=512))
    """Hash grid over the head box at the Gaussians' neutral positions, an input of the
    deformation network fine enough to tell the upper lip from the lower where they touch."""
    face_count: int = 16000
    """Gaussians seeded on the fitted face mesh."""
    shell_count: int = 16000
    """Gaussians seeded on an ellipsoid around the rest of the head (hair, ears, back)."""
    mouth_count: int = 2000
    """Gaussians of the inner-mouth set, seeded behind the lips."""
    max_count: int = 150000
    """Most Gaussians densification may make (about 60 MB of training state per 100k on a CPU)."""
    frames_per_step: int = 1
    """Whole frames rendered per head training step."""
    densify_every: int = 150
    """Head steps between densification and pruning."""
    densify_until: float = 0.6
    """Share of the head stage after which densification stops (pruning too)."""

    def __post_init__(self):
        super().__post_init__()
        require_positive_integers(self, ("face_count", "shell_count", "max_count", "frames_per_step", "densify_every"))
        if self.mouth_count < 0:
            raise BadArgumentError(f"mouth_count={self.mouth_count}: use 0 or more")
        if not 0 <= self.densify_until <= 1:
            raise BadArgumentError(f"densify_until={self.densify_until}: use a share in [0, 1]")


@dataclass(frozen=True)
class TorsoConfig:
    """Size of the torso field (`avatar3d.render.torso`)."""

    grid: HashGridConfig = field(default_factory=lambda: HashGridConfig(
        levels=10, log2_table_size=15, base_resolution=8, finest_resolution=512))
    """2D hash grid over the canonical image."""
    hidden: int = 64
    """Width of the hidden layers."""
    frequencies: int = 4
    """Positional-encoding frequencies of the pixel position fed to the deformation."""
    max_offset: float = 0.05
    """Largest deformation, as a fraction of the frame side."""


@dataclass(frozen=True)
class MarchConfig:
    """How rays are sampled through the head box (`avatar3d.render.avatar`)."""

    grid_resolution: int = 64
    """Occupancy cells per axis."""
    steps_per_diagonal: int = 256
    """Sample spacing: the box diagonal over this."""
    surface_band: float = 0.025
    """Depth kept behind the predicted surface, head-space units (covers the mouth's inside)."""


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
    light: str = "keep"
    """keep (the clip's own, learnt), a preset (neutral, studio, left, right, top, warm, cool, dim), a file of 9x3 SH coefficients (.npy/.txt/.json), an HDR environment map (.hdr/.exr, equirectangular), or from-bg (a rough estimate from the background)."""
    exposure: float = 0.0
    """Stops of light added (negative: removed)."""

    def __post_init__(self):
        check_resolution(self.resolution)
