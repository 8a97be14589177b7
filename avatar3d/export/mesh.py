"""``avatar3d export mesh``: the head's density surface as a coloured triangle mesh.

The head field's density is sampled on a regular grid over its box (only inside occupied
cells of the occupancy grid, so floaters the renderer skips stay out), cut to the head's
envelope, the surface at ``threshold`` is extracted with marching cubes (scikit-image) and
cleaned with trimesh: the largest connected piece is kept, holes are filled where trimesh
can, normals point out. Vertex colours are what a head-on view of the field shows
(`vertex_colours`). Coordinates are head-space units (a face is 0.15 wide; about metres), in
the face fit's head frame.

Why an envelope: cameras that only ever saw the head from the front leave its density free
along every ray, and the field fills its whole box within the silhouette (on the demo actor
the unclipped mesh was the box, 0.37 x 0.35 x 0.38). `HeadEnvelope` keeps what the clip
measures and puts a prior where it measures nothing:
- **silhouette** (measured): inside the head mask in nearly every sampled frame;
- **face** (measured by the face fit): up to just in front of the fitted face surface;
- **depth** (prior): elsewhere, an ellipsoid with the silhouette's width and height and an
  adult's head length (`HEAD_LENGTH` face widths) behind the forehead. Hair and the back of
  the head are therefore shaped by anthropometry, not by the footage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from avatar3d.errors import BadArgumentError, BadInputError, OutputError
from avatar3d.export.config import MeshConfig
from avatar3d.face import signals
from avatar3d.face import topology as topo
from avatar3d.files import to_uint8
from avatar3d.render.avatar import Avatar, find_run, load_avatar
from avatar3d.render.conditions import (Conditions, canonical_landmarks, head_extent, intrinsics, spread_frames,
                                        subject_conditions)
from avatar3d.runtime import console
from avatar3d.subject import Subject

CHUNK = 65536  # grid points per density batch


def mesh_conditions(subject: Subject, frame: int | None) -> Conditions:
    """One frame's conditions, or the neutral face (canonical landmarks, eyes open as usual)."""
    conditions = subject_conditions(subject)
    if frame is not None:
        if not 0 <= frame < len(conditions):
            raise BadArgumentError(f"--frame {frame}: the subject has frames 0..{len(conditions) - 1}")
        return conditions.select(frame)
    return replace(conditions.select(0), landmarks=canonical_landmarks(subject)[None],
                   eye=conditions.eye.median().reshape(1), frame_ids=torch.full((1,), -1))


