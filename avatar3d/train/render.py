"""``avatar3d train render``: fit the avatar (head, then torso) to a prepared subject.

Two stages, both resumable from ``checkpoint.pt`` in the run folder:

1. **head**, with the clip's light: rays through the head and face; loss = photometric L2
   (lips weighted), head alpha against the head mask, |ambient|, depth against the fitted
   face mesh on face pixels (`avatar3d.render.face_prior`), a patch SSIM term in the second
   half; and what makes the colour albedo x shading (`avatar3d.render.avatar`): the rendered
   normal tied to the fitted face mesh's normal on the face and to the density's gradient
   elsewhere, and kept facing the camera; the view-dependent residual and the per-frame
   light change kept small; the face's albedo kept symmetric (a light from one side is the
   only asymmetry shading can explain). The
   head is composited over the plate where the frame shows head, and over the frame's own
   colour elsewhere, so only the head's own pixels pull on its colour.
   With ``--backend gaussians`` the head is 3D Gaussians (`avatar3d.render.gaussians`):
   whole frames per step, the same photometric, alpha, pose, face-normal and light terms,
   SSIM over the frames' tiles, and densification and pruning as it goes.
2. **torso**: the head and light frozen; full composite against the frame, alpha against
   the person mask, the torso's normals pulled towards the silhouette's
   (`avatar3d.render.torso.silhouette_normals`).

A time budget (``--max-minutes``) is shared between the stages (head 80 %); the learning
rate decays with whichever of steps or time runs out first. Non-finite losses or gradients
skip the step; many in a row stop the run with a message. TensorBoard events, the config,
``curve.json`` (validation PSNR against minutes) and the checkpoint live in the run folder.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from avatar3d.errors import BadInputError, UserError
from avatar3d.files import CHECKPOINT, runs_folder, save_checkpoint
from avatar3d.render.avatar import Avatar, load_checkpoint
from avatar3d.render.conditions import Conditions, head_box, intrinsics, subject_conditions
from avatar3d.render.face_prior import face_distances, face_normals
from avatar3d.render.gaussians import GaussianHead, colours_from_frame, seed_gaussians
from avatar3d.render.head import HeadField, moving_landmarks
from avatar3d.render.torso import TorsoField, raw_head_code, silhouette_normals
from avatar3d.runtime import console
from avatar3d.subject import LABEL_HEAD
from avatar3d.train import loop
from avatar3d.train.config import RenderTrainConfig
from avatar3d.train.losses import face_depth_error, patch_ssim_loss
from avatar3d.train.metrics import image_psnr, psnr
from avatar3d.train.render_data import RaySampler

HEAD_SHARE = 0.8
"""Fraction of a time budget given to the head stage."""
WARMUP_STEPS = 48
"""Head steps with coarse samples and frequent grid updates, while the occupancy grid is carved."""
WARMUP_COARSENING = 4
POSE_LR_SCALE = 0.1
"""Learning rate of the pose correction (linear model and drift curve) relative to the networks'."""
POSE_PRIOR = 1.0
"""Weight of the squared pose drift (radians, tenths of head-space units). The linear part is
not penalised (at 1.0 or 0.01 it cost the 30 s actor 1.3 and 0.9 dB), only logged: once it
ran away (commits 742a29c, f39884e, c2bbc56)."""
MAX_BAD_STEPS = 20
"""Consecutive non-finite steps after which training stops."""

# --- run folders and checkpoints -----------------------------------------------------------


def choose_run(cfg: RenderTrainConfig, subject_root: Path) -> Path:
    """The run folder: ``--run``, else the newest unfinished run of the subject, else a new one."""
    return loop.choose_run(cfg.run, runs_folder(cfg.runs, "render", subject_root), cfg.fresh)


# --- building ------------------------------------------------------------------------------


