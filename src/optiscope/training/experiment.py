"""Experiments: a training run described as data, loaded by name or from the user's own code."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from optiscope.core.errors import OptiscopeError
from optiscope.core.modules import aside
from optiscope.problem.problem import _describe, call_loss, call_model, first_line, scalar_loss


class ExperimentError(OptiscopeError):
    """An experiment that cannot be found, loaded or run."""


@dataclass
class Experiment:
    """A training run as data.

    ``data`` is a re-iterable collection of ``(inputs, targets)`` batches, cycled until
    ``steps`` optimizer steps have run. ``eval_data`` (default: the first batch) is where the
    end-of-run analyses measure the final point. ``config`` is recorded in the header.

    ``scheduler`` (a ``torch.optim.lr_scheduler`` over ``optimizer``) steps after every
    optimizer step; ``clip_grad_norm`` clips the gradient's total norm before each update
    (``torch.nn.utils.clip_grad_norm_``), after the Monitor has recorded it unclipped;
    ``accumulate`` batches make one update (gradient accumulation: ``steps`` updates read
    ``steps * accumulate`` batches).
    """

    model: nn.Module
    loss_fn: Callable[[Any, Any], torch.Tensor]
    data: Iterable[tuple[Any, Any]]
    optimizer: torch.optim.Optimizer
    steps: int
    seed: int = 0
    name: str = "experiment"
    eval_data: Any = None
    description: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    scheduler: Any = None
    clip_grad_norm: float | None = None
    accumulate: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise ExperimentError(
                f"Experiment.model must be a torch.nn.Module, got a {type(self.model).__name__}"
            )
        if not callable(self.loss_fn):
            raise ExperimentError(
                "Experiment.loss_fn must be callable as loss_fn(outputs, targets), got a "
                f"{type(self.loss_fn).__name__}: pass e.g. torch.nn.CrossEntropyLoss()"
            )
        if not isinstance(self.optimizer, torch.optim.Optimizer):
            raise ExperimentError(
                "Experiment.optimizer must be a torch.optim.Optimizer, got a "
                f"{type(self.optimizer).__name__}: pass e.g. "
                "torch.optim.SGD(model.parameters(), lr=0.1)"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ExperimentError(
                f"Experiment.steps must be a positive int (the number of optimizer steps), got "
                f"{self.steps!r}: pass steps=N with N >= 1"
            )
        self._check_data()
        self._check_schedule()
        named = list(self.model.named_parameters())
        trainable = [n for n, p in named if p.requires_grad]
        if not trainable:
            raise ExperimentError(
                f"the model has no trainable parameters: all {len(named)} parameters have "
                "requires_grad=False, so training would change nothing. Unfreeze the ones to "
                "train (p.requires_grad_(True))"
            )
        owned = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        if not any(id(p) in owned for p in self.model.parameters()):
            raise ExperimentError(
                "the optimizer holds none of the model's parameters: build it with "
                "optimizer = torch.optim.SGD(model.parameters(), ...) on this model"
            )

    def _check_schedule(self) -> None:
        sched = self.scheduler
        if sched is not None and (
            not callable(getattr(sched, "step", None)) or getattr(sched, "optimizer", None) is None
        ):
            raise ExperimentError(
                "Experiment.scheduler must be a learning-rate scheduler with step() and an "
                f"optimizer, got a {type(sched).__name__}: pass e.g. "
                "torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)"
            )
        if sched is not None and sched.optimizer is not self.optimizer:
            raise ExperimentError(
                "Experiment.scheduler drives another optimizer than Experiment.optimizer: build "
                "it on the experiment's own, e.g. LambdaLR(optimizer, ...)"
            )
        acc = self.accumulate
        if isinstance(acc, bool) or not isinstance(acc, int) or acc < 1:
            raise ExperimentError(
                f"Experiment.accumulate must be a positive int (the batches whose gradients "
                f"add up to one update), got {acc!r}"
            )
        clip = self.clip_grad_norm
        if clip is not None and (
            isinstance(clip, bool)
            or not isinstance(clip, (int, float))
            or not math.isfinite(clip)
            or clip <= 0
        ):
            raise ExperimentError(
                f"Experiment.clip_grad_norm must be a positive number (the largest gradient norm "
                f"an update may use) or None, got {clip!r}"
            )

    def _check_data(self) -> None:
        data = self.data
        if isinstance(data, Iterator):
            raise ExperimentError(
                f"Experiment.data is an iterator ({type(data).__name__}) that can be read only "
                "once, but training reads the data again on every epoch. Pass a list of batches "
                "(list(generator) if it fits in memory) or a DataLoader"
            )
        if isinstance(data, torch.Tensor) or not isinstance(data, Iterable):
            raise ExperimentError(
                "Experiment.data must be a list or DataLoader of (inputs, targets) batches, got "
                f"{_describe(data)}"
            )
        if (
            isinstance(data, (tuple, list))
            and len(data) == 2
            and isinstance(data[0], torch.Tensor)
            and isinstance(data[1], torch.Tensor)
        ):
            raise ExperimentError(
                "Experiment.data is one (inputs, targets) pair, but it must be a collection of "
                "such batches: wrap it in a list, data=[(inputs, targets)]"
            )
        try:
            size = len(data)  # type: ignore[arg-type]
        except TypeError:  # an iterable without a length: checked when first read
            return
        if size == 0:
            raise ExperimentError(
                f"Experiment.data is empty ({type(data).__name__} of length 0): expected at "
                "least one (inputs, targets) batch"
            )

    def check(self) -> None:
        """Run the model and the loss on the first batch, and take the loss's gradient, so that
        a batch the model cannot take, a wrong target dtype or shape, or a loss that is not a
        finite scalar fails here with a message instead of deep inside the training loop.

        Nothing changes: the model runs in eval mode (then gets its modes back), the random
        number generators are forked, and the gradient is not written into ``.grad``.
        """
        first = next(iter(self.data), None)
        if first is None:
            raise ExperimentError("Experiment.data yielded no batch: expected at least one")
        inputs, targets = _pair(first, 0)
        with aside(self.model):
            self._check_batch(inputs, targets)

    def _check_batch(self, inputs: Any, targets: Any) -> None:
        try:
            out = call_model(self.model, inputs)
        except (RuntimeError, TypeError, ValueError, IndexError) as err:
            raise ExperimentError(
                f"the model could not take the first batch: inputs are {_describe(inputs)} "
                f"(targets {_describe(targets)}); the model raised {first_line(err)}. Make the "
                "batches' inputs match the model's expected shape, dtype and device"
            ) from err
        _check_targets(self.loss_fn, out, targets)
        loss = call_loss(self.loss_fn, out, targets, " of the first batch", ExperimentError)
        scalar_loss(loss, "on the first batch", ExperimentError)
        if not bool(torch.isfinite(loss.detach())):
            bad = "NaN" if bool(torch.isnan(loss.detach())) else "infinite"
            raise ExperimentError(
                f"the loss is {bad} on the first batch, before any training step: "
                "expected a finite number. Check the data for NaN/inf and the model's "
                "initialisation"
            )
        params = [p for p in self.model.parameters() if p.requires_grad]
        try:
            torch.autograd.grad(loss, params, allow_unused=True)
        except RuntimeError as err:
            raise ExperimentError(
                f"the gradient of the loss on the first batch failed: {first_line(err)}. The "
                "loss must be computed from the model's outputs with differentiable operations"
            ) from err

    def batches(self) -> Iterator[tuple[Any, Any]]:
        """Batches, cycling over ``data``, ``accumulate`` per optimizer step (call :meth:`check`
        first for a clear message on a first batch that does not fit)."""
        produced = 0
        epoch = 0
        wanted = self.steps * self.accumulate
        while produced < wanted:
            empty = True
            for batch in self.data:
                empty = False
                yield _pair(batch, produced)
                produced += 1
                if produced == wanted:
                    return
            if empty and epoch:
                raise ExperimentError(
                    f"Experiment.data yielded no batch on its pass number {epoch + 1}: it can be "
                    "iterated only once, but training reads the data again on every epoch. Pass "
                    "a list of batches or a DataLoader"
                )
            if empty:
                raise ExperimentError("Experiment.data yielded no batch: expected at least one")
            epoch += 1


_REGRESSION = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss)


def _pair(batch: Any, index: int) -> tuple[Any, Any]:
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ExperimentError(
            f"each batch must be a pair (inputs, targets), but batch {index} is "
            f"{_describe(batch)}. Make the data yield (inputs, targets), e.g. "
            "list(zip(input_batches, target_batches))"
        )
    return batch[0], batch[1]


def _check_targets(loss_fn: Any, out: Any, targets: Any) -> None:
    """Refuse what a regression loss would accept silently: integer targets or shapes that
    broadcast."""
    if not (
        isinstance(loss_fn, _REGRESSION)
        and isinstance(out, torch.Tensor)
        and isinstance(targets, torch.Tensor)
    ):
        return
    name = type(loss_fn).__name__
    if out.is_floating_point() and not targets.is_floating_point():
        raise ExperimentError(
            f"{name} got targets of dtype {targets.dtype}, but a regression loss expects "
            f"floating-point targets like the model's outputs ({out.dtype}). Convert them with "
            "targets.float(), or use torch.nn.CrossEntropyLoss if they are class indices"
        )
    if out.shape != targets.shape:
        raise ExperimentError(
            f"{name} got outputs of shape {tuple(out.shape)} and targets of shape "
            f"{tuple(targets.shape)}: they would be broadcast against each other and the loss "
            "would be wrong. Give the targets the outputs' shape (e.g. targets.view(-1, 1))"
        )
