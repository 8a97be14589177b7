"""``avatar3d export gaussians``: the avatar's head as 3D Gaussians, in the .ply layout of 3D
Gaussian splatting that common splat viewers open.

The Gaussians are cut from the NeRF's surface as cameras around the filmed one see it: every
pixel of a view whose ray ends on the head (alpha >= `MIN_ALPHA`) gives one flat Gaussian (a
surfel) at the ray's expected depth, facing the rendered normal, as wide as the pixel there, in
the head's diffuse colour under the clip's own light (albedo x shading: the NeRF's view-dependent
residual is left out, as it guesses wildly from directions the footage never saw), as opaque
as the pixel. Views overlap, so
surfaces seen by several are covered more than once. Coordinates are head space (the frame the
head NeRF lives in; `avatar3d.render.conditions`), in head-space units.

Layout (binary little-endian, one vertex per Gaussian): ``x y z`` the centre, ``nx ny nz`` the
normal, ``f_dc_0..2`` the colour as a degree-0 SH coefficient ((colour - 0.5) / 0.2820948),
``f_rest_0..44`` zero (no view dependence), ``opacity`` as a logit, ``scale_0..2`` as natural
logs of standard deviations, ``rot_0..3`` a unit quaternion (w, x, y, z).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from avatar3d.camera import rotation_matrix
from avatar3d.errors import OutputError
from avatar3d.export.config import GaussiansConfig
from avatar3d.export.mesh import mesh_conditions
from avatar3d.render.avatar import Avatar, View, find_run, load_avatar
from avatar3d.render.conditions import Conditions
from avatar3d.render.gaussians import facing
from avatar3d.render.rays import frame_pixels
from avatar3d.render.sh import shade
from avatar3d.render.splat import quaternion_to
from avatar3d.runtime import console
from avatar3d.subject import Subject

MIN_ALPHA = 0.5
"""A pixel whose head alpha is not above this gives no Gaussian (its ray does not end on the head)."""
FOOTPRINT = 0.6
"""A surfel's standard deviation across the surface, in pixels of the view it came from (so
neighbours overlap and the surface shows no holes)."""
THINNESS = 0.1
"""A surfel's standard deviation along its normal, as a share of its width."""
SH_C0 = 0.28209479177387814
"""Degree-0 SH basis constant: 3DGS stores colour c as (c - 0.5) / SH_C0."""
REST_COEFFICIENTS = 45
"""Higher-order SH coefficients per Gaussian in the layout (degree 3, RGB), written as 0."""


def orbit_view(avatar: Avatar, conditions: Conditions, yaw: float, size: int) -> View:
    """A ``size``² view from the filmed camera swung by ``yaw`` degrees about the vertical
    through the head's centre (positive: to the image's right)."""
    depth = avatar.card_depth(conditions)
    turn = rotation_matrix(math.radians(yaw), 0.0, 0.0)
    centre = torch.tensor([0.0, 0.0, -depth])
    K = avatar.K.clone()
    K[:2] *= size / avatar.resolution
    return View(K, turn, centre + turn @ torch.tensor([0.0, 0.0, depth]), size, size)


@torch.no_grad()
def surface_gaussians(avatar: Avatar, conditions: Conditions, yaws: list[float], size: int) -> dict[str, Tensor]:
    """Surfels of the head's surface seen from ``yaws`` (`orbit_view`), head space.

    Returns:
        ``means`` (N, 3), ``normals`` (N, 3) unit, ``quats`` (N, 4) w-x-y-z turning z onto the
        normal, ``scales`` (N, 3) standard deviations (across, across, along the normal),
        ``opacities`` (N,), ``colours`` (N, 3) lit colour in [0, 1].
    """
    transform = avatar.camera_to_head(conditions)
    R = transform[0][0]  # filmed camera -> head: the normals' frame
    parts = []
    for yaw in yaws:
        view = orbit_view(avatar, conditions, yaw, size)
        out = avatar.render_frame(conditions, None, with_torso=False, view=view)
        origins, directions, _ = avatar.head_rays(frame_pixels(size, size)[None], transform, view)
        alpha = out["head_alpha"].reshape(-1)
        keep = alpha > MIN_ALPHA
        distance = out["depth"].reshape(-1)[keep]
        normals = torch.nn.functional.normalize(out["normal"].reshape(-1, 3)[keep] @ R.T, dim=-1)
        parts.append({
            "means": origins[keep] + distance[:, None] * directions[keep],
            "normals": normals,
            "width": FOOTPRINT * distance / float(view.K[0, 0]),
            "opacities": alpha[keep].clamp(max=0.99),
            "colours": ((out["albedo"] * out["shading"]).reshape(-1, 3)[keep] / alpha[keep, None]).clamp(0, 1),
        })
    gaussians = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    width = gaussians.pop("width")
    gaussians["scales"] = torch.stack([width, width, THINNESS * width], -1)
    gaussians["quats"] = quaternion_to(gaussians["normals"])
    return gaussians


