"""The torso field: a 2D canonical image deformed by head pose, aware of the rendered head.

The torso (neck, shoulders, clothes) moves mostly in the image plane and follows the head
with a lag, so it lives in image space (ER-NeRF, RAD-NeRF): a pixel's normalised position
``uv`` in [0, 1]^2 is shifted by a deformation MLP of (uv, head code) into a canonical
image, encoded by a 2D hash grid, and decoded with the head code and the head's rendered
alpha at that pixel into albedo and alpha. The head code holds the head's rotation, its
translation and the projected jaw points, relative to their training means; the head
alpha tells the torso where the head already covers the neck, so the two meet without a
seam. Its camera-space normal comes from a small network of the canonical position alone,
at low frequencies, so it is smooth; training pulls it towards `silhouette_normals`, the
person's silhouette inflated into a rounded body. The avatar shades it with the head's
light (`avatar3d.render.avatar`). It is trained after the head, with the head frozen.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from avatar3d.face import topology as topo
from avatar3d.camera import project
from avatar3d.render.conditions import Conditions
from avatar3d.layers import Standardise, linear_with_code, mlp, positional_encoding
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
        deform = linear_with_code(self.deform[0], positional_encoding(uv, self.config.frequencies), head_code, counts)
        offset = torch.tanh(self.deform[1:](deform))
        canonical = (uv + offset * self.config.max_offset).clamp(0.0, 1.0)
        decode = linear_with_code(self.decode[0], self.grid(canonical), head_code, counts, head_alpha.detach()[:, None])
        out = self.decode[1:](decode)
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


def silhouette_normals(person: np.ndarray, depth_ratio: float = 0.5) -> np.ndarray:
    """Camera-space normals (H, W, 3) of a person mask inflated into a rounded body.

    Seen from the front, a body turns away from the camera towards its outline. Each pixel
    at distance d from the outline is lifted to ``depth_ratio * sqrt(2 r d - d^2)`` (d at
    most r), an elliptic cross-section of half-width r, the mask's largest inscribed radius,
    and depth ``depth_ratio`` of its width (a chest is about half as deep as it is wide);
    Lumo's idea of normals interpolated from the silhouette. The distance map is blurred by
    r / 4 first, so the ridge along the mask's medial axis does not crease the normals.
    Outside the mask they face the camera.

    Args:
        person: (H, W) bool, True on the person (head and torso).
        depth_ratio: The body's depth over its width.

    Returns:
        (H, W, 3) float32 unit normals, x right, y up, z towards the camera.
    """
    import scipy.ndimage

    filled = scipy.ndimage.binary_fill_holes(person)
    distance = scipy.ndimage.distance_transform_edt(filled)
    radius = max(float(distance.max()), 1.0)
    d = np.minimum(scipy.ndimage.gaussian_filter(distance, radius / 4), radius)
    height = depth_ratio * np.sqrt(np.maximum(2 * radius * d - d * d, 0.0))
    d_v, d_u = np.gradient(height)  # per pixel, rows (v down) then columns (u right)
    normal = np.stack([-d_u, d_v, np.ones_like(height)], -1)
    normal = np.where(filled[..., None], normal, np.array([0.0, 0.0, 1.0]))
    return (normal / np.linalg.norm(normal, axis=-1, keepdims=True)).astype(np.float32)
