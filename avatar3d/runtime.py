"""Process-wide run settings: the compute device, the console and progress bars."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


def progress(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """Iterates with a progress bar (count, rate, time left) on the console."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total, rate="")
        for item in items:
            yield item
            speed = bar.tasks[0].speed
            bar.update(task, advance=1, rate=f"{speed:.1f}/s" if speed else "")
