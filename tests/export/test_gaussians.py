"""``avatar3d export gaussians``: surfels of the NeRF's surface in 3DGS's .ply layout."""

import math

import numpy as np
import torch

from avatar3d.cli import main
from avatar3d.export.gaussians import PLY_FIELDS, SH_C0, orbit_view, read_ply, surface_gaussians
from avatar3d.export.mesh import mesh_conditions
from avatar3d.render.avatar import load_avatar
from avatar3d.render.splat import covariances, project, quaternion_to, rasterize
from avatar3d.subject import Subject


def test_quaternions_turn_z_onto_the_directions():
    directions = torch.nn.functional.normalize(torch.randn(50, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    directions = torch.cat([directions, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])])
    quats = quaternion_to(directions)
    assert torch.allclose(quats.norm(dim=-1), torch.ones(len(quats)), atol=1e-6)
    # A Gaussian of scales (0, 0, 1) turned by q has the covariance d d^T.
    turned = covariances(quats, torch.tensor([0.0, 0.0, 1.0]).expand(len(quats), 3))
    torch.testing.assert_close(turned, directions[:, :, None] * directions[:, None, :], atol=1e-5, rtol=0)


def test_exported_gaussians_render_what_the_nerf_shows(subject_dir, trained_run, tmp_path, capsys):
    """The .ply has 3DGS's fields, one Gaussian per head pixel of each view; splatted from the
    filmed camera, its Gaussians cover the NeRF's head and take its diffuse colour."""
    out = tmp_path / "head.ply"
    assert main(["export", "gaussians", str(subject_dir), "--run", str(trained_run), "--out", str(out),
                 "--yaws", "0", "--resolution", "64"]) == 0, capsys.readouterr()
    ply = read_ply(out)
    assert list(ply) == list(PLY_FIELDS)
    values = np.stack(list(ply.values()), 1)
    assert len(values) > 200 and np.isfinite(values).all()
    assert np.allclose(np.linalg.norm(np.stack([ply[f"rot_{i}"] for i in range(4)], 1), axis=1), 1, atol=1e-5)
    opacity = 1 / (1 + np.exp(-ply["opacity"]))
    assert opacity.min() > 0.5 and opacity.max() <= 0.99 + 1e-6

    avatar = load_avatar(trained_run)
    conditions = mesh_conditions(Subject.load(subject_dir), None)
    view = orbit_view(avatar, conditions, 0.0, 64)
    R, t = (x[0] for x in avatar.camera_to_head(conditions))  # filmed camera -> head
    means = torch.from_numpy(np.stack([ply["x"], ply["y"], ply["z"]], 1))
    quats = torch.from_numpy(np.stack([ply[f"rot_{i}"] for i in range(4)], 1))
    scales = torch.from_numpy(np.exp(np.stack([ply[f"scale_{i}"] for i in range(3)], 1)))
    colours = torch.from_numpy(np.stack([ply[f"f_dc_{i}"] for i in range(3)], 1) * SH_C0 + 0.5)
    with torch.no_grad():
        projected = project(means, covariances(quats, scales), view.K, R.T, -R.T @ t, 64, 64)
        image = rasterize(projected, colours, torch.from_numpy(opacity), 64, 64, tile_size=8)
        nerf = avatar.render_frame(conditions, None, with_torso=False, view=view)
    splatted, head = image["alpha"] > 0.5, nerf["head_alpha"][..., 0] > 0.5
    assert float((splatted & head).sum() / (splatted | head).sum()) > 0.9
    both = splatted & head
    error = ((image["rgb"] - (nerf["albedo"] * nerf["shading"]))[both] ** 2).mean()
    assert -10 * math.log10(float(error)) > 20


def test_bad_outputs_exit_2_and_leave_nothing(subject_dir, trained_run, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output's folder should be")
    code = main(["export", "gaussians", str(subject_dir), "--run", str(trained_run), "--out",
                 str(blocker / "head.ply"), "--resolution", "32"])
    assert code == 2 and "choose a writable --out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"] and "a file where" in blocker.read_text()
    assert main(["export", "gaussians", str(subject_dir), "--out", str(tmp_path / "head.splat")]) == 2
    assert main(["export", "gaussians", str(subject_dir), "--out", str(tmp_path / "h.ply"), "--yaws", "0,120"]) == 2
    assert "--yaws '0,120'" in capsys.readouterr().err
