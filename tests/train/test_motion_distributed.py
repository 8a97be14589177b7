"""Data-parallel motion training: gradients averaged across processes, one run written."""

import json
import os
import subprocess
import sys
import warnings

import torch
import torch.multiprocessing as mp

from avatar3d.train import distributed


def _rank_checks(rank: int, world: int, port: int, results) -> None:
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    workers = distributed.join(torch.device("cpu"))
    layer = torch.nn.Linear(2, 3)
    for p in layer.parameters():
        p.grad = torch.full_like(p, float(rank + 1))
    workers.average_gradients(layer.parameters())
    results[rank] = {
        "grads": [p.grad.unique().tolist() for p in layer.parameters()],
        "agree_all_true": workers.all_agree(True),
        "agree_one_false": workers.all_agree(rank == 0),
        "shared": workers.share(f"from rank {rank}"),
        "leader": workers.leader,
    }
    distributed.leave(workers)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_average_gradients_agree_and_share():
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_rank_checks, args=(2, _free_port(), results), nprocs=2)
        results = dict(results)
    for rank in (0, 1):
        assert results[rank]["grads"] == [[1.5], [1.5]]  # mean of 1 and 2, in both processes
        assert results[rank]["agree_all_true"] is True
        assert results[rank]["agree_one_false"] is False  # one process saying stop stops both
        assert results[rank]["shared"] == "from rank 0"
    assert results[0]["leader"] and not results[1]["leader"]


def test_one_process_without_torchrun_is_unchanged(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    workers = distributed.join(torch.device("cpu"))
    assert (workers.rank, workers.world, workers.leader) == (0, 1, True)
    assert workers.share([1, 2]) == [1, 2] and workers.all_agree(False) is False


def _torchrun_motion(folder):
    """``torchrun`` of two CPU processes training a tiny motion model into ``folder``; the
    result and each rank's output (the ranks' Python stacks too, should one die of a signal)."""
    logs = folder / "logs"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
               str(_free_port()), "--log-dir", str(logs), "--tee", "3", "-m", "avatar3d.cli", "--device", "cpu",
               "train", "motion", "--utterances", "4", "--heldout", "1", "--sync-steps", "6", "--vae-steps", "6",
               "--crop-frames", "40", "--width", "16", "--batch", "2", "--corpus-root", str(folder / "corpus"),
               f"run={folder / 'run'}"]  # not --run: torchrun takes it for its own --run-path
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    ranks = "\n".join(f"--- {path.relative_to(logs)}\n{path.read_text(errors='replace')[-3000:]}"
                       for path in sorted(logs.rglob("*.log")))
    return done, ranks


def test_torchrun_trains_one_run(tmp_path):
    done, ranks = _torchrun_motion(tmp_path / "first")
    if done.returncode != 0:
        # Twice in about ten full `make test` runs on the 2-core machine a rank died of SIGABRT
        # (cause unknown; never in 18 runs of this command alone, idle or loaded): one more try,
        # with the failed try's rank logs shown as a warning, so the failure stays visible.
        warnings.warn(f"torchrun failed (exit {done.returncode}), trying once more; its ranks' output:\n{ranks}")
        done, ranks = _torchrun_motion(tmp_path / "second")
    assert done.returncode == 0, ranks + done.stderr[-2000:]
    folder = tmp_path / ("first" if not (tmp_path / "second").exists() else "second")
    run = folder / "run"
    assert (run / "motion.pt").exists() and (run / "finished").exists()
    assert json.loads((run / "metrics.json").read_text())["utterances"] == 1
    [corpus] = (folder / "corpus").glob("synthetic-*")
    assert sorted(p.name for p in corpus.iterdir()) == [f"{i:06d}.npz" for i in range(4)]  # made once, by rank 0
