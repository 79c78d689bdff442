"""The probe protocol: a measurement with explicit state, a schedule and declared needs.

A probe measures one thing at the steps it is due. It declares what it needs from the step
(``"batch"``, ``"loss_fn"``, ``"optimizer"``, ``"param_norm"``), the questions it asks the
scheduler's decisions (``asks``), and the record names it writes (``writes``, from
:mod:`optiscope.records.schema`). It never decides when it runs and never writes a file: the
scheduler calls it and routes what it measured to the records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor, nn

from optiscope.monitor.context import StepContext


@dataclass(frozen=True)
class Setup:
    """What every probe is built with: the model as the loop holds it (perhaps wrapped by DDP or
    ``torch.compile``), the module inside, its trainable parameters, the cheap quantities the
    user asked for, and whether this process is one of several DDP ranks."""

    model: nn.Module
    module: nn.Module
    params: list[Tensor]
    quantities: tuple[str, ...]
    distributed: bool
    every: Mapping[str, int] = field(default_factory=dict)  # each tier's schedule


def layers(module: nn.Module, params: list[Tensor]) -> list[tuple[str, str, list[int]]]:
    """The layers of ``module``: each module owning trainable parameters directly, in the
    model's order (inputs first for a feed-forward net), as ``(name, class name, indices into
    params)``."""
    index = {id(p): i for i, p in enumerate(params)}
    found = []
    for name, m in module.named_modules():
        own = [index[id(p)] for p in m.parameters(recurse=False) if id(p) in index]
        if own:
            found.append((name or type(m).__name__, type(m).__name__, own))
    return found


class Probe:
    """Base class: override :meth:`measure`, and the other hooks a measurement needs.

    ``every`` is the number of steps between measurements (0: never); the scheduler's hooks run
    in this order within a step: :meth:`reduce_inputs` and :meth:`reduced` (under DDP, one
    collective for all probes), :meth:`collect` (every step the probe is armed), :meth:`measure`
    (the steps it is due, the step finite), :meth:`after_update` (once the optimizer stepped),
    :meth:`prepare` (for the next step).
    """

    name: ClassVar[str] = ""
    needs: frozenset[str] = frozenset()
    asks: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, every: int, setup: Setup) -> None:
        self.every = every

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def applies(self, ctx: StepContext) -> bool:
        """Whether the model has what the probe measures (a recurrent module, say)."""
        return True

    def reduce_inputs(self, ctx: StepContext) -> list[float]:
        """Numbers to sum over the ranks in the step's one collective (DDP only)."""
        return []

    def reduced(self, ctx: StepContext, sums: list[float]) -> None:
        """The sums of :meth:`reduce_inputs` over the ranks, in the same order."""

    def collect(self, ctx: StepContext) -> None:
        """Read what the training step's own backward pass recorded for the probe."""

    def measure(self, ctx: StepContext) -> None:
        """Measure at a step the probe is due; write into ``ctx.values`` or ``ctx.emit``."""

    def after_update(self, ctx: StepContext) -> None:
        """Complete the step's measurement once the optimizer has updated the parameters."""

    def prepare(self, next_step: int) -> None:
        """Get ready for the next step (arm hooks the next backward pass must fill)."""

    def close(self) -> None:
        """Remove whatever the probe attached to the model."""
