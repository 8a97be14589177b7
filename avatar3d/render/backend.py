"""Per-call choice between the PyTorch reference and the CUDA kernel of a hot op.

Every hot op (hash-grid encode, ray marching, volume compositing, SH shading) has one
public function that asks `choose` which implementation to run. The PyTorch reference
always exists and runs on any device; the CUDA kernel is used when every tensor of the
call is on a CUDA device and the kernels are available. The environment variable
``AVATAR3D_BACKEND=torch|cuda`` forces one side (unset or empty: choose per call).

Each (op, backend) choice is reported once, at INFO level, on the logger
``avatar3d.backend``, so a log shows which path a run took without one line per call.
"""

from __future__ import annotations

import logging
import os

from torch import Tensor

from avatar3d.errors import BadArgumentError

ENV_VAR = "AVATAR3D_BACKEND"
"""Environment variable that forces a backend: ``torch`` or ``cuda``."""

BACKENDS = ("torch", "cuda")
"""The backends `choose` can return."""

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


def choose(op: str, *tensors: Tensor) -> str:
    """Picks the implementation of ``op`` for one call.

    Args:
        op: Name of the op, e.g. ``"encode"``; used only in the log and in messages.
        *tensors: The call's tensor arguments.

    Returns:
        ``"cuda"`` when every tensor is on a CUDA device and `cuda_kernels_available`,
        else ``"torch"``; or what ``AVATAR3D_BACKEND`` forces.

    Raises:
        BadArgumentError: ``AVATAR3D_BACKEND`` holds an unknown value, or forces
            ``cuda`` where the kernels are unavailable or a tensor is not on a GPU.
    """
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced and forced not in BACKENDS:
        raise BadArgumentError(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a backend: use 'torch' or 'cuda', "
            f"or unset it to choose per call."
        )
    on_gpu = bool(tensors) and all(t.is_cuda for t in tensors)
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
    backend = forced or ("cuda" if on_gpu and cuda_kernels_available() else "torch")
    _report(op, backend, forced=bool(forced))
    return backend


def _report(op: str, backend: str, forced: bool) -> None:
    """Logs the choice the first time ``(op, backend)`` is seen."""
    if (op, backend) in _reported:
        return
    _reported.add((op, backend))
    how = f"forced by {ENV_VAR}" if forced else "chosen per call"
    logger.info("%s: %s backend (%s)", op, backend, how)
