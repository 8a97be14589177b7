"""The virtual actor's body: a textured head-and-shoulders mesh built from one portrait photo.

Four parts, all textured from one atlas (the photo, plus a strip of mouth-interior colours):

* face: the 478 MediaPipe landmarks detected on the photo, lifted to 3D with MediaPipe's
  relative depth, triangulated with MediaPipe's tessellation; these vertices are the
  landmarks, so the expression rig moves them and they are the ground truth;
* eyes: a fan behind each eye opening, so that closing lids slide over the photo's eyes;
* mouth: a quad behind the rest lip opening textured with the photo's own teeth, fixed to
  the skull, and behind it a dark cavity placed each frame from the lips (``mouth_plane``);
* relief: a height field over the person mask (hair, ears, neck, shoulders) inflated from
  the mask's distance transform; its silhouette comes from the mask in the texture alpha,
  so it follows the segmentation at texel resolution instead of the grid's staircase.

Head space: +y up, +z towards the camera, the face FACE_WIDTH wide, origin near the centre
of the head (the pivot of head rotation). At rest the camera sees the photo's framing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import skimage.data
import skimage.measure
import torch

from avatar3d.face import topology as topo
from avatar3d.face.landmarks import detect_landmarks
from avatar3d.face.model import FACE_WIDTH, HEAD_CENTRE_DEPTH
from avatar3d.face.segmentation import PersonSegmenter
from avatar3d.camera import intrinsics as camera_intrinsics
from avatar3d.camera import project, unproject
from avatar3d.mesh import orient_towards_camera
from avatar3d.rig.expression import ExpressionRig, build_rig, smoothstep

FRAME_FACE_FRACTION = 0.33
"""Face width over frame width: head and shoulders framing, like interview footage."""
FACE_CENTRE_HEIGHT = 0.42
"""Height of the face centre in the frame, from the top, as a fraction of the frame."""
FOCAL_PER_WIDTH = 2.2
"""Focal length over frame width (a ~26 degree field of view)."""
GRID_STEP = 4
"""Relief grid spacing, photo pixels."""
_MOUTH_STRIP = 64  # atlas rows under the photo holding the mouth-cavity colours


@dataclass
class Actor:
    """Mesh, texture and rig of the virtual actor (CPU tensors, float32)."""

    vertices: torch.Tensor  # (V, 3) head-space rest positions; rows 0..477 are the landmarks
    mouth_rows: slice  # rows of ``vertices`` placed per frame by ``mouth_plane``
    faces: torch.Tensor  # (F, 3) int64
    uv: torch.Tensor  # (V, 2) atlas coordinates in [0, 1], (0, 0) top-left
    texture: torch.Tensor  # (Ht, Wt, 4) albedo RGB + person coverage
    head_weight: torch.Tensor  # (V,) 1 moves with the head, 0 with the torso
    solid: torch.Tensor  # (V,) 1 where the surface is opaque whatever the texture alpha says
    rest_translation: torch.Tensor  # (3,) head-space origin in camera space at rest
    torso_pivot: torch.Tensor  # (3,) head-space point the torso turns about (base of the neck)
    rig: ExpressionRig


def intrinsics(resolution: int) -> torch.Tensor:
    """(3, 3) intrinsics of the actor's camera for a square frame of ``resolution`` pixels."""
    return camera_intrinsics(FOCAL_PER_WIDTH * resolution, resolution, resolution)


def _lift(uv: np.ndarray, depth: np.ndarray, K: torch.Tensor) -> np.ndarray:
    return unproject(torch.as_tensor(uv, dtype=torch.float32), torch.as_tensor(depth, dtype=torch.float32),
                     K).numpy()


