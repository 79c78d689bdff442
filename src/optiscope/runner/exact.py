"""From the end of a run, a few steps on exact gradients against a few on the run's minibatches:
what the gradient noise costs the run, measured rather than inferred.

Both arms start from copies of the final model and optimizer (its momentum or Adam moments, its
last learning rate, the run's clipping) and take the same number of steps; one on the gradient
of all the training data, the other on the run's own batches. Where a schedule has annealed the
rate (to under half the run's median), both arms step at the median instead: at a rate near
zero neither arm moves, and the question is what the noise cost the run while it was learning.
Their losses on all the training data tell whether noise holds the run up: exact steps that
lower the loss far more than the run's own steps do are the signature of inexact gradients
(Deep Learning sec. 8.2; DESIGN.md's "noise dominates where the loss still has far to go"), and
near a minimum neither arm moves.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core.modules import aside
from optiscope.monitor.end import analysis
from optiscope.problem.problem import Problem, batch_samples, call_loss, call_model, scalar_loss
from optiscope.records import schema
from optiscope.training.experiment import Experiment

# Samples of the training data the arms are judged on (and whose gradient is "exact").
MAX_SAMPLES = 4096
# The arms' length: a tenth of the run, within these bounds. The budget decides whether the arms
# run, never how long: a length cut to fit the time would move the verdict with the machine's load.
MIN_STEPS, MAX_STEPS = 10, 50
# Draws of the minibatch arm (different batch orders), averaged.
DRAWS = 2
# A last learning rate under this share of the run's median one: the arms step at the median.
ANNEALED = 0.5


def fastest(call: Callable[[], Any]) -> float:
    """The faster of two timed calls: the first also warms the allocator."""
    times = []
    for _ in range(2):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return min(times)


def arms_length(steps: int) -> int:
    """How many steps each arm takes after a run of ``steps``."""
    return max(MIN_STEPS, min(MAX_STEPS, steps // 10))


def full_data(exp: Experiment) -> tuple[Tensor, Tensor] | str:
    """The training batches joined into one (inputs and targets tensors), or why not."""
    if not isinstance(exp.data, (list, tuple)):
        return "the training data is not a list of batches (a loader is not read twice)"
    xs, ys, n = [], [], 0
    for batch in exp.data:
        if not (isinstance(batch, (list, tuple)) and len(batch) == 2):
            return "a batch is not an (inputs, targets) pair"
        x, y = batch
        if not (isinstance(x, Tensor) and isinstance(y, Tensor)):
            return "the batches' inputs or targets are not tensors"
        xs.append(x)
        ys.append(y)
        n += len(x)
        if n >= MAX_SAMPLES:
            break
    try:
        return torch.cat(xs)[:MAX_SAMPLES], torch.cat(ys)[:MAX_SAMPLES]
    except RuntimeError as err:
        return f"the batches do not join into one ({str(err).splitlines()[0]})"


def _copy(
    exp: Experiment, rates: list[float] | None = None
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The model and its optimizer copied together: the copy's state and parameter groups hold
    the copied parameters (one memo maps each parameter once), whatever the optimizer; with
    ``rates``, the copy's groups step at those learning rates."""
    model, opt = copy.deepcopy((exp.model, exp.optimizer))
    for group, lr in zip(opt.param_groups, rates or []):
        group["lr"] = lr
    return model, opt


def learning_rates(opt: torch.optim.Optimizer) -> list[float] | None:
    """Each parameter group's learning rate, or None where one is not a number (a tensor)."""
    rates = [g.get("lr") for g in opt.param_groups]
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rates)
    return [float(v) for v in rates] if ok else None  # type: ignore[arg-type]


def _rates(exp: Experiment, typical: list[float] | None) -> list[float] | None:
    """The run's median learning rates where the schedule annealed the first group's to under
    ANNEALED of its median, else None (the arms keep the last ones)."""
    last = learning_rates(exp.optimizer)
    if not typical or last is None or len(typical) != len(last):
        return None
    return list(typical) if last[0] < ANNEALED * typical[0] else None


def _step(exp: Experiment, model: nn.Module, opt: torch.optim.Optimizer) -> None:
    if exp.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), exp.clip_grad_norm)
    opt.step()