@torch.no_grad()
def trained_gaussians(avatar: Avatar, conditions: Conditions) -> dict[str, Tensor]:
    """A Gaussian avatar's own Gaussians in one frame (`surface_gaussians`' keys), coloured as
    the filmed camera sees them under the clip's light (albedo x shading)."""
    head = avatar.head
    posed = head.posed(head.frame_codes(conditions), 0)
    R, t = (part[0] for part in avatar.camera_to_head(conditions))
    normals = facing(posed["axes"], posed["means"], t)
    light = avatar.frame_lights(conditions)[0]
    colours = posed["albedo"] * shade(normals @ R, light)
    return {"means": posed["means"], "normals": normals, "opacities": posed["opacities"], "colours": colours.clamp(0, 1),
            "scales": head.log_scales.exp(), "quats": torch.nn.functional.normalize(head.quats, dim=-1)}


PLY_FIELDS = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
              + [f"f_rest_{i}" for i in range(REST_COEFFICIENTS)]
              + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def ply_rows(gaussians: dict[str, Tensor]) -> np.ndarray:
    """(N, len(PLY_FIELDS)) float32 rows of the layout (module doc)."""
    opacity = gaussians["opacities"].clamp(1e-6, 1 - 1e-6)
    columns = [gaussians["means"], gaussians["normals"], (gaussians["colours"] - 0.5) / SH_C0,
               torch.zeros(len(opacity), REST_COEFFICIENTS), torch.logit(opacity)[:, None],
               gaussians["scales"].log(), gaussians["quats"]]
    return torch.cat([column.float().cpu() for column in columns], 1).numpy()


def write_ply(path: Path, rows: np.ndarray) -> None:
    """Writes `ply_rows` as a binary little-endian .ply."""
    header = "\n".join(["ply", "format binary_little_endian 1.0", f"element vertex {len(rows)}",
                        *[f"property float {name}" for name in PLY_FIELDS], "end_header"]) + "\n"
    with open(path, "wb") as file:
        file.write(header.encode("ascii"))
        file.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())


def read_ply(path: Path) -> dict[str, np.ndarray]:
    """The float properties of a binary little-endian .ply's vertices, by name (as `write_ply` writes)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode("ascii").splitlines()
    count = int(next(line.split()[2] for line in lines if line.startswith("element vertex")))
    names = [line.split()[2] for line in lines if line.startswith("property float")]
    rows = np.frombuffer(data[end:], dtype="<f4", count=count * len(names)).reshape(count, len(names)).copy()
    return {name: rows[:, i] for i, name in enumerate(names)}


def export_gaussians(cfg: GaussiansConfig, device: torch.device | str = "cpu") -> Path:
    """Runs ``avatar3d export gaussians``; returns the .ply path."""
    from avatar3d.files import atomic_path

    subject = Subject.load(cfg.subject)
    avatar = load_avatar(find_run(subject.root, cfg.run, cfg.runs), device)
    conditions = mesh_conditions(subject, cfg.frame).to(device)
    if avatar.backend == "gaussians":
        gaussians, source = trained_gaussians(avatar, conditions), "the Gaussian head"
    else:
        gaussians = surface_gaussians(avatar, conditions, cfg.yaw_list(), cfg.resolution or subject.resolution)
        source = f"{len(cfg.yaw_list())} views of the NeRF"
    out = Path(cfg.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as partial:
            write_ply(partial, ply_rows(gaussians))
    except OSError as error:
        raise OutputError(f"cannot write {out}: {error.strerror}; choose a writable --out") from None
    console.print(f"gaussians: {len(gaussians['means'])} from {source} -> {out}")
    return out