def build_avatar(cfg: RenderTrainConfig, subject, conditions: Conditions, train_frames: np.ndarray) -> Avatar:
    """A fresh avatar sized by the config, its box and warp landmarks from the subject (and,
    for Gaussians, their colours from the first training frame)."""
    from avatar3d.render.conditions import canonical_landmarks

    box_min, box_max = head_box(subject, conditions)
    canonical = canonical_landmarks(subject)
    K = intrinsics(subject)
    head_config = cfg.gaussians if cfg.backend == "gaussians" else cfg.head
    warp = moving_landmarks(canonical, conditions.landmarks[train_frames], head_config.warp_landmarks)
    if cfg.backend == "gaussians":
        head = seeded_gaussian_head(cfg, subject, conditions, int(train_frames[0]), box_min, box_max, canonical, warp)
    else:
        head = HeadField(head_config, box_min, box_max, canonical, warp, subject.num_frames)
    training = conditions.select(torch.from_numpy(train_frames))
    torso = TorsoField(cfg.torso)
    torso.head_code.fit(raw_head_code(training, K, subject.resolution), min_scale=1e-3)
    avatar = Avatar(head, torso, K, subject.resolution, cfg.march)
    avatar.fit_pose_code(training)
    return avatar


def seeded_gaussian_head(cfg: RenderTrainConfig, subject, conditions: Conditions, frame: int, box_min: Tensor,
                         box_max: Tensor, canonical: Tensor, warp: Tensor) -> GaussianHead:
    """A Gaussian head seeded by `seed_gaussians`, coloured by training frame ``frame``
    (its head pixels where the seeds project onto the head, the head's mean colour elsewhere)."""
    seeds = seed_gaussians(cfg.gaussians, canonical, box_min, box_max, cfg.seed)
    count, cap = len(seeds["means"]), cfg.gaussians.max_count
    if count > cap:  # seeds beyond the cap are dropped at random, the three kinds alike
        console.print(f"[yellow]warning:[/] {count} seed Gaussians exceed gaussians.max_count ({cap}); keeping {cap}")
        keep = torch.randperm(count, generator=torch.Generator().manual_seed(cfg.seed))[:cap].sort().values
        seeds = {name: value[keep] for name, value in seeds.items()}
    image = torch.from_numpy(subject.frame(frame)).float() / 255
    colours = colours_from_frame(seeds["means"], image, torch.from_numpy(subject.labels(frame) == LABEL_HEAD),
                                 tuple(x[0] for x in conditions.select(frame).camera_to_head()), intrinsics(subject))
    mouth = seeds["inner_mouth"] > 0
    seeds["albedo_logits"] = torch.where(mouth[:, None], seeds["albedo_logits"], torch.logit(colours, eps=0.02))
    head = GaussianHead(cfg.gaussians, box_min, box_max, canonical, warp, subject.num_frames, len(seeds["means"]))
    with torch.no_grad():
        for name, value in seeds.items():
            getattr(head, name).copy_(value)
    return head


GAUSSIAN_LR_SCALES = {"means": 0.015, "quats": 0.1, "log_scales": 0.5, "opacity_logits": 5.0, "albedo_logits": 2.5}
"""Learning rates of the Gaussians' parameters relative to ``--learning-rate`` (at 0.01: 3D
Gaussian splatting's, with positions at 1e-3 face widths a step); the deformation network
and its hash grid get 1, as the NeRF's networks do."""


def _optimizer(parameters, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.99), eps=1e-15)


# --- training ------------------------------------------------------------------------------


