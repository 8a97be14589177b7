"""The Gaussian head: the avatar's head as 3D Gaussians in head space, driven by expression landmarks.

The Gaussians live at the neutral face; a frame moves them in two steps:

1. **Landmark warp**, neutral to frame: ``x = x_n + sum_k w_k d_k / max(sum_k w_k, 1)`` with
   Gaussian weights ``w_k`` around the neutral landmarks and their displacements ``d_k`` in the
   frame: the inverse of the NeRF's warp (`avatar3d.render.head`), by the same kernel.
2. **Deformation network**: from a Gaussian's neutral position (sines and cosines at low
   frequencies, and a hash grid fine enough to tell the upper lip from the lower where they
   touch in the neutral face, which a warp of landmark positions cannot) and the frame's region codes
   (mouth, eyes, rest; each Gaussian attends to them as the NeRF's samples do), an offset of at
   most `MAX_OFFSET`, for what the landmarks cannot say, and changes of opacity and albedo, so
   that teeth and the mouth's inside can show only while the lips part (the NeRF's ambient
   coordinates do this for it). The inner-mouth set (teeth, tongue, the mouth's inside;
   TalkingGaussian found a separate set necessary) is told apart by a flag input, so it can
   move with the jaw rather than with the lips in front of it.

**Reflectance** is the NeRF's: each Gaussian has an albedo; its normal is its shortest axis,
turned towards the camera; the avatar rasterises albedo, camera-space normal and distance, and
shades per pixel with the same SH light (`avatar3d.render.avatar`). There is no view-dependent
residual.

**Seeding** (`seed_gaussians`), without a NeRF: flat Gaussians on the fitted face mesh, on an
ellipsoid around the rest of the head, and a block behind the lips for the inner mouth; colours
from a training frame. **Upkeep** (`densify_and_prune`): Gaussians whose positions the loss
pulls hardest are split (large ones) or cloned (small ones), faint ones are dropped, as in 3D
Gaussian splatting (Kerbl et al. 2023), with the optimiser's moments carried along.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from avatar3d.camera import project
from avatar3d.face import topology as topo
from avatar3d.face.model import FACE_WIDTH
from avatar3d.layers import add_region_codes, mlp, positional_encoding
from avatar3d.render.conditions import HEAD_BOX_MARGIN
from avatar3d.render.config import GaussianConfig
from avatar3d.render.encoding import HashGrid
from avatar3d.render.head import LandmarkDriven, warp_to_neutral
from avatar3d.render.splat import covariances, quaternion_to, rotations

MAX_OFFSET = 0.1 * FACE_WIDTH
"""Largest offset the deformation network adds to a Gaussian, head-space units."""
MAX_LOGIT_CHANGE = 4.0
"""Largest change of a Gaussian's opacity or albedo logit the deformation network makes."""
POSITION_FREQUENCIES = 3
"""Sine/cosine frequencies of the neutral position fed to the deformation network."""
PER_GAUSSIAN = ("means", "quats", "log_scales", "opacity_logits", "albedo_logits")
"""The per-Gaussian parameters (first dimension: the Gaussians)."""
MIN_OPACITY = 0.005
"""Pruning: Gaussians fainter than this are dropped."""
MAX_SCALE = 0.5 * FACE_WIDTH
"""Pruning: Gaussians with an axis longer than this (standard deviation) are dropped."""
DENSIFY_SHARE = 0.05
"""Densification: the share of Gaussians, by accumulated positional gradient, split or cloned."""
SPLIT_SCALE = 0.02 * FACE_WIDTH
"""Densification: Gaussians with an axis longer than this are split in two, smaller ones cloned."""
MOUTH_ALBEDO = (0.3, 0.1, 0.1)
"""Starting albedo of the inner-mouth set."""