@torch.no_grad()
def density_volume(avatar: Avatar, conditions: Conditions, resolution: int,
                   envelope: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Head density on a grid of cubic cells, zero-padded by one cell on every side; zero
    (and never evaluated) outside the occupancy grid and outside ``envelope`` ((N, 3) points
    -> (N,) bool, e.g. `HeadEnvelope`) when given.

    Returns:
        ``(volume, origin, spacing)``: (X, Y, Z) float32 densities, the (3,) head-space
        position of voxel (0, 0, 0) and the cell edge length.
    """
    lo, hi = avatar.grid.box_min.cpu(), avatar.grid.box_max.cpu()
    spacing = float((hi - lo).max()) / resolution
    axes = [torch.arange(float(lo[i]), float(hi[i]) + spacing / 2, spacing) for i in range(3)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    codes = avatar.head.frame_codes(conditions.to(avatar.K.device))
    density = torch.zeros(len(points))
    index = avatar.grid.occupied(points.to(avatar.K.device)).cpu().nonzero()[:, 0]
    if envelope is not None:  # the envelope costs more per point than the grid: only occupied ones
        index = index[torch.from_numpy(envelope(points[index].double().numpy()))]
    for start in range(0, len(index), CHUNK):
        part = index[start: start + CHUNK]
        inputs = points[part].to(avatar.K.device)
        density[part] = avatar.head.density(inputs, [len(inputs)], codes).float().cpu()
    volume = np.pad(density.reshape(*[len(a) for a in axes]).numpy(), 1)  # closes the surface at the box
    origin = np.array([float(a[0]) for a in axes]) - spacing
    return volume, origin, spacing


HEAD_LENGTH = 1.4
"""Head length (forehead to the back of the skull) in face widths (the face oval's breadth):
adult means are about 19 cm over 13.5-14 cm."""
FACE_MARGIN = 0.05
"""How far in front of the fitted face surface the mesh may reach, in face widths (7 mm)."""
HULL_AGREEMENT = 0.9
"""Fraction of the frames that see a point that must put it inside the head mask."""


@dataclass(frozen=True)
class SilhouetteHull:
    """Points inside the head mask in at least `HULL_AGREEMENT` of the frames that see them.

    Attributes:
        masks: (F, H, W) bool head masks (dilated a little against segmentation jitter).
        K: (3, 3) intrinsics in pixels.
        rotation, translation: (F, 3, 3) and (F, 3) head-to-camera poses of those frames.
    """

    masks: np.ndarray
    K: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def of_subject(cls, subject: Subject, conditions: Conditions, samples: int = 24) -> "SilhouetteHull":
        """The hull of ``samples`` frames spread over the subject's clip (``conditions``: all its frames)."""
        from scipy.ndimage import binary_dilation

        from avatar3d.subject import LABEL_HEAD

        frames = spread_frames(len(conditions), samples)
        grow = max(1, round(subject.resolution / 128))  # about 1 % of the frame
        masks = np.stack([binary_dilation(subject.labels(int(i)) == LABEL_HEAD, iterations=grow) for i in frames])
        return cls(masks, intrinsics(subject).numpy(), conditions.rotation[frames].numpy(),
                   conditions.translation[frames].numpy())

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool for (N, 3) head-space points; a point no frame sees is kept."""
        from avatar3d.camera import project

        height, width = self.masks.shape[1:]
        inside = np.zeros(len(points))
        seen = np.zeros(len(points))
        for mask, R, t in zip(self.masks, self.rotation, self.translation):
            uvd = project(torch.from_numpy(points @ R.T + t).float(), torch.from_numpy(self.K)).numpy()
            u, v = np.floor(uvd[:, 0]), np.floor(uvd[:, 1])
            visible = (uvd[:, 2] > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
            seen += visible
            inside[visible] += mask[v[visible].astype(int), u[visible].astype(int)]
        return inside >= HULL_AGREEMENT * seen


@dataclass(frozen=True)
class HeadEnvelope:
    """Where the head mesh may be (see the module doc): a callable on (N, 3) head-space points.

    Attributes:
        face: (478, 3) head-frame landmarks of the meshed expression.
        lo, hi: head-space x-y corners of the head masks' extent (`head_extent`): the
            ellipsoid's width and height (any further entries are ignored).
        hull: The silhouette test, or None to skip it.
    """

    face: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    hull: SilhouetteHull | None = None

    @classmethod
    def of_subject(cls, subject: Subject, face: np.ndarray) -> "HeadEnvelope":
        """The envelope of the subject's head around ``face`` (478, 3), the meshed landmarks."""
        conditions = subject_conditions(subject)
        lo, hi = (bound.double().numpy() for bound in head_extent(subject, conditions))
        return cls(np.asarray(face, np.float64), lo, hi, SilhouetteHull.of_subject(subject, conditions))

    @cached_property
    def _face_front(self):
        """(x, y) -> z of the fitted face surface (linear between landmarks; NaN off the face)."""
        from scipy.interpolate import LinearNDInterpolator

        surface = self.face[: topo.NUM_SURFACE]  # the irises sit in front of the eyeballs
        return LinearNDInterpolator(surface[:, :2], surface[:, 2])

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool for (N, 3) head-space points."""
        width = float(signals.face_width(self.face))
        semi = np.append((self.hi[:2] - self.lo[:2]) / 2, HEAD_LENGTH * width / 2)
        centre = np.append((self.hi[:2] + self.lo[:2]) / 2, self.face[topo.FOREHEAD, 2] - semi[2])
        in_ellipsoid = (((points - centre) / semi) ** 2).sum(1) <= 1
        front = self._face_front(points[:, :2])  # NaN off the face
        behind_face = points[:, 2] <= np.where(np.isfinite(front), front, -np.inf) + FACE_MARGIN * width
        keep = in_ellipsoid | (behind_face & (points[:, 2] >= centre[2]))
        return keep & self.hull(points) if self.hull is not None else keep


@torch.no_grad()
def vertex_colours(avatar: Avatar, conditions: Conditions, vertices: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(V, 4) uint8 RGBA vertex colours.

    A vertex that faces the front takes what a head-on view shows there: the head
    volume-rendered along -z through it and lit by the clip's light, right wherever the density sits along the ray
    (the envelope may cut the surface behind or in front of the field's own). Any other
    vertex takes the colour of the nearest front-facing one: the seen rim wraps round the
    unseen back.
    """
    from scipy.spatial import cKDTree

    device = avatar.K.device
    codes = avatar.head.frame_codes(conditions.to(device))
    eye, lights = torch.eye(3, device=device)[None], avatar.frame_lights(conditions.to(device))  # head-on, the clip's light
    facing = normals[:, 2] > 0.3
    if not facing.any():
        facing[:] = True
    start_z = float(avatar.grid.box_max[2]) + 1e-3
    front = vertices[facing]
    colours = []
    for start in range(0, len(front), CHUNK):
        points = torch.tensor(front[start: start + CHUNK], dtype=torch.float32, device=device)
        origins = torch.cat([points[:, :2], torch.full_like(points[:, :1], start_z)], 1)
        directions = torch.tensor([0.0, 0.0, -1.0], device=device).expand_as(origins)
        out = avatar.render_head(origins, directions, [len(points)], codes, eye, lights)
        colours.append((out["rgb"] / out["alpha"].clamp(min=1e-3)[:, None]).cpu())  # straight, not premultiplied
    seen = to_uint8(torch.cat(colours).numpy())
    rgb = np.empty((len(vertices), 3), np.uint8)
    rgb[facing] = seen
    if not facing.all():
        rgb[~facing] = seen[cKDTree(front).query(vertices[~facing])[1]]
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], 1)


