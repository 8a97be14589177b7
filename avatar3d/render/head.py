"""The head field: density and colour in head space, driven by expression landmarks.

A sample at head-space point x of frame b is evaluated in four steps:

1. **Landmark warp.** The frame's landmark displacements from the neutral face carry x
   back towards the neutral face: ``x_c = x - sum_k w_k d_k / max(sum_k w_k, 1)`` with
   Gaussian weights ``w_k = exp(-|x - l_k|^2 / 2 r^2)`` around the frame's landmarks l_k
   (a subset that actually moves). Whatever drives the landmarks (face fit, motion model)
   thus moves lips, jaw and lids explicitly, so the field only learns what the landmarks
   cannot say (teeth, the mouth's inside, skin folds).
2. **Region-aware condition.** Three codes per frame, from the displacements of the mouth,
   the eye landmarks (plus the eye-openness signal) and the rest; each point attends to
   them with softmax weights from its own features (ER-NeRF's region attention), so speech
   changes stay around the mouth and blinks around the eyes.
3. **Ambient coordinate.** A small MLP maps features and condition to w (A dims, HyperNeRF);
   the density network sees (features of x_c, w), so topology changes (lips parting) are
   slices of one static (x, w) volume. Training penalises |w| so it is used sparingly.
4. **Reflectance.** From the geometry features, a view-independent albedo; from the neutral
   position at low frequencies, a predicted unit normal (smooth where the density's gradient
   is noisy; training ties them, see `avatar3d.train.render`); from the geometry features,
   the view direction (order-2 SH) and a per-frame
   appearance code (the mean code for frames never trained on): a small view-dependent
   residual (specular, sheen) that training holds small. The avatar shades per pixel:
   colour = albedo x shade(normal, light) + residual (`avatar3d.render.avatar`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avatar3d.face import topology as topo
from avatar3d.face.model import FACE_WIDTH
from avatar3d.mesh import orient_towards_camera
from avatar3d.render import backend
from avatar3d.render.conditions import Conditions
from avatar3d.layers import add_region_codes, mlp, positional_encoding, trunc_exp
from avatar3d.render.config import HeadConfig, LandmarkDrivenConfig
from avatar3d.render.encoding import HashGrid
from avatar3d.render.sh import sh_basis
from cuda_ext import torch_impl

DISPLACEMENT_SCALE = 0.01
"""Head-space displacement (about 7 % of the face width) that maps to 1 in network inputs."""
REGIONS = ("mouth", "eyes", "rest")
"""Landmark groups with a code each (`region_masks`); the eye code also sees the eye signal."""
AMBIENT_FREQUENCIES = 2
"""Sine/cosine frequencies of the ambient coordinates fed to the density network."""
NORMAL_FREQUENCIES = 3
"""Sine/cosine frequencies of the neutral position fed to the normal network (the finest
period is 1/8 of the head box, about 4 cm; finer bends come from the network): normals vary
smoothly, and the density's gradient, which they are tied to off the face, is noisy."""


@dataclass
class Samples:
    """What the head field gives at N samples (head space).

    Attributes:
        density: (N,) volume density, per head-space unit.
        albedo: (N, 3) view-independent reflectance in [0, 1].
        normal: (N, 3) predicted unit outward normal, head space.
        residual: (N, 3) view-dependent colour added after shading, in [-1, 1].
        ambient: (N, A) ambient coordinates.
    """

    density: Tensor
    albedo: Tensor
    normal: Tensor
    residual: Tensor
    ambient: Tensor


def region_masks(canonical: Tensor) -> Tensor:
    """(3, 478) bool: mouth, eye and rest landmark groups of a neutral face (478, 3).

    Mouth: everything below the nose tip (lips, chin, jaw line). Eyes: the lids, irises
    and every point within 0.13 face widths of an eye centre (brows included). Rest: the
    others (forehead, nose, cheeks, face oval).
    """
    y = canonical[:, 1]
    mouth = y < canonical[topo.NOSE_TIP, 1] - 0.05 * FACE_WIDTH
    centres = torch.stack([canonical[list(topo.RIGHT_UPPER_LID + topo.RIGHT_LOWER_LID)].mean(0),
                           canonical[list(topo.LEFT_UPPER_LID + topo.LEFT_LOWER_LID)].mean(0)])
    eyes = (torch.cdist(canonical, centres).min(1).values < 0.13 * FACE_WIDTH) & ~mouth
    rest = ~(mouth | eyes)
    return torch.stack([mouth, eyes, rest])


