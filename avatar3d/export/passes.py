"""Compositing passes of driven frames, and image-sequence folders written atomically.

Passes per frame (float32, head-space units are those of the face fit: a face is 0.15 wide):

- ``alpha`` (H, W): the avatar's coverage (head over torso), 0..1.
- ``depth`` (H, W): distance from the camera centre to the head surface along each pixel's
  ray, head-space units; 0 where there is no head.
- ``normal`` (H, W, 3): unit surface normal of head and torso in camera space (x right,
  y up, z towards the viewer), the avatar's smooth predicted normal; 0 where there is nothing.
- ``albedo`` (H, W, 3): linear reflectance, premultiplied by alpha, at the light presets'
  scale (`avatar3d.render.avatar`).
- ``shading`` (H, W, 3): the diffuse light, diffuse colour over albedo (0 where no albedo).
- ``residual`` (H, W, 3): the view-dependent rest (sheen, specular), premultiplied, signed.

With the background ``b``: ``rgb = albedo * shading + residual + (1 - alpha) * b``.

16-bit PNG encodings (``PNG_ENCODING``, also written to ``passes.json``): alpha and albedo
x 65535 (albedo clipped at 1: at the presets' scale a white surface may pass it slightly; EXR
does not clip), depth x 10000 (0.1 mm steps if a unit is a metre, up to 6.5 units), normal
and residual (v + 1) / 2 x 65535, shading / 4 x 65535 (up to 4). EXR keeps the float values.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from avatar3d.files import ClosedOnSuccess, partial_path, write_png

PNG_ENCODING = {"alpha": {"scale": 65535.0, "offset": 0.0}, "depth": {"scale": 10000.0, "offset": 0.0},
                "normal": {"scale": 65535.0 / 2, "offset": 1.0}, "albedo": {"scale": 65535.0, "offset": 0.0},
                "shading": {"scale": 65535.0 / 4, "offset": 0.0}, "residual": {"scale": 65535.0 / 2, "offset": 1.0}}
"""stored = (value + offset) * scale, as uint16."""


def encode_png(name: str, value: np.ndarray) -> np.ndarray:
    """A pass as uint16 by ``PNG_ENCODING`` (normal: 0 where there is no surface)."""
    encoding = PNG_ENCODING[name]
    stored = np.clip((value + encoding["offset"]) * encoding["scale"] + 0.5, 0, 65535).astype(np.uint16)
    if name == "normal":
        stored[(value == 0).all(-1)] = 0
    return stored


class ImageSequence(ClosedOnSuccess):
    """A folder of numbered frames, written under a hidden name and moved into place on
    ``close`` (an earlier folder of that name is replaced); ``abort`` removes it. As a
    context manager it closes when the block ends normally and aborts when it raises.

    Files are ``<subfolder>/NNNNNN.<suffix>``: PNG (uint8 or uint16, RGB(A) or grey) or EXR
    (float32).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._partial = partial_path(self.path)
        shutil.rmtree(self._partial, ignore_errors=True)
        self._partial.mkdir(parents=True)

    def write(self, subfolder: str, index: int, image: np.ndarray, suffix: str = "png") -> None:
        folder = self._partial / subfolder
        folder.mkdir(exist_ok=True)
        path = folder / f"{index:06d}.{suffix}"
        if suffix == "exr":
            _write_exr(path, image)
        else:
            write_png(path, image)

    def write_json(self, name: str, content: dict) -> None:
        (self._partial / name).write_text(json.dumps(content, indent=2) + "\n")

    def close(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        shutil.rmtree(self._partial, ignore_errors=True)


def _write_exr(path: Path, image: np.ndarray) -> None:
    """Writes a float32 (H, W) or (H, W, 3) image as OpenEXR (OpenCV's codec, off by default)."""
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # read when OpenCV first meets an EXR
    import cv2

    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")
