"""Process-wide run settings: the compute device, the threads, the console and progress bars."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from avatar3d.errors import BadArgumentError

T = TypeVar("T")

console = Console(stderr=True, highlight=False)
"""Where every command reports; silenced by ``--quiet``."""


def set_quiet(quiet: bool) -> None:
    """Silences progress and status output (errors still print)."""
    console.quiet = quiet


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


# Read by the native libraries when they load (torch's OpenMP and MKL, numpy's OpenBLAS,
# OpenCV), so they are set before anything imports them; processes started later inherit them.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")


def threads() -> int:
    """Threads this process keeps busy at most: what `set_threads` chose, else ``OMP_NUM_THREADS``
    (which torchrun sets to 1 per process), else the usable CPUs."""
    try:
        count = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        return usable_cpus()
    return count if count >= 1 else usable_cpus()


def set_threads(count: int | str | None = None) -> int:
    """Sizes every thread pool of this process, and of processes it starts, to ``count`` threads.

    The one place avatar3d decides its parallelism (``avatar3d --threads``): torch's intra-op
    and inter-op pools, OpenMP, MKL and OpenBLAS (through their variables, which count only
    when set before the library loads, hence `avatar3d.cli.main` calls this first), OpenCV;
    PyAV's decoder and `worker_pool` read `threads()`. OpenMP's idle threads sleep instead of
    spinning (``OMP_WAIT_POLICY=PASSIVE``, unless set otherwise): spinning, the threads of two
    jobs on the same cores take the CPU from each other's working threads, and both crawl
    (two preps at once: docs/results.md).

    Args:
        count: threads; None keeps `threads()` (``OMP_NUM_THREADS`` or the usable CPUs).

    Returns:
        The thread count now in force.

    Raises:
        BadArgumentError: ``count`` is not a whole number of at least 1.
    """
    given = threads() if count is None else count
    try:
        count = int(given)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise BadArgumentError(f"--threads {given}: give a whole number of threads, at least 1")
    _set_variables(count)
    # Libraries loaded already read their variables too late. Not loaded (the command line):
    # torch sizes its pool from OMP_NUM_THREADS when it loads, and `avatar3d --help` does not
    # wait for torch; its inter-op pool then keeps its default size, but nothing here runs
    # inter-op work (torch.jit.fork) and those threads wait blocked.
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(count)
        with contextlib.suppress(RuntimeError):  # legal once, before any inter-op work
            torch.set_num_interop_threads(count)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(count)
    return count


def _set_variables(count: int) -> None:
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(count)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# glibc's mallopt parameters, and the most M_MMAP_THRESHOLD takes on 64-bit systems.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _MAX_MMAP_THRESHOLD = -1, -3, 32 * 2**20


def keep_freed_memory() -> None:
    """Lets this process reuse the memory it frees rather than hand it back to the system.

    Rendering a frame on a CPU allocates and frees tensors of tens of MB; glibc's malloc maps
    such blocks fresh from the system each time and returns the heap's free top, and every
    fresh page then costs a page fault: a sixth of a 256² Gaussian avatar frame's time. With
    blocks up to 32 MB taken from the heap and the heap kept, the process holds on to its
    peak memory instead (as PyTorch's CPU tuning guide has jemalloc or tcmalloc do). Does
    nothing without glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, Windows, musl)
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _MAX_MMAP_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**30)


def worker_count(jobs: int, workers: int | None = None) -> int:
    """Processes to run ``jobs`` independent jobs side by side: ``workers``, by default one per
    thread of this process (`threads`), never more than the jobs."""
    return max(1, min(workers or threads(), jobs))


def worker_pool(workers: int, start: str = "spawn") -> ProcessPoolExecutor:
    """``workers`` processes that share this process's threads equally and print nothing.

    Args:
        workers: the pool's size (`worker_count`).
        start: multiprocessing's start method. ``spawn`` (a fresh interpreter) sizes every
            library to the worker's share as it loads. ``fork`` copies the libraries of this
            process with their pools, which must not be resized there (OpenCV's deadlocks), so
            it suits single-threaded jobs only; only what the worker starts gets the share.
    """
    share = max(1, threads() // workers)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(start),
                               initializer=_start_worker, initargs=(share, start == "fork"))


def _start_worker(share: int, forked: bool) -> None:
    # Runs before the worker unpickles its first job, so before a spawned one imports numpy or torch.
    if forked:
        _set_variables(share)
    else:
        set_threads(share)
    set_quiet(True)


def hide_native_logs() -> None:
    """Keeps native libraries' log lines (MediaPipe's absl, TensorFlow Lite) off the terminal.

    Python's own stderr moves to a copy of file descriptor 2 and descriptor 2 itself goes to
    /dev/null, so only native writes vanish. Set AVATAR3D_NATIVE_LOGS=1 to keep them, for
    debugging a native crash.
    """
    if os.environ.get("AVATAR3D_NATIVE_LOGS") == "1":
        return
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):  # a test harness replaced stderr
        return
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def resolve_device(spec: str) -> "torch.device":
    """``auto`` picks CUDA when a GPU is usable, else the CPU.

    Raises:
        BadArgumentError: an unknown spec, or ``cuda`` asked for where no GPU is usable.
    """
    import torch  # here, not at the top: `avatar3d --help` should not wait for torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda":
        if not torch.cuda.is_available():
            raise BadArgumentError("--device cuda: no CUDA GPU is usable here; use --device cpu or auto")
        return torch.device("cuda")
    raise BadArgumentError(f"--device {spec!r}: use auto, cpu or cuda")


_COLUMNS = (
    TextColumn("[bold]{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TextColumn("{task.fields[rate]}"),
    TimeRemainingColumn(),
)


@contextlib.contextmanager
def progress_callback(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar driven by a ``(done, total)`` callback, for work that reports its own steps."""
    with Progress(*_COLUMNS, console=console, transient=False) as bar:
        task = bar.add_task(description, total=None, rate="")
        yield lambda done, total: bar.update(task, completed=done, total=total)


def progress(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """Iterates with a progress bar (count, rate, time left) on the console."""
    with Progress(*_COLUMNS, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total, rate="")
        for item in items:
            yield item
            speed = bar.tasks[0].speed
            bar.update(task, advance=1, rate=f"{speed:.1f}/s" if speed else "")