def moving_landmarks(canonical: Tensor, landmarks: Tensor, count: int) -> Tensor:
    """Indices (count,) of landmarks that move, spread over the face by farthest-point sampling.

    Candidates are landmarks whose displacement from neutral has an RMS (over frames) of at
    least a tenth of the largest; the sampling starts from the most mobile one.

    Args:
        canonical: (478, 3) neutral landmarks.
        landmarks: (T, 478, 3) landmarks of the training frames.
        count: How many to keep (fewer if fewer move).
    """
    rms = (landmarks - canonical).square().sum(-1).mean(0).sqrt()
    candidates = torch.nonzero(rms >= 0.1 * rms.max()).flatten()
    points = canonical[candidates]
    chosen = [int(rms[candidates].argmax())]
    distance = (points - points[chosen[0]]).norm(dim=-1)
    while len(chosen) < min(count, len(candidates)):
        chosen.append(int(distance.argmax()))
        distance = torch.minimum(distance, (points - points[chosen[-1]]).norm(dim=-1))
    return candidates[torch.tensor(chosen)].sort().values


def warp_to_neutral(points: Tensor, counts: list[int], anchors: Tensor, shifts: Tensor, radius: float) -> Tensor:
    """Carries head-space samples back to the neutral face (step 1 of the module doc).

    ``x - sum_k w_k s_k / max(sum_k w_k, 1)`` with ``w_k = exp(-|x - l_k|^2 / 2 r^2)``.
    Differentiable in the points. Runs the backend chosen by
    `avatar3d.render.backend.choose`: a kernel (which skips landmarks further than 6 r,
    weight below 1.5e-8) or the PyTorch twin `cuda_ext.torch_impl.warp`. Landmarks that
    need gradients always take the twin.

    Args:
        points: (N, 3) samples, grouped by frame.
        counts: Samples per frame (B ints summing to N).
        anchors: (B, M, 3) the frames' warp landmarks l_k.
        shifts: (B, M, 3) their displacements s_k from the neutral face.
        radius: Gaussian radius r, head-space units.

    Returns:
        (N, 3) neutral-face positions.
    """
    if anchors.requires_grad or shifts.requires_grad:  # the kernels differentiate in the points only
        return torch_impl.warp(points, counts, anchors, shifts, radius)
    return backend.implementation("warp", points, anchors, shifts).warp(points, counts, anchors, shifts, radius)


class LandmarkDriven(nn.Module):
    """What both head backends share: the head box, the neutral landmarks, the landmarks that
    drive the warp, and the region codes of a frame's expression.

    Args:
        config: The backend's config (a `LandmarkDrivenConfig`).
        box_min, box_max: (3,) head-space box around the head.
        canonical: (478, 3) neutral landmarks.
        warp_index: (M,) landmarks that drive the warp (`moving_landmarks`).
        num_frames: Training frames.
    """

    def __init__(self, config: LandmarkDrivenConfig, box_min: Tensor, box_max: Tensor, canonical: Tensor,
                 warp_index: Tensor, num_frames: int):
        super().__init__()
        self.config = config
        self.num_frames = int(num_frames)
        self.register_buffer("box_min", torch.as_tensor(box_min, dtype=torch.float32))
        self.register_buffer("box_max", torch.as_tensor(box_max, dtype=torch.float32))
        self.register_buffer("canonical", canonical.float())
        self.register_buffer("warp_index", warp_index.long())
        self.register_buffer("regions", region_masks(canonical))
        self.region_encoders = nn.ModuleList(
            nn.Linear(int(mask.sum()) * 3 + (name == "eyes"), config.region_code_dims)
            for name, mask in zip(REGIONS, self.regions))
        surface = canonical[:topo.NUM_SURFACE]
        self.register_buffer("face_triangles", torch.from_numpy(orient_towards_camera(surface.numpy(), topo.triangles())),
                             persistent=False)
        self.register_buffer("face_extent", torch.stack([surface[:, :2].min(0).values, surface[:, :2].max(0).values]),
                             persistent=False)

    def frame_codes(self, conditions: Conditions) -> dict[str, Tensor]:
        """Per-frame inputs of B frames: warp landmarks and region codes.

        Returns:
            ``warp_points`` (B, M, 3) and ``warp_shift`` (B, M, 3), head space;
            ``regions`` (B, 3, C).
        """
        displacement = (conditions.landmarks - self.canonical) / DISPLACEMENT_SCALE  # (B, 478, 3)
        codes = []
        for name, mask, encoder in zip(REGIONS, self.regions, self.region_encoders):
            inputs = displacement[:, mask].flatten(1)
            if name == "eyes":
                inputs = torch.cat([inputs, conditions.eye[:, None]], 1)
            codes.append(encoder(inputs))
        warp_points = conditions.landmarks[:, self.warp_index]
        return {"warp_points": warp_points, "warp_shift": warp_points - self.canonical[self.warp_index],
                "regions": torch.stack(codes, 1)}

    def unit_box(self, points: Tensor) -> Tensor:
        """Head-space points (N, 3) in the head box's [0, 1]^3 coordinates."""
        return (points - self.box_min) / (self.box_max - self.box_min)