def full_loss(
    exp: Experiment, model: nn.Module, data: tuple[Tensor, Tensor], theta: Tensor | None = None
) -> float:
    """``model``'s loss on ``data`` (at ``theta``, flat, if given), batch norm on the data's own
    statistics and its running buffers untouched."""
    with aside(model, batch_stats=True):
        return Problem(model, exp.loss_fn, data, batch_stats=True, check=False).loss(theta)


def _exact_arm(
    exp: Experiment, data: tuple[Tensor, Tensor], steps: int, rates: list[float] | None
) -> float:
    model, opt = _copy(exp, rates)
    params = [p for p in model.parameters() if p.requires_grad]
    for _ in range(steps):
        with aside(model, batch_stats=True):
            g = Problem(model, exp.loss_fn, data, batch_stats=True, check=False).gradient()
        for p, part in zip(params, torch.split(g, [p.numel() for p in params])):
            p.grad = part.view_as(p)
        _step(exp, model, opt)
    return full_loss(exp, model, data)


def _minibatch_arm(
    exp: Experiment, data: tuple[Tensor, Tensor], steps: int, draw: int, rates: list[float] | None
) -> float:
    model, opt = _copy(exp, rates)
    batches = list(exp.data)
    order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(draw))
    model.train()
    for k in range(steps):
        opt.zero_grad(set_to_none=True)
        for j in range(exp.accumulate):
            x, y = batches[int(order[(k * exp.accumulate + j) % len(batches)])]
            loss = scalar_loss(call_loss(exp.loss_fn, call_model(model, x), y), "")
            (loss / exp.accumulate).backward()
        _step(exp, model, opt)
    return full_loss(exp, model, data)


def exact_steps(
    exp: Experiment,
    seconds: float,
    start: Tensor | None = None,
    run_lr: list[float] | None = None,
) -> dict[str, Any]:
    """The ``exact_steps`` analysis of the run's end point: arms of ``arms_length(exp.steps)``
    steps, run only where they are projected to take under ``seconds``; its fields say why
    where it could not run (``schema.ERROR``). ``start``: the parameters the run
    started from (flat), whose loss on the same data measures what the run gained; ``run_lr``:
    each parameter group's median learning rate over the run's steps."""
    fields: dict[str, Any] = {}
    data = full_data(exp)
    if isinstance(data, str):
        fields[schema.ERROR] = data
        return analysis(schema.EXACT_STEPS, fields)
    steps = arms_length(exp.steps)
    with torch.random.fork_rng():
        each = max(fastest(lambda: full_loss(exp, exp.model, data)), 1e-6)
        # An exact step costs about three losses (a gradient and the copy's bookkeeping), a
        # minibatch step less.
        projected = 3 * each * (1 + DRAWS) * steps
        if projected > seconds:
            fields[schema.ERROR] = (
                f"a loss on the {len(data[1])} samples takes {each:.2g} s: the arms' {steps} "
                f"steps would take about {projected:.0f} s, past the analysis's {seconds:.0f} s"
            )
            return analysis(schema.EXACT_STEPS, fields)
        t0 = time.perf_counter()
        end = full_loss(exp, exp.model, data)
        try:
            if start is not None:
                fields[schema.LOSS_START] = full_loss(exp, exp.model, data, start)
            rates = _rates(exp, run_lr)
            exact = _exact_arm(exp, data, steps, rates)
            own = [_minibatch_arm(exp, data, steps, d, rates) for d in range(DRAWS)]
        except Exception as err:  # an optimizer that cannot be copied must not cost the run
            text = str(err).strip().splitlines()
            fields[schema.ERROR] = f"{type(err).__name__}: {text[0] if text else ''}"
            return analysis(schema.EXACT_STEPS, fields)
    fields.update(
        {
            schema.STEPS: steps,
            schema.SAMPLES: len(data[1]),
            schema.BATCH_SIZE: batch_samples(next(iter(exp.data))),
            schema.LOSS: end,
            schema.LOSS_EXACT: exact,
            schema.LOSS_MINIBATCH: own,
            schema.SECONDS: time.perf_counter() - t0,
        }
    )
    last = learning_rates(exp.optimizer)
    if last:
        fields[schema.LAST_LR] = last[0]
        fields[schema.ARMS_LR] = rates[0] if rates else last[0]
    if not all(math.isfinite(v) for v in (end, exact, *own)):
        fields[schema.ERROR] = "a loss of the arms is not finite"
    return analysis(schema.EXACT_STEPS, fields)
