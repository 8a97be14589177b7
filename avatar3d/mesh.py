"""Triangle-mesh helpers shared by the face prior, the virtual actor and its renderer."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (..., V, 3) of consistently wound meshes.

    Args:
        vertices: (..., V, 3) positions (a batch of meshes sharing ``faces``).
        faces: (F, 3) long vertex indices, wound so that normals point out.
    """
    corners = vertices[..., faces, :]  # (..., F, 3, 3)
    face_normals = torch.linalg.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])
    normals = torch.zeros_like(vertices).index_add_(-2, faces.reshape(-1), face_normals.repeat_interleave(3, -2))
    return F.normalize(normals, dim=-1, eps=1e-12)


def orient_towards_camera(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) ``faces`` consistently wound, with normals facing +z (the camera) on average."""
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    trimesh.repair.fix_winding(mesh)
    if mesh.face_normals[:, 2].mean() < 0:
        mesh.invert()
    return np.asarray(mesh.faces)