class HeadField(LandmarkDriven):
    """Density and colour of the head in head space (see the module doc).

    Args:
        config: Network sizes.
        box_min, box_max: (3,) head-space box the hash grid covers.
        canonical: (478, 3) neutral landmarks.
        warp_index: (M,) landmarks that drive the warp (`moving_landmarks`).
        num_frames: Training frames, one appearance code each.
    """

    def __init__(self, config: HeadConfig, box_min: Tensor, box_max: Tensor, canonical: Tensor,
                 warp_index: Tensor, num_frames: int):
        super().__init__(config, box_min, box_max, canonical, warp_index, num_frames)
        c = config
        self.grid = HashGrid(c.grid, dims=3)
        features = self.grid.output_dim
        self.attention = nn.Linear(features, 3)
        self.ambient = mlp(features + 3 * c.region_code_dims, c.hidden, c.ambient_dims)
        self.density_net = mlp(features + c.ambient_dims * (1 + 2 * AMBIENT_FREQUENCIES), c.hidden,
                               1 + c.geometry_features)
        # Two hidden layers: the albedo carries nearly all the colour, since the residual is held small.
        self.albedo_net = mlp(c.geometry_features, c.hidden, 3, layers=2)
        self.normal_net = mlp(3 * (1 + 2 * NORMAL_FREQUENCIES), c.hidden, 3, layers=2)
        self.residual_net = mlp(c.geometry_features + 9 + c.appearance_dims, c.hidden, 3, layers=2)
        self.appearance = nn.Embedding(num_frames, c.appearance_dims)
        nn.init.zeros_(self.appearance.weight)
        nn.init.zeros_(self.ambient[-1].weight)
        nn.init.zeros_(self.ambient[-1].bias)
        nn.init.zeros_(self.residual_net[-1].weight)
        nn.init.zeros_(self.residual_net[-1].bias)
        with torch.no_grad():  # normals start out facing the camera (+z), as a face mostly does
            self.normal_net[-1].bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
        self.register_buffer("mirror", mirror_plane(canonical))

    # --- per-frame codes --------------------------------------------------------------

    def frame_codes(self, conditions: Conditions) -> dict[str, Tensor]:
        """`LandmarkDriven.frame_codes` plus ``appearance`` (B, A), the frames' appearance
        codes (the mean code for frames never trained on)."""
        codes = super().frame_codes(conditions)
        ids = conditions.frame_ids.clamp(min=0)
        appearance = self.appearance(ids)
        mean_code = self.appearance.weight.mean(0).expand_as(appearance)
        codes["appearance"] = torch.where((conditions.frame_ids >= 0)[:, None], appearance, mean_code)
        return codes

    # --- per-sample evaluation ---------------------------------------------------------

    def warp(self, points: Tensor, counts: list[int], codes: dict[str, Tensor]) -> Tensor:
        """Neutral-face positions (N, 3) of head-space samples (N, 3), grouped by frame."""
        return warp_to_neutral(points, counts, codes["warp_points"], codes["warp_shift"], self.config.warp_radius)

    def features(self, points: Tensor, counts: list[int], codes: dict[str, Tensor], warp: bool = True
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Of samples grouped by frame: their neutral-face positions (N, 3), ambient coordinates
        (N, A), the density net's output (N, 1+G) and each sample's frame (N,); ``warp=False``
        takes the points as neutral."""
        neutral = self.warp(points, counts, codes) if warp else points
        features = self.grid(self.unit_box(neutral))
        frame = torch.repeat_interleave(torch.arange(len(counts), device=points.device),
                                        torch.tensor(counts, device=points.device))
        attention = torch.softmax(self.attention(features), -1)
        first = self.ambient[0]  # its inputs: [features, attention_k x region code_k for k < 3]
        width = features.shape[1]
        hidden = add_region_codes(nn.functional.linear(features, first.weight[:, :width], first.bias),
                                  first.weight[:, width:], attention, codes["regions"], counts)
        ambient = self.ambient[1:](hidden)
        raw = self.density_net(torch.cat([features, positional_encoding(ambient, AMBIENT_FREQUENCIES)], 1))
        return neutral, ambient, raw, frame

    def density(self, points: Tensor, counts: list[int], codes: dict[str, Tensor]) -> Tensor:
        """Densities (N,) of samples grouped by frame (``counts`` per frame, summing to N)."""
        return self.density_of(self.features(points, counts, codes)[2])

    @staticmethod
    def density_of(raw: Tensor) -> Tensor:
        """Densities (N,) from the density net's output (N, 1+G) (`features`)."""
        return trunc_exp(raw[:, 0] - 1.0)

    def neutral_albedo(self, neutral: Tensor, counts: list[int], codes: dict[str, Tensor]) -> Tensor:
        """Albedo (N, 3) at neutral-face positions (N, 3), grouped by frame like ``counts``."""
        return torch.sigmoid(self.albedo_net(self.features(neutral, counts, codes, warp=False)[2][:, 1:]))

    def in_front_of_face(self, neutral: Tensor) -> Tensor:
        """(N,) bool: neutral-face positions (N, 3) within the neutral face's x and y extent,
        at any depth."""
        xy = neutral[:, :2]
        return ((xy >= self.face_extent[0]) & (xy <= self.face_extent[1])).all(-1)

    def mirrored(self, points: Tensor) -> Tensor:
        """(N, 3) neutral-face positions reflected across the face's mid-sagittal plane."""
        centre, axis = self.mirror[0], self.mirror[1]
        return points - 2 * ((points - centre) @ axis)[:, None] * axis

    def forward(self, points: Tensor, directions: Tensor, counts: list[int], codes: dict[str, Tensor]) -> Samples:
        """The field at samples (see `Samples`).

        Args:
            points: (N, 3) head-space samples, grouped by frame in the order of ``codes``.
            directions: (N, 3) unit ray directions in head space.
            counts: Samples per frame (B ints summing to N).
            codes: `frame_codes` of the B frames.
        """
        neutral, ambient, raw, frame = self.features(points, counts, codes)
        albedo, normal, residual = self.shading_terms(neutral, raw, directions, codes["appearance"][frame])
        return Samples(density=self.density_of(raw), albedo=albedo, normal=normal, residual=residual, ambient=ambient)

    def shading_terms(self, neutral: Tensor, raw: Tensor, directions: Tensor, appearance: Tensor
                      ) -> tuple[Tensor, Tensor, Tensor]:
        """Albedo, unit normal and residual (`Samples`' fields, (N, 3) each) of samples, from
        what `features` gave for them: neutral positions (N, 3) and the density net's output
        (N, 1+G); with their ray directions (N, 3) and their frames' appearance codes (N, A).
        Apart from `features` so that a renderer can leave out samples that cannot be seen."""
        normal = self.normal_net(positional_encoding(self.unit_box(neutral), NORMAL_FREQUENCIES))
        residual_in = torch.cat([raw[:, 1:], sh_basis(directions), appearance], 1)
        return (torch.sigmoid(self.albedo_net(raw[:, 1:])), nn.functional.normalize(normal, dim=-1, eps=1e-6),
                torch.tanh(self.residual_net(residual_in)))


def mirror_plane(canonical: Tensor) -> Tensor:
    """(2, 3) the neutral face's mid-sagittal plane: a point on it and its unit normal, from the
    face's two sides (`topology.FACE_SIDES`), whose midpoint it passes through."""
    right, left = canonical[list(topo.FACE_SIDES)]
    return torch.stack([(right + left) / 2, nn.functional.normalize(left - right, dim=0)])
