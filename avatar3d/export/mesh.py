"""``avatar3d export mesh``: the head's density surface as a coloured triangle mesh.

The head field's density is sampled on a regular grid over its box (only inside occupied
cells of the occupancy grid, so floaters the renderer skips stay out), the surface at
``threshold`` is extracted with marching cubes (scikit-image) and cleaned with trimesh:
the largest connected piece is kept, holes are filled where trimesh can, normals point out.
The cameras only ever saw the head from the front, so the field's density behind the face
and hair is unconstrained (it fills the box back to its far wall); `close_back` replaces
it with the mirror image of the seen front about the head-space origin's plane ``z = 0``
(the face fit puts the origin at the head's centre), a shape prior that gives head
proportions, not a measurement. Vertex colours are the field's colour just inside the
surface, seen head-on. Coordinates
are head-space units (a face is 0.15 wide; about metres), in the face fit's head frame.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from avatar3d.errors import BadArgumentError, OutputError
from avatar3d.export.config import MeshConfig
from avatar3d.render.avatar import Avatar, find_run, load_avatar
from avatar3d.render.conditions import Conditions, canonical_landmarks, subject_conditions
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
def density_volume(avatar: Avatar, conditions: Conditions, resolution: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Head density on a grid of cubic cells, zero-padded by one cell on every side.

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
    occupied = avatar.grid.occupied(points.to(avatar.K.device)).cpu()
    index = occupied.nonzero()[:, 0]
    for start in range(0, len(index), CHUNK):
        part = index[start: start + CHUNK]
        inputs = points[part].to(avatar.K.device)
        density[part] = avatar.head.density(inputs, [len(inputs)], codes).float().cpu()
    volume = np.pad(density.reshape(*[len(a) for a in axes]).numpy(), 1)  # closes the surface at the box
    origin = np.array([float(a[0]) for a in axes]) - spacing
    return volume, origin, spacing


def close_back(volume: np.ndarray, origin: np.ndarray, spacing: float, threshold: float) -> np.ndarray:
    """Empties every voxel behind the mirror of its column's front surface.

    Args:
        volume: (X, Y, Z) densities; +z points out of the face, towards the cameras.
        origin: (3,) head-space position of voxel (0, 0, 0); spacing: cell edge.
        threshold: Surface density.

    Returns:
        The volume with, in each (x, y) column whose frontmost voxel above ``threshold``
        is at depth ``z_f``, the voxels at ``z < -z_f`` set to 0 (all of a column whose
        front is behind ``z = 0``: floaters, never a surface).
    """
    above = volume > threshold
    z = origin[2] + spacing * np.arange(volume.shape[2])
    front_index = volume.shape[2] - 1 - np.argmax(above[..., ::-1], axis=2)
    z_front = np.where(above.any(2), z[front_index], -np.inf)
    keep = z[None, None, :] >= -z_front[..., None]
    return np.where(keep, volume, 0.0).astype(volume.dtype)


@torch.no_grad()
def vertex_colours(avatar: Avatar, conditions: Conditions, vertices: np.ndarray, normals: np.ndarray,
                   inset: float) -> np.ndarray:
    """(V, 4) uint8 RGBA: the field's colour ``inset`` inside each vertex, looking along -normal."""
    device = avatar.K.device
    codes = avatar.head.frame_codes(conditions.to(device))
    colours = []
    for start in range(0, len(vertices), CHUNK):
        normal = torch.tensor(normals[start: start + CHUNK], dtype=torch.float32, device=device)
        points = torch.tensor(vertices[start: start + CHUNK], dtype=torch.float32, device=device) - inset * normal
        colours.append(avatar.head(points, -normal, [len(points)], codes)[1].cpu())
    rgb = (torch.cat(colours).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], 1)


def head_mesh(avatar: Avatar, conditions: Conditions, resolution: int, threshold: float):
    """The cleaned, coloured head mesh (a `trimesh.Trimesh`, head-space units)."""
    import trimesh
    from skimage.measure import marching_cubes

    volume, origin, spacing = density_volume(avatar, conditions, resolution)
    volume = close_back(volume, origin, spacing, threshold)
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
                                               np.asarray(mesh.vertex_normals), spacing)
    return mesh


def export_mesh(cfg: MeshConfig, device: torch.device | str = "cpu") -> Path:
    """Runs ``avatar3d export mesh``; returns the mesh path."""
    from avatar3d.files import atomic_path

    subject = Subject.load(cfg.subject)
    avatar = load_avatar(find_run(subject.root, cfg.run, cfg.runs), device)
    mesh = head_mesh(avatar, mesh_conditions(subject, cfg.frame), cfg.resolution, cfg.threshold)
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
