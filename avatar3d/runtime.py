"""Process-wide run settings: the compute device, the console and progress bars."""

from __future__ import annotations

import os
import sys
import contextlib
from collections.abc import Callable, Iterable, Iterator
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
    """CPUs this process may run on (its affinity where the OS has one), for worker pools."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


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
