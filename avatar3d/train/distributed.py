"""Data-parallel training across the processes that ``torchrun`` starts.

``torchrun --nproc-per-node N -m avatar3d.cli train motion ...`` runs N copies, one per GPU
(or N CPU processes). Each draws its own batches; after every backward pass their
gradients are averaged by one all-reduce, so every copy takes the same step from the same
start and they stay identical: the batch is N times ``--batch``. That is what PyTorch's
DistributedDataParallel does; it is done by hand here because the sync expert is trained
through its embedding methods, not ``forward``, which DDP's hooks need. Rank 0 alone
writes the run folder and prints. Without torchrun (no WORLD_SIZE) there is one process
and nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Workers:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def leader(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replaces each gradient by its mean over the processes (one all-reduce)."""
        if self.world == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def all_agree(self, flag: bool) -> bool:
        """True when ``flag`` is true in every process: a stop decision all of them take at
        the same step (a time budget measured per process could otherwise differ)."""
        if self.world == 1:
            return flag
        value = torch.tensor([0.0 if flag else 1.0], device=self.device)
        dist.all_reduce(value)
        return bool(value.item() == 0.0)

    def share(self, value):
        """Rank 0's ``value`` (any picklable object), in every process."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]


def join(device: torch.device) -> Workers:
    """This process's `Workers`: one process on ``device`` unless torchrun started several.

    Under torchrun a CUDA ``device`` becomes this process's own GPU (LOCAL_RANK) and the
    processes talk through NCCL; on the CPU through Gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Workers(device=device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Workers(dist.get_rank(), dist.get_world_size(), device)


def leave(workers: Workers) -> None:
    """Ends the process group ``join`` started."""
    if workers.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
