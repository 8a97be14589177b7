"""Training rays for the renderer, streamed from a subject folder with bounded memory.

A pool of ``pool_frames`` random training frames (images, labels and sampling boxes) is
held in memory and replaced every ``refresh_every`` batches, so memory does not grow with
the clip's length. Each batch draws ``frames`` frames from the pool and ``rays`` pixels
from each: for the head, mostly inside the face and lips (where the eye looks first);
for the torso, mostly inside the person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from avatar3d.face import topology as topo
from avatar3d.subject import LABEL_HEAD

HEAD_MIX = {"frame": 0.1, "head": 0.25, "face": 0.4, "lips": 0.25}
"""Fractions of head-stage rays drawn uniformly in each box."""
TORSO_MIX = {"person": 0.6, "frame": 0.4}
"""Fractions of torso-stage rays drawn uniformly in each box."""


@dataclass
class RayBatch:
    """Pixels of B frames with what was seen there.

    Attributes:
        frames: (B,) subject frame indices.
        pixels: (B, P, 2) pixel positions (u, v), pixel centres at +0.5.
        rgb: (B, P, 3) observed colour in [0, 1].
        labels: (B, P) uint8 0 background, 1 torso, 2 head.
        plate: (B, P, 3) background plate colour.
        lips: (B, P) bool, inside the lips box.
    """

    frames: Tensor
    pixels: Tensor
    rgb: Tensor
    labels: Tensor
    plate: Tensor
    lips: Tensor


def _box(rows: np.ndarray, cols: np.ndarray, pad: float, size: int) -> np.ndarray:
    """[x0, y0, x1, y1] pixel box around points, padded by ``pad`` pixels, inside the image."""
    if len(rows) == 0:
        return np.array([0, 0, size, size], dtype=np.float32)
    return np.array([max(cols.min() - pad, 0), max(rows.min() - pad, 0),
                     min(cols.max() + 1 + pad, size), min(rows.max() + 1 + pad, size)], dtype=np.float32)


class RaySampler:
    """Draws `RayBatch` es from a subject's training frames.

    Args:
        subject: The prepared subject (`avatar3d.subject.Subject`).
        frames: Subject frame indices to train on.
        pool_frames: Frames held in memory at once.
        refresh_every: Batches between pool refreshes.
        seed: Random seed.
    """

    def __init__(self, subject, frames: np.ndarray, pool_frames: int = 48, refresh_every: int = 40,
                 seed: int = 0):
        self.subject = subject
        self.frames = np.asarray(frames)
        self.size = subject.resolution
        self.pool_frames = min(pool_frames, len(self.frames))
        self.refresh_every = refresh_every
        self.rng = np.random.default_rng(seed)
        self.plate = torch.from_numpy(subject.background()).float() / 255
        self.landmarks = subject.arrays("landmarks")["landmarks"]
        self.batches = 0
        self._load_pool()

    def _load_pool(self) -> None:
        chosen = self.rng.choice(self.frames, self.pool_frames, replace=False)
        self.pool = torch.from_numpy(chosen)
        self.images = torch.from_numpy(np.stack([self.subject.frame(int(i)) for i in chosen]))
        labels = np.stack([self.subject.labels(int(i)) for i in chosen])
        self.labels = torch.from_numpy(labels)
        boxes = {name: [] for name in ("head", "face", "lips", "person", "frame")}
        size = self.size
        for labels_i, index in zip(labels, chosen):
            points = self.landmarks[index]
            boxes["head"].append(_box(*np.nonzero(labels_i == LABEL_HEAD), 0.04 * size, size))
            boxes["face"].append(_box(points[:, 1], points[:, 0], 0.02 * size, size))
            lips = points[list(topo.LIPS)]
            boxes["lips"].append(_box(lips[:, 1], lips[:, 0], 0.02 * size, size))
            boxes["person"].append(_box(*np.nonzero(labels_i > 0), 0.04 * size, size))
            boxes["frame"].append(np.array([0, 0, size, size], dtype=np.float32))
        self.boxes = {name: torch.from_numpy(np.stack(value)) for name, value in boxes.items()}

    def sample(self, frames: int, rays: int, stage: str) -> RayBatch:
        """A batch of ``rays`` pixels from each of ``frames`` pool frames.

        Args:
            frames: Frames per batch B.
            rays: Pixels per frame P.
            stage: "head" or "torso" (which boxes the pixels favour).
        """
        self._count_batch()
        slots = torch.from_numpy(self.rng.choice(len(self.pool), min(frames, len(self.pool)), replace=False))
        mix = HEAD_MIX if stage == "head" else TORSO_MIX
        counts = np.diff(np.round(np.cumsum([0.0] + list(mix.values())) * rays).astype(int))
        boxes = torch.cat([self.boxes[name][slots, None].expand(-1, int(count), -1)
                           for name, count in zip(mix, counts)], 1)  # (B, P, 4)
        unit = torch.rand(len(slots), rays, 2)
        pixels_int = (boxes[..., :2] + unit * (boxes[..., 2:] - boxes[..., :2])).long().clamp(0, self.size - 1)
        return self._gather(slots, pixels_int)

    def _count_batch(self) -> None:
        """Refreshes the pool every ``refresh_every`` batches."""
        if self.batches and self.batches % self.refresh_every == 0 and self.pool_frames < len(self.frames):
            self._load_pool()
        self.batches += 1

    def whole_frames(self, count: int) -> RayBatch:
        """Every pixel of ``count`` random pool frames, row by row (P = size * size)."""
        self._count_batch()
        slots = torch.from_numpy(self.rng.choice(len(self.pool), min(count, len(self.pool)), replace=False))
        grid = torch.stack(torch.meshgrid(torch.arange(self.size), torch.arange(self.size), indexing="xy"), -1)
        return self._gather(slots, grid.reshape(1, -1, 2).expand(len(slots), -1, -1))

    def patches(self, count: int, size: int) -> RayBatch:
        """``count`` square patches of ``size`` x ``size`` pixels inside the faces of random
        pool frames, as a RayBatch with one "frame" per patch (P = size * size)."""
        slots = torch.from_numpy(self.rng.integers(len(self.pool), size=count))
        box = self.boxes["face"][slots]
        span = (box[:, 2:] - box[:, :2] - size).clamp(min=0)
        corner = (box[:, :2] + torch.rand(count, 2) * span).long().clamp(0, self.size - size)
        offsets = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="xy"), -1).reshape(-1, 2)
        return self._gather(slots, corner[:, None] + offsets)

    def _gather(self, slots: Tensor, pixels_int: Tensor) -> RayBatch:
        """The batch of integer pixels (B, P, 2) as (col, row) of the pool frames ``slots`` (B,)."""
        cols, rows = pixels_int.unbind(-1)
        slot_index = slots[:, None].expand_as(cols)
        lips_box = self.boxes["lips"][slots][:, None]
        lips = ((cols >= lips_box[..., 0]) & (cols < lips_box[..., 2]) &
                (rows >= lips_box[..., 1]) & (rows < lips_box[..., 3]))
        return RayBatch(
            frames=self.pool[slots],
            pixels=pixels_int.float() + 0.5,
            rgb=self.images[slot_index, rows, cols].float() / 255,
            labels=self.labels[slot_index, rows, cols],
            plate=self.plate[rows, cols],
            lips=lips,
        )
