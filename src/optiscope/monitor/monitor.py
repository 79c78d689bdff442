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

import json
import math
import os
import platform
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core.errors import NonFiniteError, OptiscopeError
from optiscope.core.modules import training_norms
from optiscope.core.version import __version__
from optiscope.diagnosis import Finding, diagnose
from optiscope.monitor.context import StepContext
from optiscope.monitor.decisions import DECISIONS
from optiscope.monitor.end import end_records
from optiscope.monitor.probes import PROBES, Probe
from optiscope.monitor.probes.base import Setup
from optiscope.monitor.probes.cheap import CheapNorms
from optiscope.monitor.probes.update import Update
from optiscope.problem import distributed
from optiscope.problem.problem import check_materialized
from optiscope.records import schema
from optiscope.records.folder import RunLock, clear_run, holds_run
from optiscope.records.log import (
    RecordsError,
    RecordWriter,
    encode,
    last_step,
    read_records,
    write_findings,
)

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


def spread(steps: int, batch: int = 32) -> dict[str, int]:
    """The curvature preset's tiers spread over a run of ``steps`` steps, so that a run of any
    length gets enough measurements of each: the curvature about 30 times, sharpness and the
    hidden-state gradients 6, the noise 12 (more often for batches under 32, whose estimates
    are noisier and cheaper)."""
    return {
        "curvature": max(1, steps // 30),
        "sharpness": max(1, steps // 6),
        "noise": max(1, (steps // 12) * min(batch, 32) // 32),
        "recurrent": max(1, steps // 6),
    }


class MonitorError(OptiscopeError):
    """The Monitor was used in a way it cannot measure."""


def _check_arguments(out: Any, header: Any, quantities: Any, on_write_error: Any) -> None:
    """Refuse, with what to pass instead, the arguments of a kind the Monitor cannot use."""
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise MonitorError(
            f"out must be a folder path (a str or os.PathLike), got {type(out).__name__} "
            f"{out!r}: pass e.g. out='runs/exp1', or out=None to keep the records in memory"
        )
    if header is not None and not isinstance(header, Mapping):
        raise MonitorError(
            f"header must be a mapping of facts (e.g. {{'seed': 0}}), got {type(header).__name__}"
        )
    for key, value in dict(header or {}).items():
        if not isinstance(key, str):
            raise MonitorError(f"header keys must be strings, got {key!r}: use str keys")
        if key in schema.RESERVED_HEADER:
            raise MonitorError(
                f"header key {key!r} is reserved (the records own "
                f"{', '.join(schema.RESERVED_HEADER)}): rename it, e.g. 'user_{key}'"
            )
        try:
            json.dumps(encode(value), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise MonitorError(
                f"header[{key!r}] is a {type(value).__name__}, which cannot be written as JSON "
                f"({err}): pass numbers, strings, lists or dicts of them (str(value) if need be)"
            ) from None
    if isinstance(quantities, str):
        raise MonitorError(
            f"quantities must be a list of names, got the string {quantities!r}: pass "
            f"quantities=[{quantities!r}]"
        )
    if on_write_error not in ("warn", "raise"):
        raise MonitorError(
            f"on_write_error={on_write_error!r}: expected 'warn' (keep training, keep the "
            "records in memory) or 'raise' (stop the run)"
        )


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
    overwrite:
        ``out`` holds a run already (its ``records.jsonl`` or ``findings.json``): ``False`` (the
        default) refuses it, so findings never describe another run's records; ``True`` deletes
        that run's files first (records, findings, report; nothing else in the folder).
    on_write_error:
        What a failed write of the records (a full disk) does: ``"warn"`` (the default) warns
        once, stops writing, keeps the later records in memory (:attr:`history`) and goes on
        training; :meth:`close` diagnoses what was written and what was kept, and
        :attr:`write_error` says what happened. ``"raise"`` raises the error into the loop.
    steps:
        The run's planned number of steps: with ``preset="curvature"`` the tiers are spread
        over it (:func:`spread`: the curvature about 30 times, sharpness 6, the noise 12)
        instead of the fixed cadence made for long runs, under which a 50-step run would measure
        each tier once, at its first step. ``every`` still overrides.
    end_batch:
        An ``(inputs, targets)`` batch on which :meth:`close` analyses the point the run
        reached, as ``optiscope diagnose`` does: its critical-point verdict (Lanczos at both
        ends of the spectrum, about 60 Hessian-vector products) and the straight path from the
        initial parameters to it (21 loss evaluations), which the local-minima and local-global
        verdicts read. Needs ``loss_fn``; costs one copy of the parameters, taken here. The path
        length compares with the distance only when every update is measured (``every=
        {"update": 1}``).
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

    The tiers measure the function being trained: dropout off, batch norm in training mode on
    the measured batch's statistics (its running statistics restored after), the random number
    generators forked; then the modules' modes come back: the training run is not changed.

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
        overwrite: bool = False,
        on_write_error: str = "warn",
        end_batch: Any = None,
        steps: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise MonitorError(f"model must be a torch.nn.Module, got a {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise MonitorError(
                f"optimizer must be a torch.optim.Optimizer or None, got a "
                f"{type(optimizer).__name__}: pass the optimizer that trains the model, e.g. "
                "Monitor(model, opt)"
            )
        _check_arguments(out, header, quantities, on_write_error)
        self.params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise MonitorError(
                f"the model has no trainable parameters: all {len(list(model.parameters()))} "
                "parameters have requires_grad=False. Unfreeze the ones to train "
                "(p.requires_grad_(True))"
            )
        check_materialized(model, MonitorError)
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
        if steps is not None:
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise MonitorError(
                    f"steps={steps!r}: expected the run's planned number of steps, an int >= 1"
                )
            if preset == "curvature":
                schedule.update(spread(steps))
        for name, n in dict(every or {}).items():
            if name not in TIERS or not isinstance(n, int) or n < 0:
                raise MonitorError(
                    f"every={{{name!r}: {n!r}}}: expected a tier from {list(TIERS)} and a "
                    "number of steps >= 0"
                )
            schedule[name] = n
        self.every = schedule
        batch_tiers = [t for t in NEEDS_BATCH if self.every[t]]
        if end_batch is not None and loss_fn is None:
            raise MonitorError(
                "end_batch needs the loss function to analyse the final point: pass "
                "Monitor(..., loss_fn=loss_fn, end_batch=(inputs, targets))"
            )
        if end_batch is not None and distributed.sharded(self.params):
            raise MonitorError(
                "end_batch analyses the final point as a function of one parameter vector, and "
                "the model's parameters are sharded (FSDP2's fully_shard, DTensors): pass "
                "end_batch=None, or analyse a checkpoint of the whole model in one process"
            )
        if batch_tiers and loss_fn is None:
            raise MonitorError(
                f"the tiers {batch_tiers} need the loss function: pass "
                "Monitor(..., loss_fn=loss_fn)"
            )
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.end_batch = end_batch
        self._start: Tensor | None = None
        if end_batch is not None:
            with torch.no_grad():
                self._start = torch.cat([p.detach().reshape(-1) for p in self.params]).clone()
        self.scaler = scaler
        # Measurements run the module inside a DDP wrapper, without its synchronisation.
        self._module = distributed.unwrap(model)
        self._dist = distributed.active()
        # FSDP2: only the norms tiers measure a sharded model; the others record why not.
        self._sharded = distributed.sharded(self.params)
        self._cheap = CheapNorms(self.params, chosen, optimizer, scaler)
        setup = Setup(model, self._module, self.params, chosen, self._dist, dict(self.every))
        self.probes = [cls(self.every[cls.name], setup) for cls in PROBES]
        self._update = next(p for p in self.probes if isinstance(p, Update))
        # The hooks each probe overrides: the others cost nothing per step.
        self._collectors = _overriding(self.probes, "collect")
        self._preparers = _overriding(self.probes, "prepare")
        self._completers = _overriding(self.probes, "after_update")
        self.decisions = {name: cls() for name, cls in DECISIONS.items()}
        self.history: list[dict[str, Any]] = []
        self._keep = out is None
        self.on_write_error = on_write_error
        self.write_error: str | None = None  # why the records stopped going to disk, if they did
        self._failures: set[str] = set()  # the tiers that failed (warned once each)
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
            # Dropout off while the tiers measure; batch norm on the measured batch's statistics.
            schema.CURVATURE_MODE: "eval, batch norm on the batch's statistics"
            if training_norms(self._module)
            else "eval",
            **dict(header or {}),
        }
        # The detectors read the header's facts too (the training set's size).
        self._header = {schema.TYPE: schema.HEADER, **facts}
        if tensorboard is not None and self._writes:
            from optiscope.monitor.tensorboard import TensorBoardSink

            self._sinks.append(TensorBoardSink(tensorboard))
        self._lock: RunLock | None = None
        refused: MonitorError | None = None
        if out is not None and self._writes:
            try:
                self._writer = self._open(Path(os.fspath(out)), facts, overwrite)
            except MonitorError as err:
                refused = err
        if self._dist and out is not None:
            # All ranks learn whether rank 0 took the folder: one refusing alone would leave
            # the others waiting in the training's collectives.
            taken = distributed.sums([float(refused is None)], self.params[0])[0]
            if refused is None and taken < torch.distributed.get_world_size():
                self._detach()
                for sink in self._sinks:
                    sink.close()
                raise MonitorError(
                    f"rank 0 could not take the run folder {os.fspath(out)!r} (its error says "
                    "why): every rank stops with it"
                )
        if refused is not None:
            for sink in self._sinks:
                sink.close()
            raise refused
        for sink in self._sinks:
            sink.write({schema.TYPE: schema.HEADER, **facts})

    def _open(self, folder: Path, facts: dict[str, Any], overwrite: bool) -> RecordWriter:
        """Lock the run folder, clear or refuse an earlier run in it, and start the records."""
        try:
            self._lock = RunLock(folder)
            if holds_run(folder):
                if not overwrite:
                    raise MonitorError(
                        f"{str(folder)!r} already holds a run: one run per folder, so that its "
                        "findings describe its own records. Pass Monitor(..., overwrite=True) "
                        "(optiscope diagnose --overwrite) to replace it, or another folder"
                    )
                clear_run(folder)
            return RecordWriter(folder / schema.RECORDS_FILE, facts)
        except (RecordsError, MonitorError) as err:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            self._detach()
            if isinstance(err, RecordsError):
                raise MonitorError(str(err)) from err
            raise

    def _detach(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        for probe in self.probes:
            probe.close()

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
        if self._closed:
            raise MonitorError(
                f"monitor.step after monitor.close() (at step {self.step_count}): the records "
                "are closed. Call close() once training is done, or build a new Monitor for a "
                "new run"
            )
        if not isinstance(loss, (Tensor, int, float)) or isinstance(loss, bool):
            raise MonitorError(
                f"monitor.step expects the loss (a scalar tensor or a number), got "
                f"{type(loss).__name__}: pass the loss you called backward on"
            )
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
        if not ctx.grad_parts[0]:  # the cheap pass found which parameters hold a gradient
            raise MonitorError(
                f"monitor.step found no gradient in .grad of the model's {len(self.params)} "
                "trainable parameters: call it after loss.backward() and before "
                "optimizer.step() (and not after optimizer.zero_grad())"
            )
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
                try:
                    if self._sharded:
                        distributed.refuse_sharded(probe.name)
                    probe.measure(ctx)
                except Exception as err:  # a tier must never cost the run its training
                    self._failed(ctx, probe, err)
        finally:
            ctx.close()
        self.step_count += 1
        for probe in self._preparers:
            probe.prepare(self.step_count)
        if self._hook is None:
            self._flush()

    def _failed(self, ctx: StepContext, probe: Probe, err: Exception) -> None:
        """Record why a tier failed at this step (and warn the first time): the run and the
        other tiers go on. Under DDP every rank fails alike, as the ranks run the same code."""
        text = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
        ctx.emit(
            {
                schema.TYPE: schema.PROBE_ERROR,
                schema.STEP: ctx.step,
                schema.PROBE: probe.name,
                schema.ERROR: reason,
            }
        )
        if probe.name not in self._failures:
            self._failures.add(probe.name)
            warnings.warn(
                f"optiscope: the {probe.name} tier failed at step {ctx.step} ({reason}); "
                f"recorded as a {schema.PROBE_ERROR} record, and training goes on",
                RuntimeWarning,
                stacklevel=4,
            )

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
            try:
                probe.after_update(ctx)
            except Exception as err:
                self._failed(ctx, probe, err)
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
            try:
                self._writer.write(record)
            except RecordsError as err:
                self._stop_writing(err, record)
        for sink in self._sinks:
            sink.write(record)

    def _stop_writing(self, err: RecordsError, record: Mapping[str, Any]) -> None:
        """The records could not be written (a full disk): say so once and keep the rest in
        memory, so the run and its diagnosis lose nothing; or raise, as asked."""
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        self._keep = True
        self.history.append(dict(record))
        step = record.get(schema.STEP)
        self.write_error = (
            f"{err}; the records from {'step ' + str(step) if step is not None else 'here'} on "
            "were kept in memory only"
        )
        if self.on_write_error == "raise":
            raise MonitorError(self.write_error) from err
        warnings.warn(
            f"optiscope: {self.write_error}. Training goes on; close() diagnoses them all",
            RuntimeWarning,
            stacklevel=4,
        )

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
        try:
            self._flush()
            self._end_analyses()
        finally:
            self._detach()
            for sink in self._sinks:
                sink.close()
            self._sinks = []
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()
            try:
                self._conclude()
            finally:
                if self._lock is not None:
                    self._lock.release()
                    self._lock = None
        return self.findings

    def _end_analyses(self) -> None:
        """The final point and the straight path to it on ``end_batch`` (a failure is recorded
        as a ``probe_error`` of the ``end`` analyses, and the records are still diagnosed)."""
        if self.end_batch is None or self._start is None or not self._writes:
            return
        try:
            for record in end_records(
                self._module,
                self.params,
                self.loss_fn,
                self.end_batch,
                self._start,
                self.path_length,
            ):
                self._emit(record)
        except Exception as err:  # the analyses must not cost the run its findings
            text = str(err).strip().splitlines()
            reason = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
            self._emit(
                {
                    schema.TYPE: schema.PROBE_ERROR,
                    schema.STEP: self.step_count,
                    schema.PROBE: "end",
                    schema.ERROR: reason,
                }
            )
            warnings.warn(
                f"optiscope: the end-of-run analyses failed ({reason}); recorded, and the run "
                "is diagnosed without them",
                RuntimeWarning,
                stacklevel=3,
            )
        finally:
            self._start = None

    def _conclude(self) -> None:
        """Diagnose the records (on disk, and those kept in memory after a failed write) and
        write the findings next to them, with the run they describe."""
        if self._lock is None:  # no folder: the records are all in memory, or on rank 0
            if self._keep:
                self.findings = diagnose([self._header, *self.history])
            return
        folder = self._lock.folder
        try:
            log = read_records(folder)
        except RecordsError as err:  # the file was removed or edited under the run
            self.write_error = str(err)
            warnings.warn(f"optiscope: {self.write_error}", RuntimeWarning, stacklevel=3)
            self.findings = diagnose([self._header, *self.history])
            return
        records = log.records + self.history  # history holds only what the disk did not take
        self.findings = diagnose([log.header, *records])
        if self.write_error is not None:
            return  # the file would not be the records' twin; the error says what happened
        try:
            write_findings(
                folder,
                [f.to_dict() for f in self.findings],
                self._experiment,
                run_id=log.header.get(schema.RUN_ID),
                last_step=last_step(records),
            )
        except RecordsError as err:
            self.write_error = str(err)
            if self.on_write_error == "raise":
                raise MonitorError(self.write_error) from err
            warnings.warn(f"optiscope: {self.write_error}", RuntimeWarning, stacklevel=3)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
