"""Float64 accumulation over parameter-sized vectors, a chunk at a time: a float32 sum over
millions of products loses digits (6e-4 of g^T g on ResNet-18's 11M parameters), and a float64
copy of the vector, or a mixed-dtype op that makes one, costs twice its memory."""

from __future__ import annotations

import torch
from torch import Tensor

CHUNK = 1 << 16


def accumulate_dot64_(total: Tensor, a: Tensor, b: Tensor, chunk: int = CHUNK) -> Tensor:
    """``total += a . b`` into a float64 0-d tensor, with no read back to the host (a loop of
    them syncs a device once, at the end, not once a vector)."""
    if a.dtype == torch.float64:
        return total.add_(torch.dot(a, b))
    for i in range(0, a.numel(), chunk):
        total.add_(torch.dot(a[i : i + chunk].double(), b[i : i + chunk].double()))
    return total


def dot64(a: Tensor, b: Tensor, chunk: int = CHUNK) -> float:
    """``a . b`` accumulated in float64, a chunk at a time (no float64 copy of the vectors)."""
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    return float(accumulate_dot64_(total, a, b, chunk))


def add64_(total: Tensor, v: Tensor, chunk: int = CHUNK) -> Tensor:
    """``total += v`` into a float64 ``total`` a chunk at a time: a mixed-dtype add casts its
    whole operand to float64 first (twice ``v``'s memory, for the duration)."""
    if v.dtype == total.dtype:
        return total.add_(v)
    for i in range(0, v.numel(), chunk):
        total[i : i + chunk].add_(v[i : i + chunk])
    return total
