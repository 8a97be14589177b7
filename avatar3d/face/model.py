"""Face models: 3D landmarks of a face from expression coefficients.

Callers see only the `FaceModel` protocol, so a licensed morphable model (BFM, FLAME) can
replace the data-built `LinearFaceModel` later: it has to give the 478 MediaPipe landmarks
(e.g. through a fixed barycentric embedding of them in its mesh) in head space.

Head space: +y up, +z out of the face (towards the camera at rest), the face about 0.15
units wide between ``topology.FACE_SIDES``, origin near the centre of the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from avatar3d.errors import BadInputError
from avatar3d.face.topology import NUM_LANDMARKS

FACE_WIDTH = 0.15
"""Width of a canonical face between ``topology.FACE_SIDES``, head-space units."""
HEAD_CENTRE_DEPTH = 0.07
"""Distance of the head-space origin behind the face sides' midpoint, head-space units."""


@runtime_checkable
class FaceModel(Protocol):
    """A face model of one identity: expression coefficients to head-space landmarks."""

    @property
    def num_expressions(self) -> int:
        """K, the length of an expression coefficient vector."""

    def landmarks(self, expression: Tensor) -> Tensor:
        """Head-space landmarks, (..., 478, 3), for expression coefficients (..., K)."""


@dataclass
class LinearFaceModel:
    """Canonical shape plus a linear expression basis: ``canonical + expression @ basis``.

    Attributes:
        canonical: (478, 3) float32, the neutral face of the subject in head space.
        basis: (K, 478, 3) float32, expression displacements in head-space units; the
            data-built model stores them orthonormal (as flattened 1434-vectors), so a
            coefficient is the size of its displacement.
    """

    canonical: np.ndarray
    basis: np.ndarray

    def __post_init__(self):
        self.canonical = np.asarray(self.canonical, dtype=np.float32)
        self.basis = np.asarray(self.basis, dtype=np.float32)
        if self.canonical.shape != (NUM_LANDMARKS, 3) or self.basis.shape[1:] != (NUM_LANDMARKS, 3):
            raise ValueError(f"canonical {self.canonical.shape} and basis {self.basis.shape} "
                             f"must be (478, 3) and (K, 478, 3)")

    @property
    def num_expressions(self) -> int:
        return len(self.basis)

    def landmarks(self, expression: Tensor) -> Tensor:
        """Head-space landmarks, (..., 478, 3), for coefficients (..., K), in their dtype and device."""
        canonical = torch.as_tensor(self.canonical).to(expression)
        basis = torch.as_tensor(self.basis).to(expression)
        return canonical + torch.einsum("...k,kld->...ld", expression, basis)

    def save(self, path: Path) -> None:
        """Writes ``canonical`` and ``basis`` to an .npz file."""
        np.savez(path, canonical=self.canonical, basis=self.basis)

    @classmethod
    def load(cls, path: Path) -> "LinearFaceModel":
        """Reads a model written by `save`.

        Raises:
            BadInputError: the file is missing or does not hold a linear face model.
        """
        try:
            with np.load(path) as data:
                return cls(data["canonical"], data["basis"])
        except (OSError, KeyError, ValueError) as error:
            raise BadInputError(f"{path}: not a face model file ({error}); fit one with avatar3d") from error


def fitted_landmarks(fit: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 478, 3) float32 head-space landmarks of every frame of a face fit (the arrays of
    ``face_fit.npz``: ``canonical``, ``basis``, ``expression``), through `LinearFaceModel`."""
    model = LinearFaceModel(fit["canonical"], fit["basis"])
    return model.landmarks(torch.as_tensor(fit["expression"], dtype=torch.float32)).numpy()
