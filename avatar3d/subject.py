"""The on-disk subject folder written by ``avatar3d prep``: its schema and its read side.

    subject/
      subject.json        schema version, source, settings, crop, split, per-step records, stats
      frames/NNNNNN.jpg   square frames at the target resolution
      audio.wav           16 kHz mono, sample 0 = start of frame 0 (absent if the video had none)
      audio_features.npz  per video frame (2 rows each): mel, f0, voiced, energy, phones
      landmarks.npz       landmarks (T,478,2) px, depth (T,478) px, detected (T,) bool, raw (T,478,3)
      masks/NNNNNN.png    labels: 0 background, 1 torso, 2 head
      background.png      static plate; background_coverage.png: 255 where seen, 0 where filled
      face_fit.npz        canonical, basis, expression, rotation, translation, intrinsics, reprojection_px
      signals.npz         eye_opening, mouth_opening per frame (raw and normalised to the subject)
      preview.mp4         quality check: masks, fitted mesh and landmarks over the frames
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar3d.errors import BadInputError

SCHEMA_VERSION = 1
MANIFEST = "subject.json"
LABEL_BACKGROUND, LABEL_TORSO, LABEL_HEAD = 0, 1, 2  # values in masks/NNNNNN.png


def frame_name(index: int, suffix: str) -> str:
    """File name of frame ``index`` in ``frames/`` (``.jpg``) or ``masks/`` (``.png``)."""
    return f"{index:06d}{suffix}"


def read_frame(root: Path, index: int) -> np.ndarray:
    """Frame ``index`` of the subject folder ``root`` as (R, R, 3) uint8 RGB."""
    import cv2

    image = cv2.imread(str(Path(root) / "frames" / frame_name(index, ".jpg")), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInputError(f"{root}/frames: frame {index} is missing or unreadable; "
                            "run `avatar3d prep` again with --force decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_labels(root: Path, index: int) -> np.ndarray:
    """Segmentation of frame ``index``: (R, R) uint8, 0 background, 1 torso, 2 head."""
    import cv2

    labels = cv2.imread(str(Path(root) / "masks" / frame_name(index, ".png")), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise BadInputError(f"{root}/masks: mask {index} is missing or unreadable; "
                            "run `avatar3d prep` again with --force masks")
    return labels


@dataclass
class Subject:
    """A prepared subject folder, opened for reading."""

    root: Path
    manifest: dict

    @classmethod
    def load(cls, root: Path) -> "Subject":
        """Opens ``root``; raises BadInputError if it is not a prepared subject."""
        root = Path(root)
        path = root / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise BadInputError(f"{root} is not a subject folder (no {MANIFEST}); run `avatar3d prep VIDEO --out {root}`") from None
        except (OSError, json.JSONDecodeError) as error:
            raise BadInputError(f"cannot read {path}: {error}") from None
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise BadInputError(f"{path} has schema version {manifest.get('schema_version')}, this avatar3d reads "
                                f"{SCHEMA_VERSION}: prepare the subject again with `avatar3d prep`")
        return cls(root, manifest)

    @property
    def num_frames(self) -> int:
        return int(self.manifest["num_frames"])

    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])

    @property
    def resolution(self) -> int:
        return int(self.manifest["resolution"])

    @property
    def stats(self) -> dict:
        return self.manifest.get("stats", {})

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as (R, R, 3) uint8 RGB."""
        return read_frame(self.root, index)

    def labels(self, index: int) -> np.ndarray:
        """Segmentation of frame ``index``: (R, R) uint8, 0 background, 1 torso, 2 head."""
        return read_labels(self.root, index)

    def background(self) -> np.ndarray:
        """The static background plate as (R, R, 3) uint8 RGB."""
        import cv2

        image = cv2.imread(str(self.root / "background.png"), cv2.IMREAD_COLOR)
        if image is None:
            raise BadInputError(f"{self.root}/background.png is missing or unreadable; "
                                "run `avatar3d prep` again with --force masks")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def require_steps(self, steps: tuple[str, ...], purpose: str) -> None:
        """Raises BadInputError naming the first of ``steps`` (prep steps) that has not run."""
        done = self.manifest.get("steps", {})
        for step in steps:
            if step not in done:
                raise BadInputError(f"{self.root}: prep step {step!r}, which {purpose} needs, has not run; run "
                                    f"`avatar3d prep VIDEO --out {self.root}` to finish it")

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """All arrays of ``name``.npz (e.g. "landmarks", "face_fit", "signals")."""
        with np.load(self.root / f"{name}.npz") as data:
            return dict(data)
