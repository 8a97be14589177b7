"""Head mesh export: the envelope (silhouette hull, face, depth prior), marching cubes, colours, the command."""

import numpy as np
import torch
import trimesh

from avatar3d.cli import main
from avatar3d.export.mesh import HEAD_LENGTH, HeadEnvelope, SilhouetteHull, head_mesh
from avatar3d.face import topology as topo
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




class FakeAvatar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = EllipsoidHead()
        self.grid = OccupancyGrid([-0.2] * 3, [0.2] * 3, 8)
        self.register_buffer("K", torch.eye(3))

    def frame_lights(self, conditions):
        return torch.zeros(len(conditions), 9, 3)

    def render_head(self, origins, directions, counts, codes, to_camera, lights):
        """Half-transparent and premultiplied, as the real renderer returns colour."""
        alpha = torch.full((len(origins),), 0.5)
        return {"rgb": torch.tensor([0.8, 0.5, 0.3]) * alpha[:, None], "alpha": alpha}


def _frontal_and_side_cameras(frames_front: int, frames_side: int):
    """Head-to-camera poses 1 unit away: looking at the face, and at the head's side (yaw 90°)."""
    side = torch.tensor([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])
    rotation = torch.stack([torch.eye(3)] * frames_front + [side] * frames_side).numpy()
    return rotation, np.tile([0.0, 0.0, -1.0], (len(rotation), 1))


def test_silhouette_hull_carves_what_any_view_sees_outside_the_mask():
    K = np.array([[100.0, 0, 32], [0, 100, 32], [0, 0, 1]])
    rows, cols = np.mgrid[:64, :64] + 0.5
    disc = (rows - 32) ** 2 + (cols - 32) ** 2 <= 10**2  # a ball of radius 0.1 at the origin, 1 unit away
    points = np.array([[0.0, 0, 0], [0.2, 0, 0], [0, 0, -0.25], [0, 0, 0.08]])
    rotation, translation = _frontal_and_side_cameras(10, 0)
    front_only = SilhouetteHull(np.stack([disc] * 10), K, rotation, translation)
    assert front_only(points).tolist() == [True, False, True, True]  # from the front, depth stays free
    rotation, translation = _frontal_and_side_cameras(5, 5)
    with_side = SilhouetteHull(np.stack([disc] * 10), K, rotation, translation)
    assert with_side(points).tolist() == [True, False, False, True]
    rotation, translation = _frontal_and_side_cameras(19, 1)
    lone_miss = np.stack([disc] * 19 + [np.zeros_like(disc)])  # one frame's mask lost the head: outvoted
    assert SilhouetteHull(lone_miss, K, rotation, translation)(points).tolist() == [True, False, True, True]


def _ellipsoid_face() -> np.ndarray:
    """(478, 3) landmarks on the front of the `SEMI_AXES` ellipsoid, face width set so that
    `HEAD_LENGTH` face widths are its depth, forehead at its front pole."""
    semi = SEMI_AXES.double().numpy()
    width = 2 * semi[2] / HEAD_LENGTH
    xy = np.random.default_rng(0).uniform(-0.7, 0.7, (478, 2)) * semi[:2]
    face = np.c_[xy, semi[2] * np.sqrt(1 - ((xy / semi[:2]) ** 2).sum(1))]
    for index, x in zip(topo.FACE_SIDES, (-width / 2, width / 2)):
        face[index] = [x, 0, semi[2] * np.sqrt(1 - (x / semi[0]) ** 2)]
    face[topo.FOREHEAD] = [0, 0, semi[2]]
    return face


def test_envelope_is_the_ellipsoid_of_the_silhouette_and_head_length_plus_the_face():
    semi = SEMI_AXES.double().numpy()
    envelope = HeadEnvelope(_ellipsoid_face(), -semi, semi)
    assert envelope(np.array([[0.0, 0, 0], [0, 0, -0.9 * semi[2]], [0.9 * semi[0], 0, 0]])).all()
    assert not envelope(np.array([[0.0, 0, -1.1 * semi[2]], [1.1 * semi[0], 0, 0], [0, 0, 1.5 * semi[2]]])).any()
    face_width = 2 * semi[2] / HEAD_LENGTH
    just_in_front = [0.0, 0, semi[2] + 0.03 * face_width]  # within FACE_MARGIN of the face
    assert envelope(np.array([just_in_front])).all()


def test_mesh_of_an_ellipsoid_has_its_size_and_is_watertight():
    from avatar3d.render.conditions import Conditions

    conditions = Conditions(torch.eye(3)[None], torch.zeros(1, 3), torch.zeros(1, 478, 3), torch.ones(1),
                            torch.full((1,), -1))
    semi = SEMI_AXES.double().numpy()
    unclipped = head_mesh(FakeAvatar(), conditions, resolution=40, threshold=10.0)
    assert unclipped.bounds[0, 2] < -0.19  # a frontal field's density runs back to the box
    mesh = head_mesh(FakeAvatar(), conditions, resolution=80, threshold=10.0,
                     envelope=HeadEnvelope(_ellipsoid_face(), -semi, semi))
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
