"""The Monitor inside ``lightning.pytorch.Trainer.fit``: one callback.

::

    from optiscope.integrations.lightning import OptiscopeCallback

    trainer = L.Trainer(callbacks=[OptiscopeCallback("runs/exp1")])
    trainer.fit(module, loader)     # writes runs/exp1/records.jsonl and findings.json

Where the step's loss comes from: ``on_before_backward`` receives the very tensor Lightning
differentiates: the training step's loss divided by ``accumulate_grad_batches`` (with manual
optimization, what ``manual_backward`` receives; with float16 AMP, the callback divides the loss
scale back out). The sum of those tensors since the last optimizer step is the loss whose gradient
is in ``.grad`` when the optimizer steps: with gradient accumulation it is the mean loss of the
accumulated batches. ``on_before_optimizer_step`` comes after the backward passes and before the
update (and before gradient clipping), which is where ``Monitor.step`` belongs. Both are public
hooks; no method of the module or the trainer is wrapped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from optiscope.diagnosis import Finding
from optiscope.monitor import NEEDS_BATCH, PRESETS, Monitor, MonitorError

__all__ = ["OptiscopeCallback", "default_batch_fn"]


def default_batch_fn(batch: Any) -> tuple[Any, Any]:
    """The batch itself when it is an ``(inputs, targets)`` pair."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise MonitorError(
        f"the curvature tiers need the batch as (inputs, targets), got a {type(batch).__name__}"
        f"{f' of length {len(batch)}' if isinstance(batch, (tuple, list)) else ''}: pass "
        "OptiscopeCallback(..., batch_fn=lambda batch: (inputs, targets))"
    )


def _planned_steps(trainer: Any) -> int | None:
    """The optimizer steps the trainer plans (for the curvature preset to spread its tiers
    over), None when it cannot tell (an infinite or unsized loader)."""
    try:
        planned = trainer.estimated_stepping_batches
    except Exception:  # Lightning raises when the loader has no length
        return None
    if isinstance(planned, (int, float)) and math.isfinite(planned) and planned >= 1:
        return int(planned)
    return None


class OptiscopeCallback(pl.Callback):
    """Measure a ``Trainer.fit`` run with :class:`optiscope.Monitor` and diagnose it at the end.

    Parameters
    ----------
    out:
        The folder for ``records.jsonl`` and ``findings.json`` (written by global rank 0 only;
        every rank measures).
    preset, every:
        As for :class:`optiscope.Monitor`; ``"curvature"`` and ``"full"`` need ``loss_fn``.
    loss_fn:
        ``loss_fn(module(inputs), targets)``, the training loss as a function of the module's
        output; needed by the tiers beyond the cheap one.
    batch_fn:
        ``batch_fn(batch) -> (inputs, targets)`` for those tiers (default: the batch itself when
        it is a pair). With gradient accumulation they measure on the last batch of the step.
    header:
        Extra facts for the records header.
    overwrite:
        Replace a run already in ``out`` (its records, findings and report); by default a
        folder that holds one is refused, as by :class:`optiscope.Monitor`.

    After ``fit``, :attr:`findings` holds the findings (empty on ranks other than 0).
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        preset: str = "default",
        loss_fn: Callable[[Any, Any], Tensor] | None = None,
        batch_fn: Callable[[Any], tuple[Any, Any]] | None = None,
        every: Mapping[str, int] | None = None,
        header: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        super().__init__()
        # Said here, in the callback's own terms: the Monitor it builds later would name itself.
        tiers = {**PRESETS.get(preset, {}), **dict(every or {})}
        needing = [t for t in NEEDS_BATCH if tiers.get(t)]
        if needing and loss_fn is None:
            raise MonitorError(
                f"the tiers {needing} (preset {preset!r}) need the loss function: pass "
                f"OptiscopeCallback(out, preset={preset!r}, loss_fn=...), the training loss of the "
                "module's outputs and the batch's targets, e.g. "
                "loss_fn=torch.nn.functional.cross_entropy"
            )
        self.out = os.fspath(out)
        self.preset = preset
        self.loss_fn = loss_fn
        self.batch_fn = batch_fn or default_batch_fn
        self.every = dict(every) if every is not None else None
        self.header = dict(header or {})
        self.overwrite = overwrite
        self.monitor: Monitor | None = None
        self.findings: list[Finding] | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._loss: Tensor | None = None
        self._batch: Any = None

    # -- start and end ---------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.findings = None
        # Every rank runs a Monitor: under DDP it averages over the ranks, and rank 0 writes.
        if not trainer.optimizers:
            raise MonitorError(
                "OptiscopeCallback needs an optimizer: configure_optimizers returned none"
            )
        self._optimizer = trainer.optimizers[0]
        header = {
            "experiment": type(pl_module).__name__,
            "integration": "lightning",
            "lightning": pl.__version__,
            "preset": self.preset,
            "optimizer": type(self._optimizer).__name__,
            "optimizers": len(trainer.optimizers),
            "max_epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            "gradient_clip_val": trainer.gradient_clip_val,
            "precision": str(trainer.precision),
            "world_size": trainer.world_size,
            **self.header,
        }
        self.monitor = Monitor(
            pl_module,
            self._optimizer,
            out=self.out,
            header=header,
            loss_fn=self.loss_fn,
            preset=self.preset,
            every=self.every,
            overwrite=self.overwrite,
            steps=_planned_steps(trainer),
        )
        self._loss = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor is None:
            return
        self._close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._close()  # the records written so far stay on disk

    def _close(self) -> None:
        if self.monitor is not None:
            self.findings = self.monitor.close()  # also written to findings.json
        self.monitor = None
        self._optimizer = None
        self._loss = None
        self._batch = None

    # -- each step -------------------------------------------------------------------------------

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.monitor is not None:
            self._batch = batch

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor
    ) -> None:
        if self.monitor is None:
            return
        loss = loss.detach()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and scaler.is_enabled():  # float16 AMP: the scaled loss
            loss = loss / scaler.get_scale()
        self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        if self.monitor is None or optimizer is not self._optimizer or self._loss is None:
            return  # another optimizer, or a step without a backward pass (nothing to record)
        loss, self._loss = self._loss, None
        batch = None
        if self.monitor.needs_batch:
            batch = self.batch_fn(self._batch)
        self.monitor.step(loss, batch=batch)
