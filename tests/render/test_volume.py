"""Tests for avatar3d.render.volume (march, composite, occupancy grid) and avatar3d.render.rays."""

import math

import pytest
import torch

from avatar3d import camera
from avatar3d.render.rays import frame_pixels, pixel_rays
from avatar3d.render.volume import OccupancyGrid, composite, march


def reference_composite(densities, colours, t_starts, t_ends, valid, background, stop_threshold):
    """Per-ray, per-sample Python loop in float64: the definition, spelled out."""
    R, S, C = colours.shape
    rgb = torch.zeros(R, C, dtype=torch.float64)
    opacity = torch.zeros(R, dtype=torch.float64)
    depth_sum = torch.zeros(R, dtype=torch.float64)
    weights = torch.zeros(R, S, dtype=torch.float64)
    for r in range(R):
        trans = 1.0
        for s in range(S):
            if not valid[r, s]:
                continue
            if trans < stop_threshold:
                break
            alpha = 1.0 - math.exp(-float(densities[r, s]) * float(t_ends[r, s] - t_starts[r, s]))
            w = trans * alpha
            weights[r, s] = w
            rgb[r] += w * colours[r, s].double()
            opacity[r] += w
            depth_sum[r] += w * float(t_starts[r, s] + t_ends[r, s]) / 2
            trans *= 1.0 - alpha
    depth = torch.where(opacity > 0, depth_sum / opacity.clamp_min(1e-300), torch.zeros_like(opacity))
    if background is not None:
        rgb += (1.0 - opacity)[:, None] * background.double()
    return rgb, opacity, depth, weights


def random_samples(R=16, S=24, C=3, seed=0, dtype=torch.float64):
    """Random sorted intervals with gaps, densities up to ~30, some invalid samples."""
    g = torch.Generator().manual_seed(seed)
    widths = torch.rand(R, S, generator=g, dtype=dtype) * 0.1
    gaps = torch.rand(R, S, generator=g, dtype=dtype) * 0.05
    t_starts = 1.0 + torch.cumsum(widths + gaps, dim=-1) - widths
    t_ends = t_starts + widths
    densities = torch.rand(R, S, generator=g, dtype=dtype) * 30
    colours = torch.rand(R, S, C, generator=g, dtype=dtype)
    valid = torch.rand(R, S, generator=g) > 0.3
    valid[0] = False  # a ray with no valid samples at all
    return densities, colours, t_starts, t_ends, valid


@pytest.mark.parametrize("stop_threshold", [0.0, 1e-4, 1e-2])
def test_composite_matches_reference_loop(stop_threshold):
    densities, colours, t_starts, t_ends, valid = random_samples()
    background = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    out = composite(densities[valid], colours[valid], t_starts, t_ends, valid, background, stop_threshold)
    rgb, opacity, depth, weights = reference_composite(
        densities, colours, t_starts, t_ends, valid, background, stop_threshold
    )
    torch.testing.assert_close(out["rgb"], rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["opacity"], opacity, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["depth"], depth, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["weights"], weights, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["rgb"][0], background)  # empty ray shows the background


def test_early_termination_changes_little():
    densities, colours, t_starts, t_ends, valid = random_samples(seed=1)
    full = composite(densities[valid], colours[valid], t_starts, t_ends, valid, stop_threshold=0.0)
    early = composite(densities[valid], colours[valid], t_starts, t_ends, valid, stop_threshold=1e-4)
    assert (full["weights"] > early["weights"]).any()  # termination did happen
    torch.testing.assert_close(early["rgb"], full["rgb"], atol=1e-4, rtol=0)
    torch.testing.assert_close(early["opacity"], full["opacity"], atol=1e-4, rtol=0)


def test_composite_matches_nerfacc():
    nerfacc = pytest.importorskip("nerfacc")
    densities, colours, t_starts, t_ends, valid = random_samples(dtype=torch.float32)
    background = torch.tensor([0.2, 0.5, 0.9])
    sigmas = torch.where(valid, densities, torch.zeros_like(densities))

    def rgb_sigma_fn(starts, ends, ray_indices):
        return colours, sigmas

    rgb, opacity, depth, _ = nerfacc.volrend.rendering(
        t_starts, t_ends, rgb_sigma_fn=rgb_sigma_fn, render_bkgd=background
    )
    out = composite(densities[valid], colours[valid], t_starts, t_ends, valid, background, stop_threshold=0.0)
    torch.testing.assert_close(out["rgb"], rgb, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["opacity"], opacity.reshape(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["depth"], depth.reshape(-1), atol=1e-4, rtol=0)


def test_composite_gradcheck():
    densities, colours, t_starts, t_ends, valid = random_samples(R=3, S=5, C=2, seed=2)
    densities = (densities[valid] / 10).requires_grad_()
    colours = colours[valid].requires_grad_()
    background = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)

    def fn(sigma, rgb, bg):
        out = composite(sigma, rgb, t_starts, t_ends, valid, bg, stop_threshold=0.0)
        return out["rgb"], out["opacity"], out["depth"]

    assert torch.autograd.gradcheck(fn, (densities, colours, background))


