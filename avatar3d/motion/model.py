"""The motion checkpoint: expression basis, audio-to-expression VAE and sync expert together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from avatar3d.audio.features import PHONES
from avatar3d.errors import BadInputError
from avatar3d.face.closure import press_lips
from avatar3d.files import load_checkpoint, save_checkpoint
from avatar3d.motion.basis import LIP_POINTS, ExpressionBasis, displacements, speaker_shape, to_landmarks
from avatar3d.motion.features import FEATURE_GROUPS
from avatar3d.motion.sync import SyncExpert
from avatar3d.motion.vae import MotionVAE

MOTION_FORMAT = 1
PRESS_FROM, PRESS_FULL = 0.3, 0.6
"""Closure-head probabilities where the lips start to be pressed and where they meet."""
PHONE_FROM, PHONE_FULL = 0.6, 0.9
"""The same for the phone recogniser's probability of p, b or m ..."""
PHONE_GATE = 0.02
"""... which counts only where the closure head gives at least this."""
BILABIAL_COLUMNS = [FEATURE_GROUPS["phones"][PHONES.index(phone)] for phone in ("P", "B", "M")]


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
    def generate(self, features: np.ndarray, neutral: np.ndarray, temperature: float = 0.0, seed: int = 0,
                 press: bool = True) -> np.ndarray:
        """(T, 478, 3) displacements for (2T, AUDIO_DIMS) features spoken by the face ``neutral``
        (478, 3): the VAE's, with the lips pressed where `lip_press` says (unless ``press`` is
        False: a transcript knows better)."""
        speaker = torch.from_numpy(speaker_shape(neutral))
        displacement = self.displacement(self.vae.generate(torch.from_numpy(features), speaker, temperature, seed)).numpy()
        press = self.lip_press(features) if press else None
        if press is None:
            return displacement
        landmarks = to_landmarks(displacement, neutral)
        press_lips(landmarks, press)
        return displacements(landmarks, neutral)

    def lip_press(self, features: np.ndarray) -> np.ndarray | None:
        """(T,) how much of the lips' gap to close at each frame of (2T, AUDIO_DIMS) features,
        from two votes: the closure head's probability (0 below `PRESS_FROM`, all of it from
        `PRESS_FULL`) and, where the head gives at least `PHONE_GATE`, the phone recogniser's
        probability of p, b or m (the same from `PHONE_FROM` to `PHONE_FULL`); the larger
        wins. None without the closure head.

        The recogniser was trained on real speech: on real voices it finds bilabials that the
        head, trained on synthetic ones, misses; on formant synthesis it also hears ones that
        are not there, which the gate keeps out (docs/motion.md)."""
        probability = self.vae.closed_probability(torch.from_numpy(features))
        if probability is None:
            return None
        probability = probability.numpy()
        bilabial = features[:, BILABIAL_COLUMNS].sum(1).reshape(-1, 2).max(1)  # two feature rows per frame
        head = np.clip((probability - PRESS_FROM) / (PRESS_FULL - PRESS_FROM), 0, 1)
        phones = np.clip((bilabial - PHONE_FROM) / (PHONE_FULL - PHONE_FROM), 0, 1) * (probability >= PHONE_GATE)
        return np.maximum(head, phones)

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
