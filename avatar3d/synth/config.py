"""Settings of ``avatar3d synth`` (light to import: the CLI builds its help from them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatar3d.errors import BadArgumentError

PASSES = ("albedo", "normal", "label")


@dataclass
class SynthConfig:
    """Settings of ``avatar3d synth``."""

    out: Path
    """Output folder; receives video.mp4, audio.wav, truth.npz, config.yaml and passes/."""
    seconds: float | None = None
    """Clip length in seconds. Without --text, built-in sentences fill it (10 s if unset); with --text, silence pads the speech to it."""
    text: str | None = None
    """What the actor says; unset: Harvard sentences picked by the seed."""
    voice: str = "en-us"
    """Voice: espeak-ng's en-us, en-us-f, en-us-f2, en-us-f4, en-us-m2, en-us-m7, en-us-klatt, en-gb, en-gb-f, en-gb-m3, en-rp, en-sc, en-sc-f; or Festival's festival-kal, festival-ked (diphones of real men), festival-slt (HTS voice of a real woman) and Flite's flite-rms, flite-awb, flite-slt, flite-kal (voices of real speakers) where installed (make festival)."""
    words_per_minute: int = 160
    """Speaking rate, 80-450."""
    seed: int = 0
    """Random seed of sentence choice, blinks and head motion; the same seed gives the same clip."""
    resolution: int = 256
    """Frame side in pixels (square, even, at least 64)."""
    fps: int = 25
    """Frames per second."""
    light: str = "studio"
    """Spherical-harmonics light: neutral, studio, left, right, top, warm, cool, dim, a .npy/.txt/.json file of 9x3 coefficients, or a .hdr/.exr equirectangular environment map."""
    background: str = "coffee"
    """A scikit-image photo name (coffee, rocket, brick, chelsea, hubble_deep_field) or #RRGGBB."""
    passes: str = ""
    """Comma-separated ground-truth image passes to write as PNG sequences: albedo, normal, label."""
    supersample: int = 2
    """Anti-aliasing: render at this many times the resolution per axis, then average."""

    def __post_init__(self):
        if self.seconds is not None and self.seconds <= 0:
            raise BadArgumentError(f"--seconds {self.seconds}: give a positive duration")
        if self.text is not None and not self.text.strip():
            raise BadArgumentError("--text is empty: give a sentence to speak")
        if self.resolution < 64 or self.resolution % 2:
            raise BadArgumentError(f"--resolution {self.resolution}: give an even number of pixels, at least 64")
        if self.fps <= 0 or self.supersample <= 0:
            raise BadArgumentError("--fps and --supersample must be positive")
        unknown = set(self.pass_list) - set(PASSES)
        if unknown:
            raise BadArgumentError(f"--passes {','.join(sorted(unknown))}: known passes are {', '.join(PASSES)}")

    @property
    def pass_list(self) -> list[str]:
        return [name.strip() for name in self.passes.split(",") if name.strip()]
