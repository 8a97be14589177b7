"""Per-call choice between the PyTorch reference and the kernels of a hot op.

Every hot op (hash-grid encode, landmark warp, ray marching, volume compositing, SH
shading) has one public function that asks `choose` which implementation to run:

- ``torch``: the PyTorch reference; always there, any device and dtype.
- ``cpu``: compiled C kernels (`avatar3d.kernels`) for float32 tensors on the CPU, where
  the op has one (`CPU_OPS`) and a C compiler built them.
- ``cuda``: CUDA kernels for tensors on a GPU (a later issue; none yet).

Unforced, the fastest applicable one is taken. The environment variable
``AVATAR3D_BACKEND=torch|cpu|cuda`` forces one (unset or empty: choose per call).

Each (op, backend) choice is reported once, at INFO level, on the logger
``avatar3d.backend``, so a log shows which path a run took without one line per call.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import Tensor

from avatar3d.errors import BadArgumentError

ENV_VAR = "AVATAR3D_BACKEND"
"""Environment variable that forces a backend: ``torch``, ``cpu`` or ``cuda``."""

BACKENDS = ("torch", "cpu", "cuda")
"""The backends `choose` can return."""

CPU_OPS = frozenset({"encode", "warp"})
"""Ops with a compiled CPU kernel."""

logger = logging.getLogger("avatar3d.backend")

# (op, backend) pairs already reported, so each appears once in the log.
_reported: set[tuple[str, str]] = set()


def cuda_kernels_available() -> bool:
    """Whether the CUDA kernels of the hot ops are built and loadable.

    Always False for now: the kernels (``cuda_ext/``) arrive in a later issue, and
    until then every op runs its PyTorch reference, on the GPU too. When they exist,
    this builds them lazily on first call and remembers a failed build.
    """
    return False


def cpu_kernels_available() -> bool:
    """Whether the compiled CPU kernels load here (builds them on the first call, about a
    second; a failed build is logged once and remembered)."""
    from avatar3d.kernels.build import cpu_library

    return cpu_library() is not None


def choose(op: str, *tensors: Tensor) -> str:
    """Picks the implementation of ``op`` for one call.

    Args:
        op: Name of the op, e.g. ``"encode"``; used in the log and in messages.
        *tensors: The call's floating-point tensor arguments.

    Returns:
        ``"cuda"`` when every tensor is on a CUDA device and `cuda_kernels_available`;
        ``"cpu"`` when ``op`` is in `CPU_OPS`, every tensor is float32 on the CPU and
        `cpu_kernels_available`; else ``"torch"``; or what ``AVATAR3D_BACKEND`` forces.

    Raises:
        BadArgumentError: ``AVATAR3D_BACKEND`` holds an unknown value, or forces a
            backend that cannot run this call.
    """
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced and forced not in BACKENDS:
        raise BadArgumentError(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a backend: use 'torch', 'cpu' or 'cuda', "
            f"or unset it to choose per call."
        )
    on_gpu = bool(tensors) and all(t.is_cuda for t in tensors)
    cpu_float = bool(tensors) and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
    if forced == "cuda":
        if not cuda_kernels_available():
            raise BadArgumentError(
                f"{ENV_VAR}=cuda but the CUDA kernels are not available in this version "
                f"(op {op!r}): set {ENV_VAR}=torch or unset it."
            )
        if not on_gpu:
            raise BadArgumentError(
                f"{ENV_VAR}=cuda but the inputs of op {op!r} are not all on a CUDA device: "
                f"use a GPU device or unset {ENV_VAR}."
            )
    if forced == "cpu":
        if op in CPU_OPS and cpu_float and not cpu_kernels_available():
            from avatar3d.kernels.build import build_failure

            raise BadArgumentError(f"{ENV_VAR}=cpu but the CPU kernels could not be built ({build_failure()}): "
                                   f"set {ENV_VAR}=torch or unset it.")
        if op not in CPU_OPS or not cpu_float:  # ops without a CPU kernel, and float64 checks, use the reference
            forced = "torch"
    if forced:
        backend = forced
    elif on_gpu and cuda_kernels_available():
        backend = "cuda"
    elif op in CPU_OPS and cpu_float and cpu_kernels_available():
        backend = "cpu"
    else:
        backend = "torch"
    _report(op, backend, forced=bool(forced))
    return backend


def _report(op: str, backend: str, forced: bool) -> None:
    """Logs the choice the first time ``(op, backend)`` is seen."""
    if (op, backend) in _reported:
        return
    _reported.add((op, backend))
    how = f"forced by {ENV_VAR}" if forced else "chosen per call"
    logger.info("%s: %s backend (%s)", op, backend, how)
