"""Curvature along the gradient and the step (Deep Learning sec. 8.2.1): g^T g, g^T H g, and
the second-order prediction of the step's loss change against the actual change."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from optiscope.core.errors import NonFiniteError
from optiscope.core.modules import aside
from optiscope.core.vectors import dot64
from optiscope.monitor.context import StepContext
from optiscope.monitor.probes.base import Probe, Setup
from optiscope.problem import distributed
from optiscope.problem.problem import call_loss, call_model, finite_difference_step, scalar_loss
from optiscope.quantities.step import stability_threshold
from optiscope.records import schema


def _note_method(problem: Any, values: dict[str, Any]) -> None:
    if problem.hvp_method != "exact":
        values[schema.HVP_METHOD] = problem.hvp_method


def sharded_gradient_curvature(ctx: StepContext) -> dict[str, float]:
    """g^T g and g^T H g of a sharded (FSDP2) model, by central differences of gradients.

    FSDP2 gathers the shards into the layers in a hook, so the sharded parameters are no leaves
    of the graph the forward pass builds: no double backward reaches them (``autograd.grad``
    finds them unused). Three passes through the model's own forward and backward, on every
    rank together: g, then g at ``x +- h g/|g|`` (h as :meth:`Problem.finite_difference_hvp`).
    The shards are put back bit for bit and the training's gradients restored."""
    assert ctx.batch is not None and ctx.loss_fn is not None  # the probe declares them
    ctx.aside()
    params = ctx.params
    inputs, targets = ctx.batch
    loss_fn = ctx.loss_fn
    kept = [p.grad for p in params]
    shards = [distributed.local(p) for p in params]
    saved = [t.detach().clone() for t in shards]
    _, weights = distributed.shard_parts(params)

    def gradient() -> list[Tensor | None]:
        for p in params:
            p.grad = None
        loss = call_loss(loss_fn, call_model(ctx.module, inputs), targets)
        scalar_loss(loss, f"at step {ctx.step}").backward()
        return [None if p.grad is None else distributed.local(p.grad) for p in params]

    def dot(a: list[Tensor | None], b: list[Tensor | None]) -> float:
        local = sum(
            w * dot64(x.reshape(-1), y.reshape(-1))
            for x, y, w in zip(a, b, weights)
            if x is not None and y is not None
        )
        return distributed.sums([float(local)], params[0])[0] if distributed.active() else local

    try:
        g = gradient()
        gtg = dot(g, g)
        if gtg == 0.0:
            return {schema.GTG: 0.0, schema.GTHG: 0.0, schema.CURVATURE_ALONG_GRADIENT: math.nan}
        size = sum(p.numel() for p in params)  # a DTensor's numel is the whole's
        norm = math.sqrt(dot(saved, saved))  # type: ignore[arg-type]
        scale = finite_difference_step(params[0].dtype, norm, size) / math.sqrt(gtg)
        ends = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for t, d in zip(shards, g):
                    if d is not None:
                        t.add_(d, alpha=sign * scale)
            ends.append(gradient())
            with torch.no_grad():
                for t, s in zip(shards, saved):
                    t.copy_(s)
        gthg = (dot(g, ends[0]) - dot(g, ends[1])) / (2 * scale)
    finally:
        with torch.no_grad():
            for t, s in zip(shards, saved):
                t.copy_(s)
        for p, kept_grad in zip(params, kept):
            p.grad = kept_grad
    return {
        schema.GTG: gtg,
        schema.GTHG: gthg,
        schema.CURVATURE_ALONG_GRADIENT: gthg / gtg,
    }


class Curvature(Probe):
    """g^T H g at the step, and after the update g^T d and d^T H d at the same point: each a
    second directional derivative in forward mode (:meth:`Problem.directional`), so no
    gradient graph or double backward adds to the peak; the actual change is one more loss."""

    name = "curvature"
    needs = frozenset({"batch", "loss_fn"})
    writes = (
        schema.GTG,
        schema.GTHG,
        schema.CURVATURE_ALONG_GRADIENT,
        schema.GRADIENT_THRESHOLD,
        schema.PREDICTED_CHANGE,
        schema.ACTUAL_CHANGE,
        schema.UPDATE_SLOPE,
        schema.UPDATE_CURVATURE,
        schema.HVP_METHOD,
    )

    def __init__(self, every: int, setup: Setup) -> None:
        super().__init__(every, setup)
        # The step's problem (its point), kept until the optimizer's update is known.
        self._pending: tuple[int, Any] | None = None
        self._sharded = distributed.sharded(setup.params)

    def _threshold(self, ctx: StepContext) -> None:
        if ctx.optimizer is not None:
            th = stability_threshold(ctx.optimizer)
            if not th.preconditioned:
                ctx.values[schema.GRADIENT_THRESHOLD] = th.value

    def measure(self, ctx: StepContext) -> None:
        self._pending = None
        if self._sharded:
            # FSDP2: the curvature along g only, by differences of the model's own gradients.
            ctx.values.update(sharded_gradient_curvature(ctx))
            ctx.values[schema.HVP_METHOD] = "finite-difference"
            self._threshold(ctx)
            return
        problem = ctx.problem()
        g = problem.gradient()  # from a graph another tier cached, else a pass that keeps none
        gtg = dot64(g, g)
        _, _, gthg = problem.directional(g)
        del g
        ctx.values.update(
            {
                schema.GTG: gtg,
                schema.GTHG: gthg,
                schema.CURVATURE_ALONG_GRADIENT: gthg / gtg if gtg > 0 else math.nan,
            }
        )
        _note_method(problem, ctx.values)
        self._threshold(ctx)
        self._pending = (ctx.step, problem)

    def after_update(self, ctx: StepContext) -> None:
        if self._pending is None or self._pending[0] != ctx.step:
            return
        _, problem = self._pending
        self._pending = None
        with aside(ctx.module, batch_stats=True):
            # The loss at the new parameters first: then the update is computed in their place
            # (one vector, not the parameters and the update beside them).
            with torch.no_grad():
                d = problem.flatten(p.detach() for p in ctx.params).to(problem.dtype)
            try:
                end = problem.loss(d)
            except NonFiniteError:
                end = math.inf  # a cliff, recorded as such
            d.sub_(problem.point)
            start, gtd, dthd = problem.directional(d)
            del d
            ctx.values[schema.PREDICTED_CHANGE] = gtd + 0.5 * dthd
            ctx.values[schema.ACTUAL_CHANGE] = end - start
            ctx.values[schema.UPDATE_SLOPE] = gtd
            ctx.values[schema.UPDATE_CURVATURE] = dthd
            _note_method(problem, ctx.values)

    def close(self) -> None:
        self._pending = None
