"""Writing files so that an interrupted run never leaves a half-written one under the final name."""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (values outside are clipped) -> uint8, rounded."""
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    """Writes a uint8 image, (H, W) grey or (H, W, 3|4) RGB(A), as PNG.

    Not atomic by itself: frames go into staging folders that are renamed whole; wrap a
    lone file in ``atomic_path``.
    """
    import cv2

    conversion = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}
    if image.ndim == 3:
        image = cv2.cvtColor(image, conversion[image.shape[2]])
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


def writable_folder(folder: Path, option: str = "--out") -> Path:
    """Creates ``folder`` if needed; OutputError (naming ``option``) when it cannot be written to."""
    from avatar3d.errors import OutputError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {folder}: {error.strerror}; choose a writable {option}") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{folder} is not writable; choose a writable {option}")
    return folder


class ClosedOnSuccess(abc.ABC):
    """Context manager of an output written under a temporary name: ``close`` (move it into
    place) when the block ends normally, ``abort`` (drop it) when it raises."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def abort(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def partial_path(path: Path) -> Path:
    """The hidden name a file is written under before it is complete (suffix kept, so
    writers that pick the format by extension still work)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields ``partial_path(path)`` to write to; renames it onto ``path`` when the block ends
    normally and deletes it when the block raises.

    Example:
        with atomic_path(out / "landmarks.npz") as partial:
            np.savez_compressed(partial, points=points)
    """
    partial = partial_path(path)
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


CHECKPOINT = "checkpoint.pt"
"""File name of a run's checkpoint (model and training state), in every run folder."""
FINISHED = "finished"
"""Marker file of a run whose training completed."""
ALL_SUBJECTS = "all-subjects"
"""The subject part of run folders of models that serve every subject (a corpus-trained motion model)."""


def runs_folder(runs: Path, stage: str, subject: Path | None = None) -> Path:
    """Where a stage's runs live: ``RUNS/<subject folder name>/<stage>``, each run a timestamped
    folder in it (`ALL_SUBJECTS` for ``subject`` None)."""
    return Path(runs) / (Path(subject).resolve().name if subject is not None else ALL_SUBJECTS) / stage


def newest_finished_run(runs: Path, stage: str, subject: Path | None = None) -> Path | None:
    """The newest run under `runs_folder` whose training completed (its `FINISHED` marker), or None."""
    parent = runs_folder(runs, stage, subject)
    done = sorted(p for p in parent.iterdir() if (p / FINISHED).exists()) if parent.is_dir() else []
    return done[-1] if done else None


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` atomically: a crash mid-write leaves the previous checkpoint intact."""
    import torch

    with atomic_path(path) as partial:
        torch.save(payload, partial)


def load_checkpoint(path: Path, train_command: str) -> dict:
    """Loads a checkpoint with ``weights_only=True`` (tensors and plain data only).

    Raises:
        BadInputError: missing (naming ``train_command``, the command that makes it) or
            corrupt, naming the file.
    """
    import torch

    from avatar3d.errors import BadInputError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BadInputError(f"{path} does not exist; train with `{train_command}`") from None
    except Exception as error:  # torch raises many types for damaged files
        raise BadInputError(f"{path} is corrupt or not a checkpoint ({type(error).__name__}); "
                            "delete it and train again") from None
