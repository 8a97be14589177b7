"""The kernels' build: lazy, cached, failures remembered; the CUDA sources compile with nvcc
(no torch headers) for the GPUs the project targets; the backend choice follows the registry."""

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avatar3d.errors import BadArgumentError
from avatar3d.render import backend
from avatar3d.render.head import warp_to_neutral
from cuda_ext import IMPLEMENTED, build

CUDA_SOURCES = sorted((Path(build.ROOT) / "csrc").glob("*.cu"))


def test_importing_builds_nothing():
    code = ("import cuda_ext, cuda_ext.ops, cuda_ext.torch_impl, avatar3d.render.avatar; "
            "from cuda_ext import build; assert build._extension is None and build._failure is None")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_every_cuda_source_compiles_with_nvcc_without_torch(tmp_path, arch):
    assert {path.name for path in CUDA_SOURCES} == set(build.CUDA_SOURCES)
    for source in CUDA_SOURCES:
        done = subprocess.run(["nvcc", "-c", "-std=c++17", f"-arch={arch}", "-Werror=all-warnings", str(source),
                               "-o", str(tmp_path / f"{source.stem}.o")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_a_failed_build_is_reported_once_and_the_twins_run(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(build, "_extension", None)
    monkeypatch.setattr(build, "_failure", None)
    monkeypatch.setenv(build.CACHE_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", "false")  # a compiler that always fails
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    monkeypatch.setattr(backend, "_reported", set())
    with caplog.at_level(logging.WARNING, logger="avatar3d.kernels"):
        assert build.extension() is None and build.extension() is None
        assert backend.choose("encode", torch.zeros(3)) == "torch"
    assert build.failure()
    assert len([r for r in caplog.records if r.name == "avatar3d.kernels"]) == 1
    monkeypatch.setenv(backend.ENV_VAR, "cpu")
    with pytest.raises(BadArgumentError, match="cannot run here"):
        backend.choose("encode", torch.zeros(3))


def test_a_built_extension_is_cached_by_source_hash(monkeypatch):
    assert build.extension() is not None, build.failure()
    monkeypatch.setattr(build, "_extension", None)
    monkeypatch.setenv("CXX", "false")  # a second load must not compile again
    assert build.extension() is not None


def test_float32_calls_take_the_kernels_where_the_registry_has_them(monkeypatch):
    assert build.extension() is not None, build.failure()
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    for op, kinds in IMPLEMENTED.items():
        assert backend.choose(op, torch.zeros(3)) == ("cpu" if "cpu" in kinds else "torch")
    assert backend.choose("encode", torch.zeros(3, dtype=torch.float64)) == "torch"  # gradcheck's dtype
    monkeypatch.setenv(backend.ENV_VAR, "torch")
    assert backend.choose("encode", torch.zeros(3)) == "torch"
    monkeypatch.setenv(backend.ENV_VAR, "cpu")
    assert backend.choose("encode", torch.zeros(3)) == "cpu"
    assert backend.choose("march", torch.zeros(3)) == "torch"  # no kernel yet


def test_forcing_a_backend_on_inputs_of_another_device_is_refused(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "cuda")
    with pytest.raises(BadArgumentError, match="AVATAR3D_BACKEND=cuda but the inputs"):
        backend.choose("encode", torch.zeros(3))


def test_warp_with_landmarks_that_need_gradients_uses_the_twin():
    anchors = torch.rand(1, 5, 3, requires_grad=True)
    out = warp_to_neutral(torch.rand(20, 3), [20], anchors, torch.rand(1, 5, 3), 0.5)
    out.sum().backward()
    assert anchors.grad is not None and anchors.grad.abs().sum() > 0