def _eye_fans(landmarks_cam: np.ndarray, landmarks_px: np.ndarray, first_index: int):
    """Fans filling both eye openings, pushed back along their rays (so they project unchanged).

    Returns vertex positions (N, 3) camera space, their photo pixels (N, 2) and faces (M, 3)
    indexed from ``first_index``.
    """
    positions, pixels, faces = [], [], []
    for corners, upper, lower in (
        (topo.RIGHT_EYE_CORNERS, topo.RIGHT_UPPER_LID, topo.RIGHT_LOWER_LID),
        (topo.LEFT_EYE_CORNERS, topo.LEFT_UPPER_LID, topo.LEFT_LOWER_LID),
    ):
        loop = [corners[0], *upper, corners[1], *reversed(lower)]
        centre = first_index + len(positions)
        positions += [landmarks_cam[loop].mean(0), *landmarks_cam[loop]]
        pixels += [landmarks_px[loop, :2].mean(0), *landmarks_px[loop, :2]]
        ring = [centre + 1 + i for i in range(len(loop))]
        faces += [(centre, ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))]
    positions = np.asarray(positions)
    push = 1 + 0.02 * FACE_WIDTH / -positions[:, 2:3]
    return positions * push, np.asarray(pixels), np.asarray(faces)


def mouth_plane(landmarks: torch.Tensor) -> torch.Tensor:
    """Corners (4, 3) of the dark cavity seen through the open lips, from this frame's landmarks.

    It lies as deep as the ends of the face oval, behind every surface around the mouth (the
    jaw swings the lower lip and chin backwards as it opens), and spans the current lip
    opening with a margin. Order: top left, top right, bottom left, bottom right.
    """
    corners = landmarks[list(topo.MOUTH_CORNERS)]
    width = torch.linalg.norm(corners[0] - corners[1])
    top = landmarks[list(topo.UPPER_LIP_INNER), 1].max() + 0.1 * width
    bottom = landmarks[list(topo.LOWER_LIP_INNER), 1].min() - 0.15 * width
    depth_z = landmarks[list(topo.FACE_SIDES), 2].mean()
    # No wider than the lip opening: the chin's sides swing back behind this depth.
    left, right = landmarks[list(topo.INNER_CORNERS), 0].sort().values + 0.05 * width * torch.tensor([-1, 1])
    return torch.stack([torch.stack([x, y, depth_z]) for y in (top, bottom) for x in (left, right)])


