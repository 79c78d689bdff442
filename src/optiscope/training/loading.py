"""Loading an experiment by name: a built-in, ``path/to/file.py:function`` or
``package.module:function``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import torch

from optiscope.problem.problem import first_line
from optiscope.training.builtins import BUILTINS
from optiscope.training.experiment import Experiment, ExperimentError


def _call_factory(fn: Callable[..., Any], seed: int, where: str) -> Experiment:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: call it as it is
        params = {}  # type: ignore[assignment]
    required = [
        name
        for name, p in params.items()
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and name != "seed"
    ]
    if required:
        raise ExperimentError(
            f"{where} takes the parameters {required}, but an experiment function is called "
            "with no argument or only seed=: define it as def make(seed=0) and give the other "
            "parameters defaults"
        )
    torch.manual_seed(seed)
    try:
        exp = fn(seed=seed) if "seed" in params else fn()
    except ExperimentError as err:
        raise ExperimentError(f"{where}: {err}") from err
    except Exception as err:
        raise ExperimentError(
            f"{where} raised {first_line(err)} (run with --debug for the traceback)"
        ) from err
    if not isinstance(exp, Experiment):
        raise ExperimentError(
            f"{where} returned a {type(exp).__name__}, expected an optiscope.Experiment: end "
            "the function with return optiscope.Experiment(model, loss_fn, data, optimizer, steps)"
        )
    exp.seed = seed
    return exp


def load_experiment(spec: str, seed: int = 0) -> Experiment:
    """A built-in name, ``path/to/file.py:function`` or ``package.module:function``."""
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
        # As `python file.py` does: the file's folder first on the path, so that it imports
        # its siblings (``import helper``), at load time and later, when its factory runs.
        folder = os.path.dirname(os.path.abspath(where))
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            loader_spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[mod_name]
            raise ExperimentError(
                f"cannot load the experiment file {where!r}: it raised {first_line(err)} "
                "(run with --debug for the traceback)"
            ) from err
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as err:
            raise ExperimentError(
                f"cannot import module {where!r} (from {spec!r}): {err}. Install it, or run from "
                "the folder that holds it, or name a file instead: path/to/file.py:function"
            ) from err
        except Exception as err:
            raise ExperimentError(
                f"importing module {where!r} raised {first_line(err)} (run with --debug for the "
                "traceback)"
            ) from err
    fn = getattr(module, func, None)
    if not callable(fn):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ExperimentError(
            f"{where!r} has no function {func!r}: expected one of {names[:10]}. Name the "
            "function that returns the Experiment after the colon"
        )
    return _call_factory(fn, seed, f"{spec!r}")
