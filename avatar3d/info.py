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
    """Each backend of the hot ops and whether it can run here."""
    from avatar3d.kernels.build import build_failure
    from avatar3d.render.backend import CPU_OPS, cpu_kernels_available, cuda_kernels_available

    backends = {"torch": "available (reference implementation, CPU and GPU)"}
    if cpu_kernels_available():
        backends["cpu"] = f"available (compiled kernels: {', '.join(sorted(CPU_OPS))})"
    else:
        backends["cpu"] = f"unavailable ({build_failure()}): the PyTorch reference runs instead"
    if not torch.cuda.is_available():
        backends["cuda"] = "unavailable: no CUDA GPU"
    elif cuda_kernels_available():
        backends["cuda"] = "available"
    else:
        backends["cuda"] = "GPU present; avatar3d's own kernels are not part of this version yet"
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
