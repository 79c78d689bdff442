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

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from optiscope._errors import OptiscopeError
from optiscope._records import RecordWriter, environment

CHEAP = ("loss", "grad_norm", "param_norm", "update_norm", "update_ratio", "nonfinite")


class MonitorError(OptiscopeError):
    """The Monitor was used in a way it cannot measure."""


def _norm(tensors: list[Tensor]) -> Tensor:
    if not tensors:
        return torch.zeros(())
    norms = list(torch._foreach_norm(tensors))
    if any(n.dtype != torch.float32 for n in norms):
        norms = [n.float() for n in norms]
    return torch.linalg.vector_norm(torch.stack(norms))


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
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        out: str | os.PathLike[str] | None = None,
        quantities: tuple[str, ...] | list[str] | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise MonitorError(f"model must be a torch.nn.Module, got a {type(model).__name__}")
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise MonitorError(
                "the model has no trainable parameters: expected at least one with "
                "requires_grad=True"
            )
        chosen = tuple(CHEAP if quantities is None else quantities)
        unknown = [q for q in chosen if q not in CHEAP]
        if unknown:
            raise MonitorError(f"unknown quantities {unknown}: expected names from {list(CHEAP)}")
        self.quantities = chosen
        self.optimizer = optimizer
        self.history: list[dict[str, Any]] = []
        self.step_count = 0
        self._before: list[Tensor] | None = None
        self._pending: dict[str, Any] | None = None
        self._hook = None
        wants_update = any(q in chosen for q in ("update_norm", "update_ratio"))
        if optimizer is not None and wants_update:
            self._hook = optimizer.register_step_post_hook(self._after_update)
        self._writer: RecordWriter | None = None
        if out is not None:
            facts = {**environment(), "device": str(self.params[0].device)}
            facts.update(dict(header or {}))
            self._writer = RecordWriter(os.path.join(os.fspath(out), "records.jsonl"), facts)

    # -- the three calls a loop makes ------------------------------------------------------------

    def step(self, loss: Tensor | float) -> None:
        """Record the step whose gradients are in ``.grad``; call before ``optimizer.step()``."""
        self._flush()
        grads = [p.grad for p in self.params if p.grad is not None]
        parts: dict[str, Tensor] = {}
        loss_t = loss.detach().float().reshape(()) if isinstance(loss, Tensor) else None
        if "loss" in self.quantities or "nonfinite" in self.quantities:
            parts["loss"] = loss_t if loss_t is not None else torch.tensor(float(loss))
        with torch.no_grad():
            gnorm = _norm([g for g in grads if not g.is_sparse])
            if "grad_norm" in self.quantities or "nonfinite" in self.quantities:
                parts["grad_norm"] = gnorm
            if "param_norm" in self.quantities or "update_ratio" in self.quantities:
                parts["param_norm"] = _norm([p.detach() for p in self.params])
            if self._hook is not None:
                if self._before is None:
                    self._before = [p.detach().clone() for p in self.params]
                else:
                    torch._foreach_copy_(self._before, [p.detach() for p in self.params])
        names = list(parts)
        device = parts[names[0]].device if names else torch.device("cpu")
        values = torch.stack([parts[n].to(device) for n in names]).tolist() if names else []
        record = dict(zip(names, values, strict=True))
        if "nonfinite" in self.quantities:
            bad = [n for n in ("loss", "grad_norm") if n in record and not _finite(record[n])]
            record["nonfinite"] = bad
        self._pending = {"type": "step", "step": self.step_count, "values": record}
        self.step_count += 1
        if self._hook is None:
            self._flush()

    def _after_update(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._pending is None or self._before is None:
            return
        with torch.no_grad():
            # In place: the buffer is refilled from the parameters at the next step anyway.
            torch._foreach_sub_(self._before, [p.detach() for p in self.params])
            unorm = float(_norm(self._before))
        values = self._pending["values"]
        if "update_norm" in self.quantities:
            values["update_norm"] = unorm
        if "update_ratio" in self.quantities:
            pnorm = values.get("param_norm", 0.0)
            values["update_ratio"] = unorm / pnorm if pnorm else float("inf")
        self._flush()

    def _flush(self) -> None:
        if self._pending is None:
            return
        record, self._pending = self._pending, None
        values = record["values"]
        if "param_norm" in values and "param_norm" not in self.quantities:
            del values["param_norm"]
        self.history.append(record)
        if self._writer is not None:
            self._writer.write(record)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append a record of the caller's own (an event, an analysis) to the log."""
        self._flush()
        self.history.append(dict(record))
        if self._writer is not None:
            self._writer.write(record)

    def close(self) -> None:
        """Write what is pending, remove the optimizer hook and close the records file."""
        self._flush()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._before = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finite(x: Any) -> bool:
    return isinstance(x, float) and x == x and x not in (float("inf"), float("-inf"))
