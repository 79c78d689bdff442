"""Per-layer gradient norms, every step at no extra cost: the cheap pass already holds each
parameter's gradient norm, and a layer's is the root of the sum of its parameters' squares.

A layer is a module that owns trainable parameters directly, in the model's order (inputs first
for a feed-forward net). The layers' names are written on the run's first ``layer_gradients``
record only, as they do not change; each record holds the norms in that order (0 for a layer
whose parameters got no gradient). Vanishing or exploding gradients across depth (Deep Learning
sec. 8.2.5) show as a slope of these norms over the layers. Under FSDP2 the per-parameter norms
are already the whole model's (the cheap pass sums the shards' squares over the ranks), and a
layer's kind is its own class, not the ``FSDP<name>`` subclass ``fully_shard`` gives it.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from optiscope.monitor.context import StepContext
from optiscope.monitor.probes.base import Probe, Setup, layers
from optiscope.problem import distributed
from optiscope.records import schema


def named_layers(module: nn.Module, params: list[Tensor]) -> list[tuple[str, str, list[int]]]:
    """:func:`~optiscope.monitor.probes.base.layers`, each kind the layer's own class name."""
    found = layers(module, params)
    if not distributed.sharded(params):
        return found
    modules = dict(module.named_modules())
    return [
        (name, distributed.class_name(modules[name]) if name in modules else kind, idx)
        for name, kind, idx in found
    ]


class LayerGradients(Probe):
    """One ``layer_gradients`` record per step it is due: each layer's gradient norm."""

    name = "layer_gradients"
    writes = (schema.LAYER_GRADIENTS,)

    def __init__(self, every: int, setup: Setup) -> None:
        super().__init__(every, setup)
        self._layers: list[tuple[str, str, list[int]]] | None = None
        self._named = False

    def measure(self, ctx: StepContext) -> None:
        if self._layers is None:
            self._layers = named_layers(ctx.module, ctx.params)
        norms = []
        each = ctx.grad_norms()
        for _, _, idx in self._layers:
            parts = [each[i] for i in idx]
            norms.append(math.sqrt(sum(v * v for v in parts if v is not None)))
        record: dict = {schema.TYPE: schema.LAYER_GRADIENTS, schema.STEP: ctx.step}
        if not self._named:
            record[schema.NAMES] = [name for name, _, _ in self._layers]
            record[schema.KINDS] = [kind for _, kind, _ in self._layers]
            self._named = True
        record[schema.NORMS] = norms
        ctx.emit(record)
