"""Scale-out of scoring over processes started by ``torchrun`` (architecture.md, "Devices and scale").

Every rank computes the shared parts (for LQS: trajectory and co-state) identically; the per-sample
work is sharded by chunk across ranks; the shards are gathered with ``all_gather_object`` and rank
0 returns the merged table while the other ranks return None. Without ``WORLD_SIZE > 1`` in the
environment everything here is a no-op for a single process.
"""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import JobError


@dataclass(frozen=True)
class World:
    """This process's place among the scoring processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_lead(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def env_world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 when absent)."""
    return _env_int("WORLD_SIZE", 1)


def local_device(device: torch.device) -> torch.device:
    """Under torchrun on CUDA, each process uses the GPU of its LOCAL_RANK."""
    if device.type == "cuda" and env_world_size() > 1 and device.index is None:
        index = _env_int("LOCAL_RANK", 0)
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


def init_world(device: torch.device) -> World:
    """Join the torchrun process group (gloo on CPU, nccl on CUDA) if WORLD_SIZE > 1.

    Args:
        device: the device this process computes on (picks the backend).

    Returns:
        The World (rank 0 of size 1 when not distributed).
    """
    import torch.distributed as dist

    if env_world_size() <= 1:
        return World()
    if not dist.is_available():
        raise JobError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run without torchrun")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as exc:
            raise JobError(
                f"could not join the torchrun process group ({backend}): {exc}; "
                "start with `torchrun --nproc_per_node N -m delt_engine score ...`"
            ) from exc
        atexit.register(_destroy)
    return World(dist.get_rank(), dist.get_world_size())


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def leave(world: World) -> None:
    """Leave the process group once this rank's last collective is done.

    Every rank waits at a barrier first, so no rank tears down its gloo connections while a peer
    still reads from them (a rank that left early used to abort with "terminate called without an
    active exception" at interpreter exit). A no-op for a single process.
    """
    if not world.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        gc.collect()  # free the group's last C++ objects now, not during interpreter teardown


def shard(items: Sequence[Any], world: World) -> list[Any]:
    """This rank's share of ``items``: every ``size``-th item starting at ``rank`` (round robin).

    Round robin over length-sorted chunks keeps the ranks' work balanced.
    """
    return list(items[world.rank :: world.size])


def gather(obj: Any, world: World) -> list[Any]:
    """Every rank's ``obj``, in rank order (the object itself when not distributed)."""
    if not world.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out
