"""Order-2 real spherical-harmonics (SH) lighting for diffuse shading.

Normals live in camera/head space (x right, y up, +z towards the camera), so
front-facing surfaces have normals with z > 0.

The nine coefficients (9, 3) per RGB channel describe the *shading*: the
irradiance already convolved with the Lambertian (clamped-cosine) kernel and
divided by pi. The rendered colour is therefore simply
``albedo * shade(normal, coefficients)``, and a white surface under the
"neutral" preset keeps its albedo exactly.

Basis order (index: function), with n = (x, y, z) a unit normal:
0: Y00 = 0.282095; 1: Y1-1 = 0.488603 y; 2: Y10 = 0.488603 z;
3: Y11 = 0.488603 x; 4: Y2-2 = 1.092548 xy; 5: Y2-1 = 1.092548 yz;
6: Y20 = 0.315392 (3z^2 - 1); 7: Y21 = 1.092548 xz; 8: Y22 = 0.546274 (x^2 - y^2).
These are orthonormal on the unit sphere.

Environment maps are equirectangular (latitude-longitude) images of linear
radiance, seen from the subject. Row 0 looks straight up (+y), the last row
straight down; the centre column looks along -z (where the camera looks, the
scene behind the subject), the column at 3/4 of the width along +x (image
right), the left and right edges along +z (from behind the camera onto the
face). Pixel (v, u) of an H x W map has polar angle theta = pi (v + 0.5) / H
from +y and azimuth phi = 2 pi ((u + 0.5) / W - 0.5), i.e. direction
(sin theta sin phi, cos theta, -sin theta cos phi).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from avatar3d.errors import BadArgumentError
from avatar3d.render import backend
from cuda_ext.torch_impl import SH_CONSTANTS, sh_basis

# Lambertian convolution per band (Ramamoorthi & Hanrahan 2001), with the
# 1/pi of shading folded in: A_l / pi for l = 0, 1, 2.
_LAMBERT = (1.0, 2.0 / 3.0, 1.0 / 4.0)
_BAND = (0, 1, 1, 1, 2, 2, 2, 2, 2)
_LAMBERT_PER_COEFFICIENT = torch.tensor([_LAMBERT[band] for band in _BAND])


def shade(normals: Tensor, coefficients: Tensor) -> Tensor:
    """Diffuse shading factor for unit normals under SH lighting.

    Args:
        normals: (..., 3) unit normals in camera/head space.
        coefficients: (9, 3) SH shading coefficients per RGB channel
            (irradiance convolved with the Lambertian kernel, divided by pi), or
            (..., 9, 3), one light per normal.

    Returns:
        (..., 3) shading, clamped at >= 0 (order-2 SH rings slightly negative
        opposite strong lights); multiply by albedo to get colour.
    """
    return backend.implementation("shade", normals, coefficients).shade(normals, coefficients)


def _lat_long_directions(height: int, width: int) -> np.ndarray:
    """(height, width, 3) float64 unit directions of an environment map's pixel centres.

    Camera space, in the map convention of the module doc.
    """
    theta = np.pi * (np.arange(height) + 0.5) / height
    phi = 2 * np.pi * ((np.arange(width) + 0.5) / width - 0.5)
    theta, phi = np.meshgrid(theta, phi, indexing="ij")
    return np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), -np.sin(theta) * np.cos(phi)], axis=-1)


def environment_sh(radiance: np.ndarray) -> Tensor:
    """Shading coefficients of the light from an environment map.

    Projects the radiance onto the SH basis (a sum over pixels weighted by
    their solid angle) and convolves it with the Lambertian kernel, so that
    ``shade`` gives the irradiance / pi. A constant map of radiance c shades
    every normal c; a white surface looks as bright as its surroundings.

    Args:
        radiance: (H, W, 3) linear RGB radiance, equirectangular in the map
            convention of the module doc (any H, W; 2:1 is usual). Memory
            grows as H * W * 9 float64s, so shrink big maps first.

    Returns:
        (9, 3) float32 shading coefficients per RGB channel.
    """
    height, width = radiance.shape[:2]
    directions = _lat_long_directions(height, width)
    # Solid angle of a pixel: dphi * dtheta * sin(theta), where sin(theta) is the
    # distance of its direction from the y axis.
    solid_angle = (2 * np.pi / width) * (np.pi / height) * np.hypot(directions[..., 0], directions[..., 2])
    weighted = torch.from_numpy(np.asarray(radiance, np.float64) * solid_angle[..., None])
    radiance_sh = torch.einsum("hwk,hwc->kc", sh_basis(torch.from_numpy(directions)), weighted)
    return (radiance_sh * _LAMBERT_PER_COEFFICIENT[:, None].double()).float()


# The environment map built from a background: order-2 SH needs little resolution.
_BACKGROUND_MAP_HEIGHT, _BACKGROUND_MAP_WIDTH = 32, 64
# Width of the blurred copy of the background the map looks up: about one map
# pixel (5.6 degrees) per copy pixel over the default 60-degree view, so each direction
# sees the average of its patch of the image, not one pixel of it.
_BACKGROUND_BLUR_WIDTH = 12


def light_from_background(image: np.ndarray, field_of_view_degrees: float = 60.0) -> Tensor:
    """A fast, rough guess of the light on a subject composited over ``image``.

    Builds a small environment map in which each direction into the scene
    (z < 0) sees the background through a pinhole camera of the given field
    of view, directions outside the view taking the colour of the nearest
    image edge; each direction towards the camera (z > 0) sees what its
    mirror image (x, y, -z) sees, i.e. the unseen half of the room is assumed
    to resemble the seen half. Rough: no depth, no light sources outside the
    view, and the image is taken as an exposure of radiance up to scale: the
    light is scaled to the presets' brightness (`front_luminance` 1; raise or
    lower it with an exposure).

    Args:
        image: (H, W, 3) background, float in [0, 1], sRGB-like (decoded here
            with gamma 2.2 to linear).
        field_of_view_degrees: The camera's horizontal field of view.

    Returns:
        (9, 3) float32 shading coefficients (see `environment_sh`), front luminance 1.
    """
    import cv2

    linear = np.clip(np.asarray(image, np.float32), 0.0, 1.0) ** 2.2
    height, width = linear.shape[:2]
    small_width = _BACKGROUND_BLUR_WIDTH
    small_height = max(1, round(small_width * height / width))
    small = cv2.resize(linear, (small_width, small_height), interpolation=cv2.INTER_AREA)
    x, y, z = np.moveaxis(_lat_long_directions(_BACKGROUND_MAP_HEIGHT, _BACKGROUND_MAP_WIDTH), -1, 0)
    # Depth along the view axis: abs() mirrors directions towards the camera into
    # the scene; the floor keeps sideways ones (z = 0) finite, far out on an edge.
    depth = np.maximum(np.abs(z), 1e-6)
    focal = small_width / 2 / math.tan(math.radians(field_of_view_degrees) / 2)
    # Pixel coordinates (OpenCV: pixel centres at integers, rows downwards), clamped to the edge pixels.
    columns = np.clip((small_width - 1) / 2 + focal * x / depth, 0, small_width - 1)
    rows = np.clip((small_height - 1) / 2 - focal * y / depth, 0, small_height - 1)
    environment = cv2.remap(small, columns.astype(np.float32), rows.astype(np.float32), cv2.INTER_LINEAR)
    light = environment_sh(environment)
    # A plate's exposure says nothing of how strong the light is: only its direction and colour are taken.
    return light / front_luminance(light).clamp(min=1e-6)


def _ambient(rgb: tuple[float, float, float]) -> Tensor:
    """Coefficients of a constant shading ``rgb`` for every normal."""
    coeffs = torch.zeros(9, 3)
    coeffs[0] = torch.tensor(rgb) / SH_CONSTANTS[0]
    return coeffs


def _directional(direction: tuple[float, float, float], rgb: tuple[float, float, float]) -> Tensor:
    """Coefficients of a distant light: shading ~ ``rgb * max(0, n . direction)``.

    ``direction`` points from the surface towards the light (camera/head
    space). The order-2 fit peaks at about 1.06 * rgb and dips slightly
    below 0 on the far side.
    """
    d = torch.tensor(direction, dtype=torch.float32)
    d = d / d.norm()
    # E = pi * rgb * max(0, cos): coefficients pi * rgb * A_l/pi * Y_lm(d).
    weights = sh_basis(d) * _LAMBERT_PER_COEFFICIENT * math.pi
    return weights[:, None] * torch.tensor(rgb)[None, :]


def _studio(scale: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Tensor:
    """Soft key from the upper front-left of the image, weak fill from the right."""
    base = _ambient((0.76,) * 3) + _directional((-0.5, 0.55, 0.7), (0.5,) * 3)
    base = base + _directional((0.8, -0.1, 0.6), (0.12,) * 3)
    return base * torch.tensor(scale)[None, :]


def key_light(azimuth: float, elevation: float, strength: float = 0.8, ambient: float = 0.45) -> Tensor:
    """(9, 3) coefficients of an even ``ambient`` light plus a distant white key light of
    ``strength`` (the scale of the presets "left" and "right").

    Args:
        azimuth: Degrees about the vertical axis from the camera's direction: 0 lights the
            face from the camera, 90 from the image's right (+x), -90 from its left.
        elevation: Degrees above the horizontal (negative: from below).
    """
    azimuth, elevation = math.radians(azimuth), math.radians(elevation)
    direction = (math.sin(azimuth) * math.cos(elevation), math.sin(elevation), math.cos(azimuth) * math.cos(elevation))
    return _ambient((ambient,) * 3) + _directional(direction, (strength,) * 3)


LIGHT_PRESETS: dict[str, Tensor] = {
    # Exactly 1 for every normal in float32: fl(0.282095 * fl(1 / 0.282095)) == 1.
    "neutral": _ambient((1.0, 1.0, 1.0)),
    "studio": _studio(),
    # "left"/"right" are the image's sides (-x / +x), i.e. the subject's right / left.
    "left": _ambient((0.45,) * 3) + _directional((-0.85, 0.2, 0.5), (0.8,) * 3),
    "right": _ambient((0.45,) * 3) + _directional((0.85, 0.2, 0.5), (0.8,) * 3),
    "top": _ambient((0.48,) * 3) + _directional((0.0, 0.9, 0.45), (0.75,) * 3),
    "warm": _studio((1.06, 0.97, 0.84)),
    "cool": _studio((0.86, 0.97, 1.06)),
    "dim": _ambient((0.3,) * 3) + _directional((-0.3, 0.4, 0.85), (0.3,) * 3),
}
"""Named lighting set-ups, each (9, 3) float32 shading coefficients.

