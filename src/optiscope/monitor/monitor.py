"""The Monitor: measures a training run from inside the user's own loop.

Three lines in a plain PyTorch loop::

    monitor = optiscope.Monitor(model, optimizer, out="runs/exp1")
    ...  # loss.backward()
    monitor.step(loss)          # before optimizer.step()
    ...
    findings = monitor.close()  # or use it as a context manager

The Monitor is a scheduler: each step it runs the cheap pass (the loss, the gradient and
parameter norms, read with foreach kernels and one device-to-host transfer), asks each probe
(:mod:`optiscope.monitor.probes`) whether it is due, hands it the step's context, and routes
what it measured to the records and the sinks. It never writes to a parameter, a gradient or a
random number generator, so training with the monitor ends bitwise where training without it
does.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core.errors import NonFiniteError, OptiscopeError
from optiscope.core.version import __version__
from optiscope.diagnosis import Finding, diagnose
from optiscope.monitor.context import StepContext
from optiscope.monitor.decisions import DECISIONS
from optiscope.monitor.probes import PROBES, Probe
from optiscope.monitor.probes.base import Setup
from optiscope.monitor.probes.cheap import CheapNorms
from optiscope.monitor.probes.update import Update
from optiscope.problem import distributed
from optiscope.records import schema
from optiscope.records.log import RecordWriter, write_findings

TIERS = tuple(p.name for p in PROBES)
NEEDS_BATCH = tuple(p.name for p in PROBES if "batch" in p.needs)
# Steps between measurements of each tier; 0 is off. The update (its size and its ratio to the
# parameters) needs a copy of the parameters, so it is sampled rather than taken every step.
PRESETS: dict[str, dict[str, int]] = {
    # The cheap tier only; per-layer gradient norms cost nothing more but a record per step.
    "default": {"update": 10},
    # Amortised over a long run: about 0.1 + 0.16 + 0.04 extra gradients per step.
    "curvature": {
        "update": 10,
        "layer_gradients": 1,
        "curvature": 50,
        "sharpness": 250,
        "noise": 100,
        "recurrent": 100,
    },
    "full": {
        "update": 1,
        "layer_gradients": 1,
        "curvature": 1,
        "sharpness": 10,
        "noise": 5,
        "recurrent": 5,
    },
}


class MonitorError(OptiscopeError):
    """The Monitor was used in a way it cannot measure."""


def _overriding(probes: list[Probe], hook: str) -> list[Probe]:
    return [p for p in probes if getattr(type(p), hook) is not getattr(Probe, hook)]


def environment() -> dict[str, Any]:
    """Versions and machine facts for the records header."""
    return {
        schema.OPTISCOPE_VERSION: __version__,
        schema.TORCH_VERSION: torch.__version__,
        schema.PYTHON_VERSION: platform.python_version(),
        schema.PLATFORM: platform.platform(),
        schema.CUDA: torch.version.cuda if torch.cuda.is_available() else None,
    }


class Monitor:
    """Measure a training run step by step and write its records.

    Parameters
    ----------
    model:
        The model being trained; only its trainable parameters are read.
    optimizer:
        The optimizer; the Monitor registers a step post-hook on it (removed by :meth:`close`) to
        measure each update. Without it, update sizes are not recorded.
    out:
        A folder for ``records.jsonl``; ``None`` keeps the records in memory only
        (:attr:`history`).
    quantities:
        Names of the cheap-tier quantities to record (default: all of ``schema.CHEAP``).
    header:
        Extra facts for the records header (experiment name, seed, config).
    loss_fn:
        ``loss_fn(model(inputs), targets)``; needed by the tiers beyond the cheap one, which
        also need the batch: ``monitor.step(loss, batch=(inputs, targets))``.
    preset:
        ``"default"`` (cheap tier only), ``"curvature"`` or ``"full"`` (see :data:`PRESETS`).
    every:
        Steps between measurements of each tier (``update``: the update's size and its ratio
        to the parameters; ``curvature``: g^T g, g^T H g and the
        second-order predicted change against the actual one; ``sharpness``: the extreme Hessian
        eigenvalues against the optimizer's stability threshold; ``noise``: the gradient noise
        scale; ``recurrent``: hidden-state gradients; ``layer_gradients``: the gradient norm of
        each layer), overriding the preset; 0 turns one off.
    tensorboard:
        A folder for TensorBoard event files: every quantity as a scalar, the hidden-state
        gradients as histograms over the time steps (needs the ``tensorboard`` extra).
    scaler:
        The ``torch.amp.GradScaler`` of a mixed-precision loop: norms are read unscaled (whether
        or not ``scaler.unscale_(optimizer)`` ran before ``step``), and a step the scaler skips
        (inf or NaN in the scaled gradients) is recorded with ``skipped: 1``.
    on_nonfinite:
        What a NaN or infinite loss or gradient norm does: ``"record"`` (the default) records and
        flags it (``nonfinite`` lists what) and skips that step's tiers; ``"raise"`` also raises
        :class:`optiscope.NonFiniteError` once the step is written, to stop the run.

    :meth:`close` diagnoses the run and returns the findings (also in :attr:`findings`), with or
    without ``out``; with ``out`` it writes them to ``findings.json`` next to the records.

    Memory stays flat over a run: with ``out`` the records go to disk and :attr:`history` stays
    empty; without it, :attr:`history` keeps every record (the caller asked for them).

    Under torch.distributed (DDP), quantities are those of the global batch, and only rank 0
    writes records, findings and TensorBoard events.

    The tiers run in eval mode (dropout off, batch-norm statistics frozen) with the random number
    generators forked, then restore the modules' modes: the training run is not changed.

    Each tier is a probe (:mod:`optiscope.monitor.probes`); the Monitor schedules them, hands
    each the step's context, and routes what they measure to the records and the sinks.

    Costs: ``sharpness`` starts Lanczos from the last measurement's eigenvectors (a few products
    once warm) and adds the smallest eigenvalue only at plateaus (the smoothed loss changing by
    less than 5% per 100 steps, or the gradient norm below a tenth of its peak). ``curvature``
    takes one product for g^T H g, and one more for d^T H d unless the update is along the
    gradient (plain SGD). ``noise`` reads the per-sample gradient norms from the training step's
    own backward pass when the model is made of Linear and convolution layers and the loss is the
    mean or sum of per-sample losses (hooks armed only before the steps where it is due);
    otherwise it takes a separate pass.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        out: str | os.PathLike[str] | None = None,
        quantities: tuple[str, ...] | list[str] | None = None,
        header: Mapping[str, Any] | None = None,
        loss_fn: Any = None,
        preset: str = "default",
        every: Mapping[str, int] | None = None,
        tensorboard: str | os.PathLike[str] | None = None,
        scaler: Any = None,
        on_nonfinite: str = "record",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise MonitorError(f"model must be a torch.nn.Module, got a {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise MonitorError(
                f"optimizer must be a torch.optim.Optimizer or None, got a "
                f"{type(optimizer).__name__}: pass the optimizer that trains the model, e.g. "
                "Monitor(model, opt)"
            )
        self.params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise MonitorError(
                f"the model has no trainable parameters: all {len(list(model.parameters()))} "
                "parameters have requires_grad=False. Unfreeze the ones to train "
                "(p.requires_grad_(True))"
            )
        chosen = tuple(schema.CHEAP if quantities is None else quantities)
        unknown = [q for q in chosen if q not in schema.CHEAP]
        if unknown:
            raise MonitorError(
                f"unknown quantities {unknown}: expected names from {list(schema.CHEAP)}"
            )
        self.quantities = chosen
        if on_nonfinite not in ("record", "raise"):
            raise MonitorError(
                f"on_nonfinite={on_nonfinite!r}: expected 'record' (flag and go on) or 'raise' "
                "(stop the run with NonFiniteError)"
            )
        self.on_nonfinite = on_nonfinite
        if preset not in PRESETS:
            raise MonitorError(f"unknown preset {preset!r}: expected one of {list(PRESETS)}")
        schedule = {t: 0 for t in TIERS}
        schedule.update(PRESETS[preset])
        for name, n in dict(every or {}).items():
            if name not in TIERS or not isinstance(n, int) or n < 0:
                raise MonitorError(
                    f"every={{{name!r}: {n!r}}}: expected a tier from {list(TIERS)} and a "
                    "number of steps >= 0"
                )
            schedule[name] = n
        self.every = schedule
        batch_tiers = [t for t in NEEDS_BATCH if self.every[t]]
        if batch_tiers and loss_fn is None:
            raise MonitorError(
                f"the tiers {batch_tiers} need the loss function: pass "
                "Monitor(..., loss_fn=loss_fn)"
            )
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scaler = scaler
        # Measurements run the module inside a DDP wrapper, without its synchronisation.
        self._module = distributed.unwrap(model)
        self._dist = distributed.active()
        self._cheap = CheapNorms(self.params, chosen, optimizer, scaler)
        setup = Setup(model, self._module, self.params, chosen, self._dist)
        self.probes = [cls(self.every[cls.name], setup) for cls in PROBES]
        self._update = next(p for p in self.probes if isinstance(p, Update))
        # The hooks each probe overrides: the others cost nothing per step.
        self._collectors = _overriding(self.probes, "collect")
        self._preparers = _overriding(self.probes, "prepare")
        self._completers = _overriding(self.probes, "after_update")
        self.decisions = {name: cls() for name, cls in DECISIONS.items()}
        self.history: list[dict[str, Any]] = []
        self._keep = out is None
        self._experiment = dict(header or {}).get(schema.EXPERIMENT)
        self.findings: list[Finding] = []
        self.step_count = 0
        self._pending: StepContext | None = None
        self._closed = False
        self._hook = None
        # The hook completes each step's record after the update, and tells a step the
        # optimizer skipped (GradScaler on inf) by its not firing.
        if optimizer is not None:
            self._hook = optimizer.register_step_post_hook(self._after_update)
        self._writer: RecordWriter | None = None
        self._sinks: list[Any] = []
        # Under torch.distributed only rank 0 writes.
        self._writes = not self._dist or torch.distributed.get_rank() == 0
        facts = {
            **environment(),
            schema.DEVICE: str(self.params[0].device),
            # Dropout off and batch-norm statistics frozen while the tiers measure.
            schema.CURVATURE_MODE: "eval",
            **dict(header or {}),
        }
        if tensorboard is not None and self._writes:
            from optiscope.monitor.tensorboard import TensorBoardSink

            self._sinks.append(TensorBoardSink(tensorboard))
        if out is not None and self._writes:
            self._writer = RecordWriter(os.path.join(os.fspath(out), schema.RECORDS_FILE), facts)
        for sink in self._sinks:
            sink.write({schema.TYPE: schema.HEADER, **facts})

    @property
    def path_length(self) -> float:
        """The sum of the measured update norms (the trajectory's length when every update is
        measured)."""
        return self._update.path_length

    @property
    def needs_batch(self) -> bool:
        """Whether any scheduled tier needs the batch (``monitor.step(loss, batch=...)``)."""
        return any(self.every[t] for t in NEEDS_BATCH)

    # -- the three calls a loop makes ------------------------------------------------------------

    def step(self, loss: Tensor | float, batch: tuple[Any, Any] | None = None) -> None:
        """Record the step whose gradients are in ``.grad``; call before ``optimizer.step()``.

        ``batch`` is the step's ``(inputs, targets)``, needed on the steps a tier is due.
        """
        if isinstance(loss, Tensor) and loss.numel() != 1:
            raise MonitorError(
                f"monitor.step expects the scalar loss, got a tensor of shape "
                f"{tuple(loss.shape)}: pass the loss you called backward on, reduced to a scalar "
                "(loss.mean())"
            )
        if self._pending is not None and self._hook is not None:
            # The optimizer did not step since the last record: a skipped step.
            self._pending.values[schema.SKIPPED] = 1
        self._flush()
        ctx = StepContext(
            step=self.step_count,
            module=self._module,
            params=self.params,
            optimizer=self.optimizer,
            loss_fn=self.loss_fn,
            batch=batch,
            values={},
            distributed=self._dist,
            loss_tensor=loss,
        )
        due = [p for p in self.probes if p.due(ctx.step) and p.applies(ctx)]
        if batch is None and (p := next((p for p in due if "batch" in p.needs), None)):
            raise MonitorError(
                f"the {p.name} tier is due at step {ctx.step} and needs the batch: call "
                "monitor.step(loss, batch=(inputs, targets))"
            )
        self._cheap.measure(ctx, loss, any(schema.PARAM_NORM in p.needs for p in due))
        if self._dist:
            self._reduce(ctx)
        for decision in self.decisions.values():
            decision.observe(ctx.loss, ctx.grad_norm)
        self._pending = ctx
        pairs = ((schema.LOSS, ctx.loss), (schema.GRAD_NORM, ctx.grad_norm))
        bad = [n for n, v in pairs if not math.isfinite(v)]
        if schema.NONFINITE in self.quantities:
            ctx.values[schema.NONFINITE] = bad
        if bad and self.on_nonfinite == "raise":
            self.step_count += 1
            self._flush()
            raise NonFiniteError(
                f"non-finite {' and '.join(bad)} at step {ctx.step}: recorded; the run stops "
                "(Monitor(on_nonfinite='raise')). Lower the learning rate or clip the gradient "
                "norm"
            )
        for probe in self._collectors:
            probe.collect(ctx)
        # Curvature of a non-finite point means nothing, and would raise: the probes skip it.
        measured = [p for p in due if not (bad and "batch" in p.needs)]
        try:
            for probe in measured:
                for question in probe.asks:
                    ctx.decisions[question] = self.decisions[question].decide(ctx.step)
                probe.measure(ctx)
        finally:
            ctx.close()
        self.step_count += 1
        for probe in self._preparers:
            probe.prepare(self.step_count)
        if self._hook is None:
            self._flush()

    def _reduce(self, ctx: StepContext) -> None:
        """The loss of the global batch (the ranks' mean, as DDP averages gradients) and what
        the probes ask to be summed over the ranks, in one collective. The gradient in ``.grad``
        is already DDP's average, so its norm needs none."""
        asks = [probe.reduce_inputs(ctx) for probe in self.probes]
        sums = distributed.sums([ctx.loss, *(v for a in asks for v in a)], self.params[0])
        ctx.loss = sums[0] / torch.distributed.get_world_size()
        if schema.LOSS in ctx.values:
            ctx.values[schema.LOSS] = ctx.loss
        at = 1
        for probe, a in zip(self.probes, asks):
            probe.reduced(ctx, sums[at : at + len(a)])
            at += len(a)

    def _after_update(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        ctx = self._pending
        if ctx is None:
            return
        for probe in self._completers:
            probe.after_update(ctx)
        self._flush()

    def _flush(self) -> None:
        ctx, self._pending = self._pending, None
        if ctx is None:
            return
        self._emit(
            {schema.TYPE: schema.STEP_RECORD, schema.STEP: ctx.step, schema.VALUES: ctx.values}
        )
        for r in ctx.records:
            self._emit(r)

    def _emit(self, record: Mapping[str, Any]) -> None:
        if self._keep:
            self.history.append(dict(record))
        if self._writer is not None:
            self._writer.write(record)
        for sink in self._sinks:
            sink.write(record)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append a record of the caller's own (an event, an analysis) to the log."""
        self._flush()
        self._emit(record)

    def close(self) -> list[Finding]:
        """Write what is pending, remove the hooks, close the records, diagnose the run and
        return its findings (written to ``findings.json`` next to the records with ``out``).

        Under torch.distributed only rank 0 diagnoses; other ranks return an empty list.
        Closing twice returns the same findings.
        """
        if self._closed:
            return self.findings
        self._closed = True
        self._flush()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        for probe in self.probes:
            probe.close()
        for sink in self._sinks:
            sink.close()
        self._sinks = []
        if self._writer is not None:
            self._writer.close()
            folder, self._writer = self._writer.path.parent, None
            self.findings = diagnose(folder)
            name = self._experiment
            write_findings(folder, [f.to_dict() for f in self.findings], name)
        elif self._keep:
            self.findings = diagnose(self.history)
        return self.findings

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
