"""Lazy build of the CPU kernels (``cpu.c``) into a cached shared library, loaded with ctypes.

Nothing is built on import. The first call of `cpu_library` compiles ``cpu.c`` with the
system's C compiler (``$CC``, else ``cc``; about a second) into
``$AVATAR3D_KERNEL_CACHE`` (default ``~/.cache/avatar3d/kernels``), under a name made
from the source's and flags' hash, so a changed source builds anew and an unchanged one
loads at once. Concurrent builds write to temporary names and rename. A failed build is
logged once and remembered: the ops then run their PyTorch references.

Why ctypes and plain C rather than a torch C++ extension: the kernels need only pointers
and sizes, and without torch's headers the build takes a second instead of a minute and
cannot break against the installed torch.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("cpu.c")
FLAGS = ("-O3", "-std=c11", "-fPIC", "-shared", "-pthread", "-D_POSIX_C_SOURCE=200809L")
CACHE_VAR = "AVATAR3D_KERNEL_CACHE"
"""Environment variable: folder of built kernels (default ~/.cache/avatar3d/kernels)."""

logger = logging.getLogger("avatar3d.kernels")

_library: ctypes.CDLL | None = None
_failure: str | None = None

_i64, _int, _float, _ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_float, ctypes.c_void_p
SIGNATURES = {
    "hashgrid_forward": (_ptr, _i64, _int, _ptr, _i64, _i64, _i64, _ptr, _ptr, _int),
    "hashgrid_backward": (_ptr, _i64, _int, _ptr, _i64, _i64, _i64, _ptr, _ptr, _ptr, _ptr, _int),
    "warp_forward": (_ptr, _ptr, _i64, _ptr, _ptr, _i64, _float, _ptr, _int),
    "warp_backward": (_ptr, _ptr, _i64, _ptr, _ptr, _i64, _float, _ptr, _ptr, _int),
}


def cache_folder() -> Path:
    """Where built kernels are kept."""
    return Path(os.environ.get(CACHE_VAR) or Path.home() / ".cache" / "avatar3d" / "kernels")


def cpu_library() -> ctypes.CDLL | None:
    """The loaded CPU kernels, building them on first call; None if they cannot be built."""
    global _library, _failure
    if _library is None and _failure is None:
        try:
            _library = _load(_build())
        except (OSError, subprocess.SubprocessError) as error:
            _failure = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            logger.warning("CPU kernels unavailable (%s); using the PyTorch reference", _failure)
    return _library


def build_failure() -> str | None:
    """Why the CPU kernels could not be built (None if they were, or were not tried)."""
    return _failure


def _build() -> Path:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise OSError("no C compiler found (install gcc or set CC)")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(FLAGS).encode() + platform.machine().encode()).hexdigest()[:16]
    target = cache_folder() / f"avatar3d_cpu_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        done = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(partial), "-lm"],
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise OSError(f"{compiler} failed on {SOURCE.name}: {done.stderr.strip() or done.stdout.strip()}")
        os.replace(partial, target)
    logger.info("built CPU kernels: %s", target)
    return target


def _load(path: Path) -> ctypes.CDLL:
    library = ctypes.CDLL(str(path))
    for name, arguments in SIGNATURES.items():
        function = getattr(library, name)
        function.argtypes = arguments
        function.restype = None
    return library
