"""Experiments: a training run described as data, loaded by name or from the user's own code."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from optiscope._errors import OptiscopeError


class ExperimentError(OptiscopeError):
    """An experiment that cannot be found, loaded or run."""


@dataclass
class Experiment:
    """A training run as data.

    ``data`` is a re-iterable collection of ``(inputs, targets)`` batches, cycled until
    ``steps`` optimizer steps have run. ``eval_data`` (default: the first batch) is where the
    end-of-run analyses measure the final point. ``config`` is recorded in the header.
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

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise ExperimentError(
                f"Experiment.model must be a torch.nn.Module, got a {type(self.model).__name__}"
            )
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ExperimentError(f"Experiment.steps must be a positive int, got {self.steps!r}")
        if isinstance(self.data, Iterator):
            raise ExperimentError(
                f"Experiment.data is an iterator ({type(self.data).__name__}) that can be read "
                "only once; training cycles over it. Pass a list of batches or a DataLoader"
            )
        owned = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        trainable = [n for n, p in self.model.named_parameters() if p.requires_grad]
        if not trainable:
            raise ExperimentError("the model has no trainable parameters")
        if not any(id(p) in owned for p in self.model.parameters()):
            raise ExperimentError(
                "the optimizer holds none of the model's parameters: build it with "
                "optimizer = torch.optim.SGD(model.parameters(), ...) on this model"
            )

    def batches(self) -> Iterator[tuple[Any, Any]]:
        """Batches, cycling over ``data``, one per optimizer step."""
        produced = 0
        while produced < self.steps:
            empty = True
            for batch in self.data:
                empty = False
                if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                    raise ExperimentError(
                        f"each batch must be a pair (inputs, targets), got a {type(batch).__name__}"
                    )
                yield batch[0], batch[1]
                produced += 1
                if produced == self.steps:
                    return
            if empty:
                raise ExperimentError("Experiment.data yielded no batch")


def _call_factory(fn: Callable[..., Any], seed: int, where: str) -> Experiment:
    torch.manual_seed(seed)
    params = inspect.signature(fn).parameters
    exp = fn(seed=seed) if "seed" in params else fn()
    if not isinstance(exp, Experiment):
        raise ExperimentError(
            f"{where} returned a {type(exp).__name__}, expected an optiscope.Experiment: end "
            "the function with return optiscope.Experiment(model, loss_fn, data, optimizer, steps)"
        )
    exp.seed = seed
    return exp


def load_experiment(spec: str, seed: int = 0) -> Experiment:
    """A built-in name, ``path/to/file.py:function`` or ``package.module:function``."""
    from optiscope._builtins import BUILTINS

    if spec in BUILTINS:
        return _call_factory(BUILTINS[spec], seed, f"built-in experiment {spec!r}")
    if ":" not in spec:
        raise ExperimentError(
            f"unknown experiment {spec!r}: expected a built-in name ({', '.join(BUILTINS)}), "
            "path/to/file.py:function or package.module:function"
        )
    where, func = spec.rsplit(":", 1)
    if where.endswith(".py") or os.sep in where:
        if not os.path.isfile(where):
            raise ExperimentError(f"experiment file {where!r} not found (from {spec!r})")
        mod_name = f"optiscope_user_{abs(hash(os.path.abspath(where)))}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, where)
        if loader_spec is None or loader_spec.loader is None:
            raise ExperimentError(f"cannot import {where!r} as a Python file")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        loader_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as err:
            raise ExperimentError(f"cannot import module {where!r} (from {spec!r}): {err}") from err
    fn = getattr(module, func, None)
    if not callable(fn):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ExperimentError(f"{where!r} has no function {func!r}: expected one of {names[:10]}")
    return _call_factory(fn, seed, f"{spec!r}")
