"""Head mesh export: marching cubes, the closed back, cleaning, colours, the command."""

import numpy as np
import torch
import trimesh

from avatar3d.cli import main
from avatar3d.export.mesh import close_back, head_mesh
from avatar3d.render.volume import OccupancyGrid

SEMI_AXES = torch.tensor([0.075, 0.11, 0.095])  # a head-sized ellipsoid, head-space units


class EllipsoidHead(torch.nn.Module):
    """Stands in for the head field: dense inside an ellipsoid, and (like a field seen only
    from the front) dense everywhere behind it inside its silhouette, plus a floater."""

    def frame_codes(self, conditions):
        return {}

    def density(self, points, counts, codes):
        inside = ((points / SEMI_AXES) ** 2).sum(-1) < 1
        silhouette = ((points[:, :2] / SEMI_AXES[:2]) ** 2).sum(-1) < 1
        floater = (points - torch.tensor([0.15, 0.15, -0.15])).norm(dim=-1) < 0.01
        return 1000.0 * (inside | (silhouette & (points[:, 2] < 0)) | floater).float()

    def forward(self, points, directions, counts, codes):
        colour = torch.tensor([0.8, 0.5, 0.3]).expand(len(points), 3)
        return self.density(points, counts, codes), colour, points[:, :0]


class FakeAvatar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = EllipsoidHead()
        self.grid = OccupancyGrid([-0.2] * 3, [0.2] * 3, 8)
        self.register_buffer("K", torch.eye(3))


def test_close_back_mirrors_the_front_and_drops_what_lies_behind_the_centre():
    volume = np.zeros((1, 2, 9), np.float32)
    volume[0, 0, :7] = 5.0  # surface at z index 6 -> z = 2: keep z >= -2
    volume[0, 1, :3] = 5.0  # front behind the centre plane: a floater
    closed = close_back(volume, np.array([0.0, 0.0, -4.0]), 1.0, 1.0)
    assert closed[0, 0].tolist() == [0, 0, 5, 5, 5, 5, 5, 0, 0]
    assert not closed[0, 1].any()


def test_mesh_of_an_ellipsoid_has_its_size_and_is_watertight():
    from avatar3d.render.conditions import Conditions

    conditions = Conditions(torch.eye(3)[None], torch.zeros(1, 3), torch.zeros(1, 478, 3), torch.ones(1),
                            torch.full((1,), -1))
    mesh = head_mesh(FakeAvatar(), conditions, resolution=80, threshold=10.0)
    assert mesh.is_watertight
    assert np.allclose(mesh.bounding_box.extents, 2 * SEMI_AXES.numpy(), atol=0.012)
    assert np.allclose(mesh.visual.vertex_colors[:, :3], [204, 128, 76], atol=1)
    assert mesh.volume > 0  # normals point out
    assert abs(mesh.volume - 4 / 3 * np.pi * float(SEMI_AXES.prod())) < 0.1 * mesh.volume


def test_export_mesh_command_writes_a_loadable_mesh(subject_dir, trained_run, tmp_path, capsys):
    out = tmp_path / "head.ply"
    code = main(["export", "mesh", str(subject_dir), "--run", str(trained_run), "--out", str(out),
                 "--resolution", "32", "--threshold", "1"])
    assert code == 0, capsys.readouterr()
    mesh = trimesh.load(out)
    assert len(mesh.faces) > 100 and mesh.visual.vertex_colors.shape[1] == 4
    assert main(["export", "mesh", str(subject_dir), "--run", str(trained_run), "--out", str(tmp_path / "h.stl")]) == 2
