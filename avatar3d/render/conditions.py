"""What the renderer is driven by, per frame: camera, expression, eye openness.

The head NeRF sees expression as 3D landmark displacements in the canonical head frame,
``landmarks - canonical`` (478, 3), whoever produced the landmarks: the face fit for a
subject's own frames, the motion model for new speech. Head pose gives the camera: the
head is static in head space and the camera moves (``avatar3d.render.rays``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from avatar3d.camera import pose_vectors
from avatar3d.errors import BadInputError
from avatar3d.face import signals
from avatar3d.face.model import FACE_WIDTH, fitted_landmarks
from avatar3d.subject import LABEL_HEAD

REQUIRED_STEPS = ("decode", "masks", "face_fit", "signals")
"""Prep steps the renderer reads (frames, masks and plate, pose and expression, eye signal)."""


@dataclass
class Conditions:
    """Per-frame driving signals of T frames (tensors on one device, float32).

    Attributes:
        rotation: (T, 3, 3) head pose, head space to camera space.
        translation: (T, 3) head pose: ``x_cam = rotation @ x_head + translation``.
        landmarks: (T, 478, 3) landmarks in head space.
        eye: (T,) eye opening normalised to the subject (about 0 closed, 1 open).
        frame_ids: (T,) index of each frame's appearance code; -1 for the mean code
            (frames the renderer never trained on).
    """

    rotation: Tensor
    translation: Tensor
    landmarks: Tensor
    eye: Tensor
    frame_ids: Tensor

    def __len__(self) -> int:
        return len(self.rotation)

    def select(self, index) -> "Conditions":
        """The frames at ``index`` (int, slice or (B,) long tensor), as a new Conditions."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Conditions(*(getattr(self, name)[index] for name in self.__dataclass_fields__))

    def to(self, device) -> "Conditions":
        return Conditions(*(getattr(self, name).to(device) for name in self.__dataclass_fields__))

    def pose_vector(self) -> Tensor:
        """(T, 6) head poses as yaw, pitch, roll (radians) and translation (head-space units)."""
        return pose_vectors(self.rotation, self.translation)

    def mouth_opening(self) -> Tensor:
        """(T,) `avatar3d.face.signals.mouth_opening` of the landmarks."""
        return signals.mouth_opening(self.landmarks)

    def camera_to_head(self) -> tuple[Tensor, Tensor]:
        """Camera-to-head transforms ``(R (T, 3, 3), t (T, 3))``: the inverse head poses."""
        R = self.rotation.transpose(1, 2)
        return R, -(R @ self.translation[:, :, None])[:, :, 0]


def subject_conditions(subject) -> Conditions:
    """Conditions of every frame of a prepared subject, from its face fit and signals."""
    subject.require_steps(REQUIRED_STEPS, "the renderer")
    fit = subject.arrays("face_fit")
    signals = subject.arrays("signals")
    landmarks = fitted_landmarks(fit)
    count = len(landmarks)
    return Conditions(
        rotation=torch.from_numpy(fit["rotation"]).float(),
        translation=torch.from_numpy(fit["translation"]).float(),
        landmarks=torch.from_numpy(landmarks).float(),
        eye=torch.from_numpy(signals["eye_normalised"]).float(),
        frame_ids=torch.arange(count),
    )


def canonical_landmarks(subject) -> Tensor:
    """(478, 3) the subject's neutral landmarks in head space."""
    return torch.from_numpy(subject.arrays("face_fit")["canonical"]).float()


def intrinsics(subject) -> Tensor:
    """(3, 3) camera intrinsics in pixels at the subject's resolution."""
    return torch.tensor(subject.manifest["intrinsics"], dtype=torch.float32)


def spread_frames(count: int, samples: int) -> np.ndarray:
    """Up to ``samples`` frame indices spread evenly over ``count`` frames, first and last included."""
    return np.unique(np.linspace(0, count - 1, min(samples, count)).round().astype(int))


def head_extent(subject, conditions: Conditions, samples: int = 24) -> tuple[Tensor, Tensor]:
    """The head masks' x-y extent in head space: the masks of ``samples`` frames spread over
    the clip, lifted onto the plane ``z = 0`` through each frame's camera, 0.5-99.5 % range.

    Returns:
        ``(lo, hi)``, each (2,) float32, head-space units.
    """
    from avatar3d.render.rays import pixel_rays

    K = intrinsics(subject)
    R_c2h, t_c2h = conditions.camera_to_head()
    points = []
    for index in spread_frames(len(conditions), samples):
        rows, cols = np.nonzero(subject.labels(int(index)) == LABEL_HEAD)
        if len(rows) == 0:
            continue
        pixels = torch.from_numpy(np.stack([cols, rows], -1).astype(np.float32) + 0.5)
        origins, directions = pixel_rays(K, (R_c2h[index], t_c2h[index]), pixels)
        t = -origins[:, 2] / directions[:, 2]  # where each ray crosses z = 0
        points.append(origins[:, :2] + directions[:, :2] * t[:, None])
    if not points:
        raise BadInputError(f"{subject.root}/masks: no frame has a head region; check the subject's "
                            "preview.mp4 and run `avatar3d prep` again with --force masks")
    points = torch.cat(points)
    points = points[::max(1, len(points) // 200_000)]  # torch.quantile has an input size limit
    lo, hi = torch.quantile(points, torch.tensor([0.005, 0.995]), dim=0)
    return lo, hi


HEAD_BOX_MARGIN = 0.12
"""`head_box`'s margin on each side in x and y, a share of the head masks' extent."""


def head_box(subject, conditions: Conditions, margin: float = HEAD_BOX_MARGIN) -> tuple[Tensor, Tensor]:
    """Axis-aligned head-space box around the head (face, hair, neck above the cut).

    In x and y it spans the head masks' extent (`head_extent`) plus ``margin`` of its size.
    In z it reaches from the canonical landmarks' front plus margin back to half the box
    width behind the origin (the back of the head is never seen from the front, but an
    orbit should not cut it flat).

    Returns:
        ``(box_min, box_max)``, each (3,) float32, head-space units.
    """
    lo, hi = head_extent(subject, conditions)
    pad = (hi - lo) * margin
    lo, hi = lo - pad, hi + pad
    width = float(hi[0] - lo[0])
    front = float(canonical_landmarks(subject)[:, 2].max()) + 0.2 * FACE_WIDTH
    return (torch.tensor([float(lo[0]), float(lo[1]), -width / 2]),
            torch.tensor([float(hi[0]), float(hi[1]), front]))