class RenderTrainer:
    """Runs both stages on one subject; see the module doc."""

    def __init__(self, cfg: RenderTrainConfig, device: torch.device):
        from avatar3d.subject import Subject

        self.cfg = cfg
        self.device = device
        self.subject = Subject.load(cfg.subject)
        self.conditions = subject_conditions(self.subject)
        split = self.subject.manifest["split"]
        self.train_frames = np.arange(*split["train"])
        self.val_frames = np.arange(*split["val"]) if split["val"][1] > split["val"][0] else self.train_frames[-1:]
        self.run_dir = choose_run(cfg, self.subject.root)
        self.checkpoint_path = self.run_dir / CHECKPOINT
        torch.manual_seed(cfg.seed)
        if self.checkpoint_path.exists():
            self._resume()
        else:
            self.avatar = build_avatar(cfg, self.subject, self.conditions, self.train_frames).to(device)
            self.stage, self.step, self.elapsed, self.head_seconds, self.curve = "head", 0, 0.0, 0.0, []
            self.optimizer = self._stage_optimizer()
        self.conditions = self.conditions.to(device)
        self.train_conditions = self.conditions.select(torch.from_numpy(self.train_frames).to(device))
        self.sampler = RaySampler(self.subject, self.train_frames, seed=cfg.seed + self.step)
        self.silhouette_normals = torch.from_numpy(silhouette_normals(self._usual_person()))
        self.rays_per_frame = cfg.rays_per_frame
        self.bad_steps = 0
        self.pull, self.capped = None, False  # the Gaussians' accumulated positional gradient (`_keep_gaussians`)

    def _usual_person(self, samples: int = 16) -> np.ndarray:
        """(R, R) bool: where the person is in most of up to ``samples`` training frames."""
        frames = self.train_frames[np.linspace(0, len(self.train_frames) - 1, samples).round().astype(int)]
        return np.mean([self.subject.labels(int(i)) > 0 for i in frames], 0) > 0.5

    def _stage_optimizer(self) -> torch.optim.Adam:
        if self.stage == "torso":
            return _optimizer(self.avatar.torso.parameters(), self.cfg.learning_rate)
        pose = {"params": [*self.avatar.pose_model.parameters(), *self.avatar.pose_drift.parameters()],
                "scale": POSE_LR_SCALE}
        light = [self.avatar.light, *self.avatar.light_change.parameters()]
        head = self.avatar.head
        if self.avatar.backend == "nerf":
            return _optimizer([{"params": [*head.parameters(), *light]}, pose], self.cfg.learning_rate)
        networks = [p for name, p in head.named_parameters() if name not in GAUSSIAN_LR_SCALES]
        return _optimizer([{"params": [getattr(head, name)], "scale": scale} for name, scale in GAUSSIAN_LR_SCALES.items()]
                          + [{"params": [*networks, *light]}, pose], self.cfg.learning_rate)

    def _resume(self) -> None:
        payload = load_checkpoint(self.checkpoint_path)
        try:
            self.avatar = Avatar.from_payload(payload["avatar"], self.checkpoint_path).to(self.device)
            self.stage, self.step = payload["stage"], int(payload["step"])
            self.elapsed, self.curve = float(payload["elapsed"]), list(payload["curve"])
            self.head_seconds = float(payload["head_seconds"])
            if self.avatar.backend != self.cfg.backend:
                raise BadInputError(f"{self.run_dir} is a {self.avatar.backend} run: resume it with --backend "
                                    f"{self.avatar.backend}, or start another with --fresh")
            self.optimizer = self._stage_optimizer()
            self.optimizer.load_state_dict(payload["optimizer"])
        except (KeyError, ValueError) as error:
            raise BadInputError(f"{self.checkpoint_path} is not a training checkpoint ({error}); "
                                "delete it or start with --fresh") from None
        console.print(f"resuming {self.run_dir} at {self.stage} step {self.step} ({self.elapsed / 60:.1f} min done)")

    def save(self, finished: bool = False) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.checkpoint_path, {
            "avatar": self.avatar.payload(), "stage": self.stage, "step": self.step, "elapsed": self.elapsed,
            "head_seconds": self.head_seconds, "curve": self.curve, "optimizer": self.optimizer.state_dict()})
        if finished:
            loop.mark_finished(self.run_dir)

    # --- budget ---

    def _stage_limits(self) -> tuple[int, float]:
        """(steps, seconds) of the current stage; seconds is inf without a time budget."""
        cfg = self.cfg
        total = math.inf if cfg.max_minutes is None else cfg.max_minutes * 60
        if self.stage == "head":
            return cfg.head_steps, total * HEAD_SHARE
        return cfg.torso_steps, max(total - self.head_seconds, 1.0)

    def _progress(self) -> float:
        """How far the current stage is, in [0, 1], by steps or time, whichever is further."""
        steps, seconds = self._stage_limits()
        stage_start = 0.0 if self.stage == "head" else self.head_seconds
        return min(1.0, max(self.step / max(steps, 1), (self.elapsed - stage_start) / seconds))

    # --- steps ---

    def _head_loss(self, batch, progress: float) -> tuple[Tensor, dict]:
        cfg = self.cfg
        frames = self.conditions.select(batch.frames.to(self.device))
        is_head = batch.labels == LABEL_HEAD
        background = torch.where(is_head[..., None], batch.plate, batch.rgb).to(self.device)
        pixels = batch.pixels.to(self.device)
        with_prior = cfg.depth_weight > 0  # the face mesh is rasterized per step: only when it counts
        if self.avatar.backend == "nerf":
            # Until the occupancy grid is carved, rays cross the whole box: sample them coarsely.
            coarse = WARMUP_COARSENING if self.step < WARMUP_STEPS else 1
            face_distance = self.face_distance(pixels, frames) if with_prior else None
            out = self.avatar.render_pixels(pixels, frames, background, with_torso=False,
                                            jitter=True, coarse=coarse, surface=face_distance, regularise=True)
        else:
            out = self.avatar.render_pixels(pixels, frames, background, with_torso=False)
        target = batch.rgb.reshape(-1, 3).to(self.device)
        weight = 1.0 + cfg.lip_weight * batch.lips.reshape(-1).float().to(self.device)
        mse = (out["rgb"] - target).square().mean(-1)
        photo = (weight * mse).mean()
        alpha = (out["alpha"] - is_head.reshape(-1).float().to(self.device)).square().mean()
        ambient = out["ambient"].abs().mean() if len(out.get("ambient", ())) else out["rgb"].new_zeros(())
        linear, drift = (part.square().sum(1).mean() for part in self.avatar.pose_correction(frames))
        loss = photo + cfg.alpha_weight * alpha + cfg.ambient_weight * ambient + POSE_PRIOR * drift
        logs = {"head/photometric": photo.item(), "head/alpha": alpha.item(), "head/ambient": ambient.item(),
                "head/pose_linear": linear.item(), "head/pose_drift": drift.item(),
                "head/psnr": psnr(float(mse.detach().mean()))}
        if self.avatar.backend == "gaussians":
            logs["head/gaussians"] = len(self.avatar.head)
        for name, (weight, term) in self._reflectance_terms(out, pixels, frames, is_head.reshape(-1)).items():
            loss = loss + weight * term
            logs[f"head/{name}"] = term.item()
        if with_prior:
            depth = face_depth_error(out["surface_spread"], face_distance, is_head.reshape(-1))
            loss = loss + cfg.depth_weight * depth
            logs["head/depth_error"] = depth.item()
        if progress > 0.5 and cfg.ssim_weight > 0:
            ssim_loss = self._patch_ssim() if self.avatar.backend == "nerf" else self._frame_ssim(out["rgb"], target)
            loss = loss + cfg.ssim_weight * ssim_loss
            logs["head/ssim_loss"] = ssim_loss.item()
        return loss, logs

    def _reflectance_terms(self, out: dict[str, Tensor], pixels: Tensor, frames: Conditions,
                           is_head: Tensor) -> dict[str, tuple[float, Tensor]]:
        """The terms that make the head's colour albedo x shading, as {name: (weight, value)}."""
        cfg = self.cfg
        mesh_normal = face_normals(self.avatar.camera_to_head(frames), frames.landmarks, self.avatar.head.face_triangles,
                                   self.avatar.K, self.avatar.resolution, pixels).reshape(-1, 3)
        on_face = (mesh_normal.abs().sum(-1) > 0) & is_head.to(mesh_normal.device)
        rendered = torch.nn.functional.normalize(out["normal"], dim=-1, eps=1e-6)
        face_error = torch.where(on_face, 1 - (rendered * mesh_normal).sum(-1), torch.zeros_like(on_face, dtype=rendered.dtype))
        change = self.avatar.light_change(frames.frame_ids.clamp(min=0))
        terms = {"face_normal_error": (cfg.face_normal_weight, face_error.sum() / on_face.sum().clamp(min=1)),
                 "light_change": (cfg.light_change_weight, change.square().mean())}
        if self.avatar.backend == "nerf":  # the NeRF's normals and residual are networks of their own: tie them down
            off_face = (out["normal_error"] > 0) & ~on_face
            terms |= {"normal_error": (cfg.normal_weight, (out["normal_error"] * off_face).sum() / off_face.sum().clamp(min=1)),
                      "orientation": (cfg.orientation_weight, out["orientation"].mean()),
                      "residual": (cfg.residual_weight, out["residual"].square().mean()),
                      "asymmetry": (cfg.symmetry_weight, out["asymmetry"])}
        return terms

    def face_distance(self, pixels: Tensor, frames: Conditions) -> Tensor:
        """(B*P,) distance along the avatar's rays through pixels (B, P, 2) of frames to the
        fitted face mesh (+inf off the face), for the face depth prior."""
        return face_distances(self.avatar.camera_to_head(frames), frames.landmarks, self.avatar.K,
                              self.avatar.resolution, pixels).reshape(-1)

    def _patch_ssim(self) -> Tensor:
        """SSIM loss on 8x8 patches of the face."""
        patches = self.sampler.patches(count=8, size=8)
        frames = self.conditions.select(patches.frames.to(self.device))
        background = torch.where((patches.labels == LABEL_HEAD)[..., None], patches.plate, patches.rgb)
        out = self.avatar.render_pixels(patches.pixels.to(self.device), frames, background.to(self.device),
                                        with_torso=False, jitter=True)
        return patch_ssim_loss(out["rgb"].reshape(-1, 8, 8, 3), patches.rgb.reshape(-1, 8, 8, 3).to(self.device))

    def _frame_ssim(self, rendered: Tensor, target: Tensor) -> Tensor:
        """SSIM loss over the 8x8 tiles of whole rendered frames (B*S*S, 3) against their targets."""
        tiles = self.subject.resolution // 8

        def split(image: Tensor) -> Tensor:
            return image.reshape(-1, tiles, 8, tiles, 8, 3).permute(0, 1, 3, 2, 4, 5).reshape(-1, 8, 8, 3)

        return patch_ssim_loss(split(rendered), split(target))

    def _torso_loss(self, batch) -> tuple[Tensor, dict]:
        cfg = self.cfg
        frames = self.conditions.select(batch.frames.to(self.device))
        out = self.avatar.render_pixels(batch.pixels.to(self.device), frames, batch.plate.to(self.device),
                                        with_torso=True)
        target = batch.rgb.reshape(-1, 3).to(self.device)
        mse = (out["rgb"] - target).square().mean(-1)
        photo = mse.mean()
        person = (batch.labels.reshape(-1) > 0).float().to(self.device)
        alpha = (out["alpha"] - person).square().mean()
        cols, rows = batch.pixels.long().unbind(-1)
        target = self.silhouette_normals[rows.reshape(-1), cols.reshape(-1)].to(self.device)
        normal_error = (1 - (out["torso_normal"] * target).sum(-1)).mean()
        loss = photo + cfg.alpha_weight * alpha + cfg.torso_normal_weight * normal_error
        return loss, {"torso/photometric": photo.item(), "torso/alpha": alpha.item(),
                      "torso/normal_error": normal_error.item(), "torso/psnr": psnr(float(photo.detach()))}

    def _step(self, progress: float) -> dict | None:
        """One optimisation step; None when it was skipped for a non-finite loss or gradient."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.learning_rate * group.get("scale", 1.0) * 0.1**progress
        if self.stage == "head" and self.avatar.backend == "gaussians":
            batch = self.sampler.whole_frames(self.cfg.gaussians.frames_per_step)
        else:
            batch = self.sampler.sample(self.cfg.frames_per_batch, self.rays_per_frame, self.stage)
        self.optimizer.zero_grad(set_to_none=True)
        loss, logs = self._head_loss(batch, progress) if self.stage == "head" else self._torso_loss(batch)
        if not torch.isfinite(loss):
            return None
        loss.backward()
        grads = [p.grad for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not bool(torch.stack([grad.isfinite().all() for grad in grads]).all()):  # one device sync, not one per tensor
            return None
        self.optimizer.step()
        if self.stage == "head" and self.avatar.backend == "nerf":
            warm = self.step < WARMUP_STEPS
            self.avatar.update_grid(self.train_conditions, self.step, every=4 if warm else 16, share=1.0 if warm else 0.25)
        elif self.stage == "head":
            self._keep_gaussians(progress)
        return {key: float(value) for key, value in logs.items()} | {"loss": loss.item()}

    def _keep_gaussians(self, progress: float) -> None:
        """Accumulates how hard the loss pulls each Gaussian and densifies and prunes every
        ``gaussians.densify_every`` steps until ``gaussians.densify_until`` of the stage."""
        head = self.avatar.head
        pull = head.means.grad.norm(dim=-1)
        self.pull = pull if self.pull is None else self.pull + pull
        every = self.cfg.gaussians.densify_every
        if (self.step + 1) % every == 0 and progress < self.cfg.gaussians.densify_until:
            head.densify_and_prune(self.pull, self.optimizer)
            self.pull = None
            if len(head) >= self.cfg.gaussians.max_count and not self.capped:
                self.capped = True
                console.print(f"[yellow]warning:[/] the Gaussian head reached gaussians.max_count "
                              f"({self.cfg.gaussians.max_count}); densification stops there")

    def _guarded_step(self, progress: float) -> dict | None:
        """`_step` with the NaN guard and GPU out-of-memory retries at half the rays."""
        while True:
            try:
                logs = self._step(progress)
                break
            except torch.cuda.OutOfMemoryError:
                if self.rays_per_frame <= 64:
                    raise UserError("out of GPU memory even at 64 rays per frame; use --device cpu") from None
                self.rays_per_frame //= 2
                torch.cuda.empty_cache()
                console.print(f"[yellow]GPU out of memory: retrying with {self.rays_per_frame} rays per frame[/]")
        if logs is None:
            self.bad_steps += 1
            console.print(f"[yellow]warning:[/] non-finite loss or gradient at {self.stage} step {self.step}; skipped")
            if self.bad_steps >= MAX_BAD_STEPS:
                self.save()
                raise UserError(f"training diverged: {MAX_BAD_STEPS} non-finite steps in a row at {self.stage} step "
                                f"{self.step}; resume with a lower --learning-rate (checkpoint kept in {self.run_dir})")
        else:
            self.bad_steps = 0
        return logs

    # --- validation ---

    @torch.no_grad()
    def validate(self, writer) -> float:
        """Renders the first validation frame over the plate; logs it and returns its PSNR."""
        index = int(self.val_frames[0])
        real = self.subject.frame(index).astype(np.float32) / 255
        frame = self.conditions.select(index)
        frame = replace(frame, frame_ids=torch.full_like(frame.frame_ids, -1))
        plate = self.sampler.plate
        if self.stage == "head":  # no torso yet: the head over the plate where the frame shows head
            is_head = torch.from_numpy(self.subject.labels(index) == LABEL_HEAD)[..., None]
            plate = torch.where(is_head, plate, torch.from_numpy(real))
        rendered = self.avatar.render_frame(frame, plate.to(self.device), with_torso=self.stage == "torso")
        rendered = rendered["rgb"].cpu().numpy()
        value = image_psnr(np.clip(rendered, 0, 1), real)
        minutes = self.elapsed / 60
        self.curve.append({"minutes": round(minutes, 3), "stage": self.stage, "step": self.step, "psnr": value})
        writer.add_scalar("val/psnr", value, self._global_step())
        self._write_curve()
        writer.add_image("val/real_rendered", np.concatenate([real, np.clip(rendered, 0, 1)], 1),
                         self._global_step(), dataformats="HWC")
        return value

    def _global_step(self) -> int:
        return self.step + (self.cfg.head_steps if self.stage == "torso" else 0)

    # --- main loop ---

    def run(self) -> Path:
        with loop.training_session(self.run_dir, self.cfg, self.save) as writer:
            if self.stage == "head":
                self._run_stage(writer)
                self.stage, self.step, self.head_seconds = "torso", 0, self.elapsed
                self.optimizer = self._stage_optimizer()
            self.avatar.head.requires_grad_(False)  # the torso learns around a frozen head
            self.avatar.pose_model.requires_grad_(False)
            self.avatar.pose_drift.requires_grad_(False)
            self.avatar.light.requires_grad_(False)
            self.avatar.light_change.requires_grad_(False)
            self.avatar.frozen_head_cache = {}  # a frozen Gaussian head is rasterised once per frame
            self._run_stage(writer)
            self.avatar.frozen_head_cache = None
            self.save(finished=True)
        console.print(f"[bold]trained[/] {self.run_dir} in {self.elapsed / 60:.1f} min")
        return self.run_dir

    def _run_stage(self, writer) -> None:
        from avatar3d.runtime import progress_callback

        steps, seconds = self._stage_limits()
        started = time.perf_counter() - self.elapsed
        with progress_callback(f"{self.stage} stage") as report:
            while self.step < steps and self._progress() < 1.0:
                logs = self._guarded_step(self._progress())
                self.step += 1
                self.elapsed = time.perf_counter() - started
                report(self.step, steps)
                if logs is not None and self.step % 10 == 0:
                    for key, value in logs.items():
                        writer.add_scalar(key, value, self._global_step())
                if self.step % self.cfg.validate_every == 0:
                    self.validate(writer)
                if self.step % self.cfg.checkpoint_every == 0:
                    self.save()
        self.validate(writer)
        self.save()

    def _write_curve(self) -> None:
        import json

        from avatar3d.files import atomic_path

        with atomic_path(self.run_dir / "curve.json") as partial:
            partial.write_text(json.dumps(self.curve, indent=1))


def train_render(cfg: RenderTrainConfig, device: torch.device) -> Path:
    """Trains (or resumes) a render run; returns its folder."""
    return RenderTrainer(cfg, device).run()
