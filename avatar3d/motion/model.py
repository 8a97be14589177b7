"""The motion checkpoint: expression basis, audio-to-expression VAE and sync expert together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from avatar3d.errors import BadInputError
from avatar3d.files import load_checkpoint, save_checkpoint
from avatar3d.motion.basis import LIP_POINTS, ExpressionBasis, speaker_shape
from avatar3d.motion.sync import SyncExpert
from avatar3d.motion.vae import MotionVAE

MOTION_FORMAT = 1


@dataclass
class MotionModel:
    """Everything `avatar3d motion` needs to turn audio features into expressions.

    The VAE works on whitened codes: ``codes / code_scale``, where ``code_scale`` (K,) is
    each code's standard deviation over the training corpus.
    """

    basis: ExpressionBasis
    vae: MotionVAE
    expert: SyncExpert

    @property
    def code_scale(self) -> Tensor:
        return torch.from_numpy(np.sqrt(np.maximum(self.basis.variance, 1e-12)))

    def displacement(self, whitened: Tensor) -> Tensor:
        """(..., K) whitened codes -> (..., 478, 3) displacements, face widths (differentiable)."""
        components = torch.from_numpy(self.basis.components).to(whitened)
        flat = torch.from_numpy(self.basis.mean).to(whitened) + (whitened * self.code_scale.to(whitened)) @ components
        return flat.unflatten(-1, (-1, 3))

    def lips(self, whitened: Tensor) -> Tensor:
        """(..., K) whitened codes -> (..., 40, 3) lip displacements (what the sync expert sees)."""
        return self.displacement(whitened)[..., LIP_POINTS, :]

    @torch.no_grad()
    def generate(self, features: np.ndarray, neutral: np.ndarray, temperature: float = 0.0, seed: int = 0) -> np.ndarray:
        """(T, 478, 3) displacements for (2T, AUDIO_DIMS) features spoken by the face ``neutral`` (478, 3)."""
        speaker = torch.from_numpy(speaker_shape(neutral))
        return self.displacement(self.vae.generate(torch.from_numpy(features), speaker, temperature, seed)).numpy()

    def whiten(self, displacement: np.ndarray) -> Tensor:
        """(T, 478, 3) displacements -> (T, K) whitened codes."""
        return torch.from_numpy(self.basis.encode(displacement)) / self.code_scale

    def save(self, path: Path, extra: dict | None = None) -> None:
        """Writes the inference checkpoint (tensors and plain data only)."""
        save_checkpoint(path, {"format": MOTION_FORMAT, "kind": "motion",
                               "basis": {k: torch.from_numpy(v) for k, v in self.basis.state().items()},
                               "vae": self.vae.state(), "expert": self.expert.state(), **(extra or {})})

    @classmethod
    def load(cls, path: Path) -> "MotionModel":
        """Reads a checkpoint written by `save`; a foreign or damaged one is named in the error."""
        payload = load_checkpoint(path, "avatar3d train motion")
        if payload.get("kind") != "motion" or payload.get("format") != MOTION_FORMAT:
            raise BadInputError(f"{path} is not a motion checkpoint of format {MOTION_FORMAT}; "
                                "train one with `avatar3d train motion`")
        try:
            basis = ExpressionBasis.from_state({k: v.numpy() for k, v in payload["basis"].items()})
            model = cls(basis, MotionVAE.from_state(payload["vae"]).eval(), SyncExpert.from_state(payload["expert"]).eval())
        except (KeyError, TypeError, RuntimeError) as error:
            raise BadInputError(f"{path}: damaged motion checkpoint ({type(error).__name__}); train again") from None
        if model.vae.config.codes != basis.size:
            raise BadInputError(f"{path}: the VAE predicts {model.vae.config.codes} codes but the basis has "
                                f"{basis.size}; train again")
        return model
