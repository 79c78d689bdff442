"""Curvature along the gradient and the step (Deep Learning sec. 8.2.1): g^T g, g^T H g, and
the second-order prediction of the step's loss change against the actual change."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from optiscope.core.modules import aside
from optiscope.monitor.context import StepContext
from optiscope.monitor.probes.base import Probe, Setup
from optiscope.problem import distributed
from optiscope.problem.problem import call_loss, call_model, finite_difference_step, scalar_loss
from optiscope.quantities.step import (
    actual_change,
    dot64,
    gradient_curvature,
    predicted_change,
    stability_threshold,
)
from optiscope.records import schema


def _gradient(problem: Any) -> Tensor:
    """g at the point: from the cached graph where there is one (finite differences keep none)."""
    g = problem.cached_gradient()
    return problem.gradient() if g is None else g


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


def _along_gradient(optimizer: Any) -> bool:
    """Whether the optimizer's update is -lr g: plain SGD, no momentum or weight decay."""
    if not isinstance(optimizer, torch.optim.SGD):
        return False
    return all(
        not g.get("momentum", 0.0) and not g.get("weight_decay", 0.0)
        for g in optimizer.param_groups
    )


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
        schema.HVP_METHOD,
    )

    def __init__(self, every: int, setup: Setup) -> None:
        super().__init__(every, setup)
        # The step's problem, kept until the optimizer's update is known; g and Hg too where
        # the update will be along g (plain SGD), else the gradient's graph is rebuilt after
        # the update: holding it, g and Hg through the optimizer's step would add three
        # parameter-sized vectors to the peak.
        self._pending: tuple[int, Any, Tensor | None, Tensor | None] | None = None
        self._sharded = distributed.sharded(setup.params)

    def measure(self, ctx: StepContext) -> None:
        if self._sharded:
            # FSDP2: the curvature along g only, by differences of the model's own gradients.
            ctx.values.update(sharded_gradient_curvature(ctx))
            ctx.values[schema.HVP_METHOD] = "finite-difference"
            self._pending = None
            if ctx.optimizer is not None:
                th = stability_threshold(ctx.optimizer)
                if not th.preconditioned:
                    ctx.values[schema.GRADIENT_THRESHOLD] = th.value
            return
        problem = ctx.problem()
        g = _gradient(problem)
        hg, along = gradient_curvature(problem, g)
        ctx.values.update(along)
        _note_method(problem, ctx.values)
        if ctx.optimizer is not None:
            th = stability_threshold(ctx.optimizer)
            if not th.preconditioned:
                ctx.values[schema.GRADIENT_THRESHOLD] = th.value
        problem.release_graph()
        if _along_gradient(ctx.optimizer):
            self._pending = (ctx.step, problem, g, hg)
        else:
            self._pending = (ctx.step, problem, None, None)

    def after_update(self, ctx: StepContext) -> None:
        if self._pending is None or self._pending[0] != ctx.step:
            return
        _, problem, g, hg = self._pending
        self._pending = None
        with torch.no_grad():
            d = torch.cat([p.detach().reshape(-1) for p in ctx.params]).to(problem.dtype)
            d.sub_(problem.point)
        with aside(ctx.module, batch_stats=True):
            if g is not None and hg is not None:
                ctx.values[schema.PREDICTED_CHANGE] = predicted_change(problem, g, hg, d)
                del g, hg
            else:
                grad = _gradient(problem)
                gtd = dot64(grad, d)
                del grad
                dthd = dot64(d, problem.hvp(d))
                ctx.values[schema.PREDICTED_CHANGE] = gtd + 0.5 * dthd
            problem.release_graph()
            ctx.values[schema.ACTUAL_CHANGE] = actual_change(problem, d)
            _note_method(problem, ctx.values)

    def close(self) -> None:
        self._pending = None
