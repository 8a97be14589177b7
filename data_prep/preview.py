"""Step ``preview``: ``preview.mp4`` for a quick look at what prep found.

Each frame shows the head tinted blue and the torso orange, the fitted face mesh as a red
wireframe and the detected landmarks as green dots, with the subject's audio.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from avatar3d.face import topology as topo
from avatar3d.render.camera import project
from avatar3d.video import VideoWriter

PREVIEW_SIDE = 256
_TINTS = {1: np.array([255, 140, 0]), 2: np.array([40, 110, 255])}  # torso, head (RGB)


def fitted_landmarks_px(face_fit: dict) -> np.ndarray:
    """Landmarks (T, 478, 2) in pixels as the fitted model, pose and camera put them."""
    shapes = face_fit["canonical"] + np.einsum("tk,kpc->tpc", face_fit["expression"], face_fit["basis"])
    camera = np.einsum("tij,tpj->tpi", face_fit["rotation"], shapes) + face_fit["translation"][:, None]
    return project(torch.as_tensor(camera), torch.as_tensor(face_fit["intrinsics"]))[..., :2].numpy()


def draw(image: np.ndarray, labels: np.ndarray, detected: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """One preview frame (S, S, 3) uint8 from a frame, its labels and landmarks in frame pixels."""
    scale = PREVIEW_SIDE / image.shape[0]
    small = cv2.resize(image, (PREVIEW_SIDE, PREVIEW_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    small_labels = cv2.resize(labels, (PREVIEW_SIDE, PREVIEW_SIDE), interpolation=cv2.INTER_NEAREST)
    for label, tint in _TINTS.items():
        region = small_labels == label
        small[region] = 0.7 * small[region] + 0.3 * tint
    canvas = small.round().astype(np.uint8)
    mesh = (fitted[topo.triangles()] * scale * 16).round().astype(np.int32)  # 4 fractional bits
    cv2.polylines(canvas, list(mesh), True, (255, 40, 40), 1, cv2.LINE_AA, shift=4)
    for x, y in (detected * scale).round().astype(int):
        cv2.circle(canvas, (int(x), int(y)), 1, (40, 230, 40), -1)
    return canvas


def write_preview(frames, labels_of, detected: np.ndarray, fitted: np.ndarray, fps: float,
                  audio: np.ndarray | None, sample_rate: int, path) -> None:
    """Streams the preview video; ``frames`` yields (index, RGB frame), ``labels_of(index)``
    gives its label map."""
    with VideoWriter(path, round(fps), PREVIEW_SIDE, audio, sample_rate) as video:
        for index, image in frames:
            video.write(draw(image, labels_of(index), detected[index], fitted[index]))
