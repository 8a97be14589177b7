"""The compiled CPU kernels against their PyTorch twins: values and gradients."""

import logging
import shutil

import pytest
import torch

from avatar3d.kernels import build
from avatar3d.kernels.ops import encode_cpu, warp_cpu
from avatar3d.render import backend
from avatar3d.render.config import HashGridConfig
from avatar3d.render.encoding import _encode_torch, level_resolutions
from avatar3d.render.head import _warp_torch, warp_to_neutral


@pytest.fixture(scope="module", autouse=True)
def library():
    """The kernels must build wherever a C compiler is (CI has one)."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    assert build.cpu_library() is not None, build.build_failure()


def _twin_gradients(fn, inputs: list[torch.Tensor], grad_out_seed: int = 0):
    """fn's output and the gradients of a fixed random projection of it by every input."""
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*inputs)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_out_seed))
    (out * weights).sum().backward()
    return out.detach(), [x.grad for x in inputs]


@pytest.mark.parametrize("dims, features", [(3, 2), (2, 2), (3, 3)])
def test_encode_kernel_matches_the_reference_values_and_gradients(dims, features):
    # Coarse levels dense, fine ones hashed, with collisions (2^10 rows).
    config = HashGridConfig(levels=5, features_per_level=features, log2_table_size=10, base_resolution=4,
                            finest_resolution=96)
    resolutions = level_resolutions(config)
    generator = torch.Generator().manual_seed(dims * 10 + features)
    table = torch.randn(5, 2**10, features, generator=generator)
    points = torch.rand(3000, dims, generator=generator) * 1.2 - 0.1  # some outside, clamped
    points[:3] = torch.tensor([[0.0] * dims, [1.0] * dims, [0.5] * dims])
    ref, (ref_points, ref_table) = _twin_gradients(lambda p, t: _encode_torch(p, t, resolutions), [points, table])
    out, (out_points, out_table) = _twin_gradients(lambda p, t: encode_cpu(p, t, resolutions), [points, table])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_table, ref_table, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out_points, ref_points, atol=1e-3, rtol=1e-4)  # slopes are ~resolution large
    outside = ((points < 0) | (points > 1))
    assert bool(outside.any()) and bool((out_points[outside] == 0).all())


def test_encode_kernel_gradient_of_the_table_alone():
    resolutions = level_resolutions(HashGridConfig(levels=2, log2_table_size=8, base_resolution=4,
                                                   finest_resolution=16))
    table = torch.randn(2, 2**8, 2, requires_grad=True)
    # Points need no gradient; sum()'s gradient is a broadcast (non-contiguous) tensor.
    encode_cpu(torch.rand(50, 3), table, resolutions).sum().backward()
    # A point's corner weights sum to 1 per level and feature.
    assert table.grad is not None and float(table.grad.sum()) == pytest.approx(50 * 2 * 2, rel=1e-5)


def test_warp_kernel_matches_the_reference_values_and_gradients():
    generator = torch.Generator().manual_seed(5)
    counts = [400, 0, 700]
    radius = 0.012
    anchors = torch.rand(3, 40, 3, generator=generator) * 0.1
    shifts = torch.randn(3, 40, 3, generator=generator) * 0.01
    # Samples among the landmarks (weights summing above and below 1) and far from them.
    points = torch.cat([torch.rand(900, 3, generator=generator) * 0.1, torch.rand(200, 3, generator=generator) + 0.5])
    assert float(_warp_torch(points, counts, anchors, shifts, radius).sub(points).abs().max()) > 1e-3
    frame = torch.repeat_interleave(torch.arange(3), torch.tensor(counts))
    ref, (ref_points,) = _twin_gradients(lambda p: _warp_torch(p, counts, anchors, shifts, radius), [points])
    out, (out_points,) = _twin_gradients(lambda p: warp_cpu(p, frame, anchors, shifts, radius), [points])
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out_points, ref_points, atol=1e-4, rtol=1e-4)


def test_float32_cpu_calls_take_the_kernel_and_others_the_reference(monkeypatch, caplog):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    assert backend.choose("encode", torch.zeros(3)) == "cpu"
    assert backend.choose("warp", torch.zeros(3)) == "cpu"
    assert backend.choose("encode", torch.zeros(3, dtype=torch.float64)) == "torch"  # gradcheck's dtype
    assert backend.choose("march", torch.zeros(3)) == "torch"  # no CPU kernel
    monkeypatch.setenv(backend.ENV_VAR, "torch")
    assert backend.choose("encode", torch.zeros(3)) == "torch"
    monkeypatch.setenv(backend.ENV_VAR, "cpu")
    assert backend.choose("encode", torch.zeros(3)) == "cpu"
    assert backend.choose("composite", torch.zeros(3)) == "torch"


def test_warp_with_landmarks_that_need_gradients_uses_the_reference():
    anchors = torch.rand(1, 5, 3, requires_grad=True)
    points = torch.rand(20, 3)
    out = warp_to_neutral(points, [20], anchors, torch.rand(1, 5, 3), 0.5)
    out.sum().backward()
    assert anchors.grad is not None and anchors.grad.abs().sum() > 0


def test_a_failed_build_is_reported_once_and_falls_back_to_the_reference(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(build, "_library", None)
    monkeypatch.setattr(build, "_failure", None)
    monkeypatch.setenv(build.CACHE_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    with caplog.at_level(logging.WARNING, logger="avatar3d.kernels"):
        assert build.cpu_library() is None and build.cpu_library() is None
        assert backend.choose("encode", torch.zeros(3)) == "torch"
    assert "false failed" in build.build_failure()
    assert len([r for r in caplog.records if r.name == "avatar3d.kernels"]) == 1
    monkeypatch.setenv(backend.ENV_VAR, "cpu")
    with pytest.raises(Exception, match="could not be built"):
        backend.choose("encode", torch.zeros(3))


def test_a_built_library_is_cached_by_source_hash(monkeypatch, tmp_path):
    monkeypatch.setattr(build, "_library", None)
    monkeypatch.setattr(build, "_failure", None)
    monkeypatch.setenv(build.CACHE_VAR, str(tmp_path))
    assert build.cpu_library() is not None
    built = list(tmp_path.glob("avatar3d_cpu_*.so"))
    assert len(built) == 1 and not list(tmp_path.glob("tmp*"))  # no temporary folder left
    monkeypatch.setattr(build, "_library", None)
    monkeypatch.setenv("CC", "false")  # a second load must not compile again
    assert build.cpu_library() is not None
