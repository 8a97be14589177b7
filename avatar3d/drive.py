"""``avatar3d drive`` and the Python API: new speech -> the subject's avatar saying it.

speech -> motion (`avatar3d.motion.generate`) -> per-frame conditions -> the avatar rendered
over a background -> H.264 + AAC video (or ProRes 4444 + RGBA PNGs), passes beside it.
Frames stream from the renderer to the encoders: memory does not grow with the speech's
length (beyond the audio samples and the per-frame motion arrays).

Python, in three calls::

    subject = Subject.load("subject")
    avatar = Avatar.load(subject)
    for frame in avatar.drive("line.wav", bg="#00b140", light="left"):
        ...  # frame.rgb (H, W, 3) float in [0, 1], frame.alpha, frame.albedo, frame.shading, ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatar3d.export.background import backgrounds, check_background
from avatar3d.export.config import DriveConfig
from avatar3d.export.passes import PNG_ENCODING, ImageSequence, encode_png
from avatar3d.files import to_uint8, writable_folder
from avatar3d.motion.config import MotionConfig
from avatar3d.motion.generate import generate_motion, load_speech
from avatar3d.render.avatar import find_run, load_avatar
from avatar3d.render.conditions import Conditions
from avatar3d.render.sh import resolve_light
from avatar3d.runtime import console, progress
from avatar3d.subject import Subject
from avatar3d.video import VideoWriter

AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
"""Sample rates the AAC encoder takes; other rates are resampled to 48 kHz."""


@dataclass
class DrivenFrame:
    """One rendered frame of driven speech (float32 arrays, the output resolution R; the
    passes as in `avatar3d.export.passes`).

    Attributes:
        index: Frame number from 0, at the subject's fps.
        rgb: (R, R, 3) composited colour; over nothing (``bg="transparent"``) the colour is
            premultiplied by ``alpha``.
        alpha: (R, R) coverage of head and torso.
        depth: (R, R) camera-to-head-surface distance, head-space units (0: no head).
        normal: (R, R, 3) unit camera-space normals (0: nothing there).
        albedo, shading, residual: (R, R, 3) each; ``rgb = albedo * shading + residual
            + (1 - alpha) * background``.
    """

    index: int
    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray
    normal: np.ndarray
    albedo: np.ndarray
    shading: np.ndarray
    residual: np.ndarray


def motion_conditions(motion: dict[str, np.ndarray]) -> Conditions:
    """The renderer's conditions of motion arrays (`avatar3d.motion.generate.generate_motion`);
    frames the avatar never saw get its mean appearance (frame id -1)."""
    count = len(motion["landmarks"])
    return Conditions(rotation=torch.from_numpy(motion["rotation"]), translation=torch.from_numpy(motion["translation"]),
                      landmarks=torch.from_numpy(motion["landmarks"]), eye=torch.from_numpy(motion["eye_opening"]),
                      frame_ids=torch.full((count,), -1))


class Avatar:
    """A subject's trained avatar, driven by speech (see the module docstring).

    Args:
        subject: The prepared subject.
        run: Its render run folder.
        device: Where to render.
        runs: Root folder of runs (where motion models are looked for).
    """

    def __init__(self, subject: Subject, run: Path, device: torch.device | str = "cpu", runs: Path = Path("runs")):
        self.subject = subject
        self.run = Path(run)
        self.runs = Path(runs)
        self.device = torch.device(device)
        self.model = load_avatar(self.run, self.device)

    @classmethod
    def load(cls, subject: Subject | Path | str, run: Path | None = None, runs: Path = Path("runs"),
             device: torch.device | str = "cpu") -> "Avatar":
        """The subject's avatar from ``run``, or its newest finished render run under ``runs``."""
        subject = subject if isinstance(subject, Subject) else Subject.load(Path(subject))
        return cls(subject, find_run(subject.root, run, runs), device, runs)

    def motion(self, audio: Path | str, **settings) -> dict[str, np.ndarray]:
        """Per-frame motion for speech; ``settings`` are `MotionConfig` fields (pose, blink,
        lle, temperature, mouth_amp, seed, motion)."""
        return generate_motion(MotionConfig(subject=self.subject.root, audio=Path(audio), runs=self.runs,
                                            **settings))[0]

    def drive(self, audio: Path | str, bg: str = "plate", resolution: int | None = None, light: str = "keep",
              exposure: float = 0.0, **settings) -> Iterator[DrivenFrame]:
        """Frames of the avatar saying ``audio``, one per video frame at the subject's fps, over
        ``bg`` under ``light`` (a ``--light`` value, `avatar3d.render.sh.resolve_light`)."""
        check_background(bg)
        backdrop = backgrounds(bg, self.subject.background(), resolution or self.subject.resolution)
        lighting = resolve_light(light, next(backdrop))
        return self.frames(self.motion(audio, **settings), bg, resolution, lighting, exposure)

    @torch.no_grad()
    def frames(self, motion: dict[str, np.ndarray], bg: str = "plate", resolution: int | None = None,
               light: torch.Tensor | None = None, exposure: float = 0.0) -> Iterator[DrivenFrame]:
        """Renders motion arrays frame by frame (``bg`` as in `avatar3d.export.background`;
        ``light`` (9, 3) SH coefficients or None for the clip's own, and ``exposure`` in stops,
        as in `avatar3d.render.avatar.Avatar.frame_lights`)."""
        size = resolution or self.subject.resolution
        conditions = motion_conditions(motion).to(self.device)
        for index, background in zip(range(len(conditions)), backgrounds(bg, self.subject.background(), size)):
            plate = None if background is None else torch.from_numpy(background).to(self.device)
            out = {key: value.cpu().numpy() for key, value in
                   self.model.render_frame(conditions.select(index), plate, size, light=light,
                                           exposure=exposure).items()}
            yield DrivenFrame(index, out["rgb"], out["alpha"][..., 0], out["depth"][..., 0], out["normal"],
                              out["albedo"], out["shading"], out["residual"])


