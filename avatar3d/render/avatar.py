"""The avatar: head NeRF over image-space torso over a background, lit, and its checkpoint.

**Light.** Both parts are albedo x shading: the head's albedo, normal and view-dependent
residual are volume-rendered per pixel (premultiplied ``A_h``, ``N_h``, ``r_h``), then
shaded there, deferred, by order-2 SH light in camera space (`avatar3d.render.sh`): the
clip's own light, learnt with the head, plus a small learnt change per training frame
(flicker, the actor moving through the light), or any other light at render time::

    c_h = A_h * shade(N_h, light) + r_h          c_t = A_t * shade(n_t, light)

Albedo and light are known only up to a common scale; a new light is applied to the albedo
scaled so that the clip's light shades front-facing normals by 1 on average
(`Avatar.albedo_scale`), the scale of the light presets, so ``studio`` looks about as bright
as a studio-lit clip.

**Compositing**, per pixel, with the torso's alpha ``a_t``, the head's ``a_h`` and a
background ``b``::

    rgb   = c_h + (1 - a_h) * (a_t * c_t + (1 - a_t) * b)
    alpha = a_h + (1 - a_h) * a_t

The background is anything at render time: the subject's plate, an image, a colour, or
nothing (``alpha`` then makes an RGBA frame with premultiplied colour).

**Other viewpoints** (`View`, the viewer's camera): the head is rendered in 3D from the new
camera; the torso and the background, image-space layers of the filmed view, are seen as a
card facing the filmed camera at the head's depth; the light stays fixed to the filmed camera,
where the clip's was, so turning the view turns the head under a still light; and the
view-dependent residual is the one the filmed camera sees (footage shows no other directions:
asked about them, the residual tinted the head by 0.19 at 30 degrees, against 0.02 head-on).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from avatar3d import config as config_io
from avatar3d import files
from avatar3d.camera import project, rodrigues
from avatar3d.errors import BadArgumentError, BadInputError
from avatar3d.files import CHECKPOINT
from avatar3d.layers import Standardise
from avatar3d.render.conditions import Conditions
from avatar3d.render.config import GaussianConfig, HeadConfig, MarchConfig, TorsoConfig
from avatar3d.render.gaussians import GaussianHead, facing
from avatar3d.render.head import HeadField
from avatar3d.render.rays import camera_directions, frame_pixels, pixel_rays
from avatar3d.render.sh import LIGHT_PRESETS, front_luminance, shade
from avatar3d.render.splat import project as project_gaussians
from avatar3d.render.splat import rasterize
from avatar3d.render.torso import TorsoField, raw_head_code
from avatar3d.render.volume import OccupancyGrid, composite, march
from cuda_ext.torch_impl import ray_box_interval

CHECKPOINT_FORMATS = {"nerf": 7, "gaussians": 6}
"""Each head backend's checkpoint format, raised when what it saves changes, so that a change to
one backend leaves the other's runs loadable. NeRF: 2, pose and head-code statistics kept as
Standardise modules; 3, pose drift curve; 4, the training poses' range, which the linear pose
correction's inputs are clamped to; 5, the mouth opening is an input of the linear pose correction;
6, albedo, normals and light (relightable); 7, a second hidden layer in the albedo network.
Gaussians: 6, the first."""


def checkpoint_format(payload: dict) -> int:
    """The format an avatar checkpoint's ``payload`` must have to load: its backend's current one."""
    return CHECKPOINT_FORMATS.get(payload.get("backend", "nerf"), CHECKPOINT_FORMATS["nerf"])


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
FROZEN_HEAD_FRAMES = 64
"""Frames `Avatar.frozen_head_cache` holds (the sampler's pool is 48; 2 MB a frame at 256²)."""
DRIFT_KNOT_FRAMES = 5
"""Frames between the knots of the pose drift curve (0.2 s at 25 fps)."""
NORMAL_STEP = 0.02
"""Finite-difference step of the density gradient that the predicted normals are tied to off
the face, head-space units (13 % of a face width: the shape of hair and ears at the scale of
centimetres, not the noise of the hash grid's finer cells)."""
UNSEEN_WEIGHT = 1e-3
"""Of each NeRF head ray of a whole frame (`Avatar.render_frame`), up to this much weight may go
unshaded (`Avatar._composite_seen`): a channel in [0, 1] changes by at most half an 8-bit step."""


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


@dataclass(frozen=True)
class View:
    """A camera other than the filmed one (the viewer's), for `Avatar.render_frame`.

    Attributes:
        K: (3, 3) intrinsics in pixels of its ``width`` x ``height`` image.
        rotation: (3, 3) and
        position: (3,) its camera-to-filmed-camera transform, ``p_filmed = rotation @ p + position``,
            both cameras with the axes of `avatar3d.render.rays` (x right, y up, looking along -z).
        width, height: Image size in pixels.
    """

    K: Tensor
    rotation: Tensor
    position: Tensor
    width: int
    height: int

    def to(self, device) -> "View":
        return View(self.K.to(device), self.rotation.to(device), self.position.to(device), self.width, self.height)

    def card_pixels(self, pixels: Tensor, card_depth: float, K_filmed: Tensor, filmed_size: int
                    ) -> tuple[Tensor, Tensor]:
        """Where this view's pixels see a card facing the filmed camera at ``card_depth``.

        Args:
            pixels: (P, 2) pixel positions in this view.
            card_depth: The card's distance from the filmed camera along its axis (> 0).
            K_filmed: (3, 3) the filmed camera's intrinsics at ``filmed_size``.
            filmed_size: The filmed image's side in pixels.

        Returns:
            ``(uv, on_card)``: (P, 2) positions in the filmed image (clamped to its edges),
            (P,) bool: the ray meets the card in front of this camera, within the filmed image.
        """
        directions = camera_directions(self.K, pixels) @ self.rotation.to(pixels).T
        position = self.position.to(pixels)
        along = (-card_depth - position[2]) / torch.where(directions[:, 2].abs() > 1e-9, directions[:, 2],
                                                          torch.full_like(directions[:, 2], 1e-9))
        uv = project(position + along[:, None] * directions, K_filmed)[:, :2]
        on_card = (along > 0) & (uv >= 0).all(1) & (uv <= filmed_size).all(1)
        return torch.nan_to_num(uv).clamp(0, filmed_size), on_card


class Avatar(nn.Module):
    """The head (a NeRF with its occupancy grid, or 3D Gaussians), the torso field and the
    light of one subject.

    Args:
        head: The head: a `HeadField` (its box bounds the occupancy grid) or a `GaussianHead`.
        torso: The torso field.
        K: (3, 3) intrinsics in pixels at ``resolution``.
        resolution: Frame side in pixels the avatar was trained at.
        march_config: Ray sampling settings.
    """

    def __init__(self, head: HeadField | GaussianHead, torso: TorsoField, K: Tensor, resolution: int,
                 march_config: MarchConfig = MarchConfig()):
        super().__init__()
        self.head = head
        self.torso = torso
        self.march_config = march_config
        self.pose_model = nn.Linear(POSE_INPUT_DIMS, POSE_CORRECTION_DIMS)
        self.pose_drift = PoseDrift(head.num_frames)
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
        self.light = nn.Parameter(LIGHT_PRESETS["neutral"].clone())  # (9, 3) the clip's light, camera space
        self.light_change = nn.Embedding(head.num_frames, 27)  # per training frame, (9, 3) flat
        nn.init.zeros_(self.light_change.weight)
        self.backend = "gaussians" if isinstance(head, GaussianHead) else "nerf"
        self.frozen_head_cache: dict[int, Tensor] | None = None
        """Training frames' rasterised Gaussian heads by frame id, while the head is frozen (the
        torso stage sets it to {}): the same frames come back often from the sampler's pool."""
        self.grid = OccupancyGrid(head.box_min, head.box_max, march_config.grid_resolution) if self.backend == "nerf" else None
        self.register_buffer("K", K.float())
        self.resolution = int(resolution)
        diagonal = float((head.box_max - head.box_min).norm())
        self.step_size = diagonal / march_config.steps_per_diagonal
        self.max_samples = march_config.steps_per_diagonal + 1

    # --- head ---------------------------------------------------------------------------

    def render_head(self, origins: Tensor, directions: Tensor, counts: list[int], codes: dict[str, Tensor],
                    to_camera: Tensor, lights: Tensor, jitter: bool = False, coarse: int = 1,
                    surface: Tensor | None = None, regularise: bool = False,
                    seen_from: Tensor | None = None, unseen_weight: float = 0.0) -> dict[str, Tensor]:
        """Volume-renders the head along rays grouped by frame, and shades it.

        Args:
            origins, directions: (R, 3) head-space rays (unit directions).
            counts: Rays per frame (B ints summing to R), in the order of ``codes``.
            codes: ``head.frame_codes`` of the B frames.
            to_camera: (B, 3, 3) head-to-camera rotations of the frames (the normals' frame).
            lights: (B, 9, 3) SH shading coefficients of the frames (`frame_lights`).
            jitter: Randomly offset samples along each ray (training).
            coarse: Sample spacing factor (> 1 early in training, while the occupancy grid
                is not carved yet and rays cross the whole box).
            surface: (R,) distance along each ray to a known surface (+inf where unknown),
                for a depth prior.
            regularise: Also return the training terms that tie normals and albedo down.
            seen_from: (B, 3) a head-space point per frame from which the view-dependent
                residual sees the samples (the filmed camera's centre when rendering another
                view: footage shows no other directions, and from them the residual guesses
                wildly); None: along the rays.
            unseen_weight: Up to this much of each ray's weight may go unshaded (`_composite_seen`),
                which changes each channel by at most as much; 0 shades every sample (training).

        Returns:
            (R, ...) tensors: ``rgb`` premultiplied colour, ``alpha``, ``depth`` (ray
            parameter of the expected hit, head-space units), premultiplied ``albedo``,
            ``normal`` (camera space) and ``residual``, ``diffuse`` = albedo x shading;
            ``ambient`` (N, A) the ambient coordinates of the N evaluated samples. With
            ``surface`` also ``surface_spread``: ``sum_i w_i |t_i - surface|``, how far
            the ray's weight lies from the surface (0 where unknown; unlike the expected
            depth, it cannot be matched by weight split in front of and behind the surface).
            With ``regularise``: ``orientation`` (R,) ``sum_i w_i max(0, n_i . d)^2``
            (normals facing away from the camera); ``normal_error`` (R,) 1 - cos between
            the rendered normal and the density's gradient at the expected hit (0 where
            alpha < 0.5); ``asymmetry``, a scalar (`_albedo_asymmetry`).
        """
        # Only rays that cross the box are marched: the padded (R, S) layout would pay for every slot.
        t_enter, t_exit = ray_box_interval(origins, directions, self.grid.box_min, self.grid.box_max)
        hits = t_exit > t_enter.clamp(min=0.0)
        ray_ids = hits.nonzero()[:, 0]
        frame_of_ray = torch.repeat_interleave(torch.arange(len(counts), device=origins.device),
                                               torch.tensor(counts, device=origins.device))
        hit_frame = frame_of_ray[ray_ids]
        counts = torch.bincount(hit_frame, minlength=len(counts)).tolist()
        all_origins, origins, directions = origins, origins[ray_ids], directions[ray_ids]
        t_starts, t_ends, valid = march(origins, directions, self.grid, 0.0, 1e4, self.step_size * coarse,
                                        self.max_samples // coarse + 1, jitter, self.march_config.surface_band)
        per_ray = valid.sum(1)  # the valid samples come first in each ray's slots
        used = max(int(per_ray.max()), 1) if len(per_ray) else 1
        t_starts, t_ends, valid = t_starts[:, :used], t_ends[:, :used], valid[:, :used]
        mids = (t_starts + t_ends) / 2
        points = (origins[:, None] + directions[:, None] * mids[..., None])[valid]
        sample_dirs = directions[:, None].expand(-1, used, -1)[valid]
        sample_counts = [int(part.sum()) for part in per_ray.split(counts)]
        residual_dirs = sample_dirs
        if seen_from is not None:
            sample_frame = hit_frame[:, None].expand(-1, used)[valid]
            residual_dirs = nn.functional.normalize(points - seen_from[sample_frame], dim=-1)
        if unseen_weight > 0:
            out, ambient = self._composite_seen(points, residual_dirs, sample_counts, codes, t_starts, t_ends, valid,
                                                per_ray, unseen_weight)
        else:
            field = self.head(points, residual_dirs, sample_counts, codes)
            channels = [field.albedo, field.normal, field.residual]
            if regularise:
                channels.append(((field.normal * sample_dirs).sum(-1, keepdim=True).clamp(min=0)).square())
            out, ambient = composite(field.density, torch.cat(channels, 1), t_starts, t_ends, valid), field.ambient
        albedo, normal_head, residual = out["rgb"][:, :3], out["rgb"][:, 3:6], out["rgb"][:, 6:9]
        normal = (to_camera[hit_frame] @ normal_head[:, :, None])[:, :, 0]
        diffuse = albedo * shade(nn.functional.normalize(normal, dim=-1, eps=1e-6), lights[hit_frame])
        # Rays that miss the box stay empty: alpha 0, colour 0, depth 0.
        everywhere = len(all_origins)

        def spread(values: Tensor) -> Tensor:
            return values.new_zeros(everywhere, *values.shape[1:]).index_put((ray_ids,), values)

        result = {"rgb": spread(diffuse + residual), "alpha": spread(out["opacity"]), "depth": spread(out["depth"]),
                  "albedo": spread(albedo), "normal": spread(normal), "residual": spread(residual),
                  "diffuse": spread(diffuse), "ambient": ambient}
        if surface is not None:
            target = surface[ray_ids, None]
            gap = torch.where(torch.isfinite(target), mids - target, torch.zeros_like(mids)).abs()
            result["surface_spread"] = spread((out["weights"] * gap).sum(1))
        if regularise:
            result.update(self._surface_terms(origins, directions, out, normal_head, hit_frame, counts, codes, spread))
        return result

    def _composite_seen(self, points: Tensor, directions: Tensor, counts: list[int], codes: dict[str, Tensor],
                        t_starts: Tensor, t_ends: Tensor, valid: Tensor, per_ray: Tensor, unseen_weight: float
                        ) -> tuple[dict[str, Tensor], Tensor]:
        """`composite`'s result for the marched samples (`render_head`'s) with albedo, normal and
        residual evaluated only at the samples that can be seen. Most samples of a whole frame
        have weights of 1e-4 or less (in near-empty space, or behind the surface), and the colour
        networks cost more than the density; so the density comes first, and a sample of a ray
        with n samples is shaded where its weight is at least ``unseen_weight / n``: the
        unshaded weight of a ray stays below ``unseen_weight``.

        Args:
            points, directions: (N, 3) head-space samples and the directions the residual sees
                them from, grouped by frame (``counts``); ``codes``: their frames'.
            t_starts, t_ends, valid: (R, S) the samples' intervals and slots (`march`).
            per_ray: (R,) samples per ray, ``valid.sum(1)``.
            unseen_weight: The most weight per ray left unshaded.

        Returns:
            ``(out, ambient)``: `composite`'s dict (``rgb`` (R, 9): albedo, normal and residual)
            and the samples' (N, A) ambient coordinates.
        """
        neutral, ambient, raw, frame = self.head.features(points, counts, codes)
        out = composite(self.head.density_of(raw), raw.new_zeros(len(raw), 0), t_starts, t_ends, valid)
        weights = out["weights"][valid]
        ray = torch.repeat_interleave(torch.arange(len(per_ray), device=per_ray.device), per_ray)
        seen = (weights >= unseen_weight / per_ray[ray]).nonzero()[:, 0]
        shaded = self.head.shading_terms(neutral[seen], raw[seen], directions[seen], codes["appearance"][frame[seen]])
        channels = torch.cat(shaded, 1) * weights[seen, None]
        out["rgb"] = channels.new_zeros(len(valid), channels.shape[1]).index_add_(0, ray[seen], channels)
        return out, ambient

    def _surface_terms(self, origins: Tensor, directions: Tensor, out: dict[str, Tensor], normal_head: Tensor,
                       hit_frame: Tensor, counts: list[int], codes: dict[str, Tensor], spread) -> dict[str, Tensor]:
        """The training terms of `render_head` (its ``regularise``), from the marched rays
        (head space), their compositing ``out``, rendered head-space normals and frames."""
        solid = out["opacity"] > 0.5  # rays that hit the head: their expected depth is a surface point
        points = (origins[solid] + directions[solid] * out["depth"][solid, None]).detach()
        solid_counts = torch.bincount(hit_frame[solid], minlength=len(counts)).tolist()
        rendered = nn.functional.normalize(normal_head[solid], dim=-1, eps=1e-6)
        gradient_normal = self._density_normal(points, solid_counts, codes)
        cosine = torch.zeros_like(out["opacity"]).index_put((solid.nonzero()[:, 0],), (rendered * gradient_normal).sum(-1))
        return {"orientation": spread(out["rgb"][:, 9]), "normal_error": spread(torch.where(solid, 1 - cosine, 0.0)),
                "asymmetry": self._albedo_asymmetry(points, solid_counts, codes)}

    @torch.no_grad()
    def _density_normal(self, points: Tensor, counts: list[int], codes: dict[str, Tensor]) -> Tensor:
        """(M, 3) unit outward normals: minus the log density's gradient at head-space points
        (M, 3) grouped by frame, by central differences of step `NORMAL_STEP`."""
        if not len(points):
            return points
        steps = torch.eye(3, device=points.device).repeat_interleave(2, 0) * torch.tensor(
            [NORMAL_STEP, -NORMAL_STEP] * 3, device=points.device)[:, None]  # +x, -x, +y, -y, +z, -z
        probes = (points[:, None] + steps).reshape(-1, 3)  # each point's six probes stay with its frame
        log_density = self.head.density(probes, [6 * n for n in counts], codes).clamp(min=1e-6).log().reshape(-1, 3, 2)
        return -nn.functional.normalize(log_density[..., 0] - log_density[..., 1], dim=-1, eps=1e-9)

    def _albedo_asymmetry(self, points: Tensor, counts: list[int], codes: dict[str, Tensor]) -> Tensor:
        """Mean |albedo(x) - albedo(mirrored x)| over head-space surface points (M, 3), grouped
        by frame, whose neutral position x lies in front of the face (`HeadField.in_front_of_face`;
        the field may paint the face in front of where it is): a face's albedo is about
        symmetric, its shading under a light from one side is not."""
        neutral = self.head.warp(points, counts, codes)
        on_face = self.head.in_front_of_face(neutral)
        if not bool(on_face.any()):
            return points.new_zeros(())
        frame = torch.repeat_interleave(torch.arange(len(counts), device=points.device),
                                        torch.tensor(counts, device=points.device))
        face_counts = torch.bincount(frame[on_face], minlength=len(counts)).tolist()
        both = torch.cat([neutral[on_face], self.head.mirrored(neutral[on_face])])
        albedo = self.head.neutral_albedo(both, face_counts * 2,
                                          {key: value.repeat(2, *[1] * (value.ndim - 1)) for key, value in codes.items()})
        face, mirror = albedo.chunk(2)
        return (face - mirror).abs().mean()

    def splat_head(self, pixels: Tensor, codes: dict[str, Tensor], camera_to_head: tuple[Tensor, Tensor],
                   to_camera: Tensor, lights: Tensor, view: View | None = None,
                   frame_ids: Tensor | None = None) -> dict[str, Tensor]:
        """The Gaussian head's counterpart of `render_head`: rasterises each frame's Gaussians
        whole and shades them per pixel the same way.

        Args:
            pixels: (B, P, 2) pixel centres of the filmed image or of ``view``.
            codes: ``head.frame_codes`` of the B frames.
            camera_to_head: The frames' filmed camera-to-head transforms (`camera_to_head`).
            to_camera: (B, 3, 3) head-to-filmed-camera rotations (the normals' frame).
            lights: (B, 9, 3) SH shading coefficients of the frames.
            view: Another camera than the filmed one, or None.
            frame_ids: (B,) the frames' ids, to look them up in `frozen_head_cache` when it is on.

        Returns:
            (B*P, ...) tensors: ``rgb`` premultiplied colour, ``alpha``, ``depth`` (distance
            from the camera, head-space units), premultiplied ``albedo``, ``normal`` (filmed
            camera space), ``residual`` (0: the Gaussians have none) and ``diffuse``.
        """
        R, t, K, width, height = self.viewing_camera(camera_to_head, view)
        images, encoded = [], None
        for b in range(len(pixels)):
            key = None if self.frozen_head_cache is None or view is not None or frame_ids is None else int(frame_ids[b])
            if key is not None and key in self.frozen_head_cache:
                images.append(self.frozen_head_cache[key])
                continue
            encoded = self.head.encode() if encoded is None else encoded
            images.append(self._splatted(self.head.posed(codes, b, encoded), R[b], t[b], K, width, height, to_camera[b]))
            if key is not None and key >= 0:
                if len(self.frozen_head_cache) >= FROZEN_HEAD_FRAMES:
                    self.frozen_head_cache.pop(next(iter(self.frozen_head_cache)))
                self.frozen_head_cache[key] = images[-1].detach()
        cols = pixels[..., 0].long().clamp(0, width - 1)
        rows = pixels[..., 1].long().clamp(0, height - 1)
        seen = torch.stack(images).gather(1, (rows * width + cols)[..., None].expand(-1, -1, 8)).reshape(-1, 8)
        albedo, normal, alpha = seen[:, :3], seen[:, 3:6], seen[:, 7]
        frame = torch.arange(len(pixels), device=pixels.device).repeat_interleave(pixels.shape[1])
        diffuse = albedo * shade(nn.functional.normalize(normal, dim=-1, eps=1e-6), lights[frame])
        depth = torch.where(alpha > 1e-6, seen[:, 6] / alpha.clamp(min=1e-6), torch.zeros_like(alpha))
        return {"rgb": diffuse, "alpha": alpha, "depth": depth, "albedo": albedo, "normal": normal,
                "residual": torch.zeros_like(diffuse), "diffuse": diffuse}

    @staticmethod
    def _splatted(gaussians: dict[str, Tensor], R: Tensor, t: Tensor, K: Tensor, width: int, height: int,
                  to_camera: Tensor) -> Tensor:
        """(H*W, 8) one frame's posed Gaussians (`GaussianHead.posed`) rasterised by a camera
        (camera-to-head ``R`` (3, 3), ``t`` (3,), intrinsics ``K``): premultiplied albedo (3),
        normal in the frame of ``to_camera`` (3, 3), distance from the camera (1), alpha (1)."""
        rotation = R.T  # head -> camera
        projected = project_gaussians(gaussians["means"], gaussians["covariances"], K, rotation, -rotation @ t,
                                      width, height, opacities=gaussians["opacities"])
        normals = facing(gaussians["axes"], gaussians["means"], t)
        distance = (gaussians["means"] - t).norm(dim=-1, keepdim=True)
        channels = torch.cat([gaussians["albedo"], normals @ to_camera.T, distance], 1)
        image = rasterize(projected, channels, gaussians["opacities"], width, height)
        return torch.cat([image["rgb"], image["alpha"][..., None]], -1).reshape(height * width, -1)

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

    def head_rays(self, pixels: Tensor, camera_to_head: tuple[Tensor, Tensor], view: View | None = None
                  ) -> tuple[Tensor, Tensor, list[int]]:
        """Head-space rays through pixels of B frames.

        Args:
            pixels: (B, P, 2) pixel positions (u, v) at the avatar's resolution, or in ``view``.
            camera_to_head: The frames' (B, 3, 3), (B, 3) transforms (`camera_to_head`).
            view: Another camera than the filmed one, or None.

        Returns:
            ``(origins, directions, counts)``: (B*P, 3) each, grouped by frame, and [P]*B.
        """
        R, t, K = self.viewing_camera(camera_to_head, view)[:3]
        rays = [pixel_rays(K, (R[b], t[b]), pixels[b]) for b in range(len(pixels))]
        return (torch.cat([o for o, _ in rays]), torch.cat([d for _, d in rays]),
                [pixels.shape[1]] * len(pixels))

    def viewing_camera(self, camera_to_head: tuple[Tensor, Tensor], view: View | None = None
                       ) -> tuple[Tensor, Tensor, Tensor, int, int]:
        """The camera that sees B frames: ``(R, t, K, width, height)``, its camera-to-head
        transforms (B, 3, 3), (B, 3), intrinsics (3, 3) and image size; the filmed camera
        (``camera_to_head``, `camera_to_head`'s) or ``view``."""
        R, t = camera_to_head
        if view is None:
            return R, t, self.K, self.resolution, self.resolution
        # view -> filmed camera -> head
        R, t = R @ view.rotation.to(R), (R @ view.position.to(R)[:, None])[..., 0] + t
        return R, t, view.K.to(R), view.width, view.height

    # --- light --------------------------------------------------------------------------

    def albedo_scale(self) -> Tensor:
        """The factor () from the learnt albedo to the albedo under lights of the presets'
        scale: the clip light's mean shading of front-facing normals (luminance)."""
        return front_luminance(self.light.detach())

    def frame_lights(self, conditions: Conditions, light: Tensor | None = None, exposure: float = 0.0) -> Tensor:
        """(B, 9, 3) SH shading coefficients that light the learnt albedo in B frames.

        Args:
            conditions: The frames.
            light: None for the clip's own light (plus each training frame's learnt change;
                none for frames never trained on), or (9, 3) coefficients of another light,
                camera space, at the presets' scale (see the module doc).
            exposure: Stops: the light is multiplied by 2**exposure.
        """
        if light is None:
            change = self.light_change(conditions.frame_ids.clamp(min=0)).view(-1, 9, 3)
            lights = self.light + change * (conditions.frame_ids >= 0).to(change)[:, None, None]
        else:
            lights = (light.to(self.light) * self.albedo_scale()).expand(len(conditions), 9, 3)
        return lights * 2.0**exposure

    @torch.no_grad()
    def update_grid(self, conditions: Conditions, step: int, every: int = 16, share: float = 1.0) -> None:
        """Refreshes the occupancy grid with one random frame's expression (EMA max over frames).

        Args:
            conditions: Frames to draw the expression from.
            step: Training step; only every ``every``-th step updates.
            share: Fraction of the cells refreshed (random cells when below 1).
        """
        if step % every or self.grid is None:
            return
        frame = conditions.select(int(torch.randint(len(conditions), ())))
        codes = self.head.frame_codes(frame)
        cells = None if share >= 1 else int(share * self.grid.resolution**3)
        self.grid.update(lambda points: self.head.density(points, [len(points)], codes), step, every, cells)

    # --- whole frames -------------------------------------------------------------------

    def card_depth(self, conditions: Conditions) -> float:
        """The distance of the head box's centre from the filmed camera in the first frame
        (where a `View` sees the torso and background card)."""
        R, t = self.camera_to_head(conditions.select(0))
        centre = (self.head.box_min + self.head.box_max) / 2
        return float(-(R[0].T @ (centre - t[0]))[2].detach())

    def render_pixels(self, pixels: Tensor, conditions: Conditions, background: Tensor | None,
                      with_torso: bool = True, jitter: bool = False, coarse: int = 1,
                      surface: Tensor | None = None, light: Tensor | None = None, exposure: float = 0.0,
                      regularise: bool = False, view: View | None = None,
                      card: tuple[Tensor, Tensor] | None = None, unseen_weight: float = 0.0) -> dict[str, Tensor]:
        """Composited, lit colour of pixels of B frames.

        Args:
            pixels: (B, P, 2) pixel positions (u, v).
            conditions: The B frames.
            background: (B, P, 3) colours behind the avatar, or None for none (black,
                with ``alpha`` for an RGBA result).
            with_torso: False renders the head alone over the background.
            jitter: Jitter head samples (training; NeRF only, as are ``coarse``, ``surface`` and
                ``regularise``).
            coarse: Head sample spacing factor (see `render_head`).
            surface: (B*P,) known surface distances for a depth prior (see `render_head`).
            light, exposure: The light (`frame_lights`).
            regularise: Return the head's training terms too (see `render_head`).
            view: Another camera than the filmed one (one frame, B = 1), whose ``pixels`` these
                are; None for the filmed camera.
            card: With ``view``: where these pixels see the torso's card, `View.card_pixels`'
                (P, 2) filmed-image positions and (P,) mask.
            unseen_weight: NeRF head only: how much of a ray's weight may go unshaded (`render_head`).

        Returns:
            (B*P, ...) tensors: ``rgb``, ``alpha``, ``head_rgb``, ``head_alpha``, ``depth``;
            the avatar's premultiplied ``albedo``, ``diffuse`` (= albedo x shading),
            ``residual`` and ``normal`` (camera space, not unit); with the torso also
            ``torso_rgb``, ``torso_alpha`` and ``torso_normal``; ``ambient``; the terms of `render_head`
            that ``surface`` and ``regularise`` ask for.
        """
        transform = self.camera_to_head(conditions)
        to_camera = transform[0].transpose(1, 2)
        lights = self.frame_lights(conditions, light, exposure)
        codes = self.head.frame_codes(conditions)
        counts = [pixels.shape[1]] * len(pixels)
        if self.backend == "gaussians":
            head = self.splat_head(pixels, codes, transform, to_camera, lights, view, conditions.frame_ids)
        else:
            origins, directions, counts = self.head_rays(pixels, transform, view)
            head = self.render_head(origins, directions, counts, codes, to_camera, lights, jitter, coarse, surface,
                                    regularise, None if view is None else transform[1], unseen_weight)
        behind = pixels.new_zeros(counts[0] * len(counts), 3) if background is None else background.reshape(-1, 3)
        out = {"head_rgb": head["rgb"], "head_alpha": head["alpha"]}
        out.update((key, value) for key, value in head.items() if key not in ("rgb", "alpha"))
        if with_torso:
            code = self.torso.head_code(raw_head_code(conditions, self.K, self.resolution))
            uv = (pixels.reshape(-1, 2) if card is None else card[0]) / self.resolution
            torso_albedo, torso_alpha, torso_normal = self.torso(uv, counts, code, head["alpha"])
            if card is not None:
                torso_alpha = torso_alpha * card[1]
            frame = torch.arange(len(counts), device=uv.device).repeat_interleave(pixels.shape[1])
            torso_rgb = torso_albedo * shade(torso_normal, lights[frame])
            under = (1 - head["alpha"]) * torso_alpha
            behind = torso_alpha[:, None] * torso_rgb + (1 - torso_alpha[:, None]) * behind
            out.update(torso_rgb=torso_rgb, torso_alpha=torso_alpha, torso_normal=torso_normal,
                       albedo=head["albedo"] + under[:, None] * torso_albedo,
                       diffuse=head["diffuse"] + under[:, None] * torso_rgb,
                       normal=head["normal"] + under[:, None] * torso_normal)
            out["alpha"] = head["alpha"] + under
        else:
            out["alpha"] = head["alpha"]
        out["rgb"] = head["rgb"] + (1 - head["alpha"][:, None]) * behind
        return out

    @torch.no_grad()
    def render_frame(self, conditions: Conditions, background: Tensor | None = None,
                     resolution: int | None = None, with_torso: bool = True, chunk: int = 8192,
                     light: Tensor | None = None, exposure: float = 0.0, view: View | None = None
                     ) -> dict[str, Tensor]:
        """Renders one whole frame.

        Args:
            conditions: One frame (length 1).
            background: (H, W, 3) image in [0, 1], or None (transparent). With ``view``, any
                size: it is the filmed view's backdrop, sampled where the view sees the card.
            resolution: Output side in pixels; the training resolution when None (the
                intrinsics are scaled with it). Ignored with ``view``.
            with_torso: False renders the head alone over the background.
            chunk: Rays per batch (bounds memory).
            light, exposure: The light (`frame_lights`); None keeps the clip's.
            view: Render from this camera (its size) instead of the filmed one.

        Returns:
            (H, W, C) float tensors: ``rgb`` (3), ``alpha`` (1), ``depth`` (1, head-space
            distance from the camera where the head is, else 0), ``head_alpha`` (1), and the
            passes (`passes`): ``albedo`` (3), ``shading`` (3), ``residual`` (3), ``normal`` (3,
            in the filmed camera's space), with
            ``rgb = albedo * shading + residual + (1 - alpha) * background``.
        """
        card = None
        if self.backend == "gaussians" and view is None and resolution not in (None, self.resolution):
            # Gaussians are rasterised as whole images: another size is the filmed camera at that size.
            K = self.K.clone()
            K[:2] *= resolution / self.resolution
            view = View(K, torch.eye(3), torch.zeros(3), resolution, resolution)
        if view is None:
            height = width = resolution or self.resolution
            pixels = frame_pixels(height, width).to(self.K.device) * (self.resolution / height)  # training pixels
            flat_bg = None if background is None else background.reshape(-1, 3).to(self.K)
        else:
            height, width = view.height, view.width
            view = view.to(self.K.device)
            pixels = frame_pixels(height, width).to(self.K.device)
            card = view.card_pixels(pixels, self.card_depth(conditions), self.K, self.resolution)
            flat_bg = None if background is None else self._card_background(background.to(self.K), card[0])
        if self.backend == "gaussians":  # in one piece: each piece would rasterise the whole image again
            chunk = len(pixels)
        parts = []
        for start in range(0, len(pixels), chunk):
            part = slice(start, start + chunk)
            bg = None if flat_bg is None else flat_bg[part][None]
            parts.append(self.render_pixels(pixels[part][None], conditions, bg, with_torso, light=light,
                                            exposure=exposure, view=view, unseen_weight=UNSEEN_WEIGHT,
                                            card=None if card is None else (card[0][part], card[1][part])))
        keys = ("rgb", "alpha", "depth", "head_alpha", "albedo", "diffuse", "residual", "normal")
        out = {key: torch.cat([p[key] for p in parts]) for key in keys}
        out["depth"] = torch.where(out["head_alpha"] > 0.5, out["depth"], torch.zeros_like(out["depth"]))
        out.update(passes(out, self.albedo_scale()))
        return {key: value.reshape(height, width, -1) for key, value in out.items()}

    def _card_background(self, background: Tensor, uv: Tensor) -> Tensor:
        """(P, 3) colours of the filmed view's ``background`` (H, W, 3, any size) at (P, 2)
        positions in the filmed image (`View.card_pixels`, clamped to its edges)."""
        grid = (uv / self.resolution * 2 - 1)[None, None]  # grid_sample's [-1, 1], x then y
        sampled = nn.functional.grid_sample(background.permute(2, 0, 1)[None], grid, mode="bilinear",
                                            padding_mode="border", align_corners=False)
        return sampled[0, :, 0].T

    # --- checkpoint ---------------------------------------------------------------------

    def payload(self) -> dict:
        """Everything needed to rebuild the avatar: configs and tensors only (weights_only-safe)."""
        return {"format": CHECKPOINT_FORMATS[self.backend], "resolution": self.resolution, "backend": self.backend,
                "head_config": asdict(self.head.config), "torso_config": asdict(self.torso.config),
                "march_config": asdict(self.march_config),
                "num_frames": self.head.num_frames, "state": self.state_dict()}

    @classmethod
    def from_payload(cls, payload: dict, source: Path | str = "checkpoint") -> "Avatar":
        """Rebuilds an avatar from `payload`; BadInputError naming ``source`` if it does not fit."""
        try:
            if payload.get("format") != checkpoint_format(payload):
                raise BadInputError(f"{source}: checkpoint format {payload.get('format')} is not "
                                    f"{checkpoint_format(payload)}; train again with `avatar3d train render`")
            state = payload["state"]
            shared = (state["head.box_min"], state["head.box_max"], state["head.canonical"], state["head.warp_index"],
                      int(payload["num_frames"]))
            if payload.get("backend", "nerf") == "gaussians":
                head = GaussianHead(config_io.build(GaussianConfig, payload["head_config"]), *shared,
                                    count=len(state["head.means"]))
            else:
                head = HeadField(config_io.build(HeadConfig, payload["head_config"]), *shared)
            torso = TorsoField(config_io.build(TorsoConfig, payload["torso_config"]))
            march = config_io.build(MarchConfig, payload["march_config"])
            avatar = cls(head, torso, state["K"], int(payload["resolution"]), march)
            avatar.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, BadArgumentError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise BadInputError(f"{source} is not a usable avatar checkpoint ({message}); "
                                "train again with `avatar3d train render`") from None
        return avatar


def passes(out: dict[str, Tensor], albedo_scale: Tensor) -> dict[str, Tensor]:
    """Compositing passes of rendered pixels (`Avatar.render_pixels`' ``albedo``, ``diffuse``,
    ``normal`` (N, 3)) such that ``albedo * shading + residual`` is the premultiplied colour.

    Returns:
        ``albedo`` (N, 3) premultiplied, at the presets' scale; ``shading`` (N, 3) diffuse
        over albedo (0 where there is no albedo); ``normal`` (N, 3) unit camera-space
        normal, 0 where there is nothing.
    """
    albedo = out["albedo"] * albedo_scale
    shading = torch.where(albedo > 1e-6, out["diffuse"] / albedo.clamp(min=1e-6), torch.zeros_like(albedo))
    length = out["normal"].norm(dim=-1, keepdim=True)
    normal = torch.where(length > 1e-3, out["normal"] / length.clamp(min=1e-3), torch.zeros_like(out["normal"]))
    return {"albedo": albedo, "shading": shading, "normal": normal}


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
