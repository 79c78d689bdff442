"""The Monitor inside ``transformers.Trainer``: one callback.

::

    from optiscope.integrations.huggingface import OptiscopeTrainerCallback

    callback = OptiscopeTrainerCallback("runs/exp1")
    trainer = Trainer(model, args, train_dataset=data, callbacks=[callback])
    trainer.train()                 # writes runs/exp1/records.jsonl and findings.json

Where the step's loss comes from: a callback receives the model and the optimizer but not the
Trainer, so it cannot read the loss the Trainer keeps (``training_step`` returns it and
``_tr_loss`` sums it between logging steps, reset at each one). The callback instead registers a
forward hook on the model (never replacing ``forward``) that reads the ``loss`` the model returns
(``outputs["loss"]``, or ``outputs[0]`` for a tuple) on training forwards, the loss
``Trainer.compute_loss`` takes by default. It combines the forwards of one optimizer step as the
Trainer does before ``backward``: their mean, or their sum when the model received
``num_items_in_batch`` (the model then already normalised each micro-batch by the whole step's
token count). ``on_pre_optimizer_step`` comes after the backward passes and the gradient clipping
and right before ``optimizer.step()``, where ``Monitor.step`` belongs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
import transformers
from torch import Tensor, nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from optiscope.diagnosis import Finding
from optiscope.monitor import Monitor, MonitorError

__all__ = ["OptiscopeTrainerCallback"]


def _unwrap(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's ``AcceleratedOptimizer`` (where its hooks run)."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


def _model_loss(outputs: Any) -> Tensor | None:
    loss = None
    if isinstance(outputs, Mapping):
        loss = outputs.get("loss")
    elif isinstance(outputs, (tuple, list)) and outputs:
        loss = outputs[0]
    return loss if isinstance(loss, Tensor) and loss.numel() == 1 else None


class OptiscopeTrainerCallback(TrainerCallback):
    """Measure a ``Trainer.train`` run with :class:`optiscope.Monitor` and diagnose it at the end.

    Parameters
    ----------
    out:
        The folder for ``records.jsonl`` and ``findings.json`` (written by the world process zero
        only).
    preset, every:
        As for :class:`optiscope.Monitor`; ``"curvature"`` and ``"full"`` need ``loss_fn`` and
        ``batch_fn``.
    loss_fn:
        ``loss_fn(model(inputs), targets)``, the training loss as a function of the model's output.
        Also used for the recorded loss when the model returns none.
    batch_fn:
        ``batch_fn(batch) -> (inputs, targets)``, where ``batch`` is the dict of keyword arguments
        the Trainer passes to the model. With gradient accumulation the tiers measure on the last
        micro-batch of the step.
    header:
        Extra facts for the records header.
    overwrite:
        Replace a run already in ``out`` (its records, findings and report); by default a
        folder that holds one is refused, as by :class:`optiscope.Monitor`.

    After ``train``, :attr:`findings` holds the findings (empty on processes other than 0).
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
        self.out = os.fspath(out)
        self.preset = preset
        self.loss_fn = loss_fn
        self.batch_fn = batch_fn
        self.every = dict(every) if every is not None else None
        self.header = dict(header or {})
        self.overwrite = overwrite
        self.monitor: Monitor | None = None
        self.findings: list[Finding] | None = None
        self._handle: Any = None
        self._losses: list[Tensor] = []
        self._summed = False
        self._batch: Any = None
        self._inside = False  # the Monitor's own forwards are not training forwards

    # -- start and end ---------------------------------------------------------------------------

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self.findings = None
        # Every process runs a Monitor: under DDP it averages over the ranks, and rank 0 writes.
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        if not isinstance(model, nn.Module) or optimizer is None:
            raise MonitorError(
                "OptiscopeTrainerCallback expected the model and the optimizer from the Trainer at "
                f"train begin, got model={type(model).__name__} and "
                f"optimizer={type(optimizer).__name__}; is it passed as Trainer(callbacks=[...])?"
            )
        if self.preset != "default" and self.batch_fn is None:
            raise MonitorError(
                f"preset={self.preset!r} needs the batch as (inputs, targets): pass "
                "OptiscopeTrainerCallback(..., batch_fn=lambda batch: (inputs, targets)) where "
                "batch is the dict of the model's keyword arguments"
            )
        opt = _unwrap(optimizer)
        header = {
            "experiment": type(model).__name__,
            "integration": "transformers",
            "transformers": transformers.__version__,
            "preset": self.preset,
            "optimizer": type(opt).__name__,
            "max_steps": state.max_steps,
            "num_train_epochs": args.num_train_epochs,
            "learning_rate": args.learning_rate,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "max_grad_norm": args.max_grad_norm,
            "seed": args.seed,
            "world_size": args.world_size,
            **self.header,
        }
        self.monitor = Monitor(
            model,
            opt,
            out=self.out,
            header=header,
            loss_fn=self.loss_fn,
            preset=self.preset,
            every=self.every,
            overwrite=self.overwrite,
            # The curvature preset's tiers spread over the planned run.
            steps=state.max_steps
            if isinstance(state.max_steps, int) and state.max_steps > 0
            else None,
        )
        self._handle = model.register_forward_hook(self._capture, with_kwargs=True)
        self._losses = []

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if self.monitor is None:
            return
        self.close()

    def close(self) -> None:
        """Remove the hooks and close the records (``on_train_end`` does it; call it after a
        ``train`` that raised)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.monitor is not None:
            self.findings = self.monitor.close()  # also written to findings.json
        self.monitor = None
        self._losses = []
        self._batch = None

    # -- each step -------------------------------------------------------------------------------

    def _capture(self, module: nn.Module, args: Any, kwargs: Any, outputs: Any) -> None:
        if self._inside or not module.training or not torch.is_grad_enabled():
            return  # evaluation, or the Monitor's own measurements
        # The tiers run the model on this batch again: without the Trainer's token count (a 0-d
        # tensor, not a per-sample input) the model takes its own mean over the batch.
        batch = {k: v for k, v in kwargs.items() if k != "num_items_in_batch"} if kwargs else args
        loss = _model_loss(outputs)
        if loss is None and self.loss_fn is not None and self.batch_fn is not None:
            with torch.no_grad():
                loss = self.loss_fn(outputs, self.batch_fn(batch)[1])
        if loss is None:
            raise MonitorError(
                f"{type(module).__name__} returned no loss (expected outputs['loss'] or "
                f"outputs[0], got a {type(outputs).__name__}): pass OptiscopeTrainerCallback(..., "
                "loss_fn=..., batch_fn=...) to compute it from the outputs"
            )
        self._losses.append(loss.detach().reshape(()))
        self._summed = "num_items_in_batch" in (kwargs or {})
        self._batch = batch

    def on_pre_optimizer_step(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if self.monitor is None or not self._losses:
            return
        losses, self._losses = self._losses, []
        loss = torch.stack(losses).sum() if self._summed else torch.stack(losses).mean()
        if len(losses) == 1:
            loss = losses[0]
        batch = None
        if self.batch_fn is not None and self.monitor.needs_batch:
            batch = self.batch_fn(self._batch)
        self._inside = True
        try:
            self.monitor.step(loss, batch=batch)
        finally:
            self._inside = False
