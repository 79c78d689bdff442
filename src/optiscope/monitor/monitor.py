"""The Monitor: measures a training run from inside the user's own loop (layer 5 of the design).

Three lines in a plain PyTorch loop::

    monitor = optiscope.Monitor(model, optimizer, out="runs/exp1")
    ...  # loss.backward()
    monitor.step(loss)          # before optimizer.step()
    ...
    monitor.close()             # or use it as a context manager

The cheap tier reads what the step already computed (the loss, the gradients, the parameters
before and after the optimizer's update) with foreach kernels and one device-to-host transfer per
step. It never writes to a parameter, a gradient or a random number generator, so training with
the monitor ends bitwise where training without it does.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core.errors import NonFiniteError, OptiscopeError
from optiscope.records.log import RecordWriter, environment

CHEAP = ("loss", "grad_norm", "param_norm", "update_norm", "update_ratio", "nonfinite")
TIERS = ("update", "curvature", "sharpness", "noise", "recurrent")
# Steps between measurements of each tier; 0 is off. The update (its size and its ratio to the
# parameters) needs a copy of the parameters, so it is sampled rather than taken every step.
PRESETS: dict[str, dict[str, int]] = {
    "default": {"update": 10},
    # Amortised over a long run: about 0.1 + 0.16 + 0.04 extra gradients per step.
    "curvature": {"update": 10, "curvature": 50, "sharpness": 250, "noise": 100, "recurrent": 100},
    "full": {"update": 1, "curvature": 1, "sharpness": 10, "noise": 5, "recurrent": 5},
}
_NEEDS_BATCH = ("curvature", "sharpness", "noise", "recurrent")
_NOISE = ("grad_norm_sq_unbiased", "b_simple", "snr", "trace_cov", "batch_size")


class MonitorError(OptiscopeError):
    """The Monitor was used in a way it cannot measure."""


def _norm(tensors: list[Tensor]) -> float:
    if not tensors:
        return 0.0
    return math.sqrt(sum(v * v for v in torch.stack(torch._foreach_norm(tensors)).tolist()))


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
        Names of the cheap-tier quantities to record (default: all of ``CHEAP``).
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
        scale; ``recurrent``: hidden-state gradients), overriding the preset; 0 turns one off.
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

    Memory stays flat over a run: with ``out`` the records go to disk and :attr:`history` stays
    empty; without it, :attr:`history` keeps every record (the caller asked for them).

    Under torch.distributed (DDP), quantities are those of the global batch, and only rank 0
    writes records, findings and TensorBoard events.

    The tiers run in eval mode (dropout off, batch-norm statistics frozen) with the random number
    generators forked, then restore the modules' modes: the training run is not changed.

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
        chosen = tuple(CHEAP if quantities is None else quantities)
        unknown = [q for q in chosen if q not in CHEAP]
        if unknown:
            raise MonitorError(f"unknown quantities {unknown}: expected names from {list(CHEAP)}")
        self.quantities = chosen
        if on_nonfinite not in ("record", "raise"):
            raise MonitorError(
                f"on_nonfinite={on_nonfinite!r}: expected 'record' (flag and go on) or 'raise' "
                "(stop the run with NonFiniteError)"
            )
        self.on_nonfinite = on_nonfinite
        self.scaler = scaler
        self._want_param_norm = "param_norm" in chosen or "update_ratio" in chosen
        # Views that follow in-place updates of the parameters: built once, not every step.
        self._detached = [p.detach() for p in self.params]
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
        batch_tiers = [t for t in _NEEDS_BATCH if self.every[t]]
        if batch_tiers and loss_fn is None:
            raise MonitorError(
                f"the tiers {batch_tiers} need the loss function: pass "
                "Monitor(..., loss_fn=loss_fn)"
            )
        from optiscope.problem import distributed as _distributed

        self.model = model
        # Measurements run the module inside a DDP wrapper, without its synchronisation.
        self._module = _distributed.unwrap(model)
        self._dist = _distributed.active()
        self.loss_fn = loss_fn
        self._has_rnn = any(
            isinstance(m, (nn.RNN, nn.LSTM, nn.GRU)) for m in self._module.modules()
        )
        self._curv: tuple[Any, Tensor, Tensor] | None = None
        self._warm: dict[str, Tensor] = {}  # the last eigenvectors, to start Lanczos from
        self._loss_ema: float | None = None
        self._grad_ema: float | None = None
        self._grad_ema_max = 0.0
        self._last_sharpness: tuple[int, float | None] | None = None
        self.optimizer = optimizer
        self.history: list[dict[str, Any]] = []
        self._keep = out is None
        self.path_length = 0.0  # the sum of the measured update norms
        self.findings: list[Any] = []  # written by close() next to the records
        self.step_count = 0
        self._before: list[Tensor] | None = None
        self._pending: dict[str, Any] | None = None
        self._extra: list[dict[str, Any]] = []
        self._snapshot = False
        self._hook = None
        # The hook completes each step's record after the update, and tells a step the
        # optimizer skipped (GradScaler on inf) by its not firing.
        if optimizer is not None:
            self._hook = optimizer.register_step_post_hook(self._after_update)
        # The noise tier reads per-sample gradient norms from the training step itself where
        # the model allows it; armed only before the steps where the tier is due.
        from optiscope.problem.persample import StepRecorder

        # Under DDP the noise comes from each rank's local gradient against the averaged one.
        self._recorder = None
        self._local: _distributed.LocalGradients | None = None
        if self.every["noise"] and self._dist:
            self._local = _distributed.LocalGradients(self.params)
            self._local.arm()
        elif self.every["noise"] and self._module is model:
            # Not under torch.compile: its graph would trace the recorder's hooks.
            self._recorder = StepRecorder.for_model(self._module, self.params)
        if self._recorder is not None:
            self._recorder.arm()
        self._ranks: tuple[int, float] | None = None  # local batch, mean local |g|^2
        self._grad_norm = math.nan
        self._loss_v = math.nan
        self._writer: RecordWriter | None = None
        self._sinks: list[Any] = []
        # Under torch.distributed only rank 0 writes.
        writes = not self._dist or torch.distributed.get_rank() == 0
        facts = {
            **environment(),
            "device": str(self.params[0].device),
            # Dropout off and batch-norm statistics frozen while the tiers measure.
            "curvature_mode": "eval",
            **dict(header or {}),
        }
        if tensorboard is not None and writes:
            from optiscope.monitor.tensorboard import TensorBoardSink

            self._sinks.append(TensorBoardSink(tensorboard))
        if out is not None and writes:
            self._writer = RecordWriter(os.path.join(os.fspath(out), "records.jsonl"), facts)
        for sink in self._sinks:
            sink.write({"type": "header", **facts})

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
            self._pending["values"]["skipped"] = 1
        self._flush()
        due = [t for t, n in self.every.items() if n and self.step_count % n == 0]
        needs = [t for t in due if t in _NEEDS_BATCH]
        if t := next((t for t in needs if t != "recurrent" or self._has_rnn), None):
            if batch is None:
                raise MonitorError(
                    f"the {t} tier is due at step {self.step_count} and needs the batch: call "
                    "monitor.step(loss, batch=(inputs, targets))"
                )
        record = self._cheap(loss, "update" in due)
        if self._dist:
            self._reduce(record, batch)
        self._smooth(self._loss_v, self._grad_norm)
        self._pending = {"type": "step", "step": self.step_count, "values": record}
        pairs = (("loss", self._loss_v), ("grad_norm", self._grad_norm))
        bad = [n for n, v in pairs if not _finite(v)]
        if "nonfinite" in self.quantities:
            record["nonfinite"] = bad
        if bad:
            # Curvature of a non-finite point means nothing, and would raise: tiers skip it.
            needs = []
            if self.on_nonfinite == "raise":
                self.step_count += 1
                self._flush()
                raise NonFiniteError(
                    f"non-finite {' and '.join(bad)} at step {self.step_count - 1}: recorded; "
                    "the run stops (Monitor(on_nonfinite='raise')). Lower the learning rate or "
                    "clip the gradient norm"
                )
        recorded = None
        if self._recorder is not None and self._recorder.armed:
            targets = batch[1] if batch is not None else None
            recorded = self._recorder.collect(loss, self.loss_fn, targets)
        if needs and batch is not None:
            self._measure(needs, batch, record, recorded)
        self.step_count += 1
        n = self.every["noise"]
        if self._recorder is not None and n and self.step_count % n == 0:
            self._recorder.arm()
        if self._local is not None and n and self.step_count % n == 0:
            self._local.arm()
        if self._hook is None:
            self._flush()

    def _cheap(self, loss: Tensor | float, update: bool) -> dict[str, Any]:
        """Loss, gradient and parameter norms in one foreach pass and one transfer."""
        # Sparse gradients (embeddings with sparse=True): their stored values hold the norm.
        grads = [
            g.coalesce()._values() if g.is_sparse else g
            for g in (p.grad for p in self.params)
            if g is not None
        ]
        want_p = self._want_param_norm and update
        self._snapshot = update and self._hook is not None
        with torch.no_grad():
            tensors = grads + self._detached if want_p else grads
            scale = self._grad_scale()
            # A GradScaler's gradients can be finite while their float32 norm overflows.
            wide = {"dtype": torch.float64} if scale != 1.0 else {}
            parts = list(torch._foreach_norm(tensors, 2, **wide)) if tensors else []
            if isinstance(loss, Tensor):
                parts.append(loss.detach().reshape(()).to(parts[0].dtype if parts else loss.dtype))
            if self._snapshot:
                if self._before is None:
                    self._before = [t.clone() for t in self._detached]
                else:
                    torch._foreach_copy_(self._before, self._detached)
            try:
                vals = torch.stack(parts).tolist() if parts else []  # one transfer
            except RuntimeError:  # the loss on another device than the parameters
                vals = [float(t) for t in parts]
        # The squares in float64: a float32 norm above 1e19 would overflow when squared.
        k = len(grads)
        g_v = math.sqrt(sum(v * v for v in vals[:k])) / scale
        p_v = math.sqrt(sum(v * v for v in vals[k : len(tensors)])) if want_p else 0.0
        loss_v = vals[-1] if isinstance(loss, Tensor) else float(loss)
        self._grad_norm = g_v
        self._loss_v = loss_v
        record: dict[str, Any] = {}
        if "loss" in self.quantities:
            record["loss"] = loss_v
        if "grad_norm" in self.quantities:
            record["grad_norm"] = g_v
        if want_p:
            record["param_norm"] = p_v
        return record

    def _grad_scale(self) -> float:
        """The factor by which a GradScaler's gradients in ``.grad`` are still scaled (1 once
        ``scaler.unscale_`` ran, or without a scaler)."""
        scaler = self.scaler
        if scaler is None or not scaler.is_enabled() or self.optimizer is None:
            return 1.0
        # GradScaler keeps, per optimizer, whether unscale_ already ran this step.
        state = getattr(scaler, "_per_optimizer_states", {}).get(id(self.optimizer), {})
        stage = state.get("stage")
        if stage is not None and getattr(stage, "name", "") in ("UNSCALED", "STEPPED"):
            return 1.0
        return float(scaler.get_scale())

    def _smooth(self, loss_v: float, g_v: float) -> None:
        """Smoothed over about ten steps; decides where the smallest eigenvalue is measured."""
        if _finite(loss_v) and _finite(g_v):
            self._loss_ema = (
                loss_v if self._loss_ema is None else 0.9 * self._loss_ema + 0.1 * loss_v
            )
            self._grad_ema = g_v if self._grad_ema is None else 0.9 * self._grad_ema + 0.1 * g_v
            self._grad_ema_max = max(self._grad_ema_max, self._grad_ema)

    def _reduce(self, record: dict[str, Any], batch: tuple[Any, Any] | None) -> None:
        """The loss of the global batch (the ranks' mean, as DDP averages gradients), and the
        local gradients' mean squared norm for the noise tier; one collective. The gradient in
        ``.grad`` is already DDP's average, so its norm needs none."""
        from optiscope.problem import distributed as _distributed

        local = self._local.collect() if self._local is not None and self._local.armed else None
        b = _batch_size(batch)
        vals = _distributed.sums(
            [
                self._loss_v,
                local if local is not None else 0.0,
                float(local is not None and b > 0),
                float(b),
            ],
            self.params[0],
        )
        w = torch.distributed.get_world_size()
        self._loss_v = vals[0] / w
        if "loss" in record:
            record["loss"] = self._loss_v
        # Every rank holds a local gradient of the same batch size: else no noise estimate.
        self._ranks = (b, vals[1] / w) if vals[2] == w and vals[3] == w * b else None

    @contextlib.contextmanager
    def _aside(self) -> Iterator[None]:
        """Eval mode and forked random generators, restored exactly on exit."""
        modes = [(m, m.training) for m in self.model.modules()]
        devices = sorted({p.device.index or 0 for p in self.params if p.device.type == "cuda"})
        try:
            with torch.random.fork_rng(devices=devices):
                self.model.eval()
                yield
        finally:
            for m, mode in modes:
                m.training = mode

    def _measure(
        self,
        due: list[str],
        batch: tuple[Any, Any],
        values: dict[str, Any],
        recorded: tuple[Tensor, float] | None = None,
    ) -> None:
        from optiscope.problem import distributed as _distributed
        from optiscope.problem.problem import Problem
        from optiscope.problem.recurrent import hidden_state_gradients
        from optiscope.quantities.step import (
            gradient_noise,
            noise_from_moments,
            noise_from_ranks,
            stability_threshold,
        )

        inputs, targets = batch
        ids = {id(p) for p in self.params}
        if "noise" in due and self._dist:
            if self._ranks is not None:
                b, mean_local_sq = self._ranks
                q = noise_from_ranks(
                    b, torch.distributed.get_world_size(), mean_local_sq, self._grad_norm**2
                )
                values.update({k: q[k] for k in _NOISE})
            due = [t for t in due if t != "noise"]
            if not due:
                return
        if "noise" in due and recorded is not None:
            sq, scale = recorded
            q = noise_from_moments(len(sq), float(sq.sum()), (scale * self._grad_norm) ** 2)
            values.update({k: q[k] for k in _NOISE})
            due = [t for t in due if t != "noise"]
            if not due:
                return
        with self._aside():
            # The training step has just run the model on this batch: no need to check it.
            problem: Any = Problem(
                self._module,
                self.loss_fn,
                (inputs, targets),
                params=lambda n, p: id(p) in ids,
                check=False,
            )
            if self._dist:
                problem = _distributed.ReducedProblem(problem)
            if "curvature" in due:
                g = problem.cached_gradient()
                assert g is not None  # one batch: the graph is cached
                hg = problem.hvp(g)
                gtg, gthg = float(torch.dot(g, g)), float(torch.dot(g, hg))
                values.update(gtg=gtg, gthg=gthg)
                values["curvature_along_gradient"] = gthg / gtg if gtg > 0 else float("nan")
                if self.optimizer is not None:
                    th = stability_threshold(self.optimizer)
                    if not th.preconditioned:
                        values["gradient_threshold"] = th.value
                self._curv = (problem, g, hg)
            if "sharpness" in due:
                self._sharpness(problem, values)
            if "noise" in due:
                q = gradient_noise(problem, inputs, targets)
                values.update({k: q[k] for k in _NOISE})
            if "recurrent" in due and self._has_rnn:
                found = hidden_state_gradients(self._module, self.loss_fn, inputs, targets)
                if self._dist:
                    found = _distributed.hidden_norms(found, self.params[0])
                for module, norms in found.items():
                    self._extra.append(
                        {
                            "type": "hidden_gradients",
                            "step": self.step_count,
                            "module": module,
                            "norms": norms,
                        }
                    )

    def _sharpness(self, problem: Any, values: dict[str, Any]) -> None:
        """The top eigenvalue of H (of P^-1 H under Adam) against the stability threshold, and
        the smallest eigenvalue of H where the loss is flat or the gradient small (a plateau:
        minimum or saddle?)."""
        from optiscope.linalg.lanczos import lanczos
        from optiscope.quantities.step import adam_preconditioner, sharpness, stability_threshold

        prec = None
        if self.optimizer is not None:
            th = stability_threshold(self.optimizer)
            if th.preconditioned:
                prec = adam_preconditioner(self.optimizer, self.params)
            else:
                prec = _group_preconditioner(self.optimizer, self.params)
            values["stability_threshold"] = th.value
            values["threshold_preconditioned"] = prec is not None
        plateau = self._at_plateau()
        hessian = problem.hessian_operator()
        start = problem.hvp_count
        # Lanczos starts from the last measurement's eigenvectors: the spectrum moves little
        # between measurements, and a warm start converges in a few products.
        if prec is None:
            which = "both" if plateau else "largest"
            # The top eigenvalue to 1% (an error bound: against 2/lr that is plenty); both ends
            # to 0.1% of it, as the smallest is judged against a small fraction of the largest.
            tol = 1e-3 if plateau else 1e-2
            res = lanczos(hessian, 1, which, tol=tol, max_steps=30, v0=self._start(problem, which))
            self._warm.update(zip(("largest", "smallest"), res.vectors.T))
            values["sharpness"] = float(res.values[0])
            if plateau:
                values["lambda_min"] = float(res.values[-1])
        else:
            top = sharpness(
                problem, preconditioner=prec, tol=1e-2, v0=self._start(problem, "preconditioned")
            )
            self._warm["preconditioned"] = top["vector"]
            values["sharpness"] = top["value"]
            if plateau:
                low = lanczos(
                    hessian,
                    1,
                    "smallest",
                    tol=1e-3,
                    max_steps=30,
                    v0=self._start(problem, "smallest"),
                )
                self._warm["smallest"] = low.vectors[:, 0]
                values["lambda_min"] = float(low.values[0])
        values["sharpness_hvps"] = problem.hvp_count - start

    def _at_plateau(self) -> bool:
        """The smoothed loss changed by less than 5% per 100 steps since the last sharpness
        measurement, or the smoothed gradient norm fell below a tenth of its largest value."""
        last, self._last_sharpness = self._last_sharpness, (self.step_count, self._loss_ema)
        if self._loss_ema is None or self._grad_ema is None:
            return False
        if self._grad_ema < 0.1 * self._grad_ema_max:
            return True
        if last is None or last[1] is None:
            return False
        steps = max(self.step_count - last[0], 1)
        return abs(self._loss_ema - last[1]) <= 5e-4 * steps * max(abs(last[1]), 1e-12)

    def _start(self, problem: Any, which: str) -> Tensor | None:
        """The last eigenvectors plus a random part, which keeps Lanczos from missing a new
        extreme direction orthogonal to the old ones."""
        keys = ("largest", "smallest") if which == "both" else (which,)
        old = [self._warm[k] for k in keys if k in self._warm]
        if not old or any(v.shape != (problem.num_params,) for v in old):
            return None
        gen = torch.Generator().manual_seed(self.step_count)
        r = torch.randn(problem.num_params, generator=gen, dtype=torch.float64)
        v = sum(u.to(problem.dtype) / u.norm() for u in old)
        return v + 0.5 * len(old) ** 0.5 * r.to(problem.device, problem.dtype) / r.norm()

    def _after_update(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._pending is None:
            return
        if self._curv is not None:
            problem, g, hg = self._curv
            self._curv = None
            with torch.no_grad():
                new = torch.cat([p.detach().reshape(-1) for p in self.params]).to(problem.dtype)
            d = new - problem.point
            with self._aside():
                q = self._step_change(problem, g, hg, d)
            self._pending["values"].update(q)
        if not self._snapshot or self._before is None:
            self._flush()
            return
        with torch.no_grad():
            # In place: the buffer is refilled from the parameters at the next step anyway.
            torch._foreach_sub_(self._before, self._detached)
            unorm = _norm(self._before)
        values = self._pending["values"]
        if _finite(unorm):
            self.path_length += unorm
        if "update_norm" in self.quantities:
            values["update_norm"] = unorm
        if "update_ratio" in self.quantities:
            pnorm = values.get("param_norm", 0.0)
            values["update_ratio"] = unorm / pnorm if pnorm else float("inf")
        self._flush()

    @staticmethod
    def _step_change(problem: Any, g: Tensor, hg: Tensor, d: Tensor) -> dict[str, float]:
        """Second-order predicted change g.d + d^T H d / 2 against the actual change."""
        # Plain SGD steps along the gradient: with d = a g + e, d^T H d = a^2 g^T H g
        # + 2 a e^T H g + e^T H e, and the last term is negligible when |e| <= 1e-4 |d|.
        gg = float(torch.dot(g, g))
        a = float(torch.dot(d, g)) / gg if gg > 0 else 0.0
        e = d - a * g
        if gg > 0 and float(e.norm()) <= 1e-4 * float(d.norm()):
            dhd = a * a * float(torch.dot(g, hg)) + 2 * a * float(torch.dot(e, hg))
        else:
            dhd = float(torch.dot(d, problem.hvp(d)))
        predicted = float(torch.dot(g, d)) + 0.5 * dhd
        try:
            actual = problem.loss(problem.point + d) - problem.loss()
        except NonFiniteError:  # the step threw the loss to infinity: a cliff, recorded as such
            actual = math.inf
        return {"predicted_change": predicted, "actual_change": actual}

    def _flush(self) -> None:
        extra, self._extra = self._extra, []
        if self._pending is None:
            for r in extra:
                self._emit(r)
            return
        record, self._pending = self._pending, None
        values = record["values"]
        if "param_norm" in values and "param_norm" not in self.quantities:
            del values["param_norm"]
        self._emit(record)
        for r in extra:
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

    def close(self) -> None:
        """Write what is pending, remove the hooks, close the records file and write the
        findings next to it (``findings.json``)."""
        self._flush()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._recorder is not None:
            self._recorder.disarm()
        if self._local is not None:
            self._local.disarm()
        self._before = None
        for sink in self._sinks:
            sink.close()
        self._sinks = []
        if self._writer is not None:
            self._writer.close()
            path, self._writer = self._writer.path, None
            from optiscope.runner.run import write_findings

            self.findings = write_findings(path.parent)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _group_preconditioner(optimizer: Any, params: list[Tensor]) -> Tensor | None:
    """Parameter groups with different learning rates step ``lr_i g_i``: stable while the top
    eigenvalue of ``P^-1 H`` stays below the first group's threshold, with ``P = lr_0 / lr_i``
    per parameter. None when every parameter has the first group's rate."""
    groups = optimizer.param_groups
    lr0 = float(groups[0]["lr"])
    rate = {id(p): float(g["lr"]) for g in groups for p in g["params"]}
    rates = [rate.get(id(p), lr0) for p in params]
    if lr0 <= 0 or all(r == lr0 for r in rates):
        return None
    # A zero rate gives an infinite P: that parameter does not move, and P^-1/2 is 0 there.
    return torch.cat(
        [
            torch.full((p.numel(),), lr0 / r if r > 0 else math.inf, dtype=torch.float64)
            for p, r in zip(params, rates)
        ]
    ).to(params[0].device)


def _batch_size(batch: Any) -> int:
    """The number of samples in a batch's targets (0 when it cannot be told)."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        t = batch[1]
        if isinstance(t, Tensor) and t.ndim:
            return int(t.shape[0])
    return 0


def _finite(x: Any) -> bool:
    return isinstance(x, float) and x == x and x not in (float("inf"), float("-inf"))