def test_constant_slab_closed_form():
    """Density sigma on [a, a + L] along a ray: opacity and expected depth in closed form."""
    sigma, a, length, dt = 2.0, 1.0, 1.5, 1e-3
    edges = torch.arange(0, 4001, dtype=torch.float64) * dt  # t in [0, 4]
    t_starts, t_ends = edges[None, :-1], edges[None, 1:]
    mids = (t_starts + t_ends) / 2
    densities = torch.where((mids > a) & (mids < a + length), sigma, 0.0)
    colours = torch.ones(4000, 1, dtype=torch.float64)
    valid = torch.ones(1, 4000, dtype=torch.bool)
    out = composite(densities[0], colours, t_starts, t_ends, valid)
    decay = math.exp(-sigma * length)
    expected_depth = a + 1 / sigma - length * decay / (1 - decay)
    assert out["opacity"].item() == pytest.approx(1 - decay, abs=1e-9)
    assert out["depth"].item() == pytest.approx(expected_depth, abs=1e-5)


def test_march_then_composite_through_slab():
    """End to end: march a ray along +x through a slab x in [-0.3, 0.4] of density 3."""
    grid = OccupancyGrid([-1, -1, -1], [1, 1, 1], resolution=16)  # all cells occupied
    origins = torch.tensor([[-3.0, 0.1, 0.2]])
    directions = torch.tensor([[1.0, 0.0, 0.0]])
    t_starts, t_ends, valid = march(origins, directions, grid, 0.0, 10.0, 1e-3, 2100, jitter=True)
    points = origins[:, None] + directions[:, None] * ((t_starts + t_ends) / 2)[..., None]
    densities = torch.where((points[..., 0] > -0.3) & (points[..., 0] < 0.4), 3.0, 0.0)
    out = composite(densities[valid], torch.ones(int(valid.sum()), 3), t_starts, t_ends, valid)
    decay = math.exp(-3.0 * 0.7)
    assert out["opacity"].item() == pytest.approx(1 - decay, abs=5e-3)
    expected_depth = 2.7 + 1 / 3.0 - 0.7 * decay / (1 - decay)
    assert out["depth"].item() == pytest.approx(expected_depth, abs=5e-3)


def half_empty_grid():
    """Grid over [-1, 1]^3 with the cells at x < 0 empty."""
    grid = OccupancyGrid([-1, -1, -1], [1, 1, 1], resolution=8)
    grid.mask[:4] = False
    return grid


@pytest.mark.parametrize("jitter", [False, True])
def test_march_samples(jitter):
    grid = half_empty_grid()
    g = torch.Generator().manual_seed(0)
    targets = torch.rand(256, 3, generator=g) * 1.6 - 0.8
    origins = torch.randn(256, 3, generator=g)
    origins = 3.0 * origins / origins.norm(dim=-1, keepdim=True)
    directions = targets - origins
    directions = directions / directions.norm(dim=-1, keepdim=True)
    near, far, step = 2.5, 4.5, 0.02
    t_starts, t_ends, valid = march(origins, directions, grid, near, far, step, 300, jitter)
    assert valid.any(dim=1).float().mean() > 0.5
    mids = origins[:, None] + directions[:, None] * ((t_starts + t_ends) / 2)[..., None]
    ends = origins[:, None] + directions[:, None] * t_ends[..., None]
    begins = origins[:, None] + directions[:, None] * t_starts[..., None]
    for p in (mids, begins, ends):
        assert (p[valid].abs() <= 1 + 1e-5).all()  # inside the box
    assert (t_starts[valid] >= near - 1e-6).all() and (t_ends[valid] <= far + 1e-6).all()
    assert (mids[valid][:, 0] >= -1e-5).all()  # nothing in the empty half
    assert (t_ends >= t_starts).all()
    assert (t_starts[:, 1:] >= t_ends[:, :-1] - 1e-6).all()  # ordered, no overlaps
    assert not (valid[:, 1:] & ~valid[:, :-1]).any()  # each ray's valid samples fill its first slots
    # Equal steps: consecutive valid starts are whole multiples of the step apart,
    # every valid interval is one step long except a clipped last one.
    for r in range(len(origins)):
        starts = t_starts[r][valid[r]]
        if len(starts) > 1:
            k = (starts - starts[0]) / step
            torch.testing.assert_close(k, k.round(), atol=1e-3, rtol=0)
        widths = (t_ends - t_starts)[r][valid[r]]
        assert (widths <= step + 1e-6).all() and (widths[:-1] >= step - 1e-5).all()
    # Occupied-half samples are not dropped: a ray along +x through the centre.
    t_starts, t_ends, valid = march(
        torch.tensor([[-3.0, 0.05, 0.05]]), torch.tensor([[1.0, 0.0, 0.0]]), grid, 0.0, 10.0, 0.1, 40, False
    )
    assert int(valid.sum()) == 10  # x in [0, 1] at step 0.1
    torch.testing.assert_close(t_starts[valid], 3.0 + 0.1 * torch.arange(10.0), atol=1e-5, rtol=0)


