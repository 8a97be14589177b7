"""Audio-to-expression conditional VAE over whole sequences (non-autoregressive, convolutional).

- Audio context: (B, 2T, AUDIO_DIMS) features -> (B, C, T) by two convolutions, the second
  with stride 2 (two feature rows per video frame).
- Posterior q(z | expression, audio): convolutions over the expression codes and the audio
  context, strided twice: a LATENT-channel latent every 4 frames (0.16 s at 25 fps), which
  carries what audio does not determine (how wide this take opens, head-independent style).
- Decoder: dilated residual convolutions (WaveNet-style, non-causal) over the audio context,
  the upsampled latent and the speaker's face shape (`avatar3d.motion.basis.speaker_shape`,
  standardised by the corpus's spread and clamped to 3 sigma) -> whitened codes per frame.
  The face shape tells it, e.g., how far lips parted at rest must move to close.
- Prior: N(0, I). Generation samples z at a temperature (0 = the mean motion).
- Closure head: dilated convolutions over the audio context alone -> per frame, the logit
  that the lips are closed (p, b, m and pauses). Regression to the mean leaves an uncertain
  closure half open; this head decides, and `avatar3d.motion.generate` presses the lips
  where it is sure (`closed_probability`).

The receptive field is finite (`RECEPTIVE_FRAMES` either side), so `generate` runs any
length in chunks with that much context on both sides and joins them without seams: the
result equals one pass over the whole sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avatar3d.motion.basis import SPEAKER_DIMS
from avatar3d.motion.features import AUDIO_DIMS, FEATURE_GROUPS, group_mask
from avatar3d.layers import Standardise

LATENT_STRIDE = 4
DILATIONS = (1, 2, 4, 8, 1, 2, 4, 8)
CLOSURE_DILATIONS = (1, 2, 4, 1)
RECEPTIVE_FRAMES = 2 + sum(DILATIONS) + 2 * LATENT_STRIDE  # audio convs + decoder + latent upsampling


@dataclass
class VAEConfig:
    """Sizes of the motion VAE."""

    codes: int = 32  # expression codes K (the basis size)
    width: int = 192
    latent: int = 16
    features: tuple[str, ...] = tuple(FEATURE_GROUPS)  # the kinds of audio feature it hears; others are zeroed
    closure: bool = False  # with the closure head (models before it have none)


class _Residual(nn.Module):
    """Dilated conv block with a gated activation and a residual connection."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, 2 * width, 3, padding=dilation, dilation=dilation)
        self.out = nn.Conv1d(width, width, 1)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.conv(x).chunk(2, 1)
        return x + self.out(torch.tanh(a) * torch.sigmoid(b))


