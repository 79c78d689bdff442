"""What one step offers the probes: the step's numbers, the batch, and a shared Problem.

The scheduler builds one :class:`StepContext` per step. The cheap pass fills ``loss``,
``grad_norm`` and the per-parameter gradient norms; probes read those, write their quantities
into ``values`` (the step record) and extra records through :meth:`StepContext.emit`. A probe
that needs the model aside from training (dropout off, batch norm on the batch's statistics,
forked random generators) or the Problem on the batch asks for it; both are set up once per
step, on first request, and undone by the scheduler.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core.modules import aside
from optiscope.problem import distributed
from optiscope.problem.problem import Problem


@dataclass
class StepContext:
    """One step as the probes see it.

    ``step`` counts the Monitor's steps from 0; ``module`` is the model without a DDP or
    ``torch.compile`` wrapper; ``params`` its trainable parameters in order; :meth:`grad_norms`
    the unscaled norm of each parameter's gradient; ``decisions`` the answers of the
    scheduler's decisions to the questions the probe asks.
    """

    step: int
    module: nn.Module
    params: list[Tensor]
    optimizer: torch.optim.Optimizer | None
    loss_fn: Callable[[Any, Any], Tensor] | None
    batch: tuple[Any, Any] | None
    values: dict[str, Any]
    distributed: bool = False
    loss_tensor: Any = None  # what the loop passed to step(): a tensor or a float
    loss: float = float("nan")
    grad_norm: float = float("nan")
    # The cheap pass's per-parameter norms: (indices with a gradient, their norms, the scale).
    grad_parts: tuple[list[int], list[float], float] = ((), (), 1.0)  # type: ignore[assignment]
    param_norm: float | None = None
    decisions: dict[str, bool] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    _stack: contextlib.ExitStack | None = None
    _problem: Any = None

    def grad_norms(self) -> list[float | None]:
        """The unscaled gradient norm of each parameter in order, None where it has none."""
        present, norms, scale = self.grad_parts
        out: list[float | None] = [None] * len(self.params)
        for i, v in zip(present, norms):
            out[i] = v / scale
        return out

    def emit(self, record: dict[str, Any]) -> None:
        """A record of its own (not a step quantity), written after the step's record."""
        self.records.append(record)

    def aside(self) -> None:
        """Put the model aside from training until the step's measurements end (idempotent):
        dropout off, batch norm on the measured batch's statistics as in training, its running
        statistics and the random number generators left as they were."""
        if self._stack is None:
            self._stack = contextlib.ExitStack()
            self._stack.enter_context(aside(self.module, batch_stats=True))

    def problem(self) -> Any:
        """The Problem of the step's batch at the current parameters, the function being
        trained (see :meth:`aside`); under DDP its loss, gradient and Hessian-vector products
        are the global batch's."""
        if self._problem is None:
            assert self.batch is not None and self.loss_fn is not None  # the probes declare them
            self.aside()
            ids = {id(p) for p in self.params}
            # The training step has just run the model on this batch: no need to check it.
            problem: Any = Problem(
                self.module,
                self.loss_fn,
                self.batch,
                params=lambda n, p: id(p) in ids,
                check=False,
                batch_stats=True,
                hvp="auto",
            )
            self._problem = distributed.ReducedProblem(problem) if self.distributed else problem
        return self._problem

    def close(self) -> None:
        """Give the model its modes and random generators back."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None
