"""What driven frames are composited over: ``--bg plate|IMAGE|VIDEO|#RRGGBB|transparent``."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from avatar3d.errors import BadArgumentError, BadInputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr"}


def square(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) float32 in [0, 1]: centre-cropped to a square, resized."""
    import cv2

    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top: top + side, left: left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation).astype(np.float32) / 255


def parse_colour(spec: str) -> np.ndarray:
    """``#RRGGBB`` -> (3,) float32 in [0, 1]."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", spec):
        raise BadArgumentError(f"--bg {spec!r}: write a colour as #RRGGBB (e.g. #00b140)")
    return np.array([int(spec[i: i + 2], 16) for i in (1, 3, 5)], np.float32) / 255


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInputError(f"--bg {path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _video_frames(path: Path, size: int) -> Iterator[np.ndarray]:
    """The video's frames, looped forever, squared to ``size``."""
    import av

    from avatar3d.video import read_frames

    while True:
        count = 0
        try:
            for frame in read_frames(path):
                count += 1
                yield square(frame, size)
        except (av.error.FFmpegError, IndexError):
            count = 0  # unreadable or no video stream
        if not count:
            raise BadInputError(f"--bg {path}: not a readable image or video (no frame decoded)")


def check_background(spec: str) -> None:
    """Raises a one-line error for a background spec that cannot work, before any rendering."""
    if spec in ("plate", "transparent"):
        return
    if spec.startswith("#"):
        parse_colour(spec)
    elif not Path(spec).is_file():
        raise BadArgumentError(f"--bg {spec!r}: not plate, transparent, #RRGGBB or an existing image/video file")


def backgrounds(spec: str, plate: np.ndarray, size: int) -> Iterator[np.ndarray | None]:
    """One background per output frame, endlessly.

    Args:
        spec: ``plate``, ``transparent``, ``#RRGGBB``, or an image or video file (videos loop).
        plate: (R, R, 3) uint8 the subject's background plate.
        size: Output side in pixels.

    Yields:
        (size, size, 3) float32 in [0, 1], or None for transparent.
    """
    check_background(spec)
    if spec == "transparent":
        return itertools.repeat(None)
    if spec == "plate":
        return itertools.repeat(square(plate, size))
    if spec.startswith("#"):
        return itertools.repeat(np.broadcast_to(parse_colour(spec), (size, size, 3)).copy())
    path = Path(spec)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return itertools.repeat(square(_read_image(path), size))
    frames = _video_frames(path, size)
    return itertools.chain([next(frames)], frames)  # a bad file fails here, before any rendering
