"""Head pose and eye blinks for a driven avatar: the non-speech motion that goes with the lips.

Everything is per video frame. A head pose is a 6-vector ``[yaw, pitch, roll, tx, ty, tz]``:
the angles in radians with the convention of `avatar3d.camera.rotation_matrix`
(``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``; positive yaw turns the face to the viewer's right,
positive pitch looks down, positive roll tips the head to the viewer's left), the translation in
head-space units. A subject's training poses are an (N, 6) array of such vectors, one per frame
of the training video; the generated sequences are assumed to play at that video's frame rate.

An eye opening is a scalar per frame on the subject's normalised scale: 1 is the subject's usual
open eye, 0 closed; measured values may lie slightly outside.

All randomness comes from ``np.random.default_rng(seed)``, so a seed gives the same motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter

from avatar3d.errors import BadArgumentError, BadInputError

POSE_MODES = ("train", "static", "generated")
"""Head-pose sources of `make_poses`: the training poses looped, one still pose, a random walk."""
BLINK_MODES = ("auto", "periodic", "none")
"""Blink schedules of `blink_track`."""

POSE_DIMS = 6
POSE_TIME_CONSTANT_S = 1.5
"""Ornstein–Uhlenbeck time constant, seconds: a head excursion decays to 1/e of its size in this time."""
POSE_SMOOTHING_S = 0.1
"""Std of the Gaussian that takes the frame-level jitter out of the random walk, seconds."""
POSE_QUANTILES = (0.02, 0.98)
STEP_PERCENTILE = 95.0

PERIODIC_FIRST_S = 2.0
PERIODIC_EVERY_S = 4.0
GAMMA_SHAPE = 3.0
"""Shape of the gamma law of blink intervals: 3 makes them irregular yet rarely very short."""


@dataclass(frozen=True)
class BlinkStats:
    """A subject's blinking, as measured by `blink_statistics`.

    Attributes:
        rate_per_second: Blinks per second (0 if the subject never blinked).
        mean_duration_s: Mean time the eye stays closed in a blink, seconds.
        open_level: The subject's usual open-eye value.
        closed_level: The subject's typical deepest value during a blink.
    """

    rate_per_second: float
    mean_duration_s: float
    open_level: float
    closed_level: float

    def __post_init__(self):
        values = (self.rate_per_second, self.mean_duration_s, self.open_level, self.closed_level)
        if not np.isfinite(values).all() or self.rate_per_second < 0 or self.mean_duration_s <= 0:
            raise BadInputError(f"blink stats: need a finite rate >= 0, duration > 0 and finite levels, got {self}")


DEFAULT_BLINK_STATS = BlinkStats(rate_per_second=0.25, mean_duration_s=0.15, open_level=1.0, closed_level=0.0)
"""A typical person in conversation: a 150 ms blink every 4 s, on the normalised scale."""


# ---------------------------------------------------------------------------------------------
# Head pose


def looped_poses(train: np.ndarray, num_frames: int) -> np.ndarray:
    """The training poses played forward, then backward, and so on (ping-pong), as GeneFace does.

    Frame indices run 0, 1, ..., N-1, N-2, ..., 1, 0, 1, ...: mirroring instead of wrapping
    around means the head never jumps from the last pose back to the first.

    Args:
        train: (N, 6) the subject's training poses.
        num_frames: T, frames wanted.

    Returns:
        (T, 6) float32 poses; a single training pose is repeated.
    """
    train = _checked_poses(train, "train poses")
    num_frames = _checked_frames(num_frames)
    if len(train) == 1:
        return np.repeat(train, num_frames, 0).astype(np.float32)
    period = 2 * (len(train) - 1)
    phase = np.arange(num_frames) % period
    index = np.where(phase < len(train), phase, period - phase)
    return train[index].astype(np.float32)


def static_pose(train: np.ndarray, num_frames: int) -> np.ndarray:
    """A still head: the training pose closest to the per-dimension median, repeated.

    A real pose of the subject rather than the median itself, which mixes values from different
    frames and may be a pose the subject never took. Distances divide each dimension by its
    spread, as angles (radians) and shifts (head-space units) have unrelated scales.

    Returns:
        (T, 6) float32, every row the same row of ``train``.
    """
    train = _checked_poses(train, "train poses")
    num_frames = _checked_frames(num_frames)
    spread = train.std(0)
    spread[spread == 0] = 1.0  # a constant dimension: every frame is equally close there
    distance = (((train - np.median(train, 0)) / spread) ** 2).sum(1)
    return np.repeat(train[np.argmin(distance)][None], num_frames, 0).astype(np.float32)


def random_walk_poses(train: np.ndarray, num_frames: int, fps: float, seed: int = 0,
                      audio_energy: np.ndarray | None = None) -> np.ndarray:
    """Smooth random head motion within the range the subject moved in.

    Per dimension an Ornstein–Uhlenbeck process around the subject's median, with the subject's
    std as its stationary spread and a time constant of `POSE_TIME_CONSTANT_S` (the per-frame
    coefficient comes from ``fps``, so the motion is the same in seconds at any frame rate). It
    is clipped to the subject's 2–98 % quantiles, smoothed by a Gaussian of `POSE_SMOOTHING_S`
    and finally rate-limited so that no frame-to-frame step exceeds the subject's own
    95th-percentile step in that dimension. Smoothing and rate limiting only average or move
    towards clipped values, so the output stays within the quantiles.

    Args:
        train: (N, 6) the subject's training poses.
        num_frames: T, frames wanted.
        fps: Frames per second of the output.
        seed: Seed of the random generator.
        audio_energy: Optional (T,) loudness per frame, any non-negative scale. Speakers move more
            when they speak, so the OU innovation is scaled by ``0.5 + energy`` normalised to
            [0, 1] (a constant energy scales by 1).

    Returns:
        (T, 6) float32 poses.
    """
    train = _checked_poses(train, "train poses")
    num_frames = _checked_frames(num_frames)
    fps = _checked_fps(fps)
    gain = _innovation_gain(audio_energy, num_frames)
    rng = np.random.default_rng(seed)
    centre, spread = np.median(train, 0), train.std(0)
    decay = np.exp(-1.0 / (fps * POSE_TIME_CONSTANT_S))
    noise = rng.standard_normal((num_frames, POSE_DIMS))
    # First frame drawn from the stationary law, later ones add the innovation that keeps it so.
    kicks = noise * np.sqrt(1.0 - decay ** 2) * gain[:, None]
    kicks[:1] = noise[:1]
    walk = centre + spread * lfilter([1.0], [1.0, -decay], kicks, axis=0)
    low, high = np.quantile(train, POSE_QUANTILES, axis=0)
    walk = gaussian_filter1d(np.clip(walk, low, high), POSE_SMOOTHING_S * fps, axis=0, mode="nearest")
    return _rate_limited(walk, _step_limit(train)).astype(np.float32)


def pose_from_reference(reference: np.ndarray, subject: np.ndarray, num_frames: int) -> np.ndarray:
    """The head motion of a reference video, fitted as (M, 6) pose vectors, carried onto the
    subject (`retarget_poses`, against its (N, 6) poses) and looped to T frames as
    `looped_poses` does: played forward and backward when shorter, cut when longer.

    Returns:
        (T, 6) float32 poses.
    """
    return looped_poses(retarget_poses(reference, subject), num_frames)


def retarget_poses(reference: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """(M, 6) reference poses moved onto a subject whose poses are (N, 6).

    The reference's deviations from its own median pose are added to the subject's median
    pose, so someone filmed at another distance or framing moves the subject's head the same
    way without moving it out of the subject's frame. Angles add (close enough to composing
    rotations for the few degrees a talking head turns); shifts scale by the ratio of the
    camera distances, so they cross the same fraction of the frame.
    """
    reference = _checked_poses(reference, "reference poses")
    subject = _checked_poses(subject, "subject poses")
    own, theirs = np.median(subject, 0), np.median(reference, 0)
    scale = np.ones(POSE_DIMS)
    scale[3:] = abs(own[5]) / max(abs(theirs[5]), 1e-6)  # translation z: minus the camera distance
    return (own + (reference - theirs) * scale).astype(np.float32)


def make_poses(mode: str, train: np.ndarray, num_frames: int, fps: float, seed: int = 0,
               audio_energy: np.ndarray | None = None) -> np.ndarray:
    """(T, 6) float32 head poses from one of `POSE_MODES`.

    "train" loops the training poses (`looped_poses`), "static" holds one (`static_pose`),
    "generated" is a random walk (`random_walk_poses`, which alone uses fps, seed and energy).
    """
    if mode not in POSE_MODES:
        raise BadArgumentError(f"unknown pose mode {mode!r}; valid modes: {', '.join(POSE_MODES)}")
    if mode == "train":
        return looped_poses(train, num_frames)
    if mode == "static":
        return static_pose(train, num_frames)
    return random_walk_poses(train, num_frames, fps, seed=seed, audio_energy=audio_energy)


def _step_limit(train: np.ndarray) -> np.ndarray:
    """(6,) the subject's 95th-percentile absolute frame-to-frame step; 0 for a single frame."""
    if len(train) < 2:
        return np.zeros(POSE_DIMS)
    return np.percentile(np.abs(np.diff(train, axis=0)), STEP_PERCENTILE, axis=0)


