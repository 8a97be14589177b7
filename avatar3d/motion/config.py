"""Settings of ``avatar3d motion`` and ``avatar3d eval motion`` (light: no torch import, for fast --help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatar3d.errors import BadArgumentError


@dataclass
class MotionConfig:
    """Settings of ``avatar3d motion``."""

    POSITIONAL = ("subject",)

    subject: Path
    """Prepared subject folder (its expressions, poses and blinks shape the motion)."""
    audio: Path
    """Speech: any audio or video file PyAV reads, any rate and channel count."""
    text: str | None = None
    """What the speech says: its words are aligned to the audio and the mouth follows their phonemes (closures on p/b/m, lips on f/v, rounding) as well as the sound."""
    text_file: Path | None = None
    """The same, from a UTF-8 text file."""
    out: Path = Path("motion.npz")
    """Where to write the per-frame motion."""
    motion: Path | None = None
    """Motion checkpoint (motion.pt); default: the newest finished run under RUNS/motion."""
    runs: Path = Path("runs")
    """Root folder of runs."""
    pose: str = "train"
    """Head pose: train (the subject's own, looped), static, generated (a random walk in its range), or a video (or prepared subject folder) whose head motion to follow."""
    blink: str = "auto"
    """Blinks: auto (the subject's own rate and length), periodic (every 4 s) or none."""
    lle: float = 0.25
    """Weight of the projection onto the subject's own expressions (0 = the model's raw output)."""
    temperature: float = 0.0
    """Sampling temperature of the motion model's latent (0 = its mean motion)."""
    mouth_amp: float = 1.0
    """Scales the mouth's movement."""
    seed: int = 0
    """Random seed of the latent, the generated pose and the blinks."""

    def __post_init__(self):
        if not 0.0 <= self.lle <= 1.0:
            raise BadArgumentError(f"--lle must be within 0..1, got {self.lle}")
        if self.temperature < 0:
            raise BadArgumentError(f"--temperature must be 0 or more, got {self.temperature}")
        if not 0.0 <= self.mouth_amp <= 3.0:
            raise BadArgumentError(f"--mouth-amp must be within 0..3, got {self.mouth_amp}")


@dataclass
class MotionEvalConfig(MotionConfig):
    """Settings of ``avatar3d eval motion``: the motion settings, a truth file and where to write.

    With ``--text`` the transcript is aligned and both motions are scored against it: the
    audio-only one (``bilabial_closure``, ``closure_ratio``, ``vowel_open``) and the
    transcript-guided one (the same keys with ``guided_``).
    """

    truth: Path | None = None
    """truth.npz of a virtual-actor clip speaking the audio (enables mouth_corr and bilabial_closure)."""
    metrics: Path = Path("metrics.json")
    """Where to write the scores."""
