"""Gradient noise (McCandlish et al. 2018): the trace of the per-sample gradient covariance,
the unbiased |G|^2, the signal-to-noise ratio and the critical batch size B_simple.

Three ways, cheapest first: per-sample gradient norms read from the training step's own backward
pass (Linear and convolution layers, a mean or sum of per-sample losses; hooks armed only before
the steps the probe is due); under DDP, each rank's local gradient against the averaged one (two
batch sizes, no extra pass); otherwise a separate per-sample pass on the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from optiscope.monitor.context import StepContext
from optiscope.monitor.probes.base import Probe, Setup
from optiscope.problem import distributed
from optiscope.problem.persample import StepRecorder
from optiscope.problem.problem import batch_samples
from optiscope.quantities import step as quantities
from optiscope.records import schema


class Noise(Probe):
    """The noise quantities of the step's batch, written as ``schema.NOISE``."""

    name = "noise"
    needs = frozenset({"batch", "loss_fn"})
    writes = schema.NOISE

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
        self._recorded = None
        if self._recorder is not None and self._recorder.armed and ctx.loss_tensor is not None:
            targets = ctx.batch[1] if ctx.batch is not None else None
            self._recorded = self._recorder.collect(ctx.loss_tensor, ctx.loss_fn, targets)

    def measure(self, ctx: StepContext) -> None:
        if self.dist:
            if self._ranks is not None:
                b, mean_local_sq = self._ranks
                w = torch.distributed.get_world_size()
                q = quantities.noise_from_ranks(b, w, mean_local_sq, ctx.grad_norm**2)
                ctx.values.update({k: q[k] for k in schema.NOISE})
            return
        if self._recorded is not None:
            sq, scale = self._recorded
            q = quantities.noise_from_moments(
                len(sq), float(sq.sum()), (scale * ctx.grad_norm) ** 2
            )
        else:
            assert ctx.batch is not None
            q = quantities.gradient_noise(ctx.problem(), ctx.batch[0], ctx.batch[1])
        ctx.values.update({k: q[k] for k in schema.NOISE})

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
