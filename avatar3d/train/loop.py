"""What every trainer does the same way: pick the run folder, open and close a session."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from avatar3d import config as config_io
from avatar3d.files import CHECKPOINT, FINISHED
from avatar3d.runtime import console


def choose_run(run: Path | None, parent: Path, fresh: bool) -> Path:
    """``run`` if given, else the newest run under ``parent`` if it is unfinished (and not
    ``fresh``), else a new timestamped folder there."""
    if run is not None:
        return Path(run)
    if not fresh and parent.is_dir():
        runs = sorted(p for p in parent.iterdir() if (p / CHECKPOINT).exists())
        if runs and not (runs[-1] / FINISHED).exists():
            return runs[-1]
    return parent / datetime.now().strftime("%Y%m%d-%H%M%S")


def mark_finished(run_dir: Path) -> None:
    """Writes the ``finished`` marker that `choose_run` and the loaders look for."""
    (run_dir / FINISHED).write_text(datetime.now().isoformat(timespec="seconds") + "\n")


@contextlib.contextmanager
def training_session(run_dir: Path, cfg, save: Callable[[], None]) -> Iterator:
    """Creates ``run_dir``, saves ``cfg`` as config.yaml and yields a TensorBoard writer.

    On Ctrl-C it calls ``save`` (a checkpoint to resume from) and says how to resume.
    """
    from torch.utils.tensorboard import SummaryWriter

    run_dir.mkdir(parents=True, exist_ok=True)
    config_io.save(cfg, run_dir / "config.yaml")
    writer = SummaryWriter(str(run_dir))
    try:
        yield writer
    except KeyboardInterrupt:
        save()
        console.print(f"checkpoint saved; run the same command to resume ({run_dir})")
        raise
    finally:
        writer.close()
