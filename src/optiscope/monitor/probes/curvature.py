"""Curvature along the gradient and the step (Deep Learning sec. 8.2.1): g^T g, g^T H g, and
the second-order prediction of the step's loss change against the actual change."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optiscope.core.modules import aside
from optiscope.monitor.context import StepContext
from optiscope.monitor.probes.base import Probe, Setup
from optiscope.quantities.step import (
    actual_change,
    gradient_curvature,
    predicted_change,
    stability_threshold,
)
from optiscope.records import schema


class Curvature(Probe):
    """One product for g^T H g at the step, one more after the update for d^T H d (none when the
    update is along the gradient), and a loss evaluation for the actual change."""

    name = "curvature"
    needs = frozenset({"batch", "loss_fn"})
    writes = (
        schema.GTG,
        schema.GTHG,
        schema.CURVATURE_ALONG_GRADIENT,
        schema.GRADIENT_THRESHOLD,
        schema.PREDICTED_CHANGE,
        schema.ACTUAL_CHANGE,
    )

    def __init__(self, every: int, setup: Setup) -> None:
        super().__init__(every, setup)
        # The step's problem, g and Hg, kept until the optimizer's update is known.
        self._pending: tuple[int, Any, Tensor, Tensor] | None = None

    def measure(self, ctx: StepContext) -> None:
        problem = ctx.problem()
        g = problem.cached_gradient()
        assert g is not None  # one batch: the graph is cached
        hg, along = gradient_curvature(problem, g)
        ctx.values.update(along)
        if ctx.optimizer is not None:
            th = stability_threshold(ctx.optimizer)
            if not th.preconditioned:
                ctx.values[schema.GRADIENT_THRESHOLD] = th.value
        self._pending = (ctx.step, problem, g, hg)

    def after_update(self, ctx: StepContext) -> None:
        if self._pending is None or self._pending[0] != ctx.step:
            return
        _, problem, g, hg = self._pending
        self._pending = None
        with torch.no_grad():
            new = torch.cat([p.detach().reshape(-1) for p in ctx.params]).to(problem.dtype)
        d = new - problem.point
        with aside(ctx.module, batch_stats=True):
            ctx.values[schema.PREDICTED_CHANGE] = predicted_change(problem, g, hg, d)
            ctx.values[schema.ACTUAL_CHANGE] = actual_change(problem, d)

    def close(self) -> None:
        self._pending = None
