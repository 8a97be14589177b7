"""Renders one frame of the virtual actor: posed mesh, texture, SH shading, background."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

from avatar3d.errors import BadArgumentError
from avatar3d.camera import project
from avatar3d.mesh import vertex_normals
from avatar3d.render.rasterizer import interpolate, rasterize
from avatar3d.render.sh import shade
from avatar3d.render.texture import sample_texture
from avatar3d.rig.actor import Actor, intrinsics, mouth_plane

BACKGROUND_PHOTOS = ("coffee", "rocket", "brick", "chelsea", "hubble_deep_field")
"""scikit-image photos usable as backgrounds by name."""

HEAD, TORSO = 2, 1  # labels of the segmentation pass; 0 is background


@dataclass
class Pose:
    """Rigid motion of the actor in one frame (camera space, OpenGL-style)."""

    head_rotation: torch.Tensor  # (3, 3): camera point = R @ head point + t
    head_translation: torch.Tensor  # (3,)
    torso_rotation: torch.Tensor  # (3, 3) about the actor's torso pivot
    torso_translation: torch.Tensor  # (3,)


@dataclass
class Frame:
    """One rendered frame and its passes, all (R, R, C) float32 tensors."""

    rgb: torch.Tensor  # composited over the background, [0, 1]
    albedo: torch.Tensor  # texture colour before shading, 0 off the person
    normal: torch.Tensor  # camera-space unit normals (OpenGL axes), 0 off the person
    alpha: torch.Tensor  # (R, R, 1) person coverage
    label: torch.Tensor  # (R, R, 1) 0 background, 1 torso, 2 head (nearest, not averaged)


def load_background(spec: str, resolution: int) -> torch.Tensor:
    """Background (R, R, 3) from ``#RRGGBB`` or a scikit-image photo name, centre-cropped and resized."""
    if spec.startswith("#"):
        try:
            rgb = [int(spec[i: i + 2], 16) / 255 for i in (1, 3, 5)] if len(spec) == 7 else None
        except ValueError:
            rgb = None
        if rgb is None:
            raise BadArgumentError(f"background {spec!r}: write a colour as #RRGGBB")
        return torch.tensor(rgb, dtype=torch.float32).expand(resolution, resolution, 3).clone()
    if spec not in BACKGROUND_PHOTOS:
        raise BadArgumentError(
            f"background {spec!r}: use #RRGGBB or one of {', '.join(BACKGROUND_PHOTOS)}")
    photo = np.asarray(getattr(skimage.data, spec)(), dtype=np.float32) / 255
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, 2)
    height, width = photo.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = torch.from_numpy(photo[top: top + side, left: left + side, :3]).permute(2, 0, 1)[None]
    resized = F.interpolate(square, size=(resolution, resolution), mode="bilinear", antialias=True,
                            align_corners=False)
    return resized[0].permute(1, 2, 0).clamp(0, 1).contiguous()


def pose_vertices(actor: Actor, landmarks: torch.Tensor, pose: Pose) -> torch.Tensor:
    """Camera-space vertices (V, 3): the face takes ``landmarks`` (478, 3, head space), head
    parts follow the head pose, the torso its own, blended by the skinning weight (neck)."""
    rest = actor.vertices.clone()
    rest[: len(landmarks)] = landmarks
    rest[actor.mouth_rows] = mouth_plane(landmarks)
    on_head = rest @ pose.head_rotation.T + pose.head_translation
    on_torso = ((rest - actor.torso_pivot) @ pose.torso_rotation.T + actor.torso_pivot
                + pose.torso_translation)
    weight = actor.head_weight[:, None]
    return weight * on_head + (1 - weight) * on_torso


def render_frame(actor: Actor, landmarks: torch.Tensor, pose: Pose, light: torch.Tensor,
                 background: torch.Tensor, supersample: int = 2) -> Frame:
    """Renders the actor at the background's resolution.

    Args:
        actor: the virtual actor.
        landmarks: (478, 3) head-space face landmarks of this frame (expression applied).
        pose: head and torso motion of this frame.
        light: (9, 3) SH shading coefficients (see ``avatar3d.render.sh.shade``).
        background: (R, R, 3) image behind the actor.
        supersample: rendering at this many times the resolution per axis, then averaging
            (anti-aliased edges at supersample² the cost).
    """
    resolution = background.shape[0]
    size = resolution * supersample
    vertices = pose_vertices(actor, landmarks, pose)
    points = project(vertices, intrinsics(size))
    fragments = rasterize(points, actor.faces, size, size)

    normals = vertex_normals(vertices, actor.faces)
    attributes = torch.cat([actor.uv, normals, actor.head_weight[:, None], actor.solid[:, None]], 1)
    pixels = interpolate(attributes, actor.faces, fragments)
    uv, normal, head, solid = pixels.split([2, 3, 1, 1], dim=-1)
    covered = (fragments.face >= 0)[..., None].float()
    texel = sample_texture(actor.texture, uv)
    alpha = covered * torch.maximum(texel[..., 3:], solid)
    normal = F.normalize(normal, dim=-1, eps=1e-12) * covered
    albedo = texel[..., :3] * alpha
    shaded = albedo * shade(normal, light)
    label = torch.where(alpha > 0.5, torch.where(head > 0.5, HEAD, TORSO), 0).float()

    def down(image: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(image.permute(2, 0, 1)[None], supersample)[0].permute(1, 2, 0)

    alpha_out = down(alpha)
    rgb = down(shaded) + (1 - alpha_out) * background
    return Frame(
        rgb=rgb.clamp(0, 1),
        albedo=down(albedo),
        normal=F.normalize(down(normal), dim=-1, eps=1e-12),
        alpha=alpha_out,
        label=label[supersample // 2:: supersample, supersample // 2:: supersample],
    )
