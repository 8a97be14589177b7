"""The sync expert: does this mouth motion go with this audio?

Two small encoders map a 0.2 s audio window (10 feature rows) and the lip landmarks of
the same 5 video frames to unit vectors; their scaled cosine is the pair's logit. It is
trained contrastively: each mouth window must pick its own audio among the same
utterance's audio shifted by up to ±15 frames and other utterances' audio (SyncNet's and
GeneFace's sync experts, with shifted negatives so that it learns timing, not only content).

Over a whole clip it gives an audio-video offset (the shift with the highest mean
similarity) and a sync score (that similarity minus the median over all shifts, like
SyncNet's confidence), and to the motion model a loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avatar3d.motion.basis import LIP_POINTS
from avatar3d.motion.features import AUDIO_DIMS

MOUTH_FRAMES = 5
AUDIO_ROWS = 2 * MOUTH_FRAMES  # two feature rows per video frame
MAX_SHIFT = 15
LIP_SCALE = 10.0  # lip displacements are ~0.01-0.1 face widths: bring them near unit size


@dataclass
class SyncConfig:
    """Sizes of the sync expert."""

    width: int = 128
    embedding: int = 64


class SyncExpert(nn.Module):
    """Audio and mouth encoders into a shared unit sphere."""

    def __init__(self, config: SyncConfig = SyncConfig()):
        super().__init__()
        self.config = config
        w = config.width
        self.audio = nn.Sequential(
            nn.Conv1d(AUDIO_DIMS, w, 3, padding=1), nn.ReLU(),
            nn.Conv1d(w, w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(w * MOUTH_FRAMES, w), nn.ReLU(), nn.Linear(w, config.embedding))
        self.mouth = nn.Sequential(
            nn.Flatten(), nn.Linear(MOUTH_FRAMES * len(LIP_POINTS) * 3, 2 * w), nn.ReLU(),
            nn.Linear(2 * w, w), nn.ReLU(), nn.Linear(w, config.embedding))
        self.log_scale = nn.Parameter(torch.tensor(2.3))  # logit = exp(log_scale) * cosine

    def embed_audio(self, windows: Tensor) -> Tensor:
        """(B, 10, AUDIO_DIMS) audio windows -> (B, E) unit vectors."""
        return F.normalize(self.audio(windows.transpose(1, 2)), dim=-1)

    def embed_mouth(self, lips: Tensor) -> Tensor:
        """(B, 5, 40, 3) lip displacements (face widths) -> (B, E) unit vectors."""
        return F.normalize(self.mouth(lips * LIP_SCALE), dim=-1)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def state(self) -> dict:
        return {"config": asdict(self.config), "weights": self.state_dict()}

    @classmethod
    def from_state(cls, state: dict) -> "SyncExpert":
        expert = cls(SyncConfig(**state["config"]))
        expert.load_state_dict(state["weights"])
        return expert


def audio_windows(audio: Tensor, frames: Tensor) -> Tensor:
    """(B, 10, AUDIO_DIMS) audio windows of (2T, AUDIO_DIMS) features centred on frames (B,)."""
    rows = 2 * (frames[:, None] - MOUTH_FRAMES // 2) + torch.arange(AUDIO_ROWS, device=frames.device)
    return audio[rows.clamp(0, len(audio) - 1)]


def lip_windows(lips: Tensor, frames: Tensor) -> Tensor:
    """(B, 5, 40, 3) lip windows of (T, 40, 3) lip displacements centred on frames (B,)."""
    offsets = torch.arange(MOUTH_FRAMES, device=frames.device) - MOUTH_FRAMES // 2
    return lips[(frames[:, None] + offsets).clamp(0, len(lips) - 1)]


def shift_similarity(expert: SyncExpert, audio: Tensor, lips: Tensor, max_shift: int = MAX_SHIFT) -> Tensor:
    """Mean cosine between each mouth window and the audio ``s`` frames later, s = -max..max.

    Args:
        audio: (2T, AUDIO_DIMS) one clip's features.
        lips: (T, 40, 3) lip displacements of the same clip.

    Returns:
        (2 * max_shift + 1,) similarities; index ``max_shift + s`` is shift s. Only frames
        whose shifted partner lies inside the clip count.
    """
    frames = torch.arange(len(lips), device=lips.device)
    mouth = expert.embed_mouth(lip_windows(lips, frames))
    sound = expert.embed_audio(audio_windows(audio, frames))
    similarities = []
    for shift in range(-max_shift, max_shift + 1):
        lo, hi = max(0, -shift), min(len(lips), len(lips) - shift)
        if hi - lo < 1:
            similarities.append(torch.tensor(float("nan"), device=lips.device))
            continue
        similarities.append((mouth[lo:hi] * sound[lo + shift:hi + shift]).sum(-1).mean())
    return torch.stack(similarities)


@torch.no_grad()
def sync_measure(expert: SyncExpert, audio: Tensor, lips: Tensor, max_shift: int = MAX_SHIFT) -> dict[str, float]:
    """``offset_frames`` (audio lags the mouth by this many frames when positive, best
    shift), ``score`` (similarity at the best shift minus the median over shifts) and
    ``similarity_at_zero`` of one clip."""
    similarity = shift_similarity(expert, audio, lips, max_shift)
    best = int(torch.nan_to_num(similarity, nan=-2.0).argmax())
    median = float(similarity[~similarity.isnan()].median())
    return {"offset_frames": best - max_shift, "score": float(similarity[best]) - median,
            "similarity_at_zero": float(similarity[max_shift])}


def contrastive_logits(expert: SyncExpert, mouth: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
    """Logits (B, 1 + N) of each mouth window against its audio and N negatives.

    Args:
        mouth: (B, 5, 40, 3) lip windows.
        positives: (B, 10, AUDIO_DIMS) their own audio.
        negatives: (B, N, 10, AUDIO_DIMS) shifted or foreign audio.
    """
    m = expert.embed_mouth(mouth)
    candidates = torch.cat([positives[:, None], negatives], 1)
    a = expert.embed_audio(candidates.flatten(0, 1)).view(*candidates.shape[:2], -1)
    return expert.scale * (a * m[:, None]).sum(-1)


def sync_loss(expert: SyncExpert, mouth: Tensor, positives: Tensor, negatives: Tensor) -> Tensor:
    """Cross-entropy of picking the true audio (index 0) among the candidates, mean over B."""
    logits = contrastive_logits(expert, mouth, positives, negatives)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
