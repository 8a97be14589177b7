"""Image and landmark metrics of rendered frames against real ones.

Images are (H, W, 3) float arrays in [0, 1]. LMD (landmark distance) follows the talking-
head literature: the mean distance between MediaPipe's mouth landmarks on the rendered
and on the real frame, here in pixels of a 512-pixel frame so that numbers compare across
resolutions.
"""

from __future__ import annotations

import math

import numpy as np

from avatar3d.face import topology as topo

LMD_REFERENCE_SIZE = 512
"""Frame side that LMD values are scaled to."""


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error of [0, 1] images."""
    return -10.0 * math.log10(max(float(mse), 1e-12))


def image_psnr(rendered: np.ndarray, real: np.ndarray) -> float:
    """PSNR in dB between two images of the same shape."""
    return psnr(np.mean((rendered.astype(np.float64) - real.astype(np.float64)) ** 2))


def ssim(rendered: np.ndarray, real: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004, Gaussian window 11, sigma 1.5) of RGB images."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(rendered, real, channel_axis=-1, data_range=1.0,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def face_box(landmarks_px: np.ndarray, size: int, pad: float = 0.1) -> tuple[int, int, int, int]:
    """Square crop ``(x0, y0, x1, y1)`` around a face's landmarks (478, 2), padded by ``pad``
    of its side and kept inside the ``size``-pixel frame."""
    lo, hi = landmarks_px.min(0), landmarks_px.max(0)
    centre = (lo + hi) / 2
    half = (hi - lo).max() * (0.5 + pad)
    x0, y0 = np.clip(np.floor(centre - half), 0, size).astype(int)
    x1, y1 = np.clip(np.ceil(centre + half), 0, size).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def mouth_landmark_distance(rendered_px: np.ndarray, real_px: np.ndarray, size: int) -> float:
    """Mean distance of the lip landmarks (478, 2 pixels of a ``size`` frame), scaled to 512."""
    lips = list(topo.LIPS)
    distance = np.linalg.norm(rendered_px[lips] - real_px[lips], axis=-1).mean()
    return float(distance * LMD_REFERENCE_SIZE / size)
