"""Lazy build of the kernels through torch's cpp_extension and ninja.

Nothing builds on import. The first call of `extension` compiles the CPU launchers, the
per-op checks and the bindings (and, where torch has CUDA, a GPU is present and nvcc is
found, the CUDA launchers too) into ``$AVATAR3D_KERNEL_CACHE`` (default
``~/.cache/avatar3d/kernels``), under a name made from the sources', flags' and torch's
hash: a changed source builds anew (about a minute on two cores), an unchanged one loads
at once. Concurrent builds of one name wait on cpp_extension's lock (a lock left by a killed
build is removed after `STALE_LOCK_S`). A failed build is logged once, with the compiler's
messages, and remembered: a failed CUDA build is retried without CUDA, and where nothing
builds the ops run their PyTorch twins.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

ROOT = Path(__file__).parent
CPU_SOURCES = ("bindings.cpp", "hashgrid.cpp", "hashgrid_cpu.cpp", "warp.cpp", "warp_cpu.cpp",
               "march.cpp", "march_cpu.cpp", "composite.cpp", "composite_cpu.cpp", "sh.cpp", "sh_cpu.cpp",
               "rasterize.cpp", "rasterize_cpu.cpp")
CUDA_SOURCES = ("hashgrid.cu", "warp.cu", "march.cu", "composite.cu", "sh.cu", "rasterize.cu")
CACHE_VAR = "AVATAR3D_KERNEL_CACHE"
"""Environment variable: folder of built kernels (default ~/.cache/avatar3d/kernels)."""
MIN_CAPABILITY = (7, 5)
"""Oldest GPU the CUDA kernels run on (the oldest target CUDA 13 compiles for)."""
CUDA_FLAGS = ("-fmad=false",)
"""No fused multiply-adds, so the CUDA kernels round as their twins and the CPU kernels do."""
STALE_LOCK_S = 600
"""A build lock older than this was left by a killed build, and is removed."""

logger = logging.getLogger("avatar3d.kernels")

_extension: ModuleType | None = None
_failure: str | None = None
_cuda_build_failure: str | None = None


def cache_folder() -> Path:
    """Where built kernels are kept."""
    return Path(os.environ.get(CACHE_VAR) or Path.home() / ".cache" / "avatar3d" / "kernels")


def extension() -> ModuleType | None:
    """The compiled kernels, built on the first call; None if they cannot be built here
    (`failure` says why)."""
    global _extension, _failure, _cuda_build_failure
    if _extension is None and _failure is None:
        if cuda_failure(built=False) is None:
            try:
                _extension = _build(with_cuda=True)
            except Exception as error:  # noqa: BLE001 - any build error: try without CUDA
                _cuda_build_failure = _reason(error)
                logger.warning("CUDA kernels failed to build (%s); building the CPU kernels alone", error)
        if _extension is None:
            try:
                _extension = _build(with_cuda=False)
            except Exception as error:  # noqa: BLE001 - any build error means: run the twins
                _failure = _reason(error)
                logger.warning("kernels unavailable; the PyTorch twins run instead. The build said:\n%s", error)
    return _extension


def _reason(error: Exception) -> str:
    """One line of a build error: the compiler's first error message, else its last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and "subcommand failed" not in line]
    return (errors or lines or [type(error).__name__])[0 if errors else -1]


def failure() -> str | None:
    """Why the kernels could not be built (None if they were, or were not tried)."""
    return _failure


def missing(backend: str) -> str | None:
    """Why the ``cpu`` or ``cuda`` kernels cannot run here, or None if they can (builds
    them on the first call: about a minute, then cached)."""
    if backend == "cuda":
        return cuda_failure()
    return None if extension() is not None else f"the build failed ({_failure})"


def cuda_failure(built: bool = True) -> str | None:
    """Why the CUDA kernels cannot run here, or None if they can. With ``built``, also
    builds the kernels (first call) and checks that the build includes CUDA."""
    problem = _cuda_device_problem()
    if problem or not built:
        return problem
    module = extension()
    if module is None:
        return f"the build failed ({_failure})"
    return None if module.with_cuda else f"the CUDA build failed ({_cuda_build_failure})"


@functools.cache
def _cuda_device_problem() -> str | None:
    """What keeps this machine from CUDA kernels (no GPU, too old a GPU, no nvcc), or None;
    asked once per process, since the dispatch asks on every call."""
    if not torch.cuda.is_available():
        return "no CUDA GPU (or torch without CUDA)"
    capability = torch.cuda.get_device_capability()
    if capability < MIN_CAPABILITY:
        return (f"the GPU's compute capability {capability[0]}.{capability[1]} is below "
                f"{MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]}")
    from torch.utils.cpp_extension import CUDA_HOME

    return "no CUDA toolkit (nvcc) found: set CUDA_HOME" if CUDA_HOME is None else None


def _build(with_cuda: bool) -> ModuleType:
    from torch.utils import cpp_extension

    if not (shutil.which("c++") or shutil.which("g++") or os.environ.get("CXX")):
        raise OSError("no C++ compiler found: install g++ or set CXX")
    # cpp_extension runs `ninja` from PATH; the pinned one is installed beside this Python.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    sources = [ROOT / "csrc" / name for name in CPU_SOURCES + (CUDA_SOURCES if with_cuda else ())]
    flags = ["-O3", *(["-DWITH_CUDA"] if with_cuda else [])]
    digest = hashlib.sha256()
    for path in sorted(sources) + sorted((ROOT / "csrc").glob("*.h*")) + sorted((ROOT / "include").glob("*.h")):
        digest.update(path.name.encode() + path.read_bytes())
    # Whatever makes a build unloadable elsewhere: Python, torch, and for CUDA the GPU's architecture.
    target = [sys.version, torch.__version__, str(torch.version.cuda), *flags, *CUDA_FLAGS]
    if with_cuda:
        target += [str(torch.cuda.get_device_capability()), os.environ.get("TORCH_CUDA_ARCH_LIST", "")]
    digest.update(" ".join(target).encode())
    name = f"cuda_ext_{'cuda' if with_cuda else 'cpu'}_{digest.hexdigest()[:12]}"
    folder = cache_folder() / name
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / "lock"  # cpp_extension's; a killed build leaves it, and the next would wait forever
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
        lock.unlink(missing_ok=True)
    logger.info("loading the kernels (%s; a first build takes about a minute)", folder)
    module = cpp_extension.load(name=name, sources=[str(s) for s in sources], build_directory=str(folder),
                                extra_cflags=flags, extra_cuda_cflags=[*flags, *CUDA_FLAGS],
                                extra_include_paths=[str(ROOT / "include")], with_cuda=with_cuda, verbose=False)
    logger.info("kernels loaded: %s", folder)
    return module
