"""The cheap pass, every step: the loss, the gradient and parameter norms.

It reads what the step already computed with foreach kernels and one device-to-host transfer,
and never writes to a parameter, a gradient or a random number generator. Under FSDP2 each rank
reads its shards, and one all-reduce of their squares gives the whole model's norms.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from optiscope.monitor.context import StepContext
from optiscope.problem import distributed
from optiscope.records import schema


class CheapNorms:
    """Loss, gradient norm (unscaled under a GradScaler) and, when asked, the parameter norm."""

    writes = (schema.LOSS, schema.GRAD_NORM, schema.PARAM_NORM)

    def __init__(
        self, params: list[Tensor], quantities: tuple[str, ...], optimizer: Any, scaler: Any
    ) -> None:
        self.params = params
        self.quantities = quantities
        self.optimizer = optimizer
        self.scaler = scaler
        self.sharded = distributed.sharded(params)
        if self.sharded:
            distributed.check_sharding(params)
        # Views that follow in-place updates of the parameters: built once, not every step.
        self.detached = [] if self.sharded else [p.detach() for p in params]

    def measure(self, ctx: StepContext, loss: Tensor | float, param_norm: bool) -> None:
        if self.sharded:
            self._measure_sharded(ctx, loss, param_norm)
            return
        # Sparse gradients (embeddings with sparse=True): their stored values hold the norm.
        found = [p.grad for p in self.params]
        present = [i for i, g in enumerate(found) if g is not None]
        grads = [g.coalesce()._values() if g.is_sparse else g for g in found if g is not None]
        with torch.no_grad():
            tensors = grads + self.detached if param_norm else grads
            scale = self._grad_scale()
            vals = _norms(tensors, loss, scale)
        k = len(grads)
        params = vals[k : len(tensors)] if param_norm else None
        value = vals[-1] if isinstance(loss, Tensor) else float(loss)
        self._record(ctx, present, vals[:k], params, scale, value)

    def _measure_sharded(self, ctx: StepContext, loss: Tensor | float, param_norm: bool) -> None:
        """The same numbers from this rank's shards: each norm is the root of the ranks' summed
        squares, all of them (and whether each parameter got a gradient on any rank) in one
        all-reduce; the local loss goes on to the Monitor's own reduction over the ranks."""
        n = len(self.params)
        found = [p.grad for p in self.params]
        mine = [i for i, g in enumerate(found) if g is not None]
        with torch.no_grad():
            tensors, weights = distributed.shard_parts([g for g in found if g is not None])
            if param_norm:
                # Anew each step: fully_shard may swap a parameter's local tensor.
                own, own_weights = distributed.shard_parts(self.params)
                tensors, weights = tensors + own, weights + own_weights
            scale = self._grad_scale()
            vals = _norms(tensors, loss, scale)
        k = len(mine)
        each, each_weight, held = [0.0] * n, [1.0] * n, [0.0] * n
        for j, i in enumerate(mine):
            each[i], each_weight[i], held[i] = vals[j], weights[j], 1.0
        # A flag of 1 squares to 1: with weight 1 its sum counts the ranks holding a gradient.
        norms = distributed.global_norms(
            each + held + vals[k : len(tensors)],
            each_weight + [1.0] * n + weights[k:],
            self.params[0],
        )
        present = [i for i in range(n) if norms[n + i] > 0]
        params = norms[2 * n :] if param_norm else None
        value = vals[-1] if isinstance(loss, Tensor) else float(loss)
        self._record(ctx, present, [norms[i] for i in present], params, scale, value)

    def _record(
        self,
        ctx: StepContext,
        present: list[int],
        grad_norms: list[float],
        param_norms: list[float] | None,
        scale: float,
        loss: float,
    ) -> None:
        ctx.grad_parts = (present, grad_norms, scale)
        # The squares in float64: a float32 norm above 1e19 would overflow when squared.
        ctx.grad_norm = math.sqrt(sum(v * v for v in grad_norms)) / scale
        if param_norms is not None:
            ctx.param_norm = math.sqrt(sum(v * v for v in param_norms))
        ctx.loss = loss
        if schema.LOSS in self.quantities:
            ctx.values[schema.LOSS] = ctx.loss
        if schema.GRAD_NORM in self.quantities:
            ctx.values[schema.GRAD_NORM] = ctx.grad_norm
        if param_norms is not None and schema.PARAM_NORM in self.quantities:
            ctx.values[schema.PARAM_NORM] = ctx.param_norm

    def _grad_scale(self) -> float:
        """The factor by which a GradScaler's gradients in ``.grad`` are still scaled (1 once
        ``scaler.unscale_`` ran, or without a scaler)."""
        scaler = self.scaler
        if scaler is None or not scaler.is_enabled() or self.optimizer is None:
            return 1.0
        # GradScaler keeps, per optimizer, whether unscale_ already ran this step.
        state = getattr(scaler, "_per_optimizer_states", {}).get(id(self.optimizer), {})
        stage = state.get("stage")
        if stage is not None and getattr(stage, "name", "") in ("UNSCALED", "STEPPED"):
            return 1.0
        return float(scaler.get_scale())


def _norms(tensors: list[Tensor], loss: Tensor | float, scale: float) -> list[float]:
    """Each tensor's norm, and the loss last when it is a tensor, in one transfer."""
    # A GradScaler's gradients can be finite while their float32 norm overflows.
    wide = {"dtype": torch.float64} if scale != 1.0 else {}
    parts = list(torch._foreach_norm(tensors, 2, **wide)) if tensors else []
    if isinstance(loss, Tensor):
        parts.append(loss.detach().reshape(()).to(parts[0].dtype if parts else loss.dtype))
    try:
        return torch.stack(parts).tolist() if parts else []  # one transfer
    except RuntimeError:  # the loss on another device than the parameters
        return [float(t) for t in parts]
