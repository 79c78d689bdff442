"""Work split across the ranks of torch.distributed: each rank takes every ``size``-th item and
the results are gathered so that every rank (rank 0 writes them) holds the whole.

Outside a process group (the common case) everything runs in this process. Under ``torchrun``
the CLI calls :func:`init_from_env` once; library functions only use a group that exists.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world() -> tuple[int, int]:
    """``(rank, size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env() -> bool:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU, NCCL
    when each rank has a GPU). Returns whether this process is one of several ranks."""
    if not dist.is_available() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return dist.get_world_size() > 1


def finish() -> None:
    """Leave the process group after every rank is done: a gloo group, or a DDP wrapper that
    holds one, left to the interpreter's exit can abort the process ("terminate called without
    an active exception")."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # wrappers no longer referenced release the group before it is destroyed
        dist.barrier()
        dist.destroy_process_group()


def mine(n: int) -> list[int]:
    """The indices of ``range(n)`` this rank takes: ``rank, rank + size, ...``."""
    rank, size = world()
    return list(range(rank, n, size))


def gather(indices: Sequence[int], values: Sequence[T], n: int) -> list[T]:
    """Reassemble per-rank results: ``values[k]`` belongs at ``indices[k]``; every index of
    ``range(n)`` is covered by exactly one rank. Tensors travel to CPU."""
    size = world()[1]
    local = [
        (int(i), v.cpu() if isinstance(v, torch.Tensor) else v) for i, v in zip(indices, values)
    ]
    parts: list[Any] = [local]
    if size > 1:
        parts = [None] * size
        dist.all_gather_object(parts, local)
    full: list[Any] = [None] * n
    seen = 0
    for part in parts:
        for i, v in part or []:
            full[i] = v
            seen += 1
    if seen != n:
        raise RuntimeError(f"gathered {seen} results for {n} items: a rank lost its share")
    return full


def map_shared(fn: Callable[[int], T], n: int) -> list[T]:
    """``[fn(i) for i in range(n)]``, each rank computing its share."""
    indices = mine(n)
    return gather(indices, [fn(i) for i in indices], n)