Over front-facing normals (z >= 0) every preset keeps shading within about
[0.2, 1.4]; "studio" averages about 1 there.
"""


_ACCEPTED_LIGHTS = (
    f"a preset ({', '.join(LIGHT_PRESETS)}), a .npy/.txt of 9x3 SH coefficients, "
    '.json {"sh": [[r, g, b] x 9]}, or an equirectangular environment map (.hdr/.exr)'
)

_ENVIRONMENT_SUFFIXES = (".hdr", ".exr")

# Order-2 SH resolves nothing finer than about a radian, so bigger maps are
# area-averaged down first: an 8k map would need gigabytes of basis values.
_MAX_MAP_HEIGHT, _MAX_MAP_WIDTH = 256, 512


def load_light(spec: str) -> Tensor:
    """Lighting from a preset name, a coefficient file or an environment map.

    Files: ``.npy`` or ``.txt`` holding 9x3 (or 27) numbers, rows in the
    basis order of the module doc and columns R, G, B (text may use spaces,
    commas or newlines); ``.json`` as ``{"sh": [[r, g, b], ... 9 rows]}``;
    ``.hdr`` (Radiance) or ``.exr`` (OpenEXR) equirectangular maps of linear
    radiance in the map convention of the module doc (RGB, RGBA with alpha
    ignored, or grey), projected with `environment_sh`.

    Args:
        spec: A key of `LIGHT_PRESETS` or a path.

    Returns:
        (9, 3) float32 shading coefficients (a copy; safe to modify).

    Raises:
        BadArgumentError: Unknown preset, missing or unreadable file, not
            exactly 27 finite numbers, or a map with an unusable channel count
            or negative or non-finite values.
    """
    if spec in LIGHT_PRESETS:
        return LIGHT_PRESETS[spec].clone()
    path = Path(spec)
    if not path.is_file():
        raise BadArgumentError(f"light {spec!r} is neither a preset nor an existing file; use {_ACCEPTED_LIGHTS}")
    if path.suffix.lower() in _ENVIRONMENT_SUFFIXES:
        return environment_sh(_read_environment(path))
    try:
        values = _read_coefficients(path)
    except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise BadArgumentError(f"light file {spec!r} is unreadable ({exc}); use {_ACCEPTED_LIGHTS}") from exc
    if values.size != 27 or not np.isfinite(values).all():
        raise BadArgumentError(
            f"light file {spec!r} must hold 9x3 finite SH coefficients, got shape {values.shape}; "
            f"or use {_ACCEPTED_LIGHTS}"
        )
    return torch.from_numpy(values.reshape(9, 3).astype(np.float32))


LIGHT_KEEP = "keep"
"""``--light`` value: render with the avatar's own learnt light."""
LIGHT_FROM_BACKGROUND = "from-bg"
"""``--light`` value: estimate the light from the background (`light_from_background`)."""


