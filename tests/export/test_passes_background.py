"""Passes (16-bit encodings, atomic sequences) and background specs."""

import numpy as np
import pytest

from avatar3d.errors import UserError
from avatar3d.export.background import backgrounds, parse_colour, square
from avatar3d.export.passes import PNG_ENCODING, ImageSequence, encode_png


def test_png_encodings_round_trip():
    depth = np.array([[0.0, 0.7256, 1.5]], np.float32)
    assert np.allclose(encode_png("depth", depth) / 10000.0, depth, atol=1e-4)
    normal = np.array([[[0.0, 0.0, 0.0], [0.6, -0.8, 0.0]]], np.float32)
    stored = encode_png("normal", normal)
    assert (stored[0, 0] == 0).all() and np.allclose(stored[0, 1] / (65535 / 2) - 1, normal[0, 1], atol=1e-4)
    for name, value in (("albedo", [0.0, 0.31, 1.0]), ("shading", [0.0, 1.37, 3.9]), ("residual", [-0.8, 0.0, 0.05])):
        value = np.array([value], np.float32)
        encoding = PNG_ENCODING[name]
        decoded = encode_png(name, value) / encoding["scale"] - encoding["offset"]
        assert np.allclose(decoded, value, atol=1 / encoding["scale"]), name


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