def head_mesh(avatar: Avatar, conditions: Conditions, resolution: int, threshold: float,
              envelope: Callable[[np.ndarray], np.ndarray] | None = None):
    """The cleaned, coloured head mesh (a `trimesh.Trimesh`, head-space units), cut to
    ``envelope`` when given (see `density_volume`)."""
    import trimesh
    from skimage.measure import marching_cubes

    volume, origin, spacing = density_volume(avatar, conditions, resolution, envelope)
    if not volume.max() > threshold:
        raise BadArgumentError(f"--threshold {threshold}: the head's density never reaches it (peak "
                               f"{volume.max():.3g}); use a lower threshold")
    vertices, faces, _, _ = marching_cubes(volume, level=threshold, spacing=(spacing,) * 3)
    mesh = trimesh.Trimesh(vertices + origin, faces[:, ::-1], process=True)  # skimage winds inward for rising density
    pieces = mesh.split(only_watertight=False)
    mesh = max(pieces, key=lambda piece: piece.area) if len(pieces) else mesh
    trimesh.repair.fill_holes(mesh)
    trimesh.repair.fix_normals(mesh)
    mesh.visual.vertex_colors = vertex_colours(avatar, conditions, np.asarray(mesh.vertices),
                                               np.asarray(mesh.vertex_normals))
    return mesh


def export_mesh(cfg: MeshConfig, device: torch.device | str = "cpu") -> Path:
    """Runs ``avatar3d export mesh``; returns the mesh path."""
    from avatar3d.files import atomic_path

    subject = Subject.load(cfg.subject)
    run = find_run(subject.root, cfg.run, cfg.runs)
    avatar = load_avatar(run, device)
    if avatar.backend != "nerf":
        raise BadInputError(f"{run} is a {avatar.backend} run: export mesh needs a NeRF run's density; "
                            "use `avatar3d export gaussians` for this one")
    conditions = mesh_conditions(subject, cfg.frame)
    envelope = HeadEnvelope.of_subject(subject, conditions.landmarks[0].numpy())
    mesh = head_mesh(avatar, conditions, cfg.resolution, cfg.threshold, envelope)
    out = Path(cfg.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as partial:
            mesh.export(partial, file_type=out.suffix.lower()[1:])
    except OSError as error:
        raise OutputError(f"cannot write {out}: {error.strerror}; choose a writable --out") from None
    extent = mesh.bounding_box.extents
    console.print(f"mesh: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, "
                  f"{'watertight' if mesh.is_watertight else 'not watertight'}, "
                  f"size {extent[0]:.3f} x {extent[1]:.3f} x {extent[2]:.3f} head-space units -> {out}")
    return out