def test_march_ray_missing_box():
    grid = OccupancyGrid([-1, -1, -1], [1, 1, 1], resolution=8)
    origins = torch.tensor([[5.0, 5.0, 5.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])
    t_starts, t_ends, valid = march(origins, directions, grid, 0.0, 1.5, 0.05, 64, True)
    # Ray 0 misses, ray 1 points away, ray 2 stops (far = 1.5) before the box at t = 2.
    assert not valid.any()
    assert torch.isfinite(t_starts).all() and torch.isfinite(t_ends).all()


def test_occupancy_grid_sphere():
    grid = OccupancyGrid([-1, -1, -1], [1, 1, 1], resolution=32)
    radius = 0.5

    def density_fn(points):
        return torch.where(points.norm(dim=-1) < radius, 50.0, 0.0)

    grid.update(density_fn, step=5)  # not an update step
    assert grid.mask.all() and (grid.density == 0).all()
    grid.update(density_fn, step=0)
    grid.update(density_fn, step=16)
    ijk = torch.stack(torch.meshgrid(*[torch.arange(32.0)] * 3, indexing="ij"), -1)
    centres = grid.box_min + (ijk + 0.5) * grid.cell_size
    dist = centres.norm(dim=-1)
    half_diag = float(grid.cell_size.norm()) / 2
    assert grid.mask[dist < radius - half_diag].all()
    assert not grid.mask[dist > radius + half_diag].any()
    # occupied() agrees with the mask and is False outside the box.
    assert grid.occupied(torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.9, 0.9], [0.0, 0.0, 1.5]])).tolist() == [
        True, False, False
    ]
    # EMA: a field that vanished decays the stored density by `decay` per update.
    before = grid.density.clone()
    grid.update(lambda p: torch.zeros(len(p)), step=32)
    torch.testing.assert_close(grid.density, before * 0.95)
    # Partial updates touch only the drawn cells.
    grid.update(lambda p: torch.full((len(p),), 1e3), step=48, cells=100)
    assert 0 < int((grid.density == 1e3).sum()) <= 100


def test_pixel_rays_principal_point_and_projection():
    K = camera.intrinsics(300.0, 64, 48)
    R = camera.rotation_matrix(0.3, -0.2, 0.1)
    t = torch.tensor([0.5, -0.2, 4.0])
    c2w = torch.eye(4)
    c2w[:3, :3], c2w[:3, 3] = R, t
    origins, directions = pixel_rays(K, c2w, torch.tensor([[32.0, 24.0]]))
    torch.testing.assert_close(origins[0], t)
    torch.testing.assert_close(directions[0], -R[:, 2])  # camera -z in world space
    # World points projected to pixels lie on those pixels' rays (both c2w forms).
    g = torch.Generator().manual_seed(0)
    points_cam = torch.randn(50, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, -3.0])
    points_world = points_cam @ R.T + t
    uv = camera.project(points_cam, K)[:, :2]
    for transform in (c2w, (R, t)):
        origins, directions = pixel_rays(K, transform, uv)
        torch.testing.assert_close(directions.norm(dim=-1), torch.ones(50))
        offset = points_world - origins
        along = (offset * directions).sum(-1)
        assert (along > 0).all()
        torch.testing.assert_close(offset, along[:, None] * directions, atol=1e-5, rtol=0)


def test_frame_pixels():
    pixels = frame_pixels(2, 3)
    assert pixels.shape == (6, 2)
    torch.testing.assert_close(pixels[0], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(pixels[4], torch.tensor([1.5, 1.5]))  # row 1, column 1
    torch.testing.assert_close(pixels[-1], torch.tensor([2.5, 1.5]))
