"""The run again from its first parameters on batches several times larger: what a larger batch
reaches in the same number of steps, with the same optimizer, schedule and clipping.

This is the inexact-gradients verdict's counterfactual, measured rather than inferred: where
the minibatch noise holds the run up, the same steps on batches ``FACTOR`` times larger (a
gradient whose noise variance is ``FACTOR`` times smaller) end clearly lower; where the batch
was fine (the rate, the steps or the model limit the run), they end where the run did. It is
the remedy the verdict gives ("raise the batch size"), tried before it is advised. The larger
batches join up to ``JOINED`` samples into one forward pass (batch norm sees their statistics)
and accumulate the rest, so that the rerun's memory stays near the run's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from optiscope.monitor.end import analysis
from optiscope.problem.problem import batch_samples, flat_parameters, load_flat_parameters
from optiscope.records import schema
from optiscope.runner.exact import full_data, full_loss
from optiscope.training.experiment import Experiment
from optiscope.training.loop import joined, train_experiment

# How many times the run's batch the rerun takes (at most the training set per update).
FACTOR = 8
# Samples of one forward pass of the rerun: beyond, micro-batches accumulate.
JOINED = 64
# The first steps pay lazy initialisation (kernels, allocator): they count in the time spent,
# not in the pace the rest is projected from.
WARMUP = 2
# Steps timed after the warm-up before the rerun's cost is first projected against its budget;
# it is projected again whenever the steps since the warm-up double.
TIMED = 3


class _OverBudget(Exception):
    pass


def _larger(batches: list[Any], size: int, factor: int) -> tuple[list[Any], int]:
    """The batches (of ``size`` samples) joined ``j`` at a time (``j`` the largest divisor of
    ``factor`` that keeps a pass within JOINED samples), and how many of them make one update."""
    j = max(d for d in range(1, factor + 1) if factor % d == 0 and d * size <= max(JOINED, size))
    groups = [batches[i : i + j] for i in range(0, len(batches) - j + 1, j)]
    return [joined(g) for g in groups], factor // j


def larger_batch(
    factory: Callable[[int], Experiment],
    exp: Experiment,
    start: Tensor,
    seconds: float,
) -> dict[str, Any]:
    """The ``larger_batch`` analysis of a trained ``exp``: ``factory(exp.seed)`` trained again
    from ``start`` (the run's first parameters, flat) for as many steps on batches FACTOR times
    larger, without the Monitor, and both end points' losses on the same training samples (as
    the exact-steps analysis measures them). Its fields say why where it could not run
    (``schema.ERROR``): data that is not a list of batches, an update that already takes the
    training set, a rerun projected past ``seconds``, or a factory that builds another model."""
    fields: dict[str, Any] = {}
    data = full_data(exp)
    if isinstance(data, str):
        return analysis(schema.LARGER_BATCH, {schema.ERROR: data})
    batches = list(exp.data)  # a list or tuple of batches: full_data read it
    size = batch_samples(batches[0]) or 1
    factor = min(FACTOR, len(batches) // exp.accumulate)
    total = sum(batch_samples(b) or 0 for b in batches)
    if factor < 2:
        fields[schema.ERROR] = (
            f"each update already takes {size * exp.accumulate} of the training set's "
            f"{total} samples: no larger batch to try"
        )
        return analysis(schema.LARGER_BATCH, fields)
    fields.update(
        {
            schema.STEPS: exp.steps,
            schema.BATCH_SIZE: size * exp.accumulate,
            # A short last batch: an update of the whole set holds fewer than factor batches.
            schema.BATCH_LARGER: min(size * exp.accumulate * factor, total),
            schema.SAMPLES: len(data[1]),
        }
    )
    t0 = time.perf_counter()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(exp.seed)
            other = factory(exp.seed)
            if not isinstance(other, Experiment):
                raise TypeError(f"the factory returned a {type(other).__name__}, not an Experiment")
            theirs = flat_parameters(other.model)
            if theirs.shape != start.shape:
                fields[schema.ERROR] = (
                    f"the factory's model has {theirs.numel()} trainable parameters, the run's "
                    f"{start.numel()}: the rerun would train another model"
                )
                return analysis(schema.LARGER_BATCH, fields)
            load_flat_parameters(other.model, start.to(theirs))
            if not isinstance(other.data, (list, tuple)) or not other.data:
                raise TypeError("the factory's experiment has no list of batches")
            other.data, accumulate = _larger(list(other.data), size, factor)
            other.accumulate = exp.accumulate * accumulate

            built = time.perf_counter()
            warm = [built]
            checks = {WARMUP + TIMED * 2**k for k in range(32)}

            def budget(step: int, _loss: Tensor) -> None:
                # Building the experiment and the warm-up are paid once; the steps' pace after
                # them sets the rest. Never past the budget, whatever the projection said.
                now = time.perf_counter()
                if step == WARMUP:
                    warm[0] = now
                if step > WARMUP and (step in checks or now - t0 > seconds):
                    pace = (now - warm[0]) / (step - WARMUP)
                    projected = now - t0 + pace * (exp.steps - step)
                    if projected > seconds:
                        raise _OverBudget(projected)
                elif now - t0 > seconds:
                    raise _OverBudget((now - t0) * exp.steps / step)

            trained = train_experiment(other, stop_nonfinite=True, after_step=budget)
            if trained.stopped is not None:
                fields[schema.ERROR] = f"the rerun stopped: {trained.stopped}"
                return analysis(schema.LARGER_BATCH, fields)
            fields[schema.LOSS_START] = full_loss(exp, exp.model, data, start)
            fields[schema.LOSS] = full_loss(exp, exp.model, data)
            fields[schema.LOSS_LARGER] = full_loss(other, other.model, data)
    except _OverBudget as over:
        fields[schema.ERROR] = (
            f"the rerun on batches of {fields[schema.BATCH_LARGER]} would take about "
            f"{over.args[0]:.0f} s, over the analysis's {seconds:.0f} s"
        )
        return analysis(schema.LARGER_BATCH, fields)
    except Exception as err:  # a rerun that fails must not cost the run its findings
        text = str(err).strip().splitlines()
        fields[schema.ERROR] = f"{type(err).__name__}: {text[0] if text else ''}"
        return analysis(schema.LARGER_BATCH, fields)
    fields[schema.SECONDS] = time.perf_counter() - t0
    losses = (schema.LOSS_START, schema.LOSS, schema.LOSS_LARGER)
    if not all(math.isfinite(fields[k]) for k in losses):
        fields[schema.ERROR] = "a loss of the rerun or the run is not finite"
    return analysis(schema.LARGER_BATCH, fields)
