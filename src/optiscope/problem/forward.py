"""Second directional derivatives in forward-over-forward mode: ``v^T H v``, no backward graph.

``F(x + t v)`` differentiated twice in ``t`` at 0 gives ``v^T grad F`` and ``v^T H v`` in one
pass of nested dual numbers (``torch.func.jvp`` of ``torch.func.jvp``). Nothing is saved for a
backward pass, so the memory above the forward pass is a few activations at a time instead of
the gradient's graph plus a double backward (on ResNet-18 at batch 32: +14 MiB against +254 MiB
for ``v . Hv``).

PyTorch 2.13's forward-mode formulas for the normalization kernels (``native_layer_norm``,
``native_batch_norm`` with batch statistics, and instance norm through it) are exact to first
order but not when differentiated again: nested, or applied to their backward (as
``torch.func.hessian``'s forward-over-reverse does), they miss second-order terms of the mean and
variance (``v^T H v`` off by 0.5-50% on tiny float64 cases). While such a pass runs, those
functions are computed from their definitions (mean, variance, ``rsqrt``), whose derivatives of
every order are exact; ``tests/test_forward.py`` holds every layer family against
reverse-over-reverse Hessians.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

# What an operation without forward-mode formulas raises (embedding_bag, some fused kernels).
FORWARD_UNSUPPORTED = ("forward AD", "forward-mode", "forward mode", "jvp")


def _layer_norm(
    x: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    y = _standardize(x, tuple(range(-len(normalized_shape), 0)), eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def _standardize(x: Tensor, dims: tuple[int, ...], eps: float) -> Tensor:
    """``x`` less its mean over ``dims``, over its standard deviation there (biased variance)."""
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    shape = (1, -1) + (1,) * (y.dim() - 2)
    if weight is not None:
        y = y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)


def _batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor | None:
    if training:
        if running_mean is not None or running_var is not None:
            return None  # would update running statistics: left to the kernel
        return _affine(_standardize(x, (0, *range(2, x.dim())), eps), weight, bias)
    if running_mean is None or running_var is None:
        return None
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = running_mean.view(shape), running_var.view(shape)
    return _affine((x - mean) * torch.rsqrt(var + eps), weight, bias)


def _instance_norm(
    x: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor | None:
    if not use_input_stats or running_mean is not None or running_var is not None:
        return None
    return _affine(_standardize(x, tuple(range(2, x.dim())), eps), weight, bias)


_DEFINITIONS: dict[Callable[..., Any], Callable[..., Tensor | None]] = {
    F.layer_norm: _layer_norm,
    F.batch_norm: _batch_norm,
    F.instance_norm: _instance_norm,
}


class _Definitions(TorchFunctionMode):
    """Normalizations from their definitions (the mode is off inside its own handler)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        own = _DEFINITIONS.get(func)
        if own is not None:
            out = own(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)


@contextlib.contextmanager
def definitions() -> Iterator[None]:
    """A context in which layer, batch and instance norm run from their definitions: for any
    pass that takes forward-mode derivatives of a backward or of a forward pass."""
    with warnings.catch_warnings():
        # torch 2.14 scripts its forward-mode decompositions when forward mode is first used,
        # and torch.jit.script now warns that it is deprecated: nothing the caller can act on.
        warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", FutureWarning)
        with _Definitions():
            yield


@contextlib.contextmanager
def without_onednn() -> Iterator[None]:
    """oneDNN off, every other backend flag as it was (``torch.backends.mkldnn.flags`` would
    reset them to its defaults)."""
    flags = torch.backends.mkldnn
    was = flags.enabled
    setattr(flags, "enabled", False)  # noqa: B010 (a module property mypy reads as a descriptor)
    try:
        yield
    finally:
        setattr(flags, "enabled", was)  # noqa: B010


def unsupported(err: BaseException) -> bool:
    """Whether an error says an operation has no forward-mode derivative."""
    text = str(err)
    return isinstance(err, (NotImplementedError, RuntimeError)) and any(
        k in text for k in FORWARD_UNSUPPORTED
    )


def second_directional(
    f: Callable[[Tensor], Tensor], x: Tensor, v: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``f(x)``, ``v^T grad f(x)`` and ``v^T H v`` for a scalar function of a flat vector, in one
    forward-over-forward pass."""

    def slope(t: Tensor) -> tuple[Tensor, Tensor]:
        value, d1 = torch.func.jvp(f, (t,), (v,))[:2]
        return d1, value

    with definitions():
        out: tuple[Tensor, ...] = torch.func.jvp(slope, (x,), (v,), has_aux=True)
    d1, d2, value = out
    return value.detach(), d1.detach(), d2.detach()