class GaussianHead(LandmarkDriven):
    """3D Gaussians of the head at the neutral face and the network that moves them (module doc).

    Args:
        config: Sizes.
        box_min, box_max: (3,) head-space box around the head.
        canonical: (478, 3) neutral landmarks.
        warp_index: (M,) landmarks that drive the warp.
        num_frames: Training frames.
        count: Gaussians (their values come from `seed_gaussians` or a checkpoint).
    """

    def __init__(self, config: GaussianConfig, box_min: Tensor, box_max: Tensor, canonical: Tensor,
                 warp_index: Tensor, num_frames: int, count: int):
        super().__init__(config, box_min, box_max, canonical, warp_index, num_frames)
        self.means = nn.Parameter(torch.zeros(count, 3))
        self.quats = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(count, 1))
        self.log_scales = nn.Parameter(torch.full((count, 3), math.log(0.01 * FACE_WIDTH)))
        self.opacity_logits = nn.Parameter(torch.zeros(count))
        self.albedo_logits = nn.Parameter(torch.zeros(count, 3))
        self.register_buffer("inner_mouth", torch.zeros(count))
        self.grid = HashGrid(config.grid, dims=3)
        encoding = 3 * (1 + 2 * POSITION_FREQUENCIES) + self.grid.output_dim
        self.attention = nn.Linear(encoding, 3)
        self.deform = mlp(encoding + 3 * config.region_code_dims + 1, config.hidden, 3 + 1 + 3, layers=2)
        nn.init.zeros_(self.deform[-1].weight)  # no change until training asks for one
        nn.init.zeros_(self.deform[-1].bias)
        self._encoded: tuple[list, dict[str, Tensor]] | None = None  # encode's kept result and its state

    def __len__(self) -> int:
        return len(self.means)

    def encode(self) -> dict[str, Tensor]:
        """What holds in every frame: the deformation network's view of each Gaussian, its
        ``encoding`` (N, E) of the neutral position, ``attention`` (N, 3) over the region codes
        and ``deform_base`` (N, hidden), the network's first layer without the frame's codes; and
        the Gaussians' shape, which frames do not change: ``covariances`` (N, 3, 3) and ``axes``
        (N, 3) unit shortest axes (either sign).

        Without autograd (rendering), the result is kept until a parameter or buffer changes
        (in place, as an optimiser step does, or replaced, as `densify_and_prune` does).
        """
        state = None
        if not torch.is_grad_enabled():
            state = [(tensor.data_ptr(), tensor._version, tensor.shape) for tensor in (*self.parameters(),
                                                                                      *self.buffers())]
            if self._encoded is not None and self._encoded[0] == state:
                return self._encoded[1]
        unit = self.unit_box(self.means.detach())
        encoding = torch.cat([positional_encoding(unit, POSITION_FREQUENCIES), self.grid(unit.clamp(0, 1))], 1)
        first = self.deform[0]
        scales = self.log_scales.exp()
        shortest = nn.functional.one_hot(scales.argmin(1), 3).to(scales)
        encoded = {"encoding": encoding, "attention": torch.softmax(self.attention(encoding), -1),
                   "deform_base": nn.functional.linear(encoding, first.weight[:, :encoding.shape[1]], first.bias)
                   + self.inner_mouth[:, None] * first.weight[:, -1],
                   "covariances": covariances(self.quats, scales),
                   "axes": (rotations(self.quats) @ shortest[:, :, None])[:, :, 0]}
        self._encoded = None if state is None else (state, encoded)
        return encoded

    def posed(self, codes: dict[str, Tensor], frame: int, encoded: dict[str, Tensor] | None = None
              ) -> dict[str, Tensor]:
        """The Gaussians in one frame, head space.

        Args:
            codes: `frame_codes` of B frames.
            frame: Which of them.
            encoded: `encode`'s result (computed here when None; pass it to pose several frames).

        Returns:
            ``means`` (N, 3), ``covariances`` (N, 3, 3), ``opacities`` (N,), ``albedo`` (N, 3)
            in [0, 1], ``axes`` (N, 3) unit shortest axes (either sign).
        """
        anchors = self.canonical[self.warp_index][None]
        moved = warp_to_neutral(self.means, [len(self)], anchors, -codes["warp_shift"][frame:frame + 1],
                                self.config.warp_radius)
        encoded = self.encode() if encoded is None else encoded
        # The first layer's input is [encoding, attention_k x region code_k for k < 3, inner-mouth
        # flag]; all but the codes' part is in deform_base.
        first = self.deform[0]
        hidden = add_region_codes(encoded["deform_base"], first.weight[:, encoded["encoding"].shape[1]:-1],
                                  encoded["attention"], codes["regions"][frame:frame + 1], [len(self)]).relu_()
        change = torch.tanh(self.deform[2:](hidden))
        return {"means": moved + MAX_OFFSET * change[:, :3], "covariances": encoded["covariances"],
                "opacities": torch.sigmoid(self.opacity_logits + MAX_LOGIT_CHANGE * change[:, 3]),
                "albedo": torch.sigmoid(self.albedo_logits + MAX_LOGIT_CHANGE * change[:, 4:]), "axes": encoded["axes"]}

    # --- upkeep -----------------------------------------------------------------------

    @torch.no_grad()
    def densify_and_prune(self, pull: Tensor, optimizer: torch.optim.Optimizer) -> tuple[int, int]:
        """Splits or clones the Gaussians pulled hardest and drops faint or huge ones.

        Args:
            pull: (N,) accumulated positional gradient norm of each Gaussian since the last call.
            optimizer: The optimiser holding the per-Gaussian parameters; their Adam moments
                follow the Gaussians (copies get their parent's).

        Returns:
            ``(added, removed)`` Gaussian counts.
        """
        count = len(self)
        room = max(0, self.config.max_count - count)
        chosen = torch.zeros(count, dtype=torch.bool, device=pull.device)
        grow = min(room, int(DENSIFY_SHARE * count))
        if grow > 0:
            chosen[torch.topk(pull, grow).indices] = True
        scales = self.log_scales.exp()
        split = chosen & (scales.max(1).values > SPLIT_SCALE)
        keep = (torch.sigmoid(self.opacity_logits) >= MIN_OPACITY) & (scales.max(1).values <= MAX_SCALE) & ~split
        # New Gaussians: each split one becomes two, placed within it; each cloned one gets a copy.
        split_ids, clone_ids = split.nonzero()[:, 0], (chosen & ~split).nonzero()[:, 0]
        source = torch.cat([keep.nonzero()[:, 0], split_ids, split_ids, clone_ids])
        values = {name: getattr(self, name)[source].clone() for name in PER_GAUSSIAN}
        first = int(keep.sum())
        halves = slice(first, first + 2 * len(split_ids))
        local = torch.randn(2 * len(split_ids), 3, device=pull.device) * scales[split_ids].repeat(2, 1)
        values["means"][halves] += (rotations(self.quats[split_ids]).repeat(2, 1, 1) @ local[:, :, None])[:, :, 0]
        values["log_scales"][halves] -= math.log(1.6)
        self._regroup(source, values, optimizer)
        return len(source) - first, count - first

    def _regroup(self, source: Tensor, values: dict[str, Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Replaces the per-Gaussian parameters with ``values`` (each indexed like ``source``,
        the old Gaussian each new one comes from) and moves their optimiser state along."""
        for name in PER_GAUSSIAN:
            parameter = getattr(self, name)
            state = optimizer.state.get(parameter, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key] = state[key][source].clone()
            parameter.data = values[name]
            if parameter.grad is not None:
                parameter.grad = None
        self.inner_mouth = self.inner_mouth[source].clone()
        self._encoded = None


def facing(axes: Tensor, means: Tensor, camera: Tensor) -> Tensor:
    """(N, 3) the Gaussians' shortest ``axes`` (N, 3, either sign) turned towards a camera at
    ``camera`` (3,): their normals as it sees them (``means`` (N, 3), all head space)."""
    return torch.where(((means - camera) * axes).sum(-1, keepdim=True) > 0, -axes, axes)


def seed_gaussians(config: GaussianConfig, canonical: Tensor, box_min: Tensor, box_max: Tensor,
                   seed: int = 0) -> dict[str, Tensor]:
    """Starting Gaussians without a NeRF: flat ones on the fitted face mesh and on an ellipsoid
    around the rest of the head, and the inner-mouth block.

    The ellipsoid spans the head masks' extent in x and y (the box less its margin) and the
    face's depth in z; its points in front of the face's back are dropped (the mesh covers
    the face). The inner-mouth block lies between the mouth corners, from the lips back a
    quarter of a face width.

    Args:
        config: Counts.
        canonical: (478, 3) neutral landmarks, head space.
        box_min, box_max: (3,) the head box (`avatar3d.render.conditions.head_box`).
        seed: Random seed.

    Returns:
        The per-Gaussian parameters (`PER_GAUSSIAN`, albedo logits 0 except the mouth's) and
        ``inner_mouth`` (N,) 1 for the inner-mouth set.
    """
    generator = torch.Generator().manual_seed(seed)
    surface = canonical[:topo.NUM_SURFACE].float()
    triangles = torch.from_numpy(topo.triangles().astype(np.int64))
    corners = surface[triangles]  # (F, 3, 3)
    cross = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = cross.norm(dim=-1) / 2
    face = torch.multinomial(area, config.face_count, replacement=True, generator=generator)
    u, v = torch.rand(2, config.face_count, generator=generator)
    flip = u + v > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    chosen = corners[face]
    face_points = chosen[:, 0] + u[:, None] * (chosen[:, 1] - chosen[:, 0]) + v[:, None] * (chosen[:, 2] - chosen[:, 0])
    face_normals = nn.functional.normalize(cross[face], dim=-1)
    face_normals = torch.where(face_normals[:, 2:] < 0, -face_normals, face_normals)
    face_width = math.sqrt(float(area.sum()) / config.face_count)

    margin = 1 + 2 * HEAD_BOX_MARGIN  # the box's margins on both sides
    centre = (box_min + box_max) / 2
    radii = torch.stack([(box_max[0] - box_min[0]) / margin / 2, (box_max[1] - box_min[1]) / margin / 2,
                         surface[:, 2].max()])
    centre = torch.stack([centre[0], centre[1], torch.tensor(0.0)])
    directions = nn.functional.normalize(torch.randn(4 * config.shell_count, 3, generator=generator), dim=-1)
    shell_points = centre + directions * radii
    shell_normals = nn.functional.normalize(directions / radii, dim=-1)
    in_front = (shell_points[:, 2] > float(surface[:, 2].min())) & (
        (shell_points[:, :2] >= surface[:, :2].min(0).values) & (shell_points[:, :2] <= surface[:, :2].max(0).values)).all(1)
    shell_points, shell_normals = shell_points[~in_front][:config.shell_count], shell_normals[~in_front][:config.shell_count]
    shell_area = 4 * math.pi * float(radii.prod()) ** (2 / 3)
    shell_width = math.sqrt(shell_area / max(len(shell_points), 1))

    lips = canonical[list(topo.LIPS)].float()
    low = torch.stack([lips[:, 0].min(), lips[:, 1].min(), lips[:, 2].min() - 0.25 * FACE_WIDTH])
    high = torch.stack([lips[:, 0].max(), lips[:, 1].max(), lips[:, 2].min() - 0.02 * FACE_WIDTH])
    mouth_points = low + torch.rand(config.mouth_count, 3, generator=generator) * (high - low)
    mouth_width = float((high - low).prod()) ** (1 / 3) / max(config.mouth_count, 1) ** (1 / 3)

    means = torch.cat([face_points, shell_points, mouth_points])
    normals = torch.cat([face_normals, shell_normals, torch.tensor([0.0, 0.0, 1.0]).expand(len(mouth_points), 3)])
    widths = torch.cat([torch.full((len(face_points),), face_width), torch.full((len(shell_points),), shell_width),
                        torch.full((len(mouth_points),), mouth_width)])
    log_scales = torch.stack([widths, widths, 0.2 * widths], -1).log()
    albedo = torch.zeros(len(means), 3)
    albedo[len(means) - len(mouth_points):] = torch.logit(torch.tensor(MOUTH_ALBEDO))
    inner_mouth = torch.zeros(len(means))
    inner_mouth[len(means) - len(mouth_points):] = 1.0
    return {"means": means, "quats": quaternion_to(normals), "log_scales": log_scales,
            "opacity_logits": torch.zeros(len(means)),  # opacity 0.5
            "albedo_logits": albedo, "inner_mouth": inner_mouth}


@torch.no_grad()
def colours_from_frame(means: Tensor, image: Tensor, head_mask: Tensor, camera_to_head: tuple[Tensor, Tensor],
                       K: Tensor) -> Tensor:
    """(N, 3) the colours a frame shows where head-space points (N, 3) project, the head's mean
    colour where they fall outside its head mask.

    Args:
        image: (H, W, 3) in [0, 1]; head_mask: (H, W) bool.
        camera_to_head: The frame's (3, 3), (3,) camera-to-head transform.
        K: (3, 3) intrinsics at the image's size.
    """
    R, t = camera_to_head
    uv = project((means - t) @ R, K)[:, :2]
    size = image.shape[0]
    cols, rows = uv.floor().long().clamp(0, size - 1).unbind(-1)
    inside = ((uv >= 0) & (uv < size)).all(1) & head_mask[rows, cols]
    mean_colour = image[head_mask].mean(0) if bool(head_mask.any()) else image.reshape(-1, 3).mean(0)
    return torch.where(inside[:, None], image[rows, cols], mean_colour)
