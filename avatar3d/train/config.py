"""Settings of the training and evaluation commands (light: no torch import, for fast --help)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from avatar3d.errors import BadArgumentError
from avatar3d.render.config import GaussianConfig, HeadConfig, MarchConfig, TorsoConfig


@dataclass
class RenderTrainConfig:
    """Settings of ``avatar3d train render``; its presets are configs/render-*.yaml (the command
    starts from one; constructed directly, the sizes are the fast preset's, without its time limit)."""

    POSITIONAL = ("subject",)
    PRESETS = "render"
    DEFAULT_PRESET = "fast"

    subject: Path
    """Prepared subject folder (from `avatar3d prep`)."""
    backend: str = "nerf"
    """The head's renderer: nerf (a hash-grid NeRF) or gaussians (3D Gaussians; real time on a CPU)."""
    max_minutes: float | None = None
    """Stop after this many minutes of training in all; null: no time limit."""
    run: Path | None = None
    """Run folder; an unfinished one resumes. Default: runs/SUBJECT/render/TIMESTAMP, or the newest unfinished one there."""
    runs: Path = Path("runs")
    """Root folder of runs."""
    fresh: bool = False
    """Start a new run even if the newest one is unfinished."""
    head_steps: int = 3000
    """Head-stage steps, an upper bound under a time budget."""
    torso_steps: int = 1500
    """Torso-stage steps, an upper bound under a time budget."""
    frames_per_batch: int = 4
    """Frames per step."""
    rays_per_frame: int = 512
    """Rays per frame per step; halved automatically if a GPU runs out of memory."""
    learning_rate: float = 0.01
    """Adam learning rate at the start (decays tenfold over a stage). At 0.02 the head could stay a noise cloud for hundreds of steps, once for a whole demo run."""
    lip_weight: float = 2.0
    """Extra photometric weight inside the lips box."""
    alpha_weight: float = 0.3
    """Weight of the alpha-vs-mask loss."""
    ambient_weight: float = 1e-3
    """Weight of the |ambient coordinate| penalty."""
    depth_weight: float = 0.0
    """Weight of the face depth prior (distance of the rays' weight from the fitted face mesh, in face widths);
    0.1 puts the face at its fitted depth, at a cost in PSNR (docs/render.md)."""
    ssim_weight: float = 0.05
    """Weight of the patch SSIM loss in the second half of the head stage."""
    normal_weight: float = 0.05
    """Weight of 1 - cos between the rendered normal and the density's gradient at the surface, off the face."""
    orientation_weight: float = 0.01
    """Weight of the penalty on normals that face away from the camera (Ref-NeRF's orientation loss)."""
    residual_weight: float = 0.1
    """Weight of the mean squared view-dependent residual (keeps colour in albedo x shading)."""
    face_normal_weight: float = 0.1
    """Weight of 1 - cos between the rendered normal and the fitted face mesh's, on the face."""
    torso_normal_weight: float = 0.1
    """Torso stage: weight of 1 - cos between the torso's normals and its inflated silhouette's."""
    symmetry_weight: float = 0.02
    """Weight of the face albedo's asymmetry (mean |albedo - mirrored albedo|), which tells light from albedo."""
    light_change_weight: float = 0.01
    """Weight of the squared per-frame change of the learnt light."""
    checkpoint_every: int = 250
    """Steps between checkpoints."""
    validate_every: int = 500
    """Steps between validation renders (TensorBoard, curve.json)."""
    seed: int = 0
    """Random seed."""
    head: HeadConfig = field(default_factory=HeadConfig)
    """The head field's size (nerf)."""
    gaussians: GaussianConfig = field(default_factory=GaussianConfig)
    """The Gaussian head's size and upkeep (gaussians)."""
    torso: TorsoConfig = field(default_factory=TorsoConfig)
    """The torso field's size."""
    march: MarchConfig = field(default_factory=MarchConfig)
    """Ray sampling through the head box."""

    def __post_init__(self):
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise BadArgumentError(f"--max-minutes must be positive, got {self.max_minutes}")
        if self.backend not in ("nerf", "gaussians"):
            raise BadArgumentError(f"--backend {self.backend!r}: choose nerf or gaussians")
        if self.backend == "gaussians" and self.depth_weight > 0:
            raise BadArgumentError("--depth-weight is a NeRF prior: leave it at 0 with --backend gaussians")


@dataclass
class RenderEvalConfig:
    """Settings of ``avatar3d eval render``."""

    POSITIONAL = ("subject",)

    subject: Path
    """Prepared subject folder."""
    run: Path | None = None
    """Render run folder; default: the subject's newest finished run under --runs."""
    runs: Path = Path("runs")
    """Root folder of runs."""
    out: Path | None = None
    """metrics.json to write; default: RUN/metrics.json."""
    max_frames: int | None = None
    """Evaluate at most this many validation frames (spread evenly); all when unset."""
    video: bool = True
    """Also write RUN/eval.mp4 (real, rendered, error, alpha)."""
    lmd: bool = True
    """Also score the lips' landmarks (LMD), found by MediaPipe Face Mesh on the rendered and the real frames."""


@dataclass
class RelightEvalConfig:
    """Settings of ``avatar3d eval relight``."""

    POSITIONAL = ("subject",)

    subject: Path
    """Prepared virtual-actor subject folder."""
    truth: str
    """Clips rendered by `avatar3d synth` with the subject's clip settings and seed under other lights, with --passes albedo,normal; comma-separated folders."""
    run: Path | None = None
    """Render run folder; default: the subject's newest finished run under --runs."""
    runs: Path = Path("runs")
    """Root folder of runs."""
    out: Path | None = None
    """relight.json to write; default: RUN/relight.json."""
    max_frames: int | None = None
    """Evaluate at most this many validation frames (spread evenly); all when unset."""

    def __post_init__(self):
        if not self.truth_folders():
            raise BadArgumentError("--truth is empty: name one or more synth clip folders, comma-separated")
        if self.max_frames is not None and self.max_frames < 1:
            raise BadArgumentError(f"--max-frames must be at least 1, got {self.max_frames}")

    def truth_folders(self) -> list[Path]:
        """The ``--truth`` folders."""
        return [Path(part.strip()) for part in self.truth.split(",") if part.strip()]


@dataclass
class MotionTrainConfig:
    """Settings of ``avatar3d train motion``; its presets are configs/motion*.yaml."""

    PRESETS = "motion"

    corpus: str = "synthetic"
    """Training corpora, comma-separated: `synthetic` (the virtual actor's voices and mouth rig), `speech:DIR` (recordings with transcripts, aligned and spoken by the rig), a folder of talking videos, or a folder of corpus utterances (*.npz); the first three are prepared under --corpus-root."""
    voices: str = "espeak,festival,flite"
    """Synthetic corpus: the synthesisers whose voices speak it (espeak, festival, flite), comma-separated; each utterance draws one, then one of its voices."""
    speech_copies: int = 1
    """speech:DIR corpora: utterances per recording, the clean one and the rest augmented (room, noise, codec, tempo, pitch)."""
    adapt: Path | None = None
    """Prepared subject folder: fine-tune --motion on its own training frames instead of training on a corpus."""
    motion: Path | None = None
    """With --adapt: the model to fine-tune; default: the newest motion run under RUNS/motion."""
    adapt_steps: int = 400
    """With --adapt: fine-tuning steps."""
    anchor_weight: float = 1.0
    """With --adapt: weight of the pull towards the starting weights (keeps what the corpus taught)."""
    utterances: int = 3000
    """Synthetic corpus size (utterances of one sentence each, ~3 s)."""
    shard: str | None = None
    """i/n: only make utterances (synthetic, or of the corpus's videos) i, i+n, i+2n ... and stop (split corpus building across machines)."""
    workers: int | None = None
    """Processes preparing a corpus of videos side by side (default: one per CPU)."""
    corpus_root: Path = Path("runs/corpus")
    """Where corpora are made (resumable: existing utterances are kept)."""
    heldout: int = 20
    """Held-out virtual-actor utterances (Harvard sentences, at most 20) scored into RUN/metrics.json."""
    run: Path | None = None
    """Run folder; an unfinished one resumes. Default: runs/all-subjects/motion/TIMESTAMP (with --adapt: runs/SUBJECT/motion/TIMESTAMP), or the newest unfinished one there."""
    runs: Path = Path("runs")
    """Root folder of runs."""
    fresh: bool = False
    """Start a new run even if the newest one is unfinished."""
    basis_size: int = 32
    """Expression codes K (PCA components of landmark displacements)."""
    sync_steps: int = 1500
    """Sync-expert steps."""
    vae_steps: int = 3000
    """VAE steps."""
    batch: int = 16
    """Sequences per VAE step (sync expert: 4x as many windows)."""
    crop_frames: int = 48
    """Frames per training sequence."""
    learning_rate: float = 1e-3
    """Adam learning rate at the start (cosine decay to a tenth)."""
    latent_dropout: float = 0.5
    """Share of VAE sequences decoded from a zero latent (the temperature-0 motion must stand on the audio alone)."""
    kl_weight: float = 1e-3
    """Weight of the KL term (ramped up over the first third of the VAE stage)."""
    lip_weight: float = 10.0
    """Extra weight of the lip landmarks in the reconstruction loss."""
    closure_weight: float = 1.0
    """Weight of the L1 loss on the inner-lip gap (makes the lips close on p, b, m)."""
    temporal_weight: float = 0.5
    """Weight of the second-difference (acceleration) loss."""
    closure_head_weight: float = 1.0
    """Weight of the closure head's loss (binary cross-entropy on frames with closed lips)."""
    brief_closure_weight: float = 4.0
    """Weight, within that loss, of the frames of brief closures (p, b, m) against the others."""
    sync_weight: float = 0.02
    """Weight of the sync-expert loss on predicted lips (second half of the VAE stage)."""
    width: int = 128
    """Channels of the VAE."""
    features: str = "mel,pitch,energy,phones"
    """The kinds of audio feature the VAE hears, comma-separated (mel, pitch, energy, phones)."""
    feature_dropout: str = "mel:0.2,pitch:0.2,energy:0.2,phones:0.2"
    """Training: kind:share pairs, comma-separated (mel:0.5,pitch:0.2): the share of sequences in which that kind of feature is zeroed, so the model learns to do without it (the kinds that carry least from synthetic to real speech)."""
    max_minutes: float | None = None
    """Stop after this many minutes of training (split between the stages as their steps)."""
    checkpoint_every: int = 500
    """Steps between checkpoints."""
    seed: int = 0
    """Random seed (also picks the synthetic corpus)."""

    def __post_init__(self):
        for name in ("utterances", "heldout", "adapt_steps", "speech_copies", "basis_size", "sync_steps", "vae_steps", "batch", "crop_frames", "width"):
            if getattr(self, name) < 1:
                raise BadArgumentError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.crop_frames < 40:
            raise BadArgumentError(f"--crop-frames must be at least 40 (sync windows shift by ±15), got {self.crop_frames}")
        if self.shard is not None:
            parts = self.shard.split("/")
            if len(parts) != 2 or not all(p.isdigit() for p in parts) or not 0 <= int(parts[0]) < int(parts[1]):
                raise BadArgumentError(f"--shard {self.shard!r}: write i/n with 0 <= i < n, e.g. 0/4")
        if not self.corpora():
            raise BadArgumentError("--corpus is empty: name synthetic, speech:DIR or a folder")
        from avatar3d.motion.corpus import VOICE_GROUPS  # here: --help stays fast

        unknown = [group for group in self.voice_groups() if group not in VOICE_GROUPS]
        if unknown or not self.voice_groups():
            raise BadArgumentError(f"--voices {self.voices!r}: choose from {', '.join(VOICE_GROUPS)}")
        from avatar3d.motion.features import FEATURE_GROUPS

        if not self.feature_groups() or any(name not in FEATURE_GROUPS for name in self.feature_groups()):
            raise BadArgumentError(f"--features {self.features!r}: choose from {', '.join(FEATURE_GROUPS)}")
        try:
            dropout = self.dropout_shares()
        except ValueError:
            dropout = None
        if dropout is None or any(name not in FEATURE_GROUPS or not 0 <= share < 1 for name, share in dropout.items()):
            raise BadArgumentError(f"--feature-dropout {self.feature_dropout!r}: write kind:share pairs, e.g. "
                                   f"mel:0.5,pitch:0.2, kinds from {', '.join(FEATURE_GROUPS)}, shares in 0..1")
        if self.workers is not None and self.workers < 1:
            raise BadArgumentError(f"--workers must be at least 1, got {self.workers}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise BadArgumentError(f"--max-minutes must be positive, got {self.max_minutes}")

    def shard_range(self) -> tuple[int, int]:
        """``--shard i/n`` as ``(i, n)``; ``(0, 1)`` (everything) without it."""
        return tuple(int(part) for part in self.shard.split("/")) if self.shard else (0, 1)

    def corpora(self) -> list[str]:
        """The ``--corpus`` entries."""
        return [part.strip() for part in self.corpus.split(",") if part.strip()]

    def voice_groups(self) -> tuple[str, ...]:
        """The ``--voices`` entries."""
        return tuple(part.strip() for part in self.voices.split(",") if part.strip())

    def feature_groups(self) -> tuple[str, ...]:
        """The ``--features`` entries."""
        return tuple(part.strip() for part in self.features.split(",") if part.strip())

    def dropout_shares(self) -> dict[str, float]:
        """The ``--feature-dropout`` pairs as {kind: share}."""
        pairs = [part.split(":") for part in self.feature_dropout.split(",") if part.strip()]
        return {name.strip(): float(share) for name, share in pairs}