def _teeth(landmarks_cam: np.ndarray, K_photo: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A quad (4, 3) behind the rest lip opening, fixed to the skull, and its photo pixels (4, 2).

    Textured from the photo itself, so at rest it shows the photo's own teeth (or closed
    lips). It sits deeper than the lower lip and chin ever swing back, and ends above the
    rest lower lip, so an open jaw shows the cavity below it and never this quad's edges.
    """
    width = np.linalg.norm(landmarks_cam[topo.MOUTH_CORNERS[0]] - landmarks_cam[topo.MOUTH_CORNERS[1]])
    top = landmarks_cam[list(topo.UPPER_LIP_INNER), 1].max() + 0.1 * width
    upper, lower = landmarks_cam[topo.MOUTH_TOP, 1], landmarks_cam[topo.MOUTH_BOTTOM, 1]
    bottom = lower + 0.3 * (upper - lower)
    depth_z = landmarks_cam[topo.MOUTH_TOP, 2] - 0.4 * width
    left, right = np.sort(landmarks_cam[list(topo.INNER_CORNERS), 0])
    quad = np.array([(x, y, depth_z) for y in (top, bottom) for x in (left, right)])
    pixels = project(torch.as_tensor(quad, dtype=torch.float32), K_photo)[:, :2].numpy()
    return quad, pixels


def _quad_faces(first_index: int) -> np.ndarray:
    """Two triangles over four vertices ordered top left, top right, bottom left, bottom right."""
    a = first_index
    return np.array([(a, a + 2, a + 1), (a + 1, a + 2, a + 3)])


def _cavity_strip(width: int) -> np.ndarray:
    """RGBA atlas rows of the mouth cavity: dark red, darker towards the throat."""
    rows = np.linspace(0, 1, _MOUTH_STRIP)[:, None]
    rgb = np.array([0.30, 0.08, 0.08]) * (1 - 0.5 * rows)
    return np.concatenate([np.repeat(rgb[:, None], width, 1), np.ones((_MOUTH_STRIP, width, 1))], 2)


def _relief(mask: np.ndarray, box: tuple[float, float, float], chin_v: float, face_px: float,
            face_depth: float):
    """Grid vertices (uv px, depth) and faces over the person mask inside the framing box."""
    x0, y0, size = box
    height, width = mask.shape
    us = np.arange(max(0, x0 - 0.1 * size), min(width, x0 + 1.1 * size) + GRID_STEP, GRID_STEP)
    vs = np.arange(max(0, y0 - 0.1 * size), min(height, y0 + 1.1 * size) + GRID_STEP, GRID_STEP)
    grid_u, grid_v = np.meshgrid(us, vs)
    uv = np.stack([grid_u.ravel(), grid_v.ravel()], 1).astype(np.float64)

    person = scipy.ndimage.binary_fill_holes(mask > 0.5)
    inside = scipy.ndimage.distance_transform_edt(person)
    sample = lambda image: scipy.ndimage.map_coordinates(image, [uv[:, 1] - 0.5, uv[:, 0] - 0.5], order=1,
                                                         mode="nearest")
    distance = sample(inside)
    covered = sample(scipy.ndimage.binary_dilation(person, iterations=2 * GRID_STEP).astype(np.float32)) > 0.5

    head = _head_weight(uv[:, 1], chin_v, face_px)
    head_depth = face_depth + 0.085 + 0.04 * (1 - np.sqrt(np.minimum(1, distance / (0.5 * face_px))))
    torso_depth = face_depth + 0.10 + 0.08 * (1 - np.sqrt(np.minimum(1, distance / face_px)))
    depth = head * head_depth + (1 - head) * torso_depth

    rows, cols = grid_u.shape
    index = np.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    faces = faces[covered[faces].any(1)]
    return uv, depth, head, faces


def _head_weight(v: np.ndarray, chin_v: float, face_px: float) -> np.ndarray:
    """1 above the chin, 0 from well down the neck, smooth between (v in photo pixels, down)."""
    return 1 - smoothstep(chin_v + 0.05 * face_px, chin_v + 0.5 * face_px, v)


def build_actor(photo: np.ndarray | None = None) -> Actor:
    """Builds the actor from an RGB uint8 portrait (default: scikit-image's ``astronaut``).

    Raises:
        RuntimeError: no face is found in the photo.
    """
    photo = skimage.data.astronaut() if photo is None else photo
    landmarks_px = detect_landmarks(photo)
    if landmarks_px is None:
        raise RuntimeError("no face found in the actor's photo")
    with PersonSegmenter() as segment:
        mask = segment(photo)
    height, width = mask.shape

    face_px = float(np.linalg.norm(landmarks_px[topo.FACE_SIDES[0], :2] - landmarks_px[topo.FACE_SIDES[1], :2]))
    size = face_px / FRAME_FACE_FRACTION
    face_centre = (landmarks_px[topo.FOREHEAD, :2] + landmarks_px[topo.CHIN, :2]) / 2
    x0 = face_centre[0] - size / 2
    y0 = face_centre[1] - FACE_CENTRE_HEIGHT * size
    K_photo = torch.tensor([[FOCAL_PER_WIDTH * size, 0, x0 + size / 2], [0, FOCAL_PER_WIDTH * size, y0 + size / 2],
                            [0, 0, 1]], dtype=torch.float32)
    metre = FACE_WIDTH / face_px
    face_depth = FOCAL_PER_WIDTH * size * metre  # camera distance of MediaPipe's z = 0
    landmarks_cam = _lift(landmarks_px[:, :2], face_depth + landmarks_px[:, 2] * metre, K_photo)

    eye_pos, eye_uv_px, eye_faces = _eye_fans(landmarks_cam, landmarks_px, topo.NUM_LANDMARKS)

    atlas_height = height + _MOUTH_STRIP
    teeth_pos, teeth_px = _teeth(landmarks_cam, K_photo)
    first_mouth = topo.NUM_LANDMARKS + len(eye_pos) + len(teeth_pos)
    mouth_pos = np.zeros((4, 3))  # placed per frame by mouth_plane()
    strip_v = (height + np.array([4, 4, _MOUTH_STRIP - 4, _MOUTH_STRIP - 4])) / atlas_height
    mouth_uv = np.stack([np.array([0.25, 0.75, 0.25, 0.75]), strip_v], 1)
    mouth_faces = np.concatenate([_quad_faces(first_mouth - len(teeth_pos)), _quad_faces(first_mouth)])

    chin_v = float(landmarks_px[topo.CHIN, 1])
    relief_uv_px, relief_depth, relief_head, relief_faces = _relief(
        mask, (x0, y0, size), chin_v, face_px, face_depth)
    relief_pos = _lift(relief_uv_px, relief_depth, K_photo)
    first_relief = first_mouth + len(mouth_pos)

    face_pos = np.concatenate([landmarks_cam, eye_pos, teeth_pos])
    face_faces = orient_towards_camera(landmarks_cam, topo.triangles())
    positions = np.concatenate([face_pos, mouth_pos, relief_pos])
    faces = np.concatenate([face_faces, eye_faces, mouth_faces, orient_towards_camera(
        relief_pos, relief_faces) + first_relief])

    atlas_scale = np.array([width, atlas_height])
    uv = np.concatenate([
        np.concatenate([landmarks_px[:, :2], eye_uv_px, teeth_px]) / atlas_scale,
        mouth_uv,
        relief_uv_px / atlas_scale,
    ])
    texture = np.concatenate([
        np.concatenate([photo / 255.0, mask[..., None]], 2),
        _cavity_strip(width),
    ])
    num_solid = len(face_pos) + len(mouth_pos)
    head_weight = np.concatenate([np.ones(num_solid), relief_head])
    solid = np.concatenate([np.ones(num_solid), np.zeros(len(relief_pos))])

    # Scaling about the camera centre changes no projection: use it to make the face exactly
    # FACE_WIDTH wide (the lift above sized it at MediaPipe's z = 0, not at the oval's ends).
    sides = landmarks_cam[list(topo.FACE_SIDES)]
    scale = FACE_WIDTH / np.linalg.norm(sides[0, :2] - sides[1, :2])
    positions, landmarks_cam = positions * scale, landmarks_cam * scale
    # Head-space origin: between the ends of the face oval, HEAD_CENTRE_DEPTH further back.
    sides = landmarks_cam[list(topo.FACE_SIDES)].mean(0)
    origin = np.array([landmarks_cam[topo.NOSE_TIP, 0], sides[1], sides[2] - HEAD_CENTRE_DEPTH])
    vertices = positions - origin
    torso_pivot = np.array([0.0, vertices[topo.CHIN, 1] - 0.5 * FACE_WIDTH, 0.0])

    as_float = lambda array: torch.as_tensor(np.asarray(array), dtype=torch.float32)
    return Actor(
        vertices=as_float(vertices),
        mouth_rows=slice(first_mouth, first_mouth + len(mouth_pos)),
        faces=torch.as_tensor(faces, dtype=torch.int64),
        uv=as_float(uv),
        texture=as_float(texture),
        head_weight=as_float(head_weight),
        solid=as_float(solid),
        rest_translation=as_float(origin),
        torso_pivot=as_float(torso_pivot),
        rig=build_rig(vertices[: topo.NUM_LANDMARKS]),
    )
