"""Every kernel against its PyTorch twin, values and gradients, on every backend built here.

Tolerances are per quantity: values to float32 rounding; gradients looser, since the kernels
sum in another order (and the hash grid's point gradients are slopes of ~resolution size).
"""

import pytest
import torch

from cuda_ext import build, ops, torch_impl

_NO_CUDA = build.cuda_failure(built=False)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(_NO_CUDA is not None, reason=str(_NO_CUDA)))])
def device(request):
    """Each kernel device here: ``cpu`` wherever the kernels build (CI builds them), ``cuda``
    where a usable GPU is. A test fails, with the reason, if that device's kernels do not build."""
    assert build.extension() is not None, build.failure()
    if request.param == "cuda":
        assert build.cuda_failure() is None, build.cuda_failure()
    return request.param


def _with_gradients(fn, inputs, seed=0):
    """fn's outputs (a tensor or a dict) and the gradients, by every input, of a fixed random
    projection of all of them."""
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*inputs)
    outs = list(out.values()) if isinstance(out, dict) else [out]
    generator = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=generator).to(o.device)).sum() for o in outs)
    loss.backward()
    return [o.detach() for o in outs], [x.grad for x in inputs]


def _grid(dims, features, device):
    # Coarse levels dense, fine ones hashed, with collisions (2^10 rows).
    resolutions = (4, 8, 17, 40, 96)
    generator = torch.Generator().manual_seed(dims * 10 + features)
    table = torch.randn(len(resolutions), 2**10, features, generator=generator)
    points = torch.rand(3000, dims, generator=generator) * 1.2 - 0.1  # some outside, clamped
    points[:3] = torch.tensor([[0.0] * dims, [1.0] * dims, [0.5] * dims])
    return points.to(device), table.to(device), resolutions


@pytest.mark.parametrize("dims, features", [(3, 2), (2, 2), (3, 3)])
def test_encode_matches_its_twin(device, dims, features):
    points, table, resolutions = _grid(dims, features, device)
    assert torch_impl.is_dense(resolutions[1], dims, 2**10) and not torch_impl.is_dense(resolutions[-1], dims, 2**10)
    ref, (ref_points, ref_table) = _with_gradients(lambda p, t: torch_impl.encode(p, t, resolutions), [points, table])
    out, (out_points, out_table) = _with_gradients(lambda p, t: ops.encode(p, t, resolutions), [points, table])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_table, ref_table, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out_points, ref_points, atol=1e-3, rtol=1e-4)
    outside = (points < 0) | (points > 1)
    assert bool(outside.any()) and bool((out_points[outside] == 0).all())


def test_encode_gradient_of_the_table_alone(device):
    points, table, resolutions = _grid(3, 2, device)
    table.requires_grad_(True)
    ops.encode(points[:50], table, resolutions).sum().backward()  # sum()'s gradient is not contiguous
    # A point's corner weights sum to 1 per level and feature.
    assert float(table.grad.sum()) == pytest.approx(50 * len(resolutions) * 2, rel=1e-5)


def test_warp_matches_its_twin(device):
    generator = torch.Generator().manual_seed(5)
    counts, radius = [400, 0, 700], 0.012
    anchors = (torch.rand(3, 40, 3, generator=generator) * 0.1).to(device)
    shifts = (torch.randn(3, 40, 3, generator=generator) * 0.01).to(device)
    # Samples among the landmarks (weights summing above and below 1) and far from them.
    points = torch.cat([torch.rand(900, 3, generator=generator) * 0.1,
                        torch.rand(200, 3, generator=generator) + 0.5]).to(device)
    ref, (ref_points,) = _with_gradients(lambda p: torch_impl.warp(p, counts, anchors, shifts, radius), [points])
    out, (out_points,) = _with_gradients(lambda p: ops.warp(p, counts, anchors, shifts, radius), [points])
    assert float((ref[0] - points).abs().max()) > 1e-3  # the warp moves samples
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out_points, ref_points, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("surface_band", [None, 0.05])
def test_march_matches_its_twin(device, surface_band):
    generator = torch.Generator().manual_seed(7)
    G, rays = 16, 2000
    density = torch.rand(G, G, G, generator=generator) * 40
    mask = density > 12
    box_min, box_max = torch.tensor([-0.5, -0.4, -0.3]), torch.tensor([0.5, 0.4, 0.3])
    origins = torch.randn(rays, 3, generator=generator) * 0.2 + torch.tensor([0.0, 0.0, 2.0])
    directions = torch.nn.functional.normalize(torch.randn(rays, 3, generator=generator) * 0.3
                                               + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    directions[:5] = torch.tensor([0.0, 0.0, -1.0])  # axis-aligned: zero components
    directions[5:10] = torch.tensor([0.0, 0.0, 1.0])  # away from the box: misses
    offsets = torch.rand(rays, generator=generator)
    args = [x.to(device) for x in (origins, directions, offsets, box_min, box_max, mask, density)]
    ref = torch_impl.march(*args, 0.0, 1e4, 0.02, 80, surface_band)
    out = ops.march(*args, 0.0, 1e4, 0.02, 80, surface_band)
    # A midpoint on a cell face may round to either cell under another rounding (CUDA's fused
    # multiply-adds), which moves the ray's later samples by a slot; on the CPU every ray is the same.
    same = (out[2] == ref[2]).all(1)
    assert float((~same).float().mean()) <= (0 if device == "cpu" else 1e-2)
    torch.testing.assert_close(out[0][same], ref[0][same], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1][same], ref[1][same], atol=1e-6, rtol=0)
    assert not bool((ref[2][:, 1:] & ~ref[2][:, :-1]).any())  # each ray's valid samples come first
    kept = ref[2].sum(1)
    assert bool((kept > 0).any()) and bool((kept[5:10] == 0).all())  # rays hit and miss
    if surface_band is not None:  # the band drops samples inside the solid
        assert int(ref[2].sum()) < int(torch_impl.march(*args, 0.0, 1e4, 0.02, 80, None)[2].sum())


