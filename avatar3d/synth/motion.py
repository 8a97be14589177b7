"""Non-speech motion of the virtual actor: blinks and a small, smooth head and torso sway."""

from __future__ import annotations

import numpy as np

MAX_HEAD_DEGREES = (4.0, 3.0, 2.0)
"""Largest yaw, pitch and roll of the head sway, degrees."""
MAX_HEAD_SHIFT = 0.004
"""Largest head translation per axis, head-space units (the face is ~0.15 wide)."""
TORSO_FOLLOW = 0.3
"""Fraction of the head's yaw and roll that the torso follows."""
TORSO_LAG_SECONDS = 0.2


def _smooth_noise(rng: np.random.Generator, times: np.ndarray, amplitude: float) -> np.ndarray:
    """A sum of three slow sinusoids (0.05-0.35 Hz) scaled so its peak is ``amplitude``."""
    freqs = rng.uniform(0.05, 0.35, 3)
    phases = rng.uniform(0, 2 * np.pi, 3)
    weights = rng.uniform(0.5, 1.0, 3)
    wave = (weights * np.sin(2 * np.pi * freqs * times[:, None] + phases)).sum(1)
    return amplitude * wave / weights.sum()


def head_sway(num_frames: int, fps: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random head motion.

    Returns:
        angles: (T, 3) yaw, pitch, roll in radians, each within MAX_HEAD_DEGREES.
        shift: (T, 3) translation in head-space units, each within MAX_HEAD_SHIFT.
    """
    times = np.arange(num_frames) / fps
    angles = np.stack([_smooth_noise(rng, times, np.radians(a)) for a in MAX_HEAD_DEGREES], 1)
    shift = np.stack([_smooth_noise(rng, times, MAX_HEAD_SHIFT) for _ in range(3)], 1)
    return angles.astype(np.float32), shift.astype(np.float32)


def torso_follow(head_angles: np.ndarray, fps: float) -> np.ndarray:
    """Torso yaw, pitch, roll (T, 3) radians: a lagged fraction of the head's yaw and roll."""
    lag = int(round(TORSO_LAG_SECONDS * fps))
    lagged = np.concatenate([np.repeat(head_angles[:1], lag, 0), head_angles])[: len(head_angles)]
    return (lagged * np.array([TORSO_FOLLOW, 0.0, TORSO_FOLLOW], dtype=np.float32)).astype(np.float32)


def blink_track(num_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure per frame (T,), 0 open .. 1 shut.

    Blinks start at gamma-distributed intervals (mean ~3.5 s, never under 1.2 s, as in
    conversation); each closes in 80 ms, stays shut 40 ms and reopens in 150 ms.
    """
    times = np.arange(num_frames) / fps
    closure = np.zeros(num_frames, dtype=np.float32)
    start = rng.uniform(0.5, 3.0)
    while start < num_frames / fps:
        since = times - start
        closing = np.clip(since / 0.08, 0, 1)
        opening = np.clip((since - 0.12) / 0.15, 0, 1)
        shape = np.where(since < 0, 0.0, closing - opening)
        closure = np.maximum(closure, shape.astype(np.float32))
        start += 1.2 + rng.gamma(2.0, 1.15)
    return closure
