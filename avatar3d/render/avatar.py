"""The avatar: head NeRF over image-space torso over a background, and its checkpoint.

Compositing, per pixel, with the head's colour ``c_h`` (premultiplied) and alpha
``a_h``, the torso's colour ``c_t`` and alpha ``a_t`` and a background ``b``::

    rgb   = c_h + (1 - a_h) * (a_t * c_t + (1 - a_t) * b)
    alpha = a_h + (1 - a_h) * a_t

The background is anything at render time: the subject's plate, an image, a colour, or
nothing (``alpha`` then makes an RGBA frame with premultiplied colour).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from avatar3d import config as config_io
from avatar3d import files
from avatar3d.camera import rodrigues
from avatar3d.errors import BadArgumentError, BadInputError
from avatar3d.files import CHECKPOINT
from avatar3d.layers import Standardise
from avatar3d.render.conditions import Conditions
from avatar3d.render.config import HeadConfig, MarchConfig, TorsoConfig
from avatar3d.render.head import HeadField
from avatar3d.render.rays import frame_pixels, pixel_rays
from avatar3d.render.torso import TorsoField, raw_head_code
from avatar3d.render.volume import OccupancyGrid, composite, march, ray_box_interval

CHECKPOINT_FORMAT = 5  # 2: pose and head-code statistics kept as Standardise modules; 3: pose drift curve;
# 4: the training poses' range, which the linear pose correction's inputs are clamped to; 5: the mouth
# opening is an input of the linear pose correction
POSE_CORRECTION_DIMS = 6
"""A pose correction: rotation vector (3, radians) and translation (3, / POSE_TRANSLATION_SCALE)."""
POSE_INPUT_DIMS = 7
"""Inputs of the linear pose correction: the fitted pose vector (6) and the mouth opening (1)."""
POSE_TRANSLATION_SCALE = 0.1
"""Head-space units per unit of the pose correction's translation (so one step size suits radians too)."""
Z_SHIFT = 5
"""The pose correction's shift along head z, towards the camera, which only the fitted pose may
drive: it has no constant term and does not follow the mouth (see `Avatar.camera_to_head`). A
mouth-driven one ran away like the constant one did (0.026 head-space units per standard
deviation of the mouth opening; held-out frames fell to 24.8 dB)."""
DRIFT_KNOT_FRAMES = 5
"""Frames between the knots of the pose drift curve (0.2 s at 25 fps)."""