def _samples(device, channels, seed=0):
    """Rays of 24 slots, some empty and one block opaque (it terminates early), and the packed
    densities and colours of their valid slots."""
    generator = torch.Generator().manual_seed(seed)
    rays, slots = 300, 24
    t_starts = torch.sort(torch.rand(rays, slots, generator=generator) * 3, dim=1).values
    t_ends = t_starts + torch.rand(rays, slots, generator=generator) * 0.1
    valid = torch.rand(rays, slots, generator=generator) > 0.3
    valid[-10:] = False  # rays with no sample at all
    densities = torch.rand(rays, slots, generator=generator) * 8
    densities[:20] *= 200  # opaque: transmittance falls below the stop threshold
    colours = torch.rand(rays, slots, channels, generator=generator)
    return [x.to(device) for x in (densities[valid], colours[valid], t_starts, t_ends, valid)]


@pytest.mark.parametrize("channels, stop_threshold", [(3, 1e-4), (10, 1e-4), (3, 0.0)])
def test_composite_matches_its_twin(device, channels, stop_threshold):
    densities, colours, t_starts, t_ends, valid = _samples(device, channels)
    background = torch.rand(channels).to(device)

    def run(implementation):
        return _with_gradients(
            lambda d, c, b: implementation.composite(d, c, t_starts, t_ends, valid, b, stop_threshold),
            [densities, colours, background])

    ref, ref_grads = run(torch_impl)
    out, out_grads = run(ops)
    for a, b in zip(out, ref):  # rgb, opacity, depth, weights, transmittance
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    for a, b in zip(out_grads, ref_grads):  # densities, colours, background
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    terminated = ref[4][valid] < 1e-4
    assert stop_threshold == 0 or bool(terminated.any())  # early termination is exercised


@pytest.mark.parametrize("per_normal", [False, True])
def test_shade_matches_its_twin(device, per_normal):
    generator = torch.Generator().manual_seed(3)
    normals = torch.nn.functional.normalize(torch.randn(2, 500, 3, generator=generator), dim=-1).to(device)
    shape = (2, 500, 9, 3) if per_normal else (9, 3)
    light = (torch.randn(shape, generator=generator) * 0.5 + torch.tensor([0.8] + [0.0] * 8)[:, None]).to(device)
    ref, (ref_normals, ref_light) = _with_gradients(torch_impl.shade, [normals, light])
    out, (out_normals, out_light) = _with_gradients(ops.shade, [normals, light])
    assert bool((ref[0] == 0).any()) and bool((ref[0] > 0).any())  # the clamp is exercised
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out_normals, ref_normals, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_light, ref_light, atol=1e-4, rtol=1e-4)


