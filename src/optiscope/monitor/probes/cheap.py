"""The cheap pass, every step: the loss, the gradient and parameter norms.

It reads what the step already computed with foreach kernels and one device-to-host transfer,
and never writes to a parameter, a gradient or a random number generator.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from optiscope.monitor.context import StepContext
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
        # Views that follow in-place updates of the parameters: built once, not every step.
        self.detached = [p.detach() for p in params]

    def measure(self, ctx: StepContext, loss: Tensor | float, param_norm: bool) -> None:
        # Sparse gradients (embeddings with sparse=True): their stored values hold the norm.
        found = [p.grad for p in self.params]
        present = [i for i, g in enumerate(found) if g is not None]
        grads = [g.coalesce()._values() if g.is_sparse else g for g in found if g is not None]
        with torch.no_grad():
            tensors = grads + self.detached if param_norm else grads
            scale = self._grad_scale()
            # A GradScaler's gradients can be finite while their float32 norm overflows.
            wide = {"dtype": torch.float64} if scale != 1.0 else {}
            parts = list(torch._foreach_norm(tensors, 2, **wide)) if tensors else []
            if isinstance(loss, Tensor):
                parts.append(loss.detach().reshape(()).to(parts[0].dtype if parts else loss.dtype))
            try:
                vals = torch.stack(parts).tolist() if parts else []  # one transfer
            except RuntimeError:  # the loss on another device than the parameters
                vals = [float(t) for t in parts]
        k = len(grads)
        ctx.grad_parts = (present, vals[:k], scale)
        # The squares in float64: a float32 norm above 1e19 would overflow when squared.
        ctx.grad_norm = math.sqrt(sum(v * v for v in vals[:k])) / scale
        if param_norm:
            ctx.param_norm = math.sqrt(sum(v * v for v in vals[k : len(tensors)]))
        ctx.loss = vals[-1] if isinstance(loss, Tensor) else float(loss)
        if schema.LOSS in self.quantities:
            ctx.values[schema.LOSS] = ctx.loss
        if schema.GRAD_NORM in self.quantities:
            ctx.values[schema.GRAD_NORM] = ctx.grad_norm
        if param_norm and schema.PARAM_NORM in self.quantities:
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