class PoseDrift(nn.Module):
    """A training clip's pose-fit error as a piecewise-linear curve over the frame index.

    Fitted poses are wrong mostly by slow drift (tenths of a second and longer), so knots
    every `DRIFT_KNOT_FRAMES` frames can follow it. One free correction per frame could too,
    but a CPU budget visits each frame only about ten times, too few for it to converge;
    each knot is seen by all the frames around it.

    Args:
        num_frames: Frames of the clip (frame ids 0 .. num_frames - 1).
    """

    def __init__(self, num_frames: int):
        super().__init__()
        self.knots = nn.Parameter(torch.zeros(num_frames // DRIFT_KNOT_FRAMES + 2, POSE_CORRECTION_DIMS))

    def forward(self, frame_ids: Tensor) -> Tensor:
        """(B, POSE_CORRECTION_DIMS) corrections of frames (B,) long; 0 for frame id -1 (frames
        the avatar never trained on)."""
        position = frame_ids.clamp(min=0).to(self.knots.dtype) / DRIFT_KNOT_FRAMES
        left = position.floor().long()
        right_share = (position - left)[:, None]
        value = self.knots[left] * (1 - right_share) + self.knots[left + 1] * right_share
        return value * (frame_ids >= 0)[:, None].to(value)


class Avatar(nn.Module):
    """Head field, its occupancy grid and the torso field of one subject.

    Args:
        head: The head field (its box bounds the occupancy grid).
        torso: The torso field.
        K: (3, 3) intrinsics in pixels at ``resolution``.
        resolution: Frame side in pixels the avatar was trained at.
        march_config: Ray sampling settings.
    """

    def __init__(self, head: HeadField, torso: TorsoField, K: Tensor, resolution: int,
                 march_config: MarchConfig = MarchConfig()):
        super().__init__()
        self.head = head
        self.torso = torso
        self.march_config = march_config
        self.pose_model = nn.Linear(POSE_INPUT_DIMS, POSE_CORRECTION_DIMS)
        self.pose_drift = PoseDrift(head.appearance.num_embeddings)
        for weight in (self.pose_model.weight, self.pose_model.bias):
            nn.init.zeros_(weight)
        # Which weights and constant terms of pose_model may be non-zero (`Z_SHIFT`).
        weight_free, bias_free = torch.ones(POSE_CORRECTION_DIMS, POSE_INPUT_DIMS), torch.ones(POSE_CORRECTION_DIMS)
        weight_free[Z_SHIFT, -1] = bias_free[Z_SHIFT] = 0.0  # the last input is the mouth opening
        self.register_buffer("pose_weight_free", weight_free, persistent=False)
        self.register_buffer("pose_bias_free", bias_free, persistent=False)
        self.pose_code = Standardise(POSE_INPUT_DIMS)  # `pose_inputs` -> input of pose_model
        unbounded = torch.tensor([[-1e9], [1e9]]).expand(2, POSE_INPUT_DIMS).clone()
        self.register_buffer("pose_code_range", unbounded)  # set by fit_pose_code
        self.grid = OccupancyGrid(head.box_min, head.box_max, march_config.grid_resolution)
        self.register_buffer("K", K.float())
        self.resolution = int(resolution)
        diagonal = float((head.box_max - head.box_min).norm())
        self.step_size = diagonal / march_config.steps_per_diagonal
        self.max_samples = march_config.steps_per_diagonal + 1

    # --- head ---------------------------------------------------------------------------

    def render_head(self, origins: Tensor, directions: Tensor, counts: list[int], codes: dict[str, Tensor],
                    jitter: bool = False, coarse: int = 1, surface: Tensor | None = None) -> dict[str, Tensor]:
        """Volume-renders the head along rays grouped by frame.

        Args:
            origins, directions: (R, 3) head-space rays (unit directions).
            counts: Rays per frame (B ints summing to R), in the order of ``codes``.
            codes: ``head.frame_codes`` of the B frames.
            jitter: Randomly offset samples along each ray (training).
            coarse: Sample spacing factor (> 1 early in training, while the occupancy grid
                is not carved yet and rays cross the whole box).
            surface: (R,) distance along each ray to a known surface (+inf where unknown),
                for a depth prior.

        Returns:
            ``rgb`` (R, 3) premultiplied colour, ``alpha`` (R,), ``depth`` (R,) ray
            parameter of the expected hit (head-space units), ``ambient`` (N, A) the
            ambient coordinates of the N evaluated samples; with ``surface`` also
            ``surface_spread`` (R,): ``sum_i w_i |t_i - surface|``, how far the ray's
            weight lies from the surface (0 where unknown). Unlike the expected depth, it
            cannot be matched by weight split in front of and behind the surface, and it
            pulls on every sample in front of it directly.
        """
        # Only rays that cross the box are marched: the padded (R, S) layout would pay for every slot.
        t_enter, t_exit = ray_box_interval(origins, directions, self.grid.box_min, self.grid.box_max)
        hits = t_exit > t_enter.clamp(min=0.0)
        ray_ids = hits.nonzero()[:, 0]
        frame_of_ray = torch.repeat_interleave(torch.arange(len(counts), device=origins.device),
                                               torch.tensor(counts, device=origins.device))
        counts = torch.bincount(frame_of_ray[ray_ids], minlength=len(counts)).tolist()
        all_origins, origins, directions = origins, origins[ray_ids], directions[ray_ids]
        t_starts, t_ends, valid = march(origins, directions, self.grid, 0.0, 1e4, self.step_size * coarse,
                                        self.max_samples // coarse + 1, jitter, self.march_config.surface_band)
        used = int(valid.any(0).nonzero().max()) + 1 if valid.any() else 1
        t_starts, t_ends, valid = t_starts[:, :used], t_ends[:, :used], valid[:, :used]
        mids = (t_starts + t_ends) / 2
        points = (origins[:, None] + directions[:, None] * mids[..., None])[valid]
        sample_dirs = directions[:, None].expand(-1, used, -1)[valid]
        per_ray = valid.sum(1)
        sample_counts = [int(part.sum()) for part in per_ray.split(counts)]
        density, colour, ambient = self.head(points, sample_dirs, sample_counts, codes)
        densities = t_starts.new_zeros(t_starts.shape).index_put((valid,), density)
        colours = t_starts.new_zeros(*t_starts.shape, 3).index_put((valid,), colour)
        out = composite(densities, colours, t_starts, t_ends, valid)
        # Rays that miss the box stay empty: alpha 0, colour 0, depth 0.
        zeros = all_origins.new_zeros(len(all_origins))
        result = {"rgb": all_origins.new_zeros(len(all_origins), 3).index_put((ray_ids,), out["rgb"]),
                  "alpha": zeros.index_put((ray_ids,), out["opacity"]),
                  "depth": zeros.index_put((ray_ids,), out["depth"]), "ambient": ambient}
        if surface is not None:
            target = surface[ray_ids, None]
            gap = torch.where(torch.isfinite(target), mids - target, torch.zeros_like(mids)).abs()
            result["surface_spread"] = zeros.index_put((ray_ids,), (out["weights"] * gap).sum(1))
        return result

    @staticmethod
    def pose_inputs(conditions: Conditions) -> Tensor:
        """(B, POSE_INPUT_DIMS) what the linear pose correction is a function of: the fitted
        pose vector (`Conditions.pose_vector`) and the mouth opening. The fit's pose errs with
        the mouth: MediaPipe's depth of the upper face shifts as the jaw opens, and the 2-D
        landmarks barely tell a pitch from a vertical shift (on the 30 s virtual actor the
        fitted pitch was off by 1.3 degrees, correlation -0.83 with the mouth opening)."""
        return torch.cat([conditions.pose_vector(), conditions.mouth_opening()[:, None]], 1)

    @torch.no_grad()
    def fit_pose_code(self, training: Conditions) -> None:
        """Takes the linear pose correction's input statistics and range from the training frames."""
        inputs = self.pose_inputs(training)
        self.pose_code.fit(inputs)
        codes = self.pose_code(inputs)
        self.pose_code_range.copy_(torch.stack([codes.min(0).values, codes.max(0).values]))

    def pose_correction(self, conditions: Conditions) -> tuple[Tensor, Tensor]:
        """The two parts (B, POSE_CORRECTION_DIMS) each of the learnt pose corrections of
        frames: the linear function of `pose_inputs`, and the drift curve (0 for frames
        never trained on); see `camera_to_head`."""
        code = self.pose_code(self.pose_inputs(conditions))
        code = torch.clamp(code, self.pose_code_range[0], self.pose_code_range[1])
        linear = nn.functional.linear(code, self.pose_model.weight * self.pose_weight_free,
                                      self.pose_model.bias * self.pose_bias_free)
        return linear, self.pose_drift(conditions.frame_ids)

    def camera_to_head(self, conditions: Conditions) -> tuple[Tensor, Tensor]:
        """Camera-to-head transforms (B, 3, 3), (B, 3) of frames, with the learnt pose correction.

        Poses fitted to the landmarks of a near-frontal face are uncertain by about a degree,
        mostly along ambiguities (a pitch looks much like a vertical shift), which is a pixel
        of disagreement between frames at the hair and ears. The head pose therefore gets a
        small learnt correction ``x -> R_d x + t_d``: a linear function of the fitted pose
        and the mouth opening (`pose_inputs`; held-out and driven frames get it too), plus,
        for training frames, the slow drift of the fit over the clip (`PoseDrift`, zero at the
        start, regularised to stay small). Frames the avatar never trained on (``frame_ids``
        -1) get the linear part only.

        Two things keep the linear part from running away (once it moved the camera by 10 %
        of its distance over a clip and held-out frames fell to 19 dB; commits 742a29c, c2bbc56):
        - its shift along head z, towards the camera, has no constant term and does not follow
          the mouth (`Z_SHIFT`): moving every camera along its view and scaling the field to match gives
          the same images, so nothing would hold such a shift in place;
        - its inputs are clamped to the training frames' range (`fit_pose_code`), so frames
          posed beyond it get the correction of the nearest trained pose, not an extrapolation.
        """
        R, t = conditions.camera_to_head()
        delta = sum(self.pose_correction(conditions))
        R_d = rodrigues(delta[:, :3])
        t_d = delta[:, 3:] * POSE_TRANSLATION_SCALE
        R_inv = R_d.transpose(1, 2)
        return R_inv @ R, (R_inv @ (t - t_d)[:, :, None])[:, :, 0]

    def head_rays(self, pixels: Tensor, conditions: Conditions) -> tuple[Tensor, Tensor, list[int]]:
        """Head-space rays through pixels of B frames.

        Args:
            pixels: (B, P, 2) pixel positions (u, v) at the avatar's resolution.
            conditions: The B frames.

        Returns:
            ``(origins, directions, counts)``: (B*P, 3) each, grouped by frame, and [P]*B.
        """
        R, t = self.camera_to_head(conditions)
        rays = [pixel_rays(self.K, (R[b], t[b]), pixels[b]) for b in range(len(pixels))]
        return (torch.cat([o for o, _ in rays]), torch.cat([d for _, d in rays]),
                [pixels.shape[1]] * len(pixels))

    @torch.no_grad()
    def update_grid(self, conditions: Conditions, step: int, every: int = 16, share: float = 1.0) -> None:
        """Refreshes the occupancy grid with one random frame's expression (EMA max over frames).

        Args:
            conditions: Frames to draw the expression from.
            step: Training step; only every ``every``-th step updates.
            share: Fraction of the cells refreshed (random cells when below 1).
        """
        if step % every:
            return
        frame = conditions.select(int(torch.randint(len(conditions), ())))
        codes = self.head.frame_codes(frame)
        cells = None if share >= 1 else int(share * self.grid.resolution**3)
        self.grid.update(lambda points: self.head.density(points, [len(points)], codes), step, every, cells)

    # --- whole frames -------------------------------------------------------------------

    def render_pixels(self, pixels: Tensor, conditions: Conditions, background: Tensor | None,
                      with_torso: bool = True, jitter: bool = False, coarse: int = 1,
                      surface: Tensor | None = None) -> dict[str, Tensor]:
        """Composited colour of pixels of B frames.

        Args:
            pixels: (B, P, 2) pixel positions (u, v).
            conditions: The B frames.
            background: (B, P, 3) colours behind the avatar, or None for none (black,
                with ``alpha`` for an RGBA result).
            with_torso: False renders the head alone over the background.
            jitter: Jitter head samples (training).
            coarse: Head sample spacing factor (see `render_head`).
            surface: (B*P,) known surface distances for a depth prior (see `render_head`).

        Returns:
            (B*P, ...) tensors: ``rgb``, ``alpha``, ``head_rgb``, ``head_alpha``,
            ``depth`` and, with the torso, ``torso_rgb`` and ``torso_alpha``; ``ambient``;
            ``surface_spread`` with ``surface``.
        """
        origins, directions, counts = self.head_rays(pixels, conditions)
        head = self.render_head(origins, directions, counts, self.head.frame_codes(conditions), jitter, coarse,
                                surface)
        behind = pixels.new_zeros(len(origins), 3) if background is None else background.reshape(-1, 3)
        out = {"head_rgb": head["rgb"], "head_alpha": head["alpha"], "depth": head["depth"],
               "ambient": head["ambient"]}
        if surface is not None:
            out["surface_spread"] = head["surface_spread"]
        under_alpha = torch.zeros_like(head["alpha"])
        if with_torso:
            code = self.torso.head_code(raw_head_code(conditions, self.K, self.resolution))
            uv = pixels.reshape(-1, 2) / self.resolution
            torso_rgb, torso_alpha = self.torso(uv, counts, code, head["alpha"])
            behind = torso_alpha[:, None] * torso_rgb + (1 - torso_alpha[:, None]) * behind
            under_alpha = torso_alpha
            out.update(torso_rgb=torso_rgb, torso_alpha=torso_alpha)
        out["rgb"] = head["rgb"] + (1 - head["alpha"][:, None]) * behind
        out["alpha"] = head["alpha"] + (1 - head["alpha"]) * under_alpha
        return out

    @torch.no_grad()
    def render_frame(self, conditions: Conditions, background: Tensor | None = None,
                     resolution: int | None = None, with_torso: bool = True,
                     chunk: int = 8192) -> dict[str, Tensor]:
        """Renders one whole frame.

        Args:
            conditions: One frame (length 1).
            background: (H, W, 3) image in [0, 1], or None (transparent).
            resolution: Output side in pixels; the training resolution when None (the
                intrinsics are scaled with it).
            with_torso: False renders the head alone over the background.
            chunk: Rays per batch (bounds memory).

        Returns:
            (H, W, C) float tensors: ``rgb`` (3), ``alpha`` (1), ``depth`` (1, head-space
            distance from the camera where the head is, else 0), ``head_alpha`` (1).
        """
        size = resolution or self.resolution
        scale = size / self.resolution
        pixels = frame_pixels(size, size).to(self.K.device) / scale  # back to training pixel units
        flat_bg = None if background is None else background.reshape(-1, 3).to(self.K)
        parts = []
        for start in range(0, len(pixels), chunk):
            part = pixels[start:start + chunk][None]
            bg = None if flat_bg is None else flat_bg[start:start + chunk][None]
            parts.append(self.render_pixels(part, conditions, bg, with_torso))
        out = {key: torch.cat([p[key] for p in parts]) for key in ("rgb", "alpha", "depth", "head_alpha")}
        out["depth"] = torch.where(out["head_alpha"] > 0.5, out["depth"], torch.zeros_like(out["depth"]))
        return {key: value.reshape(size, size, -1) for key, value in out.items()}

    # --- checkpoint ---------------------------------------------------------------------

    def payload(self) -> dict:
        """Everything needed to rebuild the avatar: configs and tensors only (weights_only-safe)."""
        return {"format": CHECKPOINT_FORMAT, "resolution": self.resolution,
                "head_config": asdict(self.head.config), "torso_config": asdict(self.torso.config),
                "march_config": asdict(self.march_config),
                "num_frames": self.head.appearance.num_embeddings, "state": self.state_dict()}

    @classmethod
    def from_payload(cls, payload: dict, source: Path | str = "checkpoint") -> "Avatar":
        """Rebuilds an avatar from `payload`; BadInputError naming ``source`` if it does not fit."""
        try:
            if payload.get("format") != CHECKPOINT_FORMAT:
                raise BadInputError(f"{source}: checkpoint format {payload.get('format')} is not "
                                    f"{CHECKPOINT_FORMAT}; train again with `avatar3d train render`")
            state = payload["state"]
            head = HeadField(config_io.build(HeadConfig, payload["head_config"]), state["head.box_min"],
                             state["head.box_max"], state["head.canonical"], state["head.warp_index"],
                             int(payload["num_frames"]))
            torso = TorsoField(config_io.build(TorsoConfig, payload["torso_config"]))
            march = config_io.build(MarchConfig, payload["march_config"])
            avatar = cls(head, torso, state["K"], int(payload["resolution"]), march)
            avatar.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, BadArgumentError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise BadInputError(f"{source} is not a usable avatar checkpoint ({message}); "
                                "train again with `avatar3d train render`") from None
        return avatar



# --- runs ------------------------------------------------------------------------------------


def load_checkpoint(path: Path) -> dict:
    """`avatar3d.files.load_checkpoint` of a render checkpoint."""
    return files.load_checkpoint(path, "avatar3d train render SUBJECT")


def find_run(subject_root: Path, run: Path | None, runs: Path = Path("runs")) -> Path:
    """``run`` if given, else the subject's newest finished render run.

    Raises:
        BadInputError: No such run, or it has no checkpoint (naming the command to run).
    """
    if run is None:
        run = files.newest_finished_run(runs, "render", subject_root)
        if run is None:
            raise BadInputError(f"no finished render run for {subject_root} under "
                                f"{files.runs_folder(runs, 'render', subject_root)}; "
                                f"run `avatar3d train render {subject_root}` first (or pass --run)")
        return run
    if not (Path(run) / CHECKPOINT).exists():
        raise BadInputError(f"{run} has no {CHECKPOINT}; run `avatar3d train render {subject_root} --run {run}`")
    return Path(run)


def load_avatar(run: Path, device=None) -> Avatar:
    """The avatar of a run folder, in eval mode on ``device``."""
    path = Path(run) / CHECKPOINT
    payload = load_checkpoint(path)
    if "avatar" not in payload:
        raise BadInputError(f"{path} holds no avatar; train again with `avatar3d train render`")
    return Avatar.from_payload(payload["avatar"], path).to(device or "cpu").eval()