def splats(count=60, width=37, height=29, tile_size=8, opacity=(0.05, 0.95), seed=0, device="cpu", size=1.5):
    """Random 2D Gaussians on a width x height image (odd sizes: partial tiles) about ``size``
    pixels across (a standard deviation), their tile lists, and the rasteriser's arguments:
    (means2d, conics, colours, opacities), (offsets, ids, W, H, tile)."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.rand(count, 2, generator=generator) * torch.tensor([width, height])
    shape = (torch.randn(count, 2, 2, generator=generator) * 0.4 + torch.eye(2) * 1.5) * (size / 1.5)
    covariance = shape @ shape.transpose(1, 2) + 0.3 * torch.eye(2)
    inverse = torch.linalg.inv(covariance)
    conics = torch.stack([inverse[:, 0, 0], inverse[:, 0, 1], inverse[:, 1, 1]], -1)
    radii = (3 * torch.linalg.eigvalsh(covariance)[:, 1].sqrt())[:, None].expand(count, 2).contiguous()
    colours = torch.rand(count, 3, generator=generator)
    low, high = opacity
    opacities = low + (high - low) * torch.rand(count, generator=generator)
    offsets, ids = torch_impl.tile_bins(means, radii, torch.rand(count, generator=generator), width, height,
                                        tile_size)
    return ([x.to(device) for x in (means, conics, colours, opacities)],
            (offsets.to(device), ids.to(device), width, height, tile_size))


# The second stops early; the third has Gaussians wider than tiles (the CPU kernel tests only the
# pixels of each Gaussian's footprint, which its opacity sizes). A tenth are fainter than 1/255.
@pytest.mark.parametrize("count, opacity, size", [(60, (0.05, 0.95), 1.5), (300, (0.8, 1.0), 1.5),
                                                  (30, (0.01, 1.0), 5.0)])
def test_rasterize_matches_its_twin(device, count, opacity, size):
    gaussians, lists = splats(count=count, opacity=opacity, device=device, size=size)
    gaussians[3][::10] = 0.003
    ref, ref_grads = _with_gradients(lambda *g: torch_impl.rasterize(*g, *lists), gaussians)
    out, out_grads = _with_gradients(lambda *g: ops.rasterize(*g, *lists), gaussians)
    # Faint: some pixels covered, some not; opaque: some pixels stopped (transmittance near 1e-4).
    assert float(ref[1].max()) > (0.9998 if count > 100 else 0.99) and float(ref[1].min()) < 0.9
    for o, r in zip(out, ref):
        torch.testing.assert_close(o, r, atol=2e-6, rtol=1e-5)
    for o, r in zip(out_grads, ref_grads):
        assert float(r.abs().max()) > 0
        torch.testing.assert_close(o, r, atol=1e-4, rtol=1e-4)
    background = torch.tensor([0.2, 0.5, 1.0], device=device)
    torch.testing.assert_close(ops.rasterize(*gaussians, *lists, background=background)["rgb"],
                               torch_impl.rasterize(*gaussians, *lists, background=background)["rgb"])


def test_empty_inputs_give_empty_outputs(device):
    points, table, resolutions = _grid(3, 2, device)
    assert ops.encode(points[:0], table, resolutions).shape == (0, len(resolutions) * 2)
    assert ops.shade(points[:0], torch.zeros(0, 9, 3, device=device)).shape == (0, 3)
    densities, colours, t_starts, t_ends, valid = _samples(device, 3)
    out = ops.composite(densities[:0], colours[:0], t_starts[:0], t_ends[:0], valid[:0])
    assert out["rgb"].shape == (0, 3) and out["weights"].shape == (0, 24)
    gaussians, (_, _, width, height, tile_size) = splats(device=device)
    offsets, ids = torch_impl.tile_bins(*[x[:0] for x in (gaussians[0], gaussians[0], gaussians[3])], width, height,
                                        tile_size)
    image = ops.rasterize(*[x[:0] for x in gaussians], offsets, ids, width, height, tile_size)
    assert image["rgb"].shape == (height, width, 3) and float(image["alpha"].abs().max()) == 0


def test_kernels_refuse_bad_inputs_with_a_message_instead_of_crashing(device):
    points, table, resolutions = _grid(3, 2, device)
    with pytest.raises(RuntimeError, match="power of two"):
        ops.encode(points, table[:, :1000], resolutions)
    with pytest.raises(RuntimeError, match="table must be Float"):
        ops.encode(points, table.double(), resolutions)
    if device == "cpu":  # index checks that would cost a GPU sync run on the CPU only
        densities, colours, t_starts, t_ends, valid = _samples(device, 3)
        with pytest.raises(RuntimeError, match="one row per valid slot"):
            ops.composite(densities[1:], colours[1:], t_starts, t_ends, valid)
        with pytest.raises(RuntimeError, match="every frame must index"):
            ops.warp(points[:10], [10], torch.zeros(0, 5, 3), torch.zeros(0, 5, 3), 0.1)
        gaussians, (offsets, ids, width, height, tile_size) = splats(device=device)
        with pytest.raises(RuntimeError, match="every id must index the Gaussians"):
            ops.rasterize(*[x[:5] for x in gaussians], offsets, ids, width, height, tile_size)
        with pytest.raises(RuntimeError, match=r"offsets must be \(tiles \+ 1,\)"):
            ops.rasterize(*gaussians, offsets, ids, width, height, 4)
    else:
        with pytest.raises(RuntimeError, match="move them to one device"):
            ops.encode(points, table.cpu(), resolutions)
