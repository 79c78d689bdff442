"""The one training loop: every caller that trains an ``nn.Module`` with an optimizer (the
runner, restarts, the command line, the lab) runs this, so they train alike, step for step.

Per batch (per ``accumulate`` batches): ``optimizer.zero_grad(set_to_none=True)``, ``loss =
loss_fn(model(inputs), targets)``, ``loss.backward()``, the ``before_update`` hook, the
monitor's ``step(loss, batch=(inputs, targets))`` when one is given, gradient clipping when
asked, ``optimizer.step()``, the scheduler's step when one is given, the ``after_step`` hook. The
monitor is duck-typed: the monitor package sits above this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from optiscope.core.errors import NonFiniteError
from optiscope.problem.problem import _describe, call_model
from optiscope.training.experiment import Experiment, ExperimentError

Hook = Callable[[int, Tensor], None]


@dataclass
class TrainResult:
    """How a run of :func:`train` ended: ``steps`` optimizer steps taken, and ``stopped``, why it
    stopped before its batches ran out (a loss or gradient that is not finite), else None. When
    it stopped, step ``steps + 1`` (counted from 1) is the one whose values were not finite; its
    update was not applied."""

    steps: int
    stopped: str | None = None


def train(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    batches: Iterable[tuple[Any, Any]],
    optimizer: torch.optim.Optimizer,
    *,
    monitor: Any = None,
    stop_nonfinite: bool = False,
    before_update: Hook | None = None,
    after_step: Hook | None = None,
    clip_grad_norm: float | None = None,
    scheduler: Any = None,
    accumulate: int = 1,
) -> TrainResult:
    """Train ``model`` one optimizer step per ``(inputs, targets)`` batch of ``batches`` (per
    ``accumulate`` batches with gradient accumulation).

    Parameters
    ----------
    model, loss_fn:
        The model and ``loss_fn(model(inputs), targets)``, a scalar tensor. Inputs that are a
        dict are passed as keyword arguments, a tuple or list as positional ones, as the
        Problem and the Monitor's tiers call the model (``problem.problem.call_model``).
    batches:
        ``(inputs, targets)`` pairs, one per step, read once (cycle them yourself for epochs).
    optimizer:
        The optimizer over the model's parameters; ``zero_grad(set_to_none=True)`` runs first.
    monitor:
        Anything with ``step(loss, batch=(inputs, targets))`` (a :class:`~optiscope.Monitor`),
        called after the backward pass, right before the update. A ``NonFiniteError`` it raises
        stops training there: the update is not applied, and the result says why.
    stop_nonfinite:
        Stop at the first loss that is not finite, before its backward pass.
    before_update:
        ``before_update(step, loss)`` after the backward pass and before the monitor and the
        update (``step`` counts from 1): it may read or change the gradients.
    after_step:
        ``after_step(step, loss)`` after the update: snapshots, progress.
    clip_grad_norm:
        Clip the gradient's total norm to this before each update, after the monitor has
        recorded the gradient as the backward pass left it.
    scheduler:
        A learning-rate scheduler, stepped after each update.
    accumulate:
        Micro-batches per update: the gradients of ``accumulate`` consecutive batches, each
        loss divided by ``accumulate``, add up before one update (the gradient of their mean).
        The hooks and the monitor see that mean loss once per update, and the monitor's batch
        is the micro-batches joined (the last one alone where they cannot be concatenated).

    A loss that is not a scalar tensor raises
    :class:`~optiscope.training.experiment.ExperimentError` naming the step. The model's mode is
    the caller's (``model.train()`` is not called).

    Gradient descent on ``(w - 2)^2`` from ``w = 0`` at ``lr = 0.25`` steps by ``-lr 2 (w - 2)``,
    to 1 and then 1.5:

    >>> import torch, optiscope
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> _ = torch.nn.init.zeros_(model.weight)
    >>> x, y = torch.ones(4, 1), 2 * torch.ones(4, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.25)
    >>> optiscope.train(model, torch.nn.MSELoss(), [(x, y)] * 2, opt).steps
    2
    >>> model.weight.item()
    1.5
    """
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ExperimentError(
            f"accumulate must be a positive int (micro-batches per update), got {accumulate!r}"
        )
    steps = 0
    for step, group in enumerate(_groups(batches, accumulate), 1):
        optimizer.zero_grad(set_to_none=True)
        total = None
        for inputs, targets in group:
            loss = loss_fn(call_model(model, inputs), targets)
            if not isinstance(loss, Tensor) or loss.ndim != 0:
                raise ExperimentError(
                    f"loss_fn returned {_describe(loss)} at step {step}, expected a scalar "
                    "tensor: use a loss with reduction='mean' or 'sum'"
                )
            if stop_nonfinite and not bool(torch.isfinite(loss.detach())):
                return TrainResult(steps, f"the loss is not finite at step {step}")
            if accumulate == 1:
                loss.backward()  # as it was without accumulation, bit for bit
            else:
                (loss / accumulate).backward()
                part = loss.detach() / accumulate
                total = part if total is None else total + part
        if total is not None:
            loss = total
            inputs, targets = joined(group)
        if before_update is not None:
            before_update(step, loss)
        if monitor is not None:
            try:
                monitor.step(loss, batch=(inputs, targets))
            except NonFiniteError as err:
                return TrainResult(steps, str(err))
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(
                [p for g in optimizer.param_groups for p in g["params"]], clip_grad_norm
            )
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        steps = step
        if after_step is not None:
            after_step(step, loss)
    return TrainResult(steps)


def _groups(batches: Iterable[tuple[Any, Any]], size: int) -> Iterable[list[tuple[Any, Any]]]:
    """Consecutive batches ``size`` at a time (a short last group is dropped: no update)."""
    group: list[tuple[Any, Any]] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []


def joined(group: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """Micro-batches as one batch: every tensor concatenated along its first (sample)
    dimension, the rest equal across them; the last micro-batch where they do not join."""
    flat = [tree_flatten(batch) for batch in group]
    spec = flat[0][1]
    if any(s != spec for _, s in flat):
        return group[-1]
    leaves = []
    for parts in zip(*(leaves for leaves, _ in flat), strict=True):
        first = parts[0]
        if isinstance(first, Tensor) and first.ndim >= 1:
            if not all(isinstance(p, Tensor) and p.shape[1:] == first.shape[1:] for p in parts):
                return group[-1]
            leaves.append(torch.cat(parts))
        elif all(p is first or p == first for p in parts):
            leaves.append(first)
        else:
            return group[-1]
    return tree_unflatten(leaves, spec)


def train_experiment(
    exp: Experiment,
    *,
    monitor: Any = None,
    stop_nonfinite: bool = False,
    before_update: Hook | None = None,
    after_step: Hook | None = None,
) -> TrainResult:
    """:func:`train` on an :class:`~optiscope.Experiment`: its model, loss, optimizer, scheduler
    and clipping, and its ``steps`` batches (:meth:`~optiscope.Experiment.batches`)."""
    return train(
        exp.model,
        exp.loss_fn,
        exp.batches(),
        exp.optimizer,
        monitor=monitor,
        stop_nonfinite=stop_nonfinite,
        before_update=before_update,
        after_step=after_step,
        clip_grad_norm=exp.clip_grad_norm,
        scheduler=exp.scheduler,
        accumulate=exp.accumulate,
    )
