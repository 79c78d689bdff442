"""The update: its size and its ratio to the parameters (a copy of the parameters before the
optimizer's step, compared in place after it), and the path length the run has travelled.

Under FSDP2 each rank copies and compares its own shards, and one all-reduce of the squared
norms gives the whole update's."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from optiscope.core.stats import finite
from optiscope.monitor.context import StepContext
from optiscope.monitor.probes.base import Probe, Setup
from optiscope.monitor.probes.layer_gradients import LayerGradients, named_layers
from optiscope.problem import distributed
from optiscope.records import schema


class Update(Probe):
    """``|theta_new - theta_old|`` and its ratio to ``|theta_old|``; ``path_length`` sums the
    measured update norms (the trajectory's length when every update is measured)."""

    name = "update"
    needs = frozenset({"optimizer"})
    writes = (schema.UPDATE_NORM, schema.UPDATE_RATIO, schema.LAYER_UPDATES)

    def __init__(self, every: int, setup: Setup) -> None:
        super().__init__(every, setup)
        self.quantities = setup.quantities
        if schema.PARAM_NORM in self.quantities or schema.UPDATE_RATIO in self.quantities:
            self.needs = self.needs | {schema.PARAM_NORM}
        self._params = setup.params
        self._sharded = distributed.sharded(setup.params)
        # Views that follow in-place updates of the parameters: built once, not every step
        # (a sharded parameter's local tensor is taken anew, as fully_shard may swap it).
        self.detached = [] if self._sharded else [p.detach() for p in setup.params]
        # Per-layer update norms ride along where per-layer gradients are recorded: the update's
        # per-parameter norms are computed for its total anyway.
        self._by_layer = bool(setup.every.get(LayerGradients.name))
        self._layers: list[tuple[str, str, list[int]]] | None = None
        self._module = setup.module
        self._named = False
        self.path_length = 0.0
        self._before: list[Tensor] | None = None
        self._taken: int | None = None  # the step whose parameters the buffer holds

    def measure(self, ctx: StepContext) -> None:
        if ctx.optimizer is None:
            return  # no update to compare with (the parameter norm is still recorded)
        with torch.no_grad():
            now = self._now()[0]
            # One buffer for the run, refilled in place.
            if self._before is None:
                self._before = [t.clone() for t in now]
            else:
                torch._foreach_copy_(self._before, now)
        self._taken = ctx.step

    def _now(self) -> tuple[list[Tensor], list[float] | None]:
        """The parameters as this rank holds them, the whole or its shards, and for shards the
        weights of their squares in the whole's (:func:`distributed.shard_parts`)."""
        if not self._sharded:
            return self.detached, None
        return distributed.shard_parts(self._params)

    def after_update(self, ctx: StepContext) -> None:
        if self._taken != ctx.step or self._before is None:
            return
        self._taken = None
        with torch.no_grad():
            # In place: the buffer is refilled from the parameters at the next measurement.
            now, weights = self._now()
            torch._foreach_sub_(self._before, now)
            each = torch.stack(torch._foreach_norm(self._before)).tolist() if self._before else []
        if weights is not None:  # this rank's shards: the whole update's norms over the ranks
            each = distributed.global_norms(each, weights, self._params[0])
        unorm = math.sqrt(sum(v * v for v in each))
        if self._by_layer:
            self._emit_layers(ctx, each)
        if finite(unorm):
            self.path_length += unorm
        if schema.UPDATE_NORM in self.quantities:
            ctx.values[schema.UPDATE_NORM] = unorm
        if schema.UPDATE_RATIO in self.quantities:
            pnorm = ctx.param_norm or 0.0
            ctx.values[schema.UPDATE_RATIO] = unorm / pnorm if pnorm else float("inf")

    def _emit_layers(self, ctx: StepContext, each: list[float]) -> None:
        if self._layers is None:
            self._layers = named_layers(self._module, ctx.params)
        record: dict = {schema.TYPE: schema.LAYER_UPDATES, schema.STEP: ctx.step}
        if not self._named:
            record[schema.NAMES] = [name for name, _, _ in self._layers]
            record[schema.KINDS] = [kind for _, kind, _ in self._layers]
            self._named = True
        record[schema.NORMS] = [
            math.sqrt(sum(each[i] ** 2 for i in idx)) for _, _, idx in self._layers
        ]
        ctx.emit(record)

    def close(self) -> None:
        self._before = None
