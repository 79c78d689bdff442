"""Gradient noise (McCandlish et al. 2018): the trace of the per-sample gradient covariance,
the unbiased |G|^2, the signal-to-noise ratio and the critical batch size B_simple.

Four ways, cheapest first: per-sample gradient norms read from the training step's own backward
pass (Linear and convolution layers, a mean or sum of per-sample losses; hooks armed only before
the steps the probe is due); under DDP, each rank's local gradient against the averaged one (two
batch sizes, no extra pass); for a model with batch norm in training mode, whose samples are
coupled through the batch's statistics so that a per-sample gradient is not defined, the same
two-batch-size estimate from the gradients of four groups of the batch; otherwise a separate
per-sample pass on the batch. A batch of one sample has no spread of its own: there the
gradients of two consecutive steps, independent draws at nearly the same point, give
E[g_s . g_s+1] ~ |G|^2 and tr(Sigma) ~ mean |g|^2 - g_s . g_s+1 (written at the second step;
the step between them biases |G|^2 low by about lr g^T H g, so the noise is, if anything,
overstated). ``noise_method`` records which ran.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optiscope.core.modules import training_norms
from optiscope.core.vectors import add64_, dot64
from optiscope.monitor.context import StepContext
from optiscope.monitor.probes.base import Probe, Setup
from optiscope.problem import distributed
from optiscope.problem.persample import StepRecorder
from optiscope.problem.problem import Problem, batch_samples, take_samples
from optiscope.quantities import step as quantities
from optiscope.records import schema


class Noise(Probe):
    """The noise quantities of the step's batch, written as ``schema.NOISE``."""

    name = "noise"
    needs = frozenset({"batch", "loss_fn"})
    writes = (*schema.NOISE, schema.NOISE_METHOD)
    GROUPS = 4

    def __init__(self, every: int, setup: Setup) -> None:
        super().__init__(every, setup)
        self.dist = setup.distributed
        self._recorder: StepRecorder | None = None
        self._local: distributed.LocalGradients | None = None
        if every and self.dist:
            self._local = distributed.LocalGradients(setup.params)
        elif every and setup.module is setup.model:
            # Not under torch.compile: its graph would trace the recorder's hooks.
            self._recorder = StepRecorder.for_model(setup.module, setup.params)
        self._recorded: tuple[Tensor, float] | None = None
        self._ranks: tuple[int, float] | None = None  # local batch, mean local |g|^2
        self._previous: tuple[int, Tensor] | None = None  # a one-sample step's gradient
        self.prepare(0)

    def reduce_inputs(self, ctx: StepContext) -> list[float]:
        local = self._local.collect() if self._local is not None and self._local.armed else None
        b = batch_samples(ctx.batch)
        return [local if local is not None else 0.0, float(local is not None and b > 0), float(b)]

    def reduced(self, ctx: StepContext, sums: list[float]) -> None:
        w = torch.distributed.get_world_size()
        b = batch_samples(ctx.batch)
        # Every rank holds a local gradient of the same batch size: else no noise estimate.
        self._ranks = (b, sums[0] / w) if sums[1] == w and sums[2] == w * b else None

    def collect(self, ctx: StepContext) -> None:
        if self._previous is not None:
            step, before = self._previous
            self._previous = None
            if step == ctx.step - 1 and ctx.batch is not None and batch_samples(ctx.batch) == 1:
                now = _flat_gradient(ctx)
                a, b = float(before.square().sum()), float(now.square().sum())
                cross = float(torch.dot(before, now))
                q = quantities.noise_from_consecutive(a, b, cross)
                ctx.values.update({k: q[k] for k in schema.NOISE})
                ctx.values[schema.NOISE_METHOD] = "consecutive-steps"
        self._recorded = None
        if self._recorder is not None and self._recorder.armed and ctx.loss_tensor is not None:
            targets = ctx.batch[1] if ctx.batch is not None else None
            self._recorded = self._recorder.collect(ctx.loss_tensor, ctx.loss_fn, targets)

    def measure(self, ctx: StepContext) -> None:
        if self.dist:
            if self._ranks is not None:
                b, mean_local_sq = self._ranks
                w = torch.distributed.get_world_size()
                ranks = quantities.noise_from_ranks(b, w, mean_local_sq, ctx.grad_norm**2)
                ctx.values.update({k: ranks[k] for k in schema.NOISE})
                ctx.values[schema.NOISE_METHOD] = "ranks"
            return
        assert ctx.batch is not None
        q: dict[str, Any] | None
        if batch_samples(ctx.batch) == 1:
            self._previous = (ctx.step, _flat_gradient(ctx))  # measured at the next step
            return
        if self._recorded is not None:
            sq, scale = self._recorded
            q = quantities.noise_from_moments(
                len(sq), float(sq.sum()), (scale * ctx.grad_norm) ** 2
            )
            method = "backward-hooks"
        elif training_norms(ctx.module):
            q = self._groups(ctx)
            method = "groups"
        else:
            q = quantities.gradient_noise(ctx.problem(), ctx.batch[0], ctx.batch[1])
            method = "per-sample"
        if q is None:
            return
        ctx.values.update({k: q[k] for k in schema.NOISE})
        ctx.values[schema.NOISE_METHOD] = method

    def _groups(self, ctx: StepContext) -> dict[str, Any] | None:
        """E|g_b|^2 = |G|^2 + tr(Sigma)/b at two batch sizes: the gradients of GROUPS equal
        groups of the batch (fewer for a smaller batch; each normalized by its own statistics,
        as batch norm trains) and their mean. None for a batch of one sample."""
        assert ctx.batch is not None and ctx.loss_fn is not None
        inputs, targets = ctx.batch
        n = batch_samples(ctx.batch)
        # Groups of one sample still normalize over the feature map in a convolution's batch
        # norm; where a group is too small for the norm, the tier fails and says so.
        k = min(self.GROUPS, n)
        size = n // k
        if k < 2:
            return None
        ctx.aside()
        ids = {id(p) for p in ctx.params}
        # A running sum, not the k gradients, and one point for the k problems: memory of a
        # float64 sum, the point and one gradient, whatever k.
        total: Tensor | None = None
        point: Tensor | None = None
        sq = 0.0
        for i in range(k):
            part = slice(i * size, (i + 1) * size)
            x, y = take_samples(inputs, part, n), take_samples(targets, part, n)
            problem = Problem(
                ctx.module,
                ctx.loss_fn,
                (x, y),
                params=lambda _, p: id(p) in ids,
                check=False,
                batch_stats=True,
                cache_graph=False,
                point=point,
            )
            point = problem.point
            g = problem.gradient()
            del problem
            sq += dot64(g, g)
            if total is None:
                total = torch.zeros(g.shape, dtype=torch.float64, device=g.device)
            add64_(total, g)
            del g
        assert total is not None
        mean_sq = dot64(total, total) / k**2  # no float64 square beside it
        return quantities.noise_from_ranks(size, k, sq / k, mean_sq)

    def prepare(self, next_step: int) -> None:
        self._recorded = None
        if not self.due(next_step):
            return
        if self._recorder is not None:
            self._recorder.arm()
        if self._local is not None:
            self._local.arm()

    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.disarm()
        if self._local is not None:
            self._local.disarm()


def _flat_gradient(ctx: StepContext) -> Tensor:
    """The step's gradient as one float64 vector (unscaled under a gradient scaler)."""
    scale = ctx.grad_parts[2] or 1.0
    parts = [
        (p.grad.detach().reshape(-1) if p.grad is not None else p.new_zeros(p.numel()))
        for p in ctx.params
    ]
    return torch.cat(parts).double() / scale