def resolve_light(spec: str, background: np.ndarray | None = None) -> Tensor | None:
    """The light a ``--light`` value asks for; call it early to fail fast on a bad value.

    Args:
        spec: `LIGHT_KEEP`, `LIGHT_FROM_BACKGROUND`, or anything `load_light` takes.
        background: (H, W, 3) float background in [0, 1], needed by `LIGHT_FROM_BACKGROUND`.

    Returns:
        (9, 3) float32 shading coefficients, or None for `LIGHT_KEEP`.

    Raises:
        BadArgumentError: `LIGHT_FROM_BACKGROUND` without a background, or what
            `load_light` raises.
    """
    if spec == LIGHT_KEEP:
        return None
    if spec == LIGHT_FROM_BACKGROUND:
        if background is None:
            raise BadArgumentError(
                f"--light {LIGHT_FROM_BACKGROUND} needs a background image: use --bg IMAGE/VIDEO/#RRGGBB/plate"
            )
        return light_from_background(background)
    return load_light(spec)


def _read_environment(path: Path) -> np.ndarray:
    """(H, W, 3) float32 linear RGB radiance of a .hdr or .exr map, at most _MAX_MAP_HEIGHT x _MAX_MAP_WIDTH.

    Raises:
        BadArgumentError: Unreadable file, not 1, 3 or 4 channels, or
            negative or non-finite values.
    """
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # read when OpenCV first meets an EXR
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise BadArgumentError(
            f"light file '{path}' is not a readable Radiance .hdr or OpenEXR .exr image; "
            f"re-export it, or use {_ACCEPTED_LIGHTS}"
        )
    image = np.atleast_3d(image).astype(np.float32)
    channels = image.shape[2]
    if channels not in (1, 3, 4):
        raise BadArgumentError(
            f"light file '{path}' has {channels} channels; an environment map needs RGB, RGBA or grey"
        )
    # Grey to RGB; OpenCV's BGR(A) to RGB, dropping alpha.
    rgb = np.repeat(image, 3, axis=2) if channels == 1 else image[..., 2::-1]
    if not np.isfinite(rgb).all() or (rgb < 0).any():
        raise BadArgumentError(
            f"light file '{path}' holds negative or non-finite values; "
            "an environment map needs finite radiance >= 0 (clamp it in an image editor)"
        )
    height, width = rgb.shape[:2]
    size = (min(width, _MAX_MAP_WIDTH), min(height, _MAX_MAP_HEIGHT))
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)


