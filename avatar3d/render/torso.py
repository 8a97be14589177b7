"""The torso field: a 2D canonical image deformed by head pose, aware of the rendered head.

The torso (neck, shoulders, clothes) moves mostly in the image plane and follows the head
with a lag, so it lives in image space (ER-NeRF, RAD-NeRF): a pixel's normalised position
``uv`` in [0, 1]^2 is shifted by a deformation MLP of (uv, head code) into a canonical
image, encoded by a 2D hash grid, and decoded with the head code and the head's rendered
alpha at that pixel into albedo and alpha. Its camera-space normal comes from a small
network of the canonical position alone, at low frequencies, so it is smooth (a torso seen
from the front); the avatar shades it with the head's light (`avatar3d.render.avatar`). The head code holds the head's rotation, its
translation and the projected jaw points, relative to their training means; the head
alpha tells the torso where the head already covers the neck, so the two meet without a
seam. It is trained after the head, with the head frozen.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from avatar3d.face import topology as topo
from avatar3d.camera import project
from avatar3d.render.conditions import Conditions
from avatar3d.layers import Standardise, mlp, positional_encoding
from avatar3d.render.config import TorsoConfig
from avatar3d.render.encoding import HashGrid

JAW_POINTS = (topo.CHIN, 172, 397)
"""Chin and the two jaw corners: where the head meets the neck."""

HEAD_CODE_DIMS = 3 + 3 + 2 * len(JAW_POINTS)
"""Rotation angles, translation and projected jaw points."""
NORMAL_FREQUENCIES = 2
"""Positional-encoding frequencies of the canonical position fed to the normal network."""


class TorsoField(nn.Module):
    """Image-space torso colour and alpha (see the module doc).

    Attributes:
        head_code: Standardises `raw_head_code` by the training frames' statistics (``fit``
            it before training), so the code is about unit size.
    """

    def __init__(self, config: TorsoConfig):
        super().__init__()
        self.config = config
        self.head_code = Standardise(HEAD_CODE_DIMS)
        self.grid = HashGrid(config.grid, dims=2)
        pe = 2 * (1 + 2 * config.frequencies)
        self.deform = mlp(pe + HEAD_CODE_DIMS, config.hidden, 2)
        self.decode = mlp(self.grid.output_dim + HEAD_CODE_DIMS + 1, config.hidden, 4, layers=2)
        self.normal_net = mlp(2 * (1 + 2 * NORMAL_FREQUENCIES), config.hidden, 2)
        for layer in (self.deform[-1], self.normal_net[-1]):  # no deformation, normals facing the camera
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, uv: Tensor, counts: list[int], head_code: Tensor,
                head_alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Torso albedo (N, 3) in [0, 1], alpha (N,) and unit camera-space normal (N, 3), z > 0, at pixels.

        Args:
            uv: (N, 2) pixel positions over the image size, in [0, 1], grouped by frame.
            counts: Pixels per frame (B ints summing to N).
            head_code: (B, HEAD_CODE_DIMS) standardised, ``self.head_code(raw_head_code(...))``.
            head_alpha: (N,) the rendered head's alpha at the pixels (treated as an input).
        """
        code = head_code.repeat_interleave(torch.tensor(counts, device=uv.device), 0)
        offset = torch.tanh(self.deform(torch.cat([positional_encoding(uv, self.config.frequencies), code], 1)))
        canonical = (uv + offset * self.config.max_offset).clamp(0.0, 1.0)
        out = self.decode(torch.cat([self.grid(canonical), code, head_alpha.detach()[:, None]], 1))
        tilt = self.normal_net(positional_encoding(canonical, NORMAL_FREQUENCIES))  # (x, y) over z = 1
        normal = nn.functional.normalize(torch.cat([tilt, torch.ones_like(tilt[:, :1])], 1), dim=-1)
        return torch.sigmoid(out[:, :3]), torch.sigmoid(out[:, 3]), normal


def raw_head_code(conditions: Conditions, K: Tensor, resolution: int) -> Tensor:
    """Unstandardised head code (B, HEAD_CODE_DIMS) of frames: the head pose
    (`Conditions.pose_vector`) and the jaw points' pixels over the image size (0..1)."""
    jaw = conditions.landmarks[:, list(JAW_POINTS)]  # (B, 3, 3) head space
    cam = jaw @ conditions.rotation.transpose(1, 2) + conditions.translation[:, None]
    jaw_uv = project(cam, K)[..., :2] / resolution
    return torch.cat([conditions.pose_vector(), jaw_uv.flatten(1)], 1)
