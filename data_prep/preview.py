"""Step ``preview``: ``preview.mp4`` for a quick look at what prep found.

Each frame shows the head tinted blue and the torso orange, the fitted face mesh as a red
wireframe and the detected landmarks as green dots, with the subject's audio.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

from avatar3d.camera import project
from avatar3d.face import topology as topo
from avatar3d.face.model import fitted_landmarks
from avatar3d.video import VideoWriter

PREVIEW_SIDE = 256
_TINTS = np.array([[0, 0, 0], [255, 140, 0], [40, 110, 255]], np.uint8)  # by label: -, torso, head (RGB)


def fitted_landmarks_px(face_fit: dict) -> np.ndarray:
    """Landmarks (T, 478, 2) in pixels as the fitted model, pose and camera put them."""
    shapes = fitted_landmarks(face_fit)
    camera = np.einsum("tij,tpj->tpi", face_fit["rotation"], shapes) + face_fit["translation"][:, None]
    return project(torch.as_tensor(camera), torch.as_tensor(face_fit["intrinsics"]))[..., :2].numpy()


@functools.cache
def _mesh_edges() -> np.ndarray:
    """Each edge of the face tessellation once, (E, 2): half the strokes of drawing triangles."""
    triangles = topo.triangles()
    pairs = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    return np.unique(pairs, axis=0)


def draw(image: np.ndarray, labels: np.ndarray, detected: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """One preview frame (S, S, 3) uint8 from a frame, its labels and landmarks in frame pixels."""
    scale = PREVIEW_SIDE / image.shape[0]
    small = cv2.resize(image, (PREVIEW_SIDE, PREVIEW_SIDE), interpolation=cv2.INTER_AREA)
    small_labels = cv2.resize(labels, (PREVIEW_SIDE, PREVIEW_SIDE), interpolation=cv2.INTER_NEAREST)
    tinted = cv2.addWeighted(small, 0.7, _TINTS[np.minimum(small_labels, 2)], 0.3, 0)
    canvas = np.where((small_labels > 0)[..., None], tinted, small)
    edges = (fitted[_mesh_edges()] * scale * 16).round().astype(np.int32)  # 4 fractional bits
    cv2.polylines(canvas, list(edges), False, (255, 40, 40), 1, cv2.LINE_8, shift=4)
    x, y = np.clip((detected * scale).astype(int), 0, PREVIEW_SIDE - 1).T
    canvas[y, x] = (40, 230, 40)
    return canvas


def write_preview(frames, labels_of, detected: np.ndarray, fitted: np.ndarray, fps: float,
                  audio: np.ndarray | None, sample_rate: int, path) -> None:
    """Streams the preview video; ``frames`` yields (index, RGB frame), ``labels_of(index)``
    gives its label map."""
    with VideoWriter(path, round(fps), PREVIEW_SIDE, audio, sample_rate) as video:
        for index, image in frames:
            video.write(draw(image, labels_of(index), detected[index], fitted[index]))
