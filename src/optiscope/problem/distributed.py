"""The Monitor under torch.distributed data parallelism (DDP): each rank holds its share of the
global batch, and every quantity is that of the global batch.

- Losses, gradients and Hessian-vector products of the local batch are averaged over the ranks,
  as DDP averages the gradients: with equal local batches, the average is the global batch's.
- The gradient noise needs no extra pass: each rank's local gradient (read by tensor hooks during
  the training step's own backward pass, before DDP averages it) against the averaged one gives
  the two batch sizes of McCandlish et al. (2018, app. A).
- Every rank takes part in every collective in the same order (the schedule depends only on the
  step count and on reduced, hence identical, values); only rank 0 writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from optiscope.linalg import LinearOperator
from optiscope.problem.problem import HessianOperator


def active() -> bool:
    """Whether this process is one of several ranks of a process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper, or under
    ``torch.compile``: measurements run it directly, without the wrapper's gradient
    synchronisation or a recompilation for their own calls."""
    compiled = getattr(model, "_orig_mod", None)
    if isinstance(compiled, nn.Module):
        return unwrap(compiled)
    inner = getattr(model, "module", None)
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) and isinstance(
        inner, nn.Module
    ):
        return inner
    return model


def _device(like: Tensor) -> torch.device:
    # NCCL reduces CUDA tensors only; gloo takes CPU tensors.
    return like.device if dist.get_backend() == "nccl" else torch.device("cpu")


def mean(t: Tensor) -> Tensor:
    """``t`` averaged over the ranks (a new tensor on ``t``'s device)."""
    buf = t.detach().to(_device(t), copy=True)
    dist.all_reduce(buf)
    return (buf / dist.get_world_size()).to(t.device)


def sums(values: list[float], like: Tensor) -> list[float]:
    """Each of ``values`` summed over the ranks, in one collective."""
    buf = torch.tensor(values, dtype=torch.float64, device=_device(like))
    dist.all_reduce(buf)
    return buf.tolist()


class ReducedProblem:
    """A :class:`~optiscope.Problem` on the local batch whose loss, gradient and Hessian-vector
    products are averaged over the ranks: those of the global batch."""

    def __init__(self, problem: Any) -> None:
        self.local = problem

    def __getattr__(self, name: str) -> Any:
        return getattr(self.local, name)

    def cached_gradient(self) -> Tensor | None:
        g = self.local.cached_gradient()
        return None if g is None else mean(g)

    def loss(self, theta: Tensor | None = None) -> float:
        value = torch.tensor(self.local.loss(theta), dtype=torch.float64, device=self.local.device)
        return float(mean(value))

    def hvp(self, v: Tensor) -> Tensor:
        return mean(self.local.hvp(v))

    def hessian_operator(self) -> LinearOperator:
        return HessianOperator(self)  # type: ignore[arg-type]


class LocalGradients:
    """Squared norm of this rank's own gradient, read by tensor hooks as the backward pass
    computes it (before DDP's hooks average it); armed only before the steps that need it."""

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self._handles: list[Any] = []
        self._parts: list[Tensor] = []
        self._calls: dict[int, int] = {}

    @property
    def armed(self) -> bool:
        return bool(self._handles)

    def arm(self) -> None:
        self.disarm()
        self._parts, self._calls = [], {}
        for i, p in enumerate(self.params):
            self._handles.append(p.register_hook(self._hook(i)))

    def _hook(self, i: int) -> Any:
        def read(grad: Tensor) -> None:
            self._calls[i] = self._calls.get(i, 0) + 1
            g = grad.detach()
            g = g.coalesce()._values() if g.is_sparse else g
            # Accumulated in float64 without a float64 copy of the gradient.
            self._parts.append(torch.linalg.vector_norm(g, dtype=torch.float64) ** 2)

        return read

    def disarm(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def collect(self) -> float | None:
        """Disarm; the local squared gradient norm when every parameter got exactly one gradient
        (not under gradient accumulation or a parameter used twice), else None."""
        self.disarm()
        parts, calls = self._parts, self._calls
        self._parts, self._calls = [], {}
        if any(n != 1 for n in calls.values()) or not parts:
            return None
        return float(torch.stack([t.to(parts[0].device) for t in parts]).sum())


def hidden_norms(norms: Mapping[str, list[float]], like: Tensor) -> dict[str, list[float]]:
    """Per-time-step hidden-state gradient norms of the global batch from the local ones: the
    global loss is the ranks' mean, so ``||dL/dh_t||^2 = sum_r ||dL_r/dh_t||^2 / W^2``."""
    out: dict[str, list[float]] = {}
    w = dist.get_world_size()
    for name in sorted(norms):
        sq = sums([v * v for v in norms[name]], like)
        out[name] = [s**0.5 / w for s in sq]
    return out
