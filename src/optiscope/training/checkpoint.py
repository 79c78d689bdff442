"""Load a checkpoint's weights into a model, safely.

A checkpoint is read with ``torch.load(..., weights_only=True)``: only tensors and plain
containers are unpickled, so a file that holds arbitrary Python objects (which could run code
when unpickled) is refused, never executed. Every refusal is a :class:`CheckpointError` that says
what was expected, what the file holds and what to do.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from optiscope.core.errors import OptiscopeError

# Keys under which training scripts commonly nest the model's state_dict.
NESTED_KEYS = ("state_dict", "model_state_dict", "model")
# Keys or parameters named in a message, at most.
_NAMED = 5

_RESAVE = "Re-save the weights alone from code you trust with torch.save(model.state_dict(), path)"


class CheckpointError(OptiscopeError):
    """A checkpoint file that cannot be loaded into the model as weights."""


def _names(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_NAMED])
    more = len(keys) - _NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _read(path: Path) -> Any:
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a file"
        raise CheckpointError(
            f"checkpoint {str(path)!r} {what}: expected a file written by "
            "torch.save(model.state_dict(), path)"
        )
    try:
        with warnings.catch_warnings():
            # Torch warns about pickle protocols it was not written with; the load still decides.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" not in str(err).lower():
            raise CheckpointError(
                f"checkpoint {str(path)!r} is not a torch file ({str(err).strip()[:80]}): "
                "expected a file written by torch.save(model.state_dict(), path)"
            ) from None
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds arbitrary Python objects, not only tensors, and "
            "optiscope loads only weights (torch.load with weights_only=True), because "
            f"unpickling such objects can run code. {_RESAVE}"
        ) from None
    except Exception as err:  # torch raises many kinds on a file that is not its own
        reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a torch file ({reason[:80]}): expected a file "
            "written by torch.save(model.state_dict(), path)"
        ) from None


def _state_dict(obj: Any, path: Path) -> Mapping[str, torch.Tensor]:
    def is_state(x: Any) -> bool:
        return (
            isinstance(x, Mapping)
            and bool(x)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in x.items())
        )

    if is_state(obj):
        return obj
    if isinstance(obj, Mapping):
        for key in NESTED_KEYS:
            if is_state(obj.get(key)):
                return obj[key]
    got = (
        f"a dict with keys {_names([str(k) for k in obj])}"
        if isinstance(obj, Mapping)
        else f"a {type(obj).__name__}"
    )
    raise CheckpointError(
        f"checkpoint {str(path)!r} holds {got}: expected a state_dict (parameter names to "
        f"tensors) or a dict holding one under {' or '.join(repr(k) for k in NESTED_KEYS)}. "
        f"{_RESAVE}"
    )


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load the weights in ``path`` into ``model`` (in place).

    ``path`` holds a state_dict, or a dict with one under ``"state_dict"``,
    ``"model_state_dict"`` or ``"model"`` (a training script's checkpoint); a state_dict saved
    from a ``DistributedDataParallel`` wrapper (every key starting with ``module.``) is accepted.
    The file is read with ``torch.load(..., weights_only=True)``. Raises :class:`CheckpointError`
    when the file is missing, is not a torch file, holds arbitrary Python objects, or its names
    or shapes do not match the model's; the model is left unchanged then.
    """
    path = Path(path)
    state = dict(_state_dict(_read(path), path))
    own = model.state_dict()
    prefix = "module."
    if all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in own):
        state = {k[len(prefix) :]: v for k, v in state.items()}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing from the file ({_names(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} the model does not have ({_names(unexpected)})")
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the model: of its parameter names, "
            f"{' and '.join(parts)}. Expected the state_dict of the same architecture; check "
            "that the experiment builds the model the checkpoint was saved from"
        )
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()]
    wrong = [w for w in wrong if w[1] != w[2]]
    if wrong:
        shown = "; ".join(
            f"{k}: {list(got)} in the file, {list(want)} in the model" for k, got, want in wrong
        )
        if len(wrong) > _NAMED:
            shown = "; ".join(shown.split("; ")[:_NAMED]) + f"; and {len(wrong) - _NAMED} more"
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the model's shapes ({shown}). Expected the "
            "state_dict of the same architecture with the same layer sizes"
        )
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