def _rate_limited(values: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Follows (T, D) values but moves at most ``limit`` (D,) per frame (a slew-rate limiter)."""
    out = values.copy()
    for t in range(1, len(out)):
        # Each output lies between the previous output and the target, so bounds are kept.
        out[t] = out[t - 1] + np.clip(values[t] - out[t - 1], -limit, limit)
    return out


def _innovation_gain(audio_energy: np.ndarray | None, num_frames: int) -> np.ndarray:
    """(T,) factor on the OU innovation: 1 without audio, else 0.5 + energy scaled to [0, 1]."""
    if audio_energy is None:
        return np.ones(num_frames)
    energy = np.asarray(audio_energy, np.float64)
    if energy.shape != (num_frames,) or not np.isfinite(energy).all():
        raise BadInputError(f"audio energy: need {num_frames} finite values, one per frame, "
                            f"got shape {energy.shape}")
    span = np.ptp(energy) if num_frames else 0.0
    scaled = (energy - energy.min()) / span if span > 0 else np.full(num_frames, 0.5)
    return 0.5 + scaled


# ---------------------------------------------------------------------------------------------
# Blinks


def blink_statistics(eye_opening: np.ndarray, fps: float, closed_below: float = 0.35) -> BlinkStats:
    """Measures a subject's blinks from their eye opening per training frame.

    A blink is a run of consecutive frames below ``closed_below`` (runs cut by the start or end
    of the clip count too).

    Args:
        eye_opening: (N,) eye opening per frame on the subject's normalised scale.
        fps: Frames per second of the training video.
        closed_below: Threshold under which the eye counts as closed.

    Returns:
        BlinkStats: blinks per second over the clip; mean run length in seconds (the default
        0.15 s without blinks); median of the open frames (1.0 if none); median of each run's
        minimum (0.0 without blinks).
    """
    opening = np.asarray(eye_opening, np.float64)
    if opening.ndim != 1 or len(opening) == 0 or not np.isfinite(opening).all():
        raise BadInputError(f"eye opening: need a non-empty 1-D array of finite values, got shape {opening.shape}")
    fps = _checked_fps(fps)
    closed = opening < closed_below
    # Run starts and ends from the edges of the padded mask: +1 where a run begins, -1 after it ends.
    edges = np.diff(np.concatenate([[0], closed.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    open_level = float(np.median(opening[~closed])) if (~closed).any() else DEFAULT_BLINK_STATS.open_level
    if len(starts) == 0:
        return BlinkStats(0.0, DEFAULT_BLINK_STATS.mean_duration_s, open_level, 0.0)
    minima = [opening[s:e].min() for s, e in zip(starts, ends)]
    return BlinkStats(rate_per_second=len(starts) * fps / len(opening),
                      mean_duration_s=float(np.mean(ends - starts)) / fps,
                      open_level=open_level, closed_level=float(np.median(minima)))


def blink_track(num_frames: int, fps: float, stats: BlinkStats | None, mode: str = "auto",
                seed: int = 0) -> np.ndarray:
    """Eye opening per frame with blinks, on the subject's normalised scale.

    Modes: "auto" draws the intervals between blinks from a gamma law (shape `GAMMA_SHAPE`,
    mean 1 / the subject's rate, or 1 / 0.25 s if the subject never blinked): irregular like a
    person's, yet rarely two blinks in a row. "periodic" blinks every 4 s exactly, the first at
    2 s. "none" keeps the eye at ``open_level``.

    Each blink is a raised-cosine dip whose deepest frame, at the blink's time, is exactly
    ``closed_level``. The eye is more than half closed for ``mean_duration_s`` (at least two
    frames, so a short blink still shows); the whole lid movement takes twice that. Overlapping
    dips merge into the deeper of the two, so values stay within [closed_level, open_level].

    Args:
        num_frames: T, frames wanted.
        fps: Frames per second of the output.
        stats: The subject's `BlinkStats`; None uses `DEFAULT_BLINK_STATS`.
        mode: One of `BLINK_MODES`.
        seed: Seed of the random generator ("auto" only).

    Returns:
        (T,) float32 eye opening.
    """
    if mode not in BLINK_MODES:
        raise BadArgumentError(f"unknown blink mode {mode!r}; valid modes: {', '.join(BLINK_MODES)}")
    num_frames = _checked_frames(num_frames)
    fps = _checked_fps(fps)
    stats = DEFAULT_BLINK_STATS if stats is None else stats
    seconds = num_frames / fps
    if mode == "none":
        times = np.zeros(0)
    elif mode == "periodic":
        times = np.arange(PERIODIC_FIRST_S, seconds, PERIODIC_EVERY_S)
    else:
        rate = stats.rate_per_second or DEFAULT_BLINK_STATS.rate_per_second
        times = _gamma_times(np.random.default_rng(seed), seconds, 1.0 / rate)
    depth = _dip_depth(num_frames, np.round(times * fps).astype(int), max(2.0, stats.mean_duration_s * fps))
    return (stats.open_level + depth * (stats.closed_level - stats.open_level)).astype(np.float32)


def _gamma_times(rng: np.random.Generator, seconds: float, mean_interval: float) -> np.ndarray:
    """Blink times in [0, seconds): cumulative gamma-distributed intervals."""
    times, now = [], 0.0
    while True:
        now += rng.gamma(GAMMA_SHAPE, mean_interval / GAMMA_SHAPE)
        if now >= seconds:
            return np.array(times)
        times.append(now)


def _dip_depth(num_frames: int, centres: np.ndarray, half_depth_frames: float) -> np.ndarray:
    """(T,) depth in [0, 1]: raised cosines of full width 2 * half_depth_frames, 1 at each centre.

    A raised cosine is above half depth for exactly half its width, hence the doubling.
    """
    depth = np.zeros(num_frames)
    offsets = np.arange(-int(half_depth_frames), int(half_depth_frames) + 1)
    shape = 0.5 * (1.0 + np.cos(np.pi * offsets / half_depth_frames))
    for centre in centres:
        frames = centre + offsets
        keep = (frames >= 0) & (frames < num_frames)
        depth[frames[keep]] = np.maximum(depth[frames[keep]], shape[keep])
    return depth


# ---------------------------------------------------------------------------------------------
# Checks


def _checked_poses(poses, field: str) -> np.ndarray:
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 2 or poses.shape[0] < 1 or poses.shape[1] != POSE_DIMS:
        raise BadInputError(f"{field}: need (N, 6) [yaw, pitch, roll, tx, ty, tz] rows with N >= 1, "
                            f"got shape {poses.shape}")
    if not np.isfinite(poses).all():
        raise BadInputError(f"{field}: hold NaN or infinity")
    return poses


def _checked_frames(num_frames) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 0:
        raise BadArgumentError(f"number of frames must be a whole number >= 0, got {num_frames!r}")
    return int(num_frames)


def _checked_fps(fps) -> float:
    if not (isinstance(fps, (int, float, np.number)) and np.isfinite(fps) and fps > 0):
        raise BadArgumentError(f"frame rate must be a positive number, got {fps!r}")
    return float(fps)
