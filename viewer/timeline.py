"""What the viewer plays, and the audio clock the frames follow.

A `Timeline` is per-frame conditions at the subject's fps with the audio that goes with them:
the training frames with the clip's own audio, a line of speech whose motion is generated at
start, or a motion file (`avatar3d motion`), silent or with its audio. In the browser the
audio plays in an ``<audio>`` element; its clock reaches the server as `AudioClock` reports,
and the frame shown is the one at the audio's time.
"""

from __future__ import annotations

import base64
import io
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar3d.drive import Avatar, motion_conditions
from avatar3d.errors import BadInputError
from avatar3d.motion.generate import load_speech
from avatar3d.render.conditions import Conditions, subject_conditions


@dataclass
class Timeline:
    """Frames to play.

    Attributes:
        conditions: (T) frames.
        fps: Frames per second.
        audio: ``(samples (N,) float32 mono, rate)`` that plays with them, or None.
        label: What it is, for the page.
    """

    conditions: Conditions
    fps: float
    audio: tuple[np.ndarray, int] | None
    label: str

    def __len__(self) -> int:
        return len(self.conditions)

    def frame_at(self, seconds: float) -> int:
        """The frame shown at ``seconds`` from the start (the first and last outside)."""
        return min(max(int(seconds * self.fps), 0), len(self) - 1)


def training_timeline(avatar: Avatar) -> Timeline:
    """The subject's own frames, with its clip's audio when it has some."""
    subject = avatar.subject
    audio_path = subject.root / "audio.wav"
    audio = load_speech(audio_path) if subject.manifest["source"].get("has_audio") and audio_path.is_file() else None
    return Timeline(subject_conditions(subject), subject.fps, audio, f"training frames of {subject.root.name}")


def speech_timeline(avatar: Avatar, audio: Path, **settings) -> Timeline:
    """A line of speech: its motion generated now (``settings``: `avatar3d.motion.config.MotionConfig`
    fields such as mouth_amp, blink, pose)."""
    motion = avatar.motion(audio, **settings)
    return Timeline(motion_conditions(motion), avatar.subject.fps, load_speech(audio), Path(audio).name)


MOTION_KEYS = ("landmarks", "rotation", "translation", "eye_opening")


def motion_timeline(avatar: Avatar, path: Path, audio: Path | None = None) -> Timeline:
    """A motion file written by ``avatar3d motion``, silent or with ``audio``.

    Raises:
        BadInputError: The file is unreadable or lacks a motion array.
    """
    try:
        with np.load(path) as data:
            motion = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise BadInputError(f"--motion {path}: not a readable motion file ({exc}); "
                            "make one with `avatar3d motion SUBJECT --audio SPEECH`") from None
    missing = [key for key in MOTION_KEYS if key not in motion]
    if missing:
        raise BadInputError(f"--motion {path}: no {', '.join(missing)} array; "
                            "make the file with `avatar3d motion SUBJECT --audio SPEECH`")
    return Timeline(motion_conditions(motion), avatar.subject.fps, None if audio is None else load_speech(audio),
                    Path(path).name)


def wav_data_url(samples: np.ndarray, rate: int) -> str:
    """A ``data:`` URL of 16-bit PCM WAV audio, for an ``<audio>`` element (no file to serve)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm.tobytes())
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


CLOCK_PREFIX = "audio "
"""The audio clock's reports read ``audio SECONDS playing`` or ``audio SECONDS paused``."""


class AudioClock:
    """The browser audio element's time, as reported (a few times a second, and on play,
    pause and seek), and run on by the server's clock between reports while it plays."""

    def __init__(self) -> None:
        self._seconds = 0.0
        self._playing = False
        self._at = time.monotonic()

    def report(self, text: str) -> bool:
        """Takes a report; False (and ignored) when it is not one."""
        words = text.split()
        if len(words) != 3 or f"{words[0]} " != CLOCK_PREFIX or words[2] not in ("playing", "paused"):
            return False
        try:
            seconds = float(words[1])
        except ValueError:
            return False
        if not np.isfinite(seconds):
            return False
        self._seconds, self._playing, self._at = max(seconds, 0.0), words[2] == "playing", time.monotonic()
        return True

    @property
    def playing(self) -> bool:
        return self._playing

    def seconds(self) -> float:
        """The audio's time now, seconds."""
        return self._seconds + (time.monotonic() - self._at if self._playing else 0.0)