def _read_coefficients(path: Path) -> np.ndarray:
    """Raw numbers from a .npy, .txt or .json light file (shape unchecked)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
    if suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "sh" not in data:
            raise KeyError('missing "sh"')
        return np.asarray(data["sh"], dtype=np.float64)
    if suffix == ".txt":
        return np.asarray(path.read_text().replace(",", " ").split(), dtype=np.float64)
    raise ValueError(f"unsupported extension {path.suffix!r}")


LUMINANCE = (0.2126, 0.7152, 0.0722)
"""Rec. 709 luminance weights of linear R, G, B."""


def _front_normals(count: int = 256) -> Tensor:
    """(count, 3) unit normals spread evenly over the front hemisphere z >= 0 (a Fibonacci spiral)."""
    k = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1.0 - k / count  # uniform in z: equal areas
    angle = k * math.pi * (3.0 - math.sqrt(5.0))
    radius = (1.0 - z * z).sqrt()
    return torch.stack([radius * angle.cos(), radius * angle.sin(), z], -1).float()


_FRONT = _front_normals()


def front_luminance(coefficients: Tensor) -> Tensor:
    """() the luminance of the shading of (9, 3) coefficients, averaged over front-facing
    normals: the brightness a light gives what the camera sees ("studio" gives about 1)."""
    weights = torch.tensor(LUMINANCE, dtype=coefficients.dtype, device=coefficients.device)
    return (shade(_FRONT.to(coefficients), coefficients) @ weights).mean()
