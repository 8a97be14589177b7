"""Per-call choice of the implementation of a hot op: the PyTorch twin or a kernel.

Every hot op (hash-grid encode, landmark warp, ray marching, volume compositing, SH
shading) has one public function in `avatar3d.render` that asks `implementation` which
implementation to run:

- ``torch``: the twin in `cuda_ext.torch_impl`; always there, any device and dtype.
- ``cpu``: the CPU kernel (`cuda_ext.ops`) for float32 tensors on the CPU.
- ``cuda``: the CUDA kernel (`cuda_ext.ops`) for float32 tensors on a GPU.

A kernel runs where `cuda_ext.IMPLEMENTED` lists it for the op and it builds here (lazily,
on the first call; a failed build is remembered and the twin runs). The environment
variable ``AVATAR3D_BACKEND=torch|cpu|cuda`` forces one (unset or empty: choose per call);
ops without that kernel, and float64 calls (gradient checks), still run the twin.

Each (op, backend) choice is reported once, at INFO level, on the logger
``avatar3d.backend``, so a log shows which path a run took without one line per call.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

import torch
from torch import Tensor

import cuda_ext
from avatar3d.errors import BadArgumentError
from cuda_ext import build, ops, torch_impl

ENV_VAR = "AVATAR3D_BACKEND"
"""Environment variable that forces a backend: ``torch``, ``cpu`` or ``cuda``."""

BACKENDS = ("torch", "cpu", "cuda")
"""The backends `choose` can return."""

logger = logging.getLogger("avatar3d.backend")

# (op, backend) pairs already reported, so each appears once in the log.
_reported: set[tuple[str, str]] = set()


def choose(op: str, *tensors: Tensor) -> str:
    """Picks the backend of ``op`` for one call.

    Args:
        op: Name of the op, e.g. ``"encode"``; used in the log and in messages.
        *tensors: The call's floating-point tensor arguments.

    Returns:
        ``"cuda"`` or ``"cpu"`` when every tensor is float32 on that kind of device, the op
        has that kernel and it runs here; else ``"torch"``; or what ``AVATAR3D_BACKEND``
        forces.

    Raises:
        BadArgumentError: ``AVATAR3D_BACKEND`` holds an unknown value, forces a backend on
            tensors of another device, or forces kernels that cannot run here.
    """
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced and forced not in BACKENDS:
        raise BadArgumentError(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a backend: use 'torch', 'cpu' or 'cuda', "
            f"or unset it to choose per call."
        )
    devices = {t.device.type for t in tensors}
    kind = devices.pop() if len(devices) == 1 else None  # mixed devices: the twin says what is wrong
    fits = kind in cuda_ext.IMPLEMENTED.get(op, ()) and all(t.dtype == torch.float32 for t in tensors)
    if forced in ("cpu", "cuda"):
        if kind != forced:
            raise BadArgumentError(
                f"{ENV_VAR}={forced} but the inputs of op {op!r} are on {', '.join(sorted({t.device.type for t in tensors}))}: "
                f"use a {forced.upper()} device or unset {ENV_VAR}."
            )
        missing = build.missing(forced) if fits else None
        if missing:
            raise BadArgumentError(f"{ENV_VAR}={forced} but the {forced} kernels cannot run here ({missing}): "
                                   f"set {ENV_VAR}=torch or unset it.")
        backend = forced if fits else "torch"
    elif forced == "torch" or not fits or build.missing(kind):
        backend = "torch"
    else:
        backend = kind
    _report(op, backend, forced=bool(forced))
    return backend


def implementation(op: str, *tensors: Tensor) -> ModuleType:
    """The module whose function ``op`` runs this call: `cuda_ext.ops` (kernels) or
    `cuda_ext.torch_impl` (twins), by `choose`; both have the same signatures."""
    return torch_impl if choose(op, *tensors) == "torch" else ops


def _report(op: str, backend: str, forced: bool) -> None:
    """Logs the choice the first time ``(op, backend)`` is seen."""
    if (op, backend) in _reported:
        return
    _reported.add((op, backend))
    how = f"forced by {ENV_VAR}" if forced else "chosen per call"
    logger.info("%s: %s backend (%s)", op, backend, how)
