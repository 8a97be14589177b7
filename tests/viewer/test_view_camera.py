"""The browser's camera as the avatar's view, the timeline's clock, frame sizing, the port check."""

import math
import socket
import time

import numpy as np
import pytest
import torch

from avatar3d.errors import BadArgumentError
from avatar3d.render.avatar import load_avatar
from avatar3d.render.conditions import subject_conditions
from avatar3d.subject import Subject
from viewer.camera import BrowserCamera, browser_view, filmed_camera
from viewer.server import check_port
from viewer.session import SMALLEST, Pace
from viewer.timeline import AudioClock


def look_at_quaternion(position, target, up=(0.0, 1.0, 0.0)):
    """wxyz of an OpenCV camera-to-world rotation looking from position at target, written
    independently of the viewer (columns x right, y down, z forward)."""
    from scipy.spatial.transform import Rotation

    forward = np.subtract(target, position, dtype=float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    x, y, z, w = Rotation.from_matrix(np.stack([right, down, forward], 1)).as_quat()
    return (w, x, y, z)


@pytest.fixture(scope="module")
def avatar_and_frames(subject_dir, trained_run):
    return load_avatar(trained_run), subject_conditions(Subject.load(subject_dir))


@pytest.mark.parametrize("run", ["trained_run", "gaussian_run"])
def test_filmed_camera_renders_the_training_view(run, request, subject_dir):
    """The browser camera the viewer starts at is the filmed camera: through it a square canvas
    renders what `render_frame` renders, torso and background included, with either head."""
    avatar, frames = load_avatar(request.getfixturevalue(run)), subject_conditions(Subject.load(subject_dir))
    frame = frames.select(3)
    filmed = filmed_camera(avatar, frame)
    camera = BrowserCamera(look_at_quaternion(filmed.position, filmed.look_at, filmed.up), filmed.position,
                           filmed.fov, 1.0)
    view = browser_view(camera, avatar.resolution)
    assert torch.allclose(view.rotation, torch.eye(3), atol=1e-6)
    assert torch.allclose(view.K[:2, :2], avatar.K[:2, :2], rtol=1e-5)
    plate = torch.rand(avatar.resolution, avatar.resolution, 3, generator=torch.Generator().manual_seed(0))
    # The avatar's principal point is its crop's, the browser's the canvas centre: move it there.
    original = avatar.K.clone()
    avatar.K[:2, 2] = avatar.resolution / 2
    try:
        expected = avatar.render_frame(frame, plate)
        seen = avatar.render_frame(frame, plate, view=view)
    finally:
        avatar.K.copy_(original)
    assert expected["alpha"].amax() > 0.5  # something is there
    for key in ("rgb", "alpha", "depth", "normal"):
        assert torch.allclose(seen[key], expected[key], atol=2e-4), key


def test_orbited_camera_looks_at_the_orbit_point(avatar_and_frames):
    """A camera swung about the vertical through the orbit point looks at that point: its axes
    are turned by the swing, and its centre pixel sees the card at the orbit point, which is
    where the filmed camera's principal point is; a camera swung 90 degrees sees the card
    edge-on, nowhere."""
    avatar, frames = avatar_and_frames
    filmed = filmed_camera(avatar, frames.select(0))
    target = np.array(filmed.look_at)
    distance = float(-target[2])
    swing = math.radians(30)
    position = target + distance * np.array([-math.sin(swing), 0.0, math.cos(swing)])
    view = browser_view(BrowserCamera(look_at_quaternion(position, target), tuple(position), 0.5, 1.5), 64)
    assert (view.width, view.height) == (96, 64)
    forward = torch.tensor([math.sin(swing), 0.0, -math.cos(swing)])
    assert torch.allclose(view.rotation @ torch.tensor([0.0, 0.0, -1.0]), forward, atol=1e-6)
    assert torch.allclose(view.rotation @ torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert math.isclose(float(view.K[1, 1]), 32 / math.tan(0.25), rel_tol=1e-6)
    uv, on_card = view.card_pixels(torch.tensor([[48.0, 32.0], [0.5, 0.5]]), distance, avatar.K, avatar.resolution)
    assert bool(on_card[0]) and torch.allclose(uv[0], avatar.K[:2, 2], atol=1e-3)
    assert not torch.allclose(uv[1], avatar.K[:2, 2], atol=1.0)
    side = target + np.array([-distance, 0.0, 0.0])
    view = browser_view(BrowserCamera(look_at_quaternion(side, target), tuple(side), 0.5, 1.0), 64)
    _, on_card = view.card_pixels(torch.tensor([[32.0, 32.0]]), distance, avatar.K, avatar.resolution)
    assert not bool(on_card[0])


def test_audio_clock_follows_reports_and_runs_on_while_playing():
    clock = AudioClock()
    assert not clock.report("hello") and not clock.report("audio nan playing") and not clock.report("audio 1 stopped")
    assert clock.report("audio 2.500 paused") and not clock.playing
    time.sleep(0.05)
    assert clock.seconds() == 2.5
    assert clock.report("audio 1.000 playing") and clock.playing
    time.sleep(0.1)
    assert 1.09 <= clock.seconds() < 1.5


def test_pace_sizes_frames_to_the_budget():
    pace = Pace()
    assert pace.height(0.1, 1.5, 256) == SMALLEST  # nothing timed yet: the smallest
    pace.record(100 * 100, 0.1)  # 1e-5 s per pixel
    height = pace.height(0.1, 1.0, 256)
    assert height % 8 == 0 and 96 <= height <= 100
    assert pace.height(10.0, 1.0, 256) == 256  # never above the full size
    assert pace.height(1e-6, 1.0, 256) == SMALLEST


def test_a_taken_port_is_refused_with_a_free_one_suggested():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BadArgumentError, match=rf"--port {port}: already in use on 127.0.0.1; try --port \d+"):
            check_port("127.0.0.1", port)


def test_other_views_take_the_residual_the_filmed_camera_sees(avatar_and_frames):
    """Seen from the rays' own origins the residual is the rays' own; seen from elsewhere only
    the residual (and the colour it adds to) changes: where the head is and its albedo do not."""
    avatar, frames = avatar_and_frames
    frame = frames.select(2)
    transform = avatar.camera_to_head(frame)
    pixels = torch.stack(torch.meshgrid(torch.arange(8.0, 120.0, 8.0), torch.arange(8.0, 120.0, 8.0),
                                        indexing="xy"), -1).reshape(1, -1, 2)
    origins, directions, counts = avatar.head_rays(pixels, transform)
    codes, lights = avatar.head.frame_codes(frame), avatar.frame_lights(frame)
    to_camera = transform[0].transpose(1, 2)
    with torch.no_grad():
        own = avatar.render_head(origins, directions, counts, codes, to_camera, lights)
        same = avatar.render_head(origins, directions, counts, codes, to_camera, lights, seen_from=transform[1])
        aside = avatar.render_head(origins, directions, counts, codes, to_camera, lights,
                                   seen_from=transform[1] + torch.tensor([[2.0, 0.0, 0.0]]))
    assert float(own["alpha"].max()) > 0.5
    for key in ("rgb", "alpha", "albedo", "residual"):
        torch.testing.assert_close(same[key], own[key], atol=1e-5, rtol=1e-5)
    for key in ("alpha", "albedo", "depth"):
        torch.testing.assert_close(aside[key], own[key])
    assert float((aside["residual"] - own["residual"]).abs().max()) > 1e-4
