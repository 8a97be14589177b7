"""``avatar3d train motion``: expression basis, sync expert, then the audio-to-expression VAE.

1. Corpus: ``synthetic`` makes any missing utterances of the virtual-actor corpus under
   ``corpus_root``; ``speech:DIR`` aligns recordings there (`avatar3d.motion.speech_corpus`);
   a folder of videos has been prepared into utterances by the command
   (`data_prep.video_corpus`). They resume, and ``--shard i/n`` makes one share and
   stops. A folder of utterance files is read as it is. Held-out utterances (the Harvard sentences, never in training) are made the
   same way and score the model after training.
2. Basis: PCA of every training frame's landmark displacements.
3. Sync expert: contrastive, on the corpus's own lips (`avatar3d.motion.sync`).
4. VAE: reconstruction (displacement space, lips weighted), KL (annealed), acceleration
   matching, and in the second half the frozen sync expert's loss on the predicted lips.

Both stages log to TensorBoard, checkpoint every ``checkpoint_every`` steps and on
Ctrl-C, and resume when the same command runs again. The result is ``RUN/motion.pt``.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avatar3d.errors import BadInputError
from avatar3d.files import CHECKPOINT, atomic_path, load_checkpoint, runs_folder, save_checkpoint
from avatar3d.face import topology as topo
from avatar3d.motion import corpus as corpora
from avatar3d.motion.basis import LIP_POINTS, ExpressionBasis, speaker_shape
from avatar3d.motion.features import group_mask
from avatar3d.motion.generate import REQUIRED_STEPS, find_motion_model
from avatar3d.motion.model import MotionModel
from avatar3d.motion.sync import MAX_SHIFT, SyncConfig, SyncExpert, audio_windows, lip_windows, sync_loss
from avatar3d.motion.vae import MotionVAE, VAEConfig, kl_divergence
from avatar3d.motion.speech_corpus import PREFIX, prepare_speech_corpus
from avatar3d.runtime import console, progress, set_quiet
from avatar3d.train import distributed, loop
from avatar3d.train.distributed import Workers
from avatar3d.train.config import MotionTrainConfig

MODEL = "motion.pt"
HELDOUT_SEED_OFFSET = 1_000_003  # held-out utterances draw voices and faces apart from training ones
NEGATIVE_SHIFTS = 10  # shifted-audio negatives per sync window
FOREIGN_NEGATIVES = 16  # other utterances' audio per sync window


# --- corpus ---------------------------------------------------------------------------------


def synthetic_folder(cfg: MotionTrainConfig) -> Path:
    voices = "-".join(cfg.voice_groups())
    return Path(cfg.corpus_root) / f"synthetic-v{corpora.CORPUS_VERSION}-{voices}-{cfg.seed}"


def make_synthetic(folder: Path, indices, seed: int, texts: list[str] | None = None,
                   voices: tuple[str, ...] = tuple(corpora.VOICE_GROUPS), augmented: bool = True,
                   workers: int | None = None) -> None:
    """Makes the utterances of ``indices`` that are not on disk yet, in worker processes."""
    jobs = {f"{index:06d}": (corpora.synthetic_spec(seed, index, texts[n % len(texts)] if texts else None, voices,
                                                   augmented),)
            for n, index in enumerate(indices)}
    if any(not corpora.utterance_path(folder, int(stem)).exists() for stem in jobs):
        corpora.prepare_in_workers(folder, jobs, corpora.make_utterance, workers=workers,
                                   description=f"corpus {folder.name}")


def heldout_corpus(cfg: MotionTrainConfig, count: int) -> list[Path]:
    """Held-out virtual-actor utterances of the Harvard sentences, espeak-ng voices, clean
    audio (made once): the synthetic scores stay comparable between models."""
    from avatar3d.rig.speech import SENTENCES

    folder = Path(cfg.corpus_root) / f"heldout-v{corpora.CORPUS_VERSION}-{cfg.seed}"
    indices = range(min(count, len(SENTENCES)))
    make_synthetic(folder, indices, cfg.seed + HELDOUT_SEED_OFFSET, list(SENTENCES), ("espeak",), False, cfg.workers)
    return [corpora.utterance_path(folder, i) for i in indices]


def corpus_files(cfg: MotionTrainConfig, spec: str, shard: tuple[int, int] = (0, 1)) -> list[Path]:
    """The utterance files of one ``--corpus`` entry, made or prepared first (this shard's)."""
    if spec == "synthetic":
        folder = synthetic_folder(cfg)
        indices = range(shard[0], cfg.utterances, shard[1])
        make_synthetic(folder, indices, cfg.seed, voices=cfg.voice_groups(), workers=cfg.workers)
        return [corpora.utterance_path(folder, i) for i in indices]
    if spec.startswith(PREFIX):
        folder = prepare_speech_corpus(Path(spec[len(PREFIX):]), cfg.corpus_root, shard, cfg.workers, cfg.speech_copies)
    else:
        folder = Path(spec)
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not files:
        raise BadInputError(f"--corpus {spec}: no talking videos or corpus utterances (*.npz) there; use synthetic, "
                            "speech:DIR (recordings with transcripts), a folder of videos or a folder made by either")
    return files


def training_corpus(cfg: MotionTrainConfig, shard: tuple[int, int] = (0, 1)) -> list[Path]:
    """The training utterances' files of every ``--corpus`` entry (comma-separated)."""
    return [path for spec in cfg.corpora() for path in corpus_files(cfg, spec, shard)]


def negative_shifts(rng: np.random.Generator, shape) -> np.ndarray:
    """Non-zero frame shifts within ±MAX_SHIFT, half of them within ±3: near misses are the
    hard negatives that teach timing, far ones teach content."""
    near = rng.random(shape) < 0.5
    size = np.where(near, rng.integers(1, 4, shape), rng.integers(1, MAX_SHIFT + 1, shape))
    return size * rng.choice([-1, 1], shape)


@dataclass
class Sequences:
    """Utterances ready for training: whitened codes, lips and audio as tensors."""

    audio: list[Tensor]  # (2T, AUDIO_DIMS)
    codes: list[Tensor]  # (T, K) whitened
    lips: list[Tensor]  # (T, 40, 3) face widths
    closed: list[Tensor]  # (T,) 1 where the lips are closed, 2 in brief closures (`closed_frames`)
    speakers: Tensor  # (U, SPEAKER_DIMS) each utterance's `speaker_shape`

    @classmethod
    def build(cls, utterances: list[dict], model: MotionModel, min_frames: int) -> "Sequences":
        kept = [u for u in utterances if len(u["displacement"]) >= min_frames]
        if not kept:
            raise BadInputError(f"corpus: no utterance has {min_frames} frames; lower --crop-frames")
        return cls([torch.from_numpy(u["audio"]) for u in kept],
                   [model.whiten(u["displacement"].astype(np.float32)) for u in kept],
                   [torch.from_numpy(u["displacement"][:, LIP_POINTS].astype(np.float32)) for u in kept],
                   [torch.from_numpy(closed_frames(u)) for u in kept],
                   torch.from_numpy(np.stack([speaker_shape(u["neutral"]) for u in kept])))

    def crops(self, rng: np.random.Generator, count: int, frames: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``count`` random crops: audio (B, 2F, A), whitened codes (B, F, K), closed frames
        (B, F) and speakers (B, S)."""
        audio, codes, closed, speakers = [], [], [], []
        for u in rng.integers(len(self.codes), size=count):
            start = int(rng.integers(len(self.codes[u]) - frames + 1))
            audio.append(self.audio[u][2 * start : 2 * (start + frames)])
            codes.append(self.codes[u][start : start + frames])
            closed.append(self.closed[u][start : start + frames])
            speakers.append(self.speakers[u])
        return torch.stack(audio), torch.stack(codes), torch.stack(closed), torch.stack(speakers)

    def sync_batch(self, rng: np.random.Generator, count: int) -> tuple[Tensor, Tensor, Tensor]:
        """Lip windows (B, 5, 40, 3), their audio (B, 10, A) and negatives (B, N, 10, A):
        the same utterance's audio shifted by 1..15 frames either way, and other utterances'."""
        mouths, positives, negatives = [], [], []
        for u in rng.integers(len(self.codes), size=count):
            frame = int(rng.integers(MAX_SHIFT, len(self.codes[u]) - MAX_SHIFT))  # shifted windows stay inside
            shifts = negative_shifts(rng, NEGATIVE_SHIFTS)
            shifted = frame + shifts
            mouths.append(lip_windows(self.lips[u], torch.tensor([frame]))[0])
            positives.append(audio_windows(self.audio[u], torch.tensor([frame]))[0])
            foreign = [audio_windows(self.audio[v], torch.tensor([int(rng.integers(len(self.codes[v])))]))[0]
                       for v in rng.integers(len(self.codes), size=FOREIGN_NEGATIVES)]
            negatives.append(torch.cat([audio_windows(self.audio[u], torch.from_numpy(shifted)), torch.stack(foreign)]))
        return torch.stack(mouths), torch.stack(positives), torch.stack(negatives)


# --- training ---------------------------------------------------------------------------------


BRIEF_CLOSURE_FRAMES = 6
"""Closures up to this long (0.24 s at 25 fps) are consonants (p, b, m), not pauses."""


def closed_frames(utterance: dict) -> np.ndarray:
    """(T,) float32: 1 where an utterance's lips are closed, below its speaker's closed
    threshold (`avatar3d.train.motion_eval.closed_threshold`): the closure head's target;
    2 in brief closures (`BRIEF_CLOSURE_FRAMES`), which the loss weighs more."""
    from avatar3d.train.motion_eval import closed_threshold, mouth_opening

    opening = mouth_opening(utterance["displacement"].astype(np.float32), utterance["neutral"])
    closed = (opening < closed_threshold(opening)).astype(np.float32)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], closed, [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start <= BRIEF_CLOSURE_FRAMES:
            closed[start:stop] = 2.0
    return closed


def inner_lip_gap(displacement: Tensor) -> Tensor:
    """(..., 9) change of the vertical gap between paired inner-lip points, face widths."""
    return (displacement[..., list(topo.UPPER_LIP_INNER), 1] - displacement[..., list(topo.LOWER_LIP_INNER), 1])


def subject_utterance(root: Path) -> tuple[dict, dict]:
    """A prepared subject's training and validation frames as corpus utterances."""
    from avatar3d.subject import Subject

    subject = Subject.load(root)
    subject.require_steps(REQUIRED_STEPS, "fine-tuning on a subject")
    whole = corpora.prepared_utterance(root)
    parts = []
    for name in ("train", "val"):
        start, stop = subject.manifest["split"][name]
        parts.append({**whole, "audio": whole["audio"][2 * start : 2 * stop],
                      "displacement": whole["displacement"][start:stop], "phoneme": whole["phoneme"][start:stop]})
    return parts[0], parts[1]


def choose_run(cfg: MotionTrainConfig) -> Path:
    """``--run``, else the newest unfinished motion run (of the subject, with --adapt), else a new one."""
    return loop.choose_run(cfg.run, runs_folder(cfg.runs, "motion", cfg.adapt), cfg.fresh)


class MotionTrainer:
    """Runs the sync-expert and VAE stages; see the module doc.

    ``workers`` places it among torchrun's processes (`avatar3d.train.distributed`): all
    of them train on ``workers.device``, rank 0 alone makes the corpus and writes the run.
    """

    def __init__(self, cfg: MotionTrainConfig, workers: Workers = Workers()):
        self.cfg, self.workers, self.device = cfg, workers, workers.device
        self.run_dir = workers.share(choose_run(cfg) if workers.leader else None)
        self.checkpoint_path = self.run_dir / CHECKPOINT
        torch.manual_seed(cfg.seed)  # the same start in every process
        if cfg.adapt is not None:
            utterances = [subject_utterance(cfg.adapt)[0]]
            base = MotionModel.load(find_motion_model(cfg.motion, cfg.runs))
        else:
            paths = workers.share(training_corpus(cfg) if workers.leader else None)
            utterances = [corpora.load_utterance(path) for path in paths]
        if self.checkpoint_path.exists():
            self._resume()
        else:
            if cfg.adapt is not None:
                self.model, self.stage = base, "vae"
                self.model.vae.train()
            else:
                displacement = np.concatenate([u["displacement"] for u in utterances]).astype(np.float32)
                basis = ExpressionBasis.fit(displacement, cfg.basis_size)
                console.print(f"expression basis: {basis.size} codes keep {100 * basis.explained(displacement):.2f} % "
                              f"of {len(displacement)} frames' variance")
                self.model = MotionModel(basis, MotionVAE(VAEConfig(codes=basis.size, width=cfg.width,
                                                               features=cfg.feature_groups(), closure=True)),
                                         SyncExpert(SyncConfig()))
                self.stage = "sync"
            self.step, self.elapsed = 0, 0.0
            self._to_device()
            self.optimizer = self._stage_optimizer()
        if cfg.adapt is not None:
            self.anchor = [p.detach().clone() for p in base.vae.to(self.device).parameters()]
        self.data = Sequences.build(utterances, self.model, cfg.crop_frames)
        if self.step == 0 and self.stage == "sync":  # a new model: the corpus's face shapes set its standardisation
            self.model.vae.speaker.fit(self.data.speakers, min_scale=1e-3)
        # Each process draws its own batches (one process: the stream of a run without torchrun).
        self.rng = np.random.default_rng([cfg.seed, self.step, self.stage == "vae"]
                                         + ([workers.rank] if workers.world > 1 else []))

    def _to_device(self) -> None:
        self.model.vae.to(self.device)
        self.model.expert.to(self.device)

    def _batch(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        return tuple(t.to(self.device) for t in tensors)

    @property
    def learning_rate(self) -> float:
        return self.cfg.learning_rate * (0.1 if self.cfg.adapt is not None else 1.0)  # fine-tuning: small steps

    def _stage_optimizer(self) -> torch.optim.Adam:
        module = self.model.expert if self.stage == "sync" else self.model.vae
        return torch.optim.Adam(module.parameters(), lr=self.learning_rate)

    def _resume(self) -> None:
        payload = load_checkpoint(self.checkpoint_path, "avatar3d train motion")
        try:
            basis = ExpressionBasis.from_state({k: v.numpy() for k, v in payload["basis"].items()})
            self.model = MotionModel(basis, MotionVAE.from_state(payload["vae"]), SyncExpert.from_state(payload["expert"]))
            self.stage, self.step, self.elapsed = payload["stage"], int(payload["step"]), float(payload["elapsed"])
            self._to_device()  # first: the optimizer state follows its parameters' device
            self.optimizer = self._stage_optimizer()
            self.optimizer.load_state_dict(payload["optimizer"])
        except (KeyError, ValueError, RuntimeError) as error:
            raise BadInputError(f"{self.checkpoint_path} is not a motion training checkpoint ({error}); "
                                "delete it or start with --fresh") from None
        console.print(f"resuming {self.run_dir} at {self.stage} step {self.step} ({self.elapsed / 60:.1f} min done)")

    def save(self) -> None:
        if not self.workers.leader:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.checkpoint_path, {
            "basis": {k: torch.from_numpy(v) for k, v in self.model.basis.state().items()},
            "vae": self.model.vae.state(), "expert": self.model.expert.state(), "stage": self.stage,
            "step": self.step, "elapsed": self.elapsed, "optimizer": self.optimizer.state_dict()})

    def _stage_steps(self) -> tuple[int, float]:
        """(steps, seconds) of the current stage; a time budget is shared as the steps are."""
        cfg = self.cfg
        steps = cfg.sync_steps if self.stage == "sync" else cfg.vae_steps
        if cfg.adapt is not None:
            return cfg.adapt_steps, math.inf if cfg.max_minutes is None else cfg.max_minutes * 60
        if cfg.max_minutes is None:
            return steps, math.inf
        share = cfg.sync_steps / (cfg.sync_steps + cfg.vae_steps)
        budget = cfg.max_minutes * 60
        return steps, budget * share if self.stage == "sync" else budget

    def _sync_step(self) -> dict:
        mouth, positives, negatives = self._batch(*self.data.sync_batch(self.rng, 4 * self.cfg.batch))
        loss = sync_loss(self.model.expert, mouth, positives, negatives)
        self._apply(loss)
        return {"sync/loss": loss.item()}

    def _vae_step(self, progress: float) -> dict:
        cfg, model = self.cfg, self.model
        audio, codes, closed, speakers = self._batch(*self.data.crops(self.rng, cfg.batch, cfg.crop_frames))
        keep = torch.from_numpy(self.rng.random(len(codes)) >= cfg.latent_dropout).to(self.device)
        predicted, mean, log_var, closure_logits = model.vae(self._drop_features(audio), codes, speakers, keep)
        scale = model.code_scale.to(self.device)
        weight = scale**2 / (scale**2).mean()  # displacement-space error
        reconstruction = ((predicted - codes) ** 2 * weight).mean()
        moved, true_moved = model.displacement(predicted), model.displacement(codes)
        lips, true_lips = moved[..., LIP_POINTS, :], true_moved[..., LIP_POINTS, :]
        lip = F.mse_loss(lips, true_lips) / float((true_lips**2).mean().clamp(min=1e-8))
        # L1 on the inner-lip gap: L2 alone regresses closures towards the mean, lips that never close.
        gap, true_gap = inner_lip_gap(moved), inner_lip_gap(true_moved)
        closure = (gap - true_gap).abs().mean() / float(true_gap.abs().mean().clamp(min=1e-8))
        accel = (predicted[:, 2:] - 2 * predicted[:, 1:-1] + predicted[:, :-2]) - (codes[:, 2:] - 2 * codes[:, 1:-1] + codes[:, :-2])
        temporal = (accel**2 * weight).mean()
        kl = kl_divergence(mean, log_var)
        loss = (reconstruction + cfg.lip_weight * lip + cfg.closure_weight * closure + cfg.temporal_weight * temporal
                + cfg.kl_weight * min(1.0, 3 * progress) * kl)
        logs = {"vae/reconstruction": reconstruction.item(), "vae/lips": lip.item(), "vae/closure": closure.item(),
                "vae/temporal": temporal.item(), "vae/kl": kl.item()}
        if closure_logits is not None:
            brief = 1 + (cfg.brief_closure_weight - 1) * (closed == 2).to(closure_logits)
            head = F.binary_cross_entropy_with_logits(closure_logits, (closed > 0).to(closure_logits), weight=brief)
            loss = loss + cfg.closure_head_weight * head
            logs["vae/closure_head"] = head.item()
        if cfg.adapt is not None:  # L2-SP: stay near the corpus model, the subject has only minutes of speech
            drift = sum(((p - a) ** 2).sum() for p, a in zip(model.vae.parameters(), self.anchor))
            loss = loss + cfg.anchor_weight * drift
            logs["vae/anchor"] = drift.item()
        if progress >= 0.5 and cfg.sync_weight > 0:
            sync = self._predicted_sync_loss(audio, lips)
            loss = loss + cfg.sync_weight * sync
            logs["vae/sync"] = sync.item()
        self._apply(loss)
        return logs | {"vae/loss": loss.item()}

    def _drop_features(self, audio: Tensor) -> Tensor:
        """(B, 2T, A) audio with each kind of feature zeroed in its ``--feature-dropout`` share of
        the sequences (independently), so the model learns to do without it."""
        shares = self.cfg.dropout_shares()
        if not shares:
            return audio
        groups = torch.from_numpy(np.stack([group_mask([name]) for name in shares])).to(audio)  # (G, A)
        dropped = torch.from_numpy(self.rng.random((len(audio), len(shares))) < np.array(list(shares.values())))
        return audio * (1 - (dropped.to(audio) @ groups).clamp(max=1))[:, None, :]

    def _predicted_sync_loss(self, audio: Tensor, lips: Tensor) -> Tensor:
        """The frozen expert's loss on predicted lips against their audio and shifted audio."""
        frames = lips.shape[1]
        centre, shifts = self._batch(torch.from_numpy(self.rng.integers(MAX_SHIFT, frames - MAX_SHIFT, len(lips))),
                                     torch.from_numpy(negative_shifts(self.rng, (len(lips), NEGATIVE_SHIFTS))))
        mouth = torch.stack([lip_windows(lips[b], centre[b : b + 1])[0] for b in range(len(lips))])
        positives = torch.stack([audio_windows(audio[b], centre[b : b + 1])[0] for b in range(len(lips))])
        negatives = torch.stack([audio_windows(audio[b], centre[b] + shifts[b]) for b in range(len(lips))])
        return sync_loss(self.model.expert, mouth, positives, negatives)

    def _apply(self, loss: Tensor) -> None:
        if not self.workers.all_agree(bool(torch.isfinite(loss))):
            raise BadInputError("motion training diverged (non-finite loss); lower --learning-rate and start with --fresh")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.workers.average_gradients(p for group in self.optimizer.param_groups for p in group["params"])
        self.optimizer.step()

    def run(self) -> Path:
        session = loop.training_session(self.run_dir, self.cfg, self.save) if self.workers.leader else _no_session()
        with session as writer:
            if self.stage == "sync":
                self._run_stage(writer)
                self.stage, self.step = "vae", 0
                self.optimizer = self._stage_optimizer()
            self.model.expert.requires_grad_(False)
            self._run_stage(writer)
            self.save()
        self.model.vae.eval()
        self.model.vae.cpu()
        self.model.expert.cpu()
        if self.workers.leader:
            self.model.save(self.run_dir / MODEL)
            loop.mark_finished(self.run_dir)
        console.print(f"[bold]trained[/] {self.run_dir / MODEL} in {self.elapsed / 60:.1f} min")
        return self.run_dir

    def _run_stage(self, writer) -> None:
        from avatar3d.runtime import progress_callback

        steps, seconds = self._stage_steps()
        started = time.perf_counter() - self.elapsed
        with progress_callback(f"{self.stage} stage") as report:
            while self.step < steps and (seconds == math.inf or self.workers.all_agree(self.elapsed < seconds)):
                fraction = self.step / steps
                for group in self.optimizer.param_groups:  # cosine decay to a tenth
                    group["lr"] = self.learning_rate * (0.55 + 0.45 * math.cos(math.pi * fraction))
                logs = self._sync_step() if self.stage == "sync" else self._vae_step(fraction)
                self.step += 1
                self.elapsed = time.perf_counter() - started
                report(self.step, steps)
                if self.step % 10 == 0:
                    for key, value in logs.items():
                        writer.add_scalar(key, value, self.step)
                if self.step % self.cfg.checkpoint_every == 0:
                    self.save()
        self.save()


@contextlib.contextmanager
def _no_session():
    """What the processes other than rank 0 log to: nothing."""
    yield SimpleNamespace(add_scalar=lambda *args, **kwargs: None)


def train_motion(cfg: MotionTrainConfig, device: torch.device = torch.device("cpu")) -> Path | None:
    """Builds the corpus and trains (or resumes) a motion run on ``device``; returns its folder.

    Under torchrun every process trains (`avatar3d.train.distributed`); rank 0 scores the
    model. With ``--shard i/n`` only that share of the corpus is made and None returned.
    """
    if cfg.shard is not None:
        training_corpus(cfg, cfg.shard_range())
        console.print(f"shard {cfg.shard} of {cfg.corpus} done")
        return None
    workers = distributed.join(device)
    if not workers.leader:
        set_quiet(True)
    try:
        run = MotionTrainer(cfg, workers).run()
    finally:
        distributed.leave(workers)
    if not workers.leader:
        return run
    from avatar3d.train.motion_eval import evaluate_heldout, evaluate_subject

    model = MotionModel.load(run / MODEL)
    if cfg.adapt is not None:
        metrics = evaluate_subject(model, *subject_utterance(cfg.adapt))
    else:
        metrics = evaluate_heldout(model, heldout_corpus(cfg, cfg.heldout))
    with atomic_path(run / "metrics.json") as partial:
        partial.write_text(json.dumps(metrics, indent=1))
    return run