# --- the command -------------------------------------------------------------------------------


def output_paths(cfg: DriveConfig) -> dict[str, Path]:
    """Where ``drive`` writes: ``video`` and, when asked for, ``rgba`` and ``passes`` folders."""
    out = Path(cfg.out)
    transparent = cfg.bg == "transparent"
    paths = {"video": out.with_suffix(".mov") if transparent else out.with_suffix(".mp4")}
    if transparent:
        paths["rgba"] = out.with_name(f"{out.stem}-rgba")
    if cfg.pass_names():
        paths["passes"] = out.with_name(f"{out.stem}-passes")
    return paths


def soundtrack(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """The speech at a rate AAC takes (its own when it can)."""
    from avatar3d.audio.io import resample

    if rate in AAC_RATES:
        return samples, rate
    return resample(samples, rate, 48000), 48000


def straight_rgba(frame: DrivenFrame) -> np.ndarray:
    """(R, R, 4) uint8 RGBA with straight (not premultiplied) colour, as PNG and ProRes expect."""
    alpha = frame.alpha[..., None]
    colour = np.where(alpha > 1e-4, frame.rgb / np.maximum(alpha, 1e-4), 0.0)
    return to_uint8(np.concatenate([colour, alpha], -1))


def drive(cfg: DriveConfig, device: torch.device | str = "cpu") -> tuple[dict[str, Path], dict[str, np.ndarray]]:
    """Runs ``avatar3d drive``; returns the paths written (`output_paths`) and the motion."""
    check_background(cfg.bg)
    paths = output_paths(cfg)
    writable_folder(paths["video"].parent)
    avatar = Avatar.load(cfg.subject, cfg.run, cfg.runs, device)
    size = cfg.resolution or avatar.subject.resolution
    light = resolve_light(cfg.light, next(backgrounds(cfg.bg, avatar.subject.background(), size)))
    speech = load_speech(cfg.audio)
    motion = generate_motion(cfg, speech)[0]
    samples, rate = soundtrack(*speech)
    wanted = cfg.pass_names()
    frames = avatar.frames(motion, cfg.bg, size, light, cfg.exposure)
    with contextlib.ExitStack() as outputs:
        video = outputs.enter_context(VideoWriter(paths["video"], avatar.subject.fps, size, samples, rate,
                                                  alpha="rgba" in paths))
        rgba = outputs.enter_context(ImageSequence(paths["rgba"])) if "rgba" in paths else None
        passes = outputs.enter_context(ImageSequence(paths["passes"])) if wanted else None
        if passes is not None and cfg.pass_format == "png":
            passes.write_json("passes.json", {"encoding": "stored = (value + offset) * scale, uint16",
                                              **{name: PNG_ENCODING[name] for name in wanted}})
        for frame in progress(frames, len(motion["landmarks"]), "drive"):
            if rgba is not None:
                image = straight_rgba(frame)
                rgba.write(".", frame.index, image)
            else:
                image = to_uint8(frame.rgb)
            video.write(image)
            for name in wanted:
                value = getattr(frame, name)
                stored = value if cfg.pass_format == "exr" else encode_png(name, value)  # EXR keeps floats
                passes.write(name, frame.index, stored, cfg.pass_format)
    seconds = len(samples) / rate
    console.print(f"drive: {len(motion['landmarks'])} frames ({seconds:.2f} s of speech) -> "
                  + ", ".join(str(path) for path in paths.values()))
    return paths, motion
