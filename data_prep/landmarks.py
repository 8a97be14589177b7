"""Step ``landmarks``: MediaPipe Face Mesh in tracking mode on every frame, gaps, smoothing."""

from __future__ import annotations

import numpy as np

from avatar3d.face import topology as topo
from avatar3d.face.landmarks import FaceMeshTracker

MOUTH_AND_EYES = np.array(sorted(set(topo.LIPS) | set(topo.EYELIDS)))


def track(frames, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (T, 478, 3) pixels (z: MediaPipe's relative depth) and detected (T,) bool."""
    raw = np.zeros((num_frames, topo.NUM_LANDMARKS, 3), np.float32)
    detected = np.zeros(num_frames, bool)
    with FaceMeshTracker() as tracker:
        for index, image in frames:
            points = tracker(image)
            if points is not None:
                raw[index], detected[index] = points, True
    return raw, detected


def gaps(detected: np.ndarray) -> list[tuple[int, int]]:
    """Runs of undetected frames as (first, last) inclusive index pairs."""
    padded = np.concatenate([[False], ~detected, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def fill_gaps(points: np.ndarray, detected: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolates gaps up to ``max_gap`` frames between detections; longer gaps and
    the ends hold the nearest detection. Returns the filled points and the mask of frames that
    are now trusted (detected or short-gap interpolated)."""
    filled, trusted = points.copy(), detected.copy()
    known = np.flatnonzero(detected)
    for first, last in gaps(detected):
        before, after = first - 1, last + 1
        if before >= 0 and after < len(points) and last - first + 1 <= max_gap:
            weight = (np.arange(first, last + 1) - before)[:, None, None] / (after - before)
            filled[first: last + 1] = (1 - weight) * points[before] + weight * points[after]
            trusted[first: last + 1] = True
        else:
            nearest = known[np.clip(np.searchsorted(known, np.arange(first, last + 1)), 0, len(known) - 1)]
            filled[first: last + 1] = points[nearest]
    return filled, trusted


def one_euro(points: np.ndarray, fps: float, min_cutoff: np.ndarray, beta: np.ndarray,
             derivative_cutoff: float = 1.0) -> np.ndarray:
    """One-Euro filter along time (Casiez et al. 2012): strong smoothing when still, little lag when fast.

    Args:
        points: (T, N, D) positions in pixels.
        fps: frames per second.
        min_cutoff: (N,) Hz, the cutoff at rest (lower = smoother).
        beta: (N,) how fast the cutoff rises with speed (higher = less lag on fast motion).
    """
    def alpha(cutoff):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau * fps)

    out = np.empty_like(points)
    out[0] = estimate = points[0]
    speed = np.zeros(points.shape[1:], points.dtype)
    a_d = alpha(derivative_cutoff)
    for t in range(1, len(points)):
        raw_speed = (points[t] - estimate) * fps
        speed = speed + a_d * (raw_speed - speed)
        cutoff = min_cutoff[:, None] + beta[:, None] * np.abs(speed)
        estimate = estimate + alpha(cutoff) * (points[t] - estimate)
        out[t] = estimate
    return out


def smooth(points: np.ndarray, fps: float, resolution: int) -> np.ndarray:
    """Removes landmark jitter; the mouth and eyelids get a faster filter so speech and blinks
    keep their timing. Parameters are per 512 px and scale with the resolution."""
    count = points.shape[1]
    min_cutoff = np.full(count, 1.5, np.float32)
    beta = np.full(count, 0.05, np.float32)
    min_cutoff[MOUTH_AND_EYES] = 3.0
    beta[MOUTH_AND_EYES] = 0.3
    scale = 512.0 / resolution
    return one_euro(points * scale, fps, min_cutoff, beta) / scale
