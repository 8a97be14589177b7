"""Settings of ``avatar3d prep`` (light to import: the CLI builds its help from them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatar3d.errors import BadArgumentError

STEP_NAMES = ("decode", "landmarks", "masks", "face_fit", "signals", "audio_features", "preview")
"""The pipeline's steps in order (data_prep.pipeline.STEPS)."""


@dataclass
class PrepConfig:
    """Settings of ``avatar3d prep``; its presets are configs/prep*.yaml."""

    PRESETS = "prep"

    video: Path
    """The talking video to prepare (any container and codec PyAV reads)."""
    out: Path
    """Subject folder to write (created; resumed when it holds an earlier run on the same video)."""
    fps: float = 25.0
    """Target frame rate; frames are resampled by timestamp."""
    resolution: int = 512
    """Side of the square frames, pixels."""
    force: str = ""
    """Redo from this step on (decode, landmarks, masks, face_fit, signals, audio_features, preview), or 'all' (also allows an --out folder made from another video)."""
    allow_short: bool = False
    """Accept videos shorter than 5 s."""
    face_fraction: float = 0.3
    """Face width over crop side: smaller keeps more shoulders."""
    face_height: float = 0.42
    """Height of the face centre in the crop, from the top, as a fraction of the side."""
    jpeg_quality: int = 95
    """Quality of the stored frames (JPEG, 1-100)."""

    POSITIONAL = ("video",)

    def __post_init__(self):
        if self.fps <= 0 or self.resolution < 64:
            raise BadArgumentError("--fps must be positive and --resolution at least 64")
        if self.force and self.force not in (*STEP_NAMES, "all"):
            raise BadArgumentError(f"--force {self.force!r}: give one of {', '.join(STEP_NAMES)} or all")
        if not 0 < self.face_fraction < 1 or not 0 < self.face_height < 1 or not 1 <= self.jpeg_quality <= 100:
            raise BadArgumentError("--face-fraction and --face-height must lie in (0, 1), --jpeg-quality in 1-100")
