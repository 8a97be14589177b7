"""The browser's camera (viser) as the avatar's `View`, and the filmed camera as a browser camera.

The browser's world is the filmed camera's space (axes of `avatar3d.render.rays`: x right,
y up, the camera at the origin looking along -z), so the filmed view is the browser camera at
the origin looking down -z with +y up. viser reports a camera as its camera-to-world rotation
(a quaternion w, x, y, z) in OpenCV axes (x right, y down, looking along +z), its position,
and its vertical field of view; its image is the browser canvas. Rendered images have square
pixels and the principal point in their centre, as the browser shows them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from viser import transforms

from avatar3d.render.avatar import Avatar, View
from avatar3d.render.conditions import Conditions

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])
"""Flips a camera's y and z axes: OpenCV (y down, looking along +z) <-> OpenGL (y up, along -z)."""


@dataclass(frozen=True)
class BrowserCamera:
    """A camera as viser reports it (`viser.CameraHandle`): ``wxyz`` (4,) camera-to-world
    rotation in OpenCV axes, ``position`` (3,), vertical ``fov`` (radians), and the canvas
    ``aspect`` (width / height)."""

    wxyz: tuple[float, float, float, float]
    position: tuple[float, float, float]
    fov: float
    aspect: float

    @classmethod
    def of(cls, camera) -> "BrowserCamera":
        """A snapshot of a `viser.CameraHandle` (which the browser keeps updating)."""
        return cls(tuple(float(x) for x in camera.wxyz), tuple(float(x) for x in camera.position),
                   float(camera.fov), float(camera.aspect))


def browser_view(camera: BrowserCamera, height: int) -> View:
    """The avatar's `View` of a browser camera, ``height`` pixels high, as wide as the canvas."""
    width = max(1, round(height * camera.aspect))
    focal = height / 2 / math.tan(camera.fov / 2)
    K = torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    rotation = transforms.SO3(np.asarray(camera.wxyz)).as_matrix() @ OPENCV_TO_OPENGL
    return View(K, torch.tensor(rotation, dtype=torch.float32), torch.tensor(camera.position, dtype=torch.float32),
                width, height)


@dataclass(frozen=True)
class FilmedCamera:
    """The filmed camera as the browser's camera: ``position``, ``look_at`` (the optical
    axis at the head's depth, where the browser orbits), ``up`` and vertical ``fov`` (radians)."""

    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    up: tuple[float, float, float]
    fov: float


def filmed_camera(avatar: Avatar, conditions: Conditions) -> FilmedCamera:
    """The filmed camera of ``avatar`` (its intrinsics), orbiting the head of the first of
    ``conditions``."""
    fov = 2 * math.atan(avatar.resolution / 2 / float(avatar.K[1, 1]))
    return FilmedCamera((0.0, 0.0, 0.0), (0.0, 0.0, -avatar.card_depth(conditions)), (0.0, 1.0, 0.0), fov)
