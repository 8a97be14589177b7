"""Tests for avatar3d.render.sh."""

import json
import math
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # before cv2 first meets an EXR
import cv2  # noqa: E402

from avatar3d.errors import BadArgumentError
from avatar3d.render.sh import (
    LUMINANCE,
    LIGHT_FROM_BACKGROUND,
    LIGHT_KEEP,
    LIGHT_PRESETS,
    _directional,
    front_luminance,
    environment_sh,
    key_light,
    light_from_background,
    load_light,
    resolve_light,
    sh_basis,
    shade,
)


def fibonacci_sphere(n):
    """Near-uniform unit vectors (n, 3), float64."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    r = torch.sqrt(1 - z**2)
    phi = math.pi * (1 + math.sqrt(5)) * i
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def front_normals():
    n = fibonacci_sphere(20000).float()
    return n[n[:, 2] >= 0]


def map_directions(height, width):
    """(H, W, 3) pixel directions and (H, W) solid angles of an equirectangular map, per the module doc."""
    theta = (np.arange(height)[:, None] + 0.5) * math.pi / height
    phi = 2 * math.pi * ((np.arange(width)[None, :] + 0.5) / width - 0.5)
    theta, phi = np.broadcast_arrays(theta, phi)
    directions = np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), -np.sin(theta) * np.cos(phi)], -1)
    return directions, (2 * math.pi / width) * (math.pi / height) * np.sin(theta)


def test_basis_is_orthonormal_on_the_sphere():
    n = fibonacci_sphere(100_000)
    Y = sh_basis(n)
    gram = Y.T @ Y * (4 * math.pi / len(n))
    assert torch.allclose(gram, torch.eye(9, dtype=torch.float64), atol=1e-3)


def test_basis_order_and_constants():
    n = torch.tensor([0.0, 0.6, 0.8])
    Y = sh_basis(n)
    x, y, z = 0.0, 0.6, 0.8
    expected = [0.282095, 0.488603 * y, 0.488603 * z, 0.488603 * x, 1.092548 * x * y, 1.092548 * y * z]
    expected += [0.315392 * (3 * z * z - 1), 1.092548 * x * z, 0.546274 * (x * x - y * y)]
    assert torch.allclose(Y, torch.tensor(expected), atol=1e-6)


def test_neutral_is_exactly_one():
    n = fibonacci_sphere(5000).float()
    assert torch.equal(shade(n, LIGHT_PRESETS["neutral"]), torch.ones(5000, 3))


def test_shade_clamps_and_broadcasts():
    coeffs = torch.zeros(9, 3)
    coeffs[2] = 1.0  # shading proportional to z
    out = shade(torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]]), coeffs)
    assert out.shape == (1, 2, 3)
    assert torch.allclose(out[0, 0], torch.full((3,), 0.488603)) and (out[0, 1] == 0).all()


@pytest.mark.parametrize("name", sorted(LIGHT_PRESETS))
def test_presets_are_plausible(name):
    coeffs = LIGHT_PRESETS[name]
    assert coeffs.shape == (9, 3) and coeffs.dtype == torch.float32
    s = shade(front_normals(), coeffs)
    assert s.min() >= 0.2 and s.max() <= 1.4


def test_preset_directions():
    n = front_normals()
    studio = shade(n, LIGHT_PRESETS["studio"]).mean(-1)
    assert abs(float(studio.mean()) - 1.0) < 0.1
    key = torch.tensor([-0.5, 0.55, 0.7])
    assert float(studio[n @ key > 0.5].mean()) > float(studio[n @ key < 0].mean())
    side = torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    left, right = shade(side, LIGHT_PRESETS["left"])[:, 0], shade(side, LIGHT_PRESETS["right"])[:, 0]
    assert left[0] > left[1] and right[1] > right[0]
    up = shade(torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]), LIGHT_PRESETS["top"])[:, 0]
    assert up[0] > up[1]
    warm = shade(n, LIGHT_PRESETS["warm"]).mean(0)
    cool = shade(n, LIGHT_PRESETS["cool"]).mean(0)
    assert warm[0] > warm[2] and cool[2] > cool[0]
    assert shade(n, LIGHT_PRESETS["dim"]).mean() < 0.6


def test_key_light_comes_from_its_angles():
    """The viewer's key light: its angles of the "right" preset's direction give that preset;
    azimuth 90 lights +x, elevation 90 lights +y, and strength 0 leaves the even fill."""
    direction = torch.tensor([0.85, 0.2, 0.5]) / torch.tensor([0.85, 0.2, 0.5]).norm()
    azimuth, elevation = math.degrees(math.atan2(direction[0], direction[2])), math.degrees(math.asin(direction[1]))
    assert torch.allclose(key_light(azimuth, elevation), LIGHT_PRESETS["right"], atol=1e-5)
    axes = torch.eye(3)
    for light, axis in ((key_light(90.0, 0.0), 0), (key_light(0.0, 90.0), 1), (key_light(0.0, 0.0), 2)):
        shading = shade(torch.cat([axes, -axes]), light)[:, 0]
        assert int(shading.argmax()) == axis
    assert torch.allclose(shade(torch.cat([axes, -axes]), key_light(30.0, 10.0, strength=0.0)), torch.tensor(0.45))


def test_load_light_presets_are_copies():
    light = load_light("studio")
    assert torch.equal(light, LIGHT_PRESETS["studio"])
    light += 1
    assert not torch.equal(light, LIGHT_PRESETS["studio"])


def test_load_light_round_trips(tmp_path):
    coeffs = torch.randn(9, 3, generator=torch.Generator().manual_seed(0))
    npy = tmp_path / "light.npy"
    np.save(npy, coeffs.numpy())
    assert torch.allclose(load_light(str(npy)), coeffs)
    flat = tmp_path / "flat.npy"
    np.save(flat, coeffs.numpy().ravel().astype(np.float64))
    assert torch.allclose(load_light(str(flat)), coeffs)
    js = tmp_path / "light.json"
    js.write_text(json.dumps({"sh": coeffs.tolist()}))
    assert torch.allclose(load_light(str(js)), coeffs)
    txt = tmp_path / "light.txt"
    np.savetxt(txt, coeffs.numpy())
    assert torch.allclose(load_light(str(txt)), coeffs)
    csv = tmp_path / "one_line.txt"
    csv.write_text(", ".join(str(v) for v in coeffs.ravel().tolist()))
    loaded = load_light(str(csv))
    assert loaded.shape == (9, 3) and loaded.dtype == torch.float32
    assert torch.allclose(loaded, coeffs)


def smooth_map(height, width):
    """(H, W, 3) float32 positive radiance varying smoothly and differently per channel."""
    directions, _ = map_directions(height, width)
    return (1.5 + directions @ np.array([[0.3, -0.2, 0.1], [0.5, 0.4, -0.3], [-0.2, 0.3, 0.6]])).astype(np.float32)


def test_load_light_environment_maps(tmp_path):
    radiance = smooth_map(16, 32)
    expected = environment_sh(radiance)
    hdr, exr = tmp_path / "room.hdr", tmp_path / "room.exr"
    assert cv2.imwrite(str(hdr), radiance[..., ::-1]) and cv2.imwrite(str(exr), radiance[..., ::-1])
    # RGBE keeps about 8 bits of mantissa per channel; EXR is exact.
    assert torch.allclose(load_light(str(hdr)), expected, rtol=0, atol=0.01 * float(expected.abs().max()))
    assert torch.allclose(load_light(str(exr)), expected, rtol=0, atol=1e-5)
    grey, rgba = tmp_path / "grey.exr", tmp_path / "rgba.exr"
    assert cv2.imwrite(str(grey), radiance[..., 1])
    assert cv2.imwrite(str(rgba), np.dstack([radiance[..., ::-1], radiance[..., :1]]))
    assert torch.allclose(load_light(str(grey)), environment_sh(np.repeat(radiance[..., 1:2], 3, 2)), atol=1e-5)
    assert torch.allclose(load_light(str(rgba)), expected, atol=1e-5)


def test_load_light_shrinks_big_maps(tmp_path):
    radiance = 0.1 * smooth_map(400, 800)
    radiance[70:74, 460:468] = 1000.0  # a small bright light dominates and survives the area averaging
    big = tmp_path / "big.exr"
    assert cv2.imwrite(str(big), radiance[..., ::-1])
    expected = environment_sh(radiance)
    assert torch.allclose(load_light(str(big)), expected, rtol=0, atol=0.01 * float(expected.abs().max()))


def test_load_light_bad_specs(tmp_path):
    with pytest.raises(BadArgumentError, match="sunset.*studio"):
        load_light("sunset")
    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((4, 3)))
    not_finite = tmp_path / "nan.txt"
    not_finite.write_text(" ".join(["nan"] + ["0"] * 26))
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello world")
    no_key = tmp_path / "nokey.json"
    no_key.write_text(json.dumps({"coeffs": [[0, 0, 0]] * 9}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    ragged = tmp_path / "ragged.json"
    ragged.write_text(json.dumps({"sh": [[1, 2], [3]]}))
    other = tmp_path / "light.exr"
    other.write_text("x")
    corrupt = tmp_path / "corrupt.npy"
    corrupt.write_bytes(b"not numpy")
    garbage_hdr = tmp_path / "garbage.hdr"
    garbage_hdr.write_bytes(bytes(range(256)) * 4)
    negative = tmp_path / "negative.exr"
    assert cv2.imwrite(str(negative), np.full((4, 8, 3), -1.0, np.float32))
    for path in (wrong_shape, not_finite, garbage, no_key, broken, ragged, other, corrupt, garbage_hdr, negative):
        with pytest.raises(BadArgumentError, match=str(path.name)) as error:
            load_light(str(path))
        assert "\n" not in str(error.value)


def test_environment_sh_of_a_constant_map():
    colour = np.array([0.2, 1.0, 3.0])
    coeffs = environment_sh(np.broadcast_to(colour, (64, 128, 3)))
    assert coeffs.shape == (9, 3) and coeffs.dtype == torch.float32
    assert torch.allclose(coeffs[0], torch.tensor(colour / 0.282095, dtype=torch.float32), rtol=1e-3)
    assert coeffs[1:].abs().max() < 1e-3
    expected = torch.tensor(colour, dtype=torch.float32).expand(500, 3)
    assert torch.allclose(shade(fibonacci_sphere(500).float(), coeffs), expected, rtol=1e-3)


@pytest.mark.parametrize("direction", [(1.0, 0.0, 0.0), (0.0, 0.6, 0.8)])
def test_environment_sh_of_a_small_bright_patch(direction):
    d = np.array(direction) / np.linalg.norm(direction)
    directions, solid_angle = map_directions(128, 256)
    patch = directions @ d > math.cos(math.radians(6))
    radiance = np.zeros((128, 256, 3))
    radiance[patch] = [1.0, 2.0, 0.5]
    # Seen from the surface, the patch is a distant light of irradiance E * Omega.
    rgb = radiance[patch][0] * solid_angle[patch].sum() / math.pi
    expected = _directional(tuple(d.tolist()), tuple(rgb.tolist()))
    assert torch.allclose(environment_sh(radiance), expected, atol=0.01 * float(expected.abs().max()))


def test_environment_map_orientation():
    radiance = np.zeros((32, 64, 3))
    radiance[:, [0, -1]] = 1.0  # the edges look along +z, from the camera onto the face
    towards, away = shade(torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]), environment_sh(radiance))[:, 0]
    assert towards > 5 * away
    radiance = np.zeros((32, 64, 3))
    radiance[:, 47:49] = 1.0  # around 3/4 of the width: +x, the image's right
    right, left = shade(torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]), environment_sh(radiance))[:, 0]
    assert right > 5 * left
    radiance = np.zeros((32, 64, 3))
    radiance[:4] = 1.0  # the top rows: +y
    up, down = shade(torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]), environment_sh(radiance))[:, 0]
    assert up > 5 * down


def test_load_light_rejects_two_channel_maps(tmp_path, monkeypatch):
    # OpenCV cannot write such a file, so the reader is stubbed.
    path = tmp_path / "two.exr"
    path.write_bytes(b"stub")
    monkeypatch.setattr(cv2, "imread", lambda *args: np.ones((4, 8, 2), np.float32))
    with pytest.raises(BadArgumentError, match="two.exr.* 2 channels"):
        load_light(str(path))


AXES = torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])


def test_light_from_background_follows_the_bright_side():
    left_bright = np.zeros((48, 64, 3), np.float32)
    left_bright[:, :32] = 1.0
    left, right, up, down = shade(AXES, light_from_background(left_bright))[:, 1]
    assert left > right + 0.5 and abs(up - down) < 0.01
    left, right, _, _ = shade(AXES, light_from_background(left_bright[:, ::-1]))[:, 1]
    assert right > left + 0.5
    left, right, up, down = shade(AXES, light_from_background(left_bright.transpose(1, 0, 2)))[:, 1]
    assert up > down + 0.5 and abs(left - right) < 0.01


def test_light_from_background_of_a_plain_colour():
    colour = np.array([0.2, 0.5, 0.9], np.float32)
    light = light_from_background(np.broadcast_to(colour, (40, 60, 3)), field_of_view_degrees=90.0)
    linear = torch.tensor(colour**2.2)
    expected = (linear / (linear @ torch.tensor(LUMINANCE))).expand(500, 3)  # its colour, at the presets' brightness
    assert torch.allclose(shade(fibonacci_sphere(500).float(), light), expected, rtol=2e-3)
    assert abs(float(front_luminance(light)) - 1.0) < 1e-5


def test_resolve_light():
    assert resolve_light(LIGHT_KEEP) is None
    assert torch.equal(resolve_light("studio"), LIGHT_PRESETS["studio"])
    background = np.full((24, 32, 3), 0.5, np.float32)
    assert torch.equal(resolve_light(LIGHT_FROM_BACKGROUND, background), light_from_background(background))
    with pytest.raises(BadArgumentError, match="from-bg needs a background"):
        resolve_light(LIGHT_FROM_BACKGROUND)
    with pytest.raises(BadArgumentError, match="sunset"):
        resolve_light("sunset", background)
