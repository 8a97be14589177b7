"""``avatar3d info``: versions, device and kernel backends, for bug reports and setup checks."""

from __future__ import annotations

import importlib.metadata
import platform

import torch
from rich.console import Console
from rich.table import Table

import avatar3d
from avatar3d.runtime import usable_cpus

_PACKAGES = ("torch", "numpy", "mediapipe", "av", "scikit-image", "trimesh", "pocketsphinx", "espeakng-loader")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def kernel_backends() -> dict[str, str]:
    """Each backend of the hot ops and whether it can run here (builds the kernels on the
    first call: about a minute, then cached)."""
    from cuda_ext import build, kernels_of

    backends = {"torch": "available (PyTorch twins of every op, CPU and GPU)"}
    for kind in ("cpu", "cuda"):
        reason = build.missing(kind)
        backends[kind] = f"available (kernels: {', '.join(kernels_of(kind))})" if reason is None else \
            f"unavailable ({reason}): the PyTorch twins run instead"
    return backends


def print_info(device: torch.device) -> None:
    """Prints the table to stdout (it is the command's output, so --quiet does not hide it)."""
    table = Table(title=f"avatar3d {avatar3d.__version__}", show_header=False)
    table.add_row("python", platform.python_version())
    for package in _PACKAGES:
        table.add_row(package, _version(package))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    table.add_row("threads", f"{torch.get_num_threads()} (--threads; {usable_cpus()} CPUs usable)")
    table.add_row("device", f"{device} (GPU: {gpu}, torch CUDA build: {torch.version.cuda or 'no'})")
    for name, state in kernel_backends().items():
        table.add_row(f"backend {name}", state)
    Console(highlight=False).print(table)
