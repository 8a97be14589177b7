"""Passes (normals from depth, 16-bit encodings, atomic sequences) and background specs."""

import numpy as np
import pytest

from avatar3d.errors import UserError
from avatar3d.export.background import backgrounds, parse_colour, square
from avatar3d.export.passes import ImageSequence, encode_png, normals_from_depth, pixel_directions


def test_normals_of_a_tilted_plane_are_its_normal():
    """A plane through (0, 0, -1) with normal n, seen by a pinhole camera: every normal is n."""
    size = 48
    K = np.array([[60.0, 0, 24], [0, 60.0, 24], [0, 0, 1]])
    directions = pixel_directions(K, size)
    n = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
    depth = (n @ np.array([0, 0, -1.0])) / (directions @ n)  # ray-plane distance
    normals = normals_from_depth(depth.astype(np.float32), directions)
    assert np.abs(normals.reshape(-1, 3) - n).max() < 1e-3  # image borders too (one-sided differences)


def test_normals_of_a_sphere_point_out_and_empty_pixels_stay_zero():
    size = 64
    K = np.array([[80.0, 0, 32], [0, 80.0, 32], [0, 0, 1]])
    directions = pixel_directions(K, size)
    centre, radius = np.array([0, 0, -2.0]), 0.5
    b = directions @ centre
    disc = b**2 - (centre @ centre - radius**2)
    depth = np.where(disc > 0, b - np.sqrt(np.maximum(disc, 0)), 0).astype(np.float32)
    normals = normals_from_depth(depth, directions)
    points = directions * depth[..., None]
    truth = (points - centre) / radius
    inside = normals.any(-1)
    assert inside.sum() > 300 and not inside[depth == 0].any()
    core = inside & (disc > 0.6 * disc.max())  # away from the grazing silhouette
    assert np.degrees(np.arccos(np.clip((normals[core] * truth[core]).sum(-1), -1, 1))).max() < 3


def test_png_encodings_round_trip():
    depth = np.array([[0.0, 0.7256, 1.5]], np.float32)
    assert np.allclose(encode_png("depth", depth) / 10000.0, depth, atol=1e-4)
    normal = np.array([[[0.0, 0.0, 0.0], [0.6, -0.8, 0.0]]], np.float32)
    stored = encode_png("normal", normal)
    assert (stored[0, 0] == 0).all() and np.allclose(stored[0, 1] / (65535 / 2) - 1, normal[0, 1], atol=1e-4)


def test_image_sequence_appears_whole_or_not_at_all(tmp_path):
    sequence = ImageSequence(tmp_path / "frames")
    sequence.write("alpha", 0, np.zeros((4, 4), np.uint16))
    assert not (tmp_path / "frames").exists()
    sequence.close()
    assert (tmp_path / "frames" / "alpha" / "000000.png").exists()
    again = ImageSequence(tmp_path / "frames")
    again.write("alpha", 0, np.ones((4, 4), np.uint16))
    again.abort()
    assert (tmp_path / "frames" / "alpha" / "000000.png").exists() and len(list(tmp_path.iterdir())) == 1
    exr = ImageSequence(tmp_path / "exr")
    exr.write("depth", 3, np.full((4, 4), 0.73, np.float32), "exr")
    exr.close()
    import cv2

    assert np.allclose(cv2.imread(str(tmp_path / "exr" / "depth" / "000003.exr"), cv2.IMREAD_UNCHANGED), 0.73)


def test_backgrounds_colour_image_and_looping_video(tmp_path):
    plate = np.zeros((32, 32, 3), np.uint8)
    green = next(backgrounds("#00b140", plate, 16))
    assert green.shape == (16, 16, 3) and np.allclose(green[0, 0], parse_colour("#00b140"))
    assert next(backgrounds("transparent", plate, 16)) is None
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, 10:30] = 255  # the centre square is white: a centre crop keeps only it
    assert square(wide, 8).min() == 1.0
    from avatar3d.video import VideoWriter

    with VideoWriter(tmp_path / "bg.mp4", 25, 16) as video:
        for value in (0, 255, 0):
            video.write(np.full((16, 16, 3), value, np.uint8))
    frames = backgrounds(str(tmp_path / "bg.mp4"), plate, 8)
    means = [float(next(frames).mean()) for _ in range(6)]
    assert np.allclose(means[:3], means[3:], atol=0.02) and means[1] > 0.9 > 0.1 > means[0]


def test_unusable_backgrounds_are_refused_before_rendering(tmp_path):
    plate = np.zeros((8, 8, 3), np.uint8)
    (tmp_path / "empty.mp4").write_bytes(b"not a video")
    for spec in ("#zzzzzz", str(tmp_path / "missing.png"), str(tmp_path / "empty.mp4")):
        with pytest.raises(UserError):
            backgrounds(spec, plate, 8)
