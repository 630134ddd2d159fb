"""Evaluation under ``torchrun``: scenes are sharded across ranks and records gathered on rank 0.

Only Python objects travel between ranks (records, the run id, check results), so a gloo process group is
used even when the default group is NCCL (``all_gather_object`` on NCCL would need CUDA tensors). Scene
``i`` of the evaluated list goes to rank ``i % world_size``; rank 0 restores the original order after the
gather, so the records are identical to a single-process run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch.distributed as dist


@dataclass
class Ranks:
    """This process's place in the group: ``rank`` of ``world`` (0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    group: Any = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> Ranks:
    """Join the torchrun group if the environment describes one (``WORLD_SIZE`` > 1); else a single rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return Ranks()
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
        owns = True
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), group=group, owns_group=owns)


def teardown(ranks: Ranks) -> None:
    """Leave the group if :func:`setup` created it."""
    if ranks.owns_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(items: Sequence[Any], ranks: Ranks) -> list[tuple[int, Any]]:
    """This rank's share of ``items`` as (index, item) pairs: every item whose index % world == rank."""
    return [(i, x) for i, x in enumerate(items) if i % ranks.world == ranks.rank]


def broadcast(obj: Any, ranks: Ranks) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if ranks.world == 1:
        return obj
    box = [obj if ranks.is_main else None]
    dist.broadcast_object_list(box, src=0, group=ranks.group)
    return box[0]


def gather(obj: Any, ranks: Ranks) -> list[Any] | None:
    """Every rank's ``obj`` in rank order on rank 0; None on the other ranks."""
    if ranks.world == 1:
        return [obj]
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, obj, group=ranks.group)
    return out if ranks.is_main else None