class MotionVAE(nn.Module):
    """Expression codes (whitened) from audio features; see the module doc."""

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        w, k, z = config.width, config.codes, config.latent
        self.audio = nn.Sequential(nn.Conv1d(AUDIO_DIMS, w, 3, padding=1), nn.ReLU(),
                                   nn.Conv1d(w, w, 3, stride=2, padding=1), nn.ReLU())
        self.posterior = nn.Sequential(nn.Conv1d(k + w, w, 3, padding=1), nn.ReLU(),
                                       nn.Conv1d(w, w, 4, stride=2, padding=1), nn.ReLU(),
                                       nn.Conv1d(w, 2 * z, 4, stride=2, padding=1))
        self.speaker = Standardise(SPEAKER_DIMS)  # fit on the training corpus's speakers
        self.inlet = nn.Conv1d(w + z + SPEAKER_DIMS, w, 1)
        self.blocks = nn.Sequential(*[_Residual(w, d) for d in DILATIONS])
        self.outlet = nn.Sequential(nn.ReLU(), nn.Conv1d(w, k, 1))
        if config.closure:
            self.closure = nn.Sequential(*[_Residual(w, d) for d in CLOSURE_DILATIONS], nn.ReLU(), nn.Conv1d(w, 1, 1))
        self.register_buffer("heard", torch.from_numpy(group_mask(config.features)), persistent=False)

    def context(self, audio: Tensor) -> Tensor:
        """(B, 2T, AUDIO_DIMS) -> (B, width, T); features of the kinds not heard are zeroed."""
        return self.audio((audio * self.heard).transpose(1, 2))

    def encode(self, codes: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance (B, latent, ceil(T/4)) of (B, T, K) codes."""
        x = torch.cat([codes.transpose(1, 2), context], 1)
        x = F.pad(x, (0, -x.shape[-1] % LATENT_STRIDE))
        mean, log_var = self.posterior(x).chunk(2, 1)
        return mean, log_var.clamp(-10, 5)

    def decode(self, context: Tensor, latent: Tensor, speaker: Tensor) -> Tensor:
        """(B, width, T) context, (B, latent, ceil(T/4)) latent and (B, SPEAKER_DIMS) speaker
        shapes -> (B, T, K) codes."""
        frames = context.shape[-1]
        z = latent.repeat_interleave(LATENT_STRIDE, -1)[..., :frames]
        shape = self.speaker(speaker).clamp(-3, 3)[..., None].expand(-1, -1, frames)
        x = self.inlet(torch.cat([context, z, shape], 1))
        return self.outlet(self.blocks(x)).transpose(1, 2)

    def closure_logits(self, context: Tensor) -> Tensor:
        """(B, width, T) audio context -> (B, T) logits that the lips are closed."""
        return self.closure(context)[:, 0]

    def forward(self, audio: Tensor, codes: Tensor, speaker: Tensor,
                keep: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Training pass over (B, 2T, A) audio, (B, T, K) codes and (B, S) speaker shapes:
        (reconstructed codes (B, T, K), posterior mean, log-variance, closure logits (B, T)
        or None without the head).

        ``keep`` (B,) bool: sequences decoded from the latent; the others from a zero latent,
        the prior's mean that `generate` uses at temperature 0. Without such sequences the
        decoder leans on the latent for timing and the mean motion never closes the lips.
        """
        context = self.context(audio)
        mean, log_var = self.encode(codes, context)
        latent = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        if keep is not None:
            latent = latent * keep[:, None, None].to(latent)
        closure = self.closure_logits(context) if self.config.closure else None
        return self.decode(context, latent, speaker), mean, log_var, closure

    @torch.no_grad()
    def generate(self, audio: Tensor, speaker: Tensor, temperature: float = 0.0, seed: int = 0,
                 chunk_frames: int = 1000) -> Tensor:
        """Codes (T, K) for (2T, AUDIO_DIMS) features of any length spoken by a face of
        `speaker_shape` ``speaker`` (SPEAKER_DIMS,).

        The latent for the whole sequence is drawn first (from ``seed``), then the decoder
        runs over chunks of ``chunk_frames`` frames, each with `RECEPTIVE_FRAMES` of
        context either side, so memory stays bounded and chunks meet without seams.
        """
        frames = len(audio) // 2
        generator = torch.Generator(device="cpu").manual_seed(seed)
        latent = torch.randn(self.config.latent, -(-frames // LATENT_STRIDE), generator=generator)
        latent = (latent * temperature).to(audio)
        pieces = [self.decode(context, latent[None, :, lo // LATENT_STRIDE :], speaker[None].to(audio))[0, inner]
                  for lo, context, inner in self._chunks(audio, chunk_frames)]
        return torch.cat(pieces) if pieces else audio.new_zeros(0, self.config.codes)

    @torch.no_grad()
    def closed_probability(self, audio: Tensor, chunk_frames: int = 1000) -> Tensor | None:
        """(T,) probability that the lips are closed at each frame of (2T, AUDIO_DIMS)
        features, chunked as `generate`; None for a model without the closure head."""
        if not self.config.closure:
            return None
        pieces = [torch.sigmoid(self.closure_logits(context))[0, inner] for _, context, inner in self._chunks(audio, chunk_frames)]
        return torch.cat(pieces) if pieces else audio.new_zeros(0)

    def _chunks(self, audio: Tensor, chunk_frames: int):
        """(first frame, (1, width, F) audio context, slice of the chunk's own frames in it) per
        chunk of ``chunk_frames`` frames, each with `RECEPTIVE_FRAMES` of context either side."""
        frames = len(audio) // 2
        for start in range(0, frames, chunk_frames):
            stop = min(start + chunk_frames, frames)
            # Context rounded out to whole latent steps, so each chunk sees the same latent grid.
            lo = max(0, (start - RECEPTIVE_FRAMES) // LATENT_STRIDE * LATENT_STRIDE)
            hi = min(frames, stop + RECEPTIVE_FRAMES)
            yield lo, self.context(audio[2 * lo : 2 * hi][None]), slice(start - lo, stop - lo)

    def state(self) -> dict:
        return {"config": asdict(self.config), "weights": self.state_dict()}

    @classmethod
    def from_state(cls, state: dict) -> "MotionVAE":
        config = dict(state["config"])
        config["features"] = tuple(config.get("features", FEATURE_GROUPS))  # saved as a list; older: all
        model = cls(VAEConfig(**config))
        model.load_state_dict(state["weights"])
        return model


def kl_divergence(mean: Tensor, log_var: Tensor) -> Tensor:
    """Mean over latent elements of KL(N(mean, exp(log_var)) || N(0, 1))."""
    return 0.5 * (mean**2 + log_var.exp() - 1 - log_var).mean()
