"""The Monitor under torch.distributed data parallelism (DDP): each rank holds its share of the
global batch, and every quantity is that of the global batch.

- Losses, gradients and Hessian-vector products of the local batch are averaged over the ranks,
  as DDP averages the gradients: with equal local batches, the average is the global batch's.
- The gradient noise needs no extra pass: each rank's local gradient (read by tensor hooks during
  the training step's own backward pass, before DDP averages it) against the averaged one gives
  the two batch sizes of McCandlish et al. (2018, app. A).
- Every rank takes part in every collective in the same order (the schedule depends only on the
  step count and on reduced, hence identical, values); only rank 0 writes.
- Under FSDP2 (``fully_shard``) the parameters and gradients are DTensors, each rank holding a
  shard: a norm is the root of the ranks' summed squares of their shards (:func:`shard_parts`,
  :func:`global_norms`). The tiers that need the whole gradient or the model as a function of
  one vector do not run there yet (:func:`refuse_sharded` says why).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from optiscope.core.errors import OptiscopeError
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

    def gradient(self, theta: Tensor | None = None) -> Tensor:
        return mean(self.local.gradient(theta))

    def loss(self, theta: Tensor | None = None) -> float:
        value = torch.tensor(self.local.loss(theta), dtype=torch.float64, device=self.local.device)
        return float(mean(value))

    def hvp(self, v: Tensor) -> Tensor:
        return mean(self.local.hvp(v))

    def directional(self, v: Tensor) -> tuple[float, float, float]:
        # The same v on every rank: the local derivatives average to the global batch's.
        value, slope, curvature = sums(list(self.local.directional(v)), self.local.point)
        n = dist.get_world_size()
        return value / n, slope / n, curvature / n

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


# -- sharded parameters: FSDP2's fully_shard (DTensor) -------------------------------------------

# The tiers that measure a sharded model: norms, which add up over the shards, and the
# curvature along the gradient, by finite differences of the model's own gradients.
SHARDED_TIERS = ("update", "layer_gradients", "curvature")


class ShardingError(OptiscopeError):
    """A sharded (DTensor) model laid out, or measured, in a way the Monitor cannot."""


def _dtensor() -> Any:
    """DTensor's class, or None while ``torch.distributed.tensor`` is not loaded: no DTensor
    exists then, and importing it would cost a third of a second to every process."""
    return getattr(sys.modules.get("torch.distributed.tensor"), "DTensor", None)


def sharded(tensors: Iterable[Tensor]) -> bool:
    """Whether any of ``tensors`` is a DTensor (the parameters of an FSDP2 model)."""
    cls = _dtensor()
    return cls is not None and any(isinstance(t, cls) for t in tensors)


def local(t: Tensor) -> Tensor:
    """The part of ``t`` this rank holds: a DTensor's local shard (a view the optimizer's
    in-place updates reach; take it anew at each use, as ``fully_shard`` re-pads and swaps it
    on the first forward pass), else ``t`` itself."""
    cls = _dtensor()
    if cls is None or not isinstance(t, cls):
        return t
    with torch.no_grad():
        return t.to_local()


def class_name(module: nn.Module) -> str:
    """The module's own class name: ``fully_shard`` swaps a module's class for a subclass
    ``FSDP<name>`` of it and ``FSDPModule``, which would hide a ``LayerNorm`` from whoever reads
    the class names (the records' ``kinds``)."""
    fsdp = getattr(sys.modules.get("torch.distributed.fsdp"), "FSDPModule", None)
    cls = type(module)
    if fsdp is not None and isinstance(module, fsdp):
        cls = next((c for c in cls.__mro__ if not issubclass(c, fsdp)), cls)
    return cls.__name__


def check_sharding(params: Sequence[Tensor]) -> None:
    """Refuse DTensor parameters whose device mesh does not span the default process group:
    their norms are summed over all its ranks, so every rank must hold a part of each."""
    cls = _dtensor()
    if cls is None or not active():
        return
    world = dist.get_world_size()
    for i, p in enumerate(params):
        if isinstance(p, cls) and p.device_mesh.size() != world:
            raise ShardingError(
                f"parameter {i} is a DTensor sharded over {p.device_mesh.size()} of the process "
                f"group's {world} ranks; the Monitor sums its norms over the whole group, so it "
                "expects a device mesh of all ranks. Shard over all of them (fully_shard's "
                "default mesh, or a 2-D mesh for HSDP), or give each group its own process group"
            )


def shard_parts(tensors: Sequence[Tensor]) -> tuple[list[Tensor], list[float]]:
    """Each tensor's part on this rank and the weight of its squared norm in the whole's:
    ``||t||^2 = sum_r w ||t_r||^2``, with ``w = 1`` for a shard and ``1/k`` for one of ``k``
    replicas (a ``Replicate`` mesh dimension, or a plain tensor, which every rank holds whole).
    A ``Partial`` placement (pending sums) is reduced to a replica first, one collective each,
    the same on every rank as placements are."""
    cls = _dtensor()
    world = dist.get_world_size() if active() else 1
    parts: list[Tensor] = []
    weights: list[float] = []
    for t in tensors:
        if cls is None or not isinstance(t, cls):
            parts.append(t)
            weights.append(1.0 / world)
            continue
        if any(pl.is_partial() for pl in t.placements):
            from torch.distributed.tensor import Replicate

            placements = [Replicate() if pl.is_partial() else pl for pl in t.placements]
            with torch.no_grad():
                t = t.redistribute(t.device_mesh, placements)
        mesh = t.device_mesh
        copies = math.prod(mesh.size(d) for d, pl in enumerate(t.placements) if pl.is_replicate())
        parts.append(local(t))
        weights.append(1.0 / copies)
    return parts, weights


def global_norms(norms: Sequence[float], weights: Sequence[float], like: Tensor) -> list[float]:
    """The norms of whole tensors from this rank's norms of its parts (:func:`shard_parts`):
    ``sqrt(sum_r w ||t_r||^2)``, squared and summed in float64, in one collective."""
    if not active():
        return [math.sqrt(w * v * v) for v, w in zip(norms, weights)]
    return [math.sqrt(s) for s in sums([w * v * v for v, w in zip(norms, weights)], like)]


def refuse_sharded(tier: str) -> None:
    """Raise, with the reason, for a tier that does not measure a sharded model yet: every tier
    beyond the norms (:data:`SHARDED_TIERS`) needs the whole gradient of one rank or the model
    as a function of one flat vector, which a rank holding shards does not have."""
    if tier in SHARDED_TIERS:
        return
    raise ShardingError(
        f"the {tier} tier does not run on a sharded model (FSDP2's fully_shard: parameters and "
        "gradients are DTensors, each rank holding a shard) yet: it needs whole gradients or "
        f"the model as a function of one parameter vector. The tiers "
        f"{', '.join(SHARDED_TIERS)} and the cheap norms measure it; turn this one off with "
        f"every={{{tier!r}: 0}}, or measure it under DistributedDataParallel"
    )
