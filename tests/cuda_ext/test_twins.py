"""Every kernel against its PyTorch twin, values and gradients, on every backend built here.

Tolerances are per quantity: values to float32 rounding; gradients looser, since the kernels
sum in another order (and the hash grid's point gradients are slopes of ~resolution size).
"""

import pytest
import torch

from cuda_ext import ops, torch_impl


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


def _samples(device, channels, seed=0):
    """Rays of 24 slots: some empty, one dense wall that terminates early, NaN colours in
    invalid slots (which must reach nothing)."""
    generator = torch.Generator().manual_seed(seed)
    rays, slots = 300, 24
    densities = torch.rand(rays, slots, generator=generator) * 8
    densities[:20] *= 200  # opaque: transmittance falls below the stop threshold
    t_starts = torch.sort(torch.rand(rays, slots, generator=generator) * 3, dim=1).values
    t_ends = t_starts + torch.rand(rays, slots, generator=generator) * 0.1
    valid = torch.rand(rays, slots, generator=generator) > 0.3
    valid[-10:] = False  # rays with no sample at all
    colours = torch.rand(rays, slots, channels, generator=generator)
    colours[~valid] = float("nan")
    return [x.to(device) for x in (densities, colours, t_starts, t_ends)] + [valid.to(device)]


@pytest.mark.parametrize("channels, stop_threshold", [(3, 1e-4), (10, 1e-4), (3, 0.0)])
def test_composite_matches_its_twin(device, channels, stop_threshold):
    densities, colours, t_starts, t_ends, valid = _samples(device, channels)
    background = torch.rand(channels).to(device)

    def run(implementation):
        return _with_gradients(
            lambda d, c, b: implementation.composite(d, c, t_starts, t_ends, valid, b, stop_threshold),
            [densities, colours.nan_to_num(0.0) if implementation is torch_impl else colours, background])

    ref, ref_grads = run(torch_impl)
    out, out_grads = run(ops)
    for a, b in zip(out, ref):  # rgb, opacity, depth, weights, transmittance
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    for a, b in zip(out_grads, ref_grads):  # densities, colours, background
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    assert not out_grads[1].isnan().any()  # NaN in invalid slots reaches no gradient
    terminated = ref[4] < 1e-4
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


def test_empty_inputs_give_empty_outputs(device):
    points, table, resolutions = _grid(3, 2, device)
    assert ops.encode(points[:0], table, resolutions).shape == (0, len(resolutions) * 2)
    assert ops.shade(points[:0], torch.zeros(0, 9, 3, device=device)).shape == (0, 3)
    out = ops.composite(*[x[:0] for x in _samples(device, 3)])
    assert out["rgb"].shape == (0, 3) and out["weights"].shape == (0, 24)


def test_kernels_refuse_bad_inputs_with_a_message_instead_of_crashing(device):
    points, table, resolutions = _grid(3, 2, device)
    with pytest.raises(RuntimeError, match="power of two"):
        ops.encode(points, table[:, :1000], resolutions)
    with pytest.raises(RuntimeError, match="table must be Float"):
        ops.encode(points, table.double(), resolutions)
    with pytest.raises(RuntimeError, match="frame must index|every frame"):
        ops.warp(points[:10], [10], torch.zeros(0, 5, 3, device=device), torch.zeros(0, 5, 3, device=device), 0.1)
    if device == "cuda":
        with pytest.raises(RuntimeError, match="move them to one device"):
            ops.encode(points, table.cpu(), resolutions)
