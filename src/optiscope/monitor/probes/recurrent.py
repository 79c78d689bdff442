"""Hidden-state gradients of recurrent modules (Pascanu et al. 2013): the norm of dL/dh_t at
every time step, one ``hidden_gradients`` record per module."""

from __future__ import annotations

from optiscope.core.modules import RECURRENT
from optiscope.monitor.context import StepContext
from optiscope.monitor.probes.base import Probe
from optiscope.problem import distributed
from optiscope.problem.recurrent import hidden_state_gradients
from optiscope.records import schema


class Recurrent(Probe):
    """Measured on models holding an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``."""

    name = "recurrent"
    needs = frozenset({"batch", "loss_fn"})
    writes = (schema.HIDDEN_GRADIENTS,)

    def applies(self, ctx: StepContext) -> bool:
        return any(isinstance(m, RECURRENT) for m in ctx.module.modules())

    def measure(self, ctx: StepContext) -> None:
        assert ctx.batch is not None and ctx.loss_fn is not None
        ctx.aside()
        inputs, targets = ctx.batch
        found = hidden_state_gradients(ctx.module, ctx.loss_fn, inputs, targets)
        cells = {name: type(m).__name__ for name, m in ctx.module.named_modules()}
        if ctx.distributed:
            found = distributed.hidden_norms(found, ctx.params[0])
        for module, norms in found.items():
            ctx.emit(
                {
                    schema.TYPE: schema.HIDDEN_GRADIENTS,
                    schema.STEP: ctx.step,
                    schema.MODULE: module,
                    schema.CELL: cells.get(module, module),
                    schema.NORMS: norms,
                }
            )
