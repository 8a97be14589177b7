"""What the viewer shows of each pass."""

import math

import numpy as np
import torch

from avatar3d.camera import rotation_matrix
from viewer.session import CHECKER, display


def frame(alpha: float = 0.0):
    """A 2 x 2 * CHECKER render: left column empty, right column a surface."""
    size = 2 * CHECKER
    out = {key: torch.zeros(size, size, 3) for key in ("rgb", "albedo", "shading", "normal")}
    out["alpha"] = torch.zeros(size, size, 1)
    out["depth"] = torch.zeros(size, size, 1)
    out["alpha"][:, CHECKER:] = 1.0
    out["rgb"][:, CHECKER:] = torch.tensor([0.2, 0.4, 0.6])
    out["depth"][:CHECKER, CHECKER:] = 2.0
    out["depth"][CHECKER:, CHECKER:] = 3.0
    out["normal"][:, CHECKER:] = torch.tensor([0.0, 0.0, 1.0])
    return out


def test_transparent_colour_shows_over_a_checkerboard():
    shown = display(frame(), "rgb", torch.eye(3), transparent=True)
    assert shown[0, 0, 0] != shown[CHECKER, 0, 0]  # two squares of the board where nothing is
    assert tuple(shown[0, -1]) == (51, 102, 153)  # the surface itself, untouched
    assert display(frame(), "rgb", torch.eye(3), transparent=False)[0, 0].tolist() == [0, 0, 0]


def test_depth_is_bright_near_and_normals_turn_into_the_view():
    depth = display(frame(), "depth", torch.eye(3), False)
    assert depth[0, -1, 0] == 255 and 40 < depth[-1, -1, 0] < 60 and depth[0, 0, 0] == 0
    # A view turned 90 degrees about the vertical sees a normal that faces the filmed camera
    # side-on, along its own x axis.
    turn = rotation_matrix(math.radians(-90), 0.0, 0.0)
    normal = display(frame(), "normal", turn, False)[0, -1].astype(float) / 255
    view_normal = turn.T @ torch.tensor([0.0, 0.0, 1.0])
    assert np.allclose(normal, (0.5 + 0.5 * view_normal).numpy(), atol=0.01)
    assert abs(view_normal[0]) > 0.99
    assert display(frame(), "normal", turn, False)[0, 0].tolist() == [0, 0, 0]
