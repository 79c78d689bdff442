"""Gradients with respect to the hidden state at every time step (long-term dependencies).

Pascanu, Mikolov and Bengio (2013): in a recurrent network dL/dh_t = dL/dh_T prod_k dh_k/dh_{k-1},
so its norm decays (vanishing) or grows (exploding) geometrically with the distance T - t. Fused
kernels (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) never expose h_t, so a forward hook recomputes the
module's output by unrolling its documented cell equations with the module's own weights; the
output is the same function, and each h_t becomes a node whose gradient autograd returns. The hook
is removed on exit and the model is never modified. A user's own cell reports its hidden states
through :func:`hidden_state`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core.errors import ProblemError
from optiscope.core.modules import RECURRENT
from optiscope.problem.problem import call_model

_ACTIVE: list[dict[str, list[Tensor]]] = []


def hidden_state(h: Tensor, name: str = "cell") -> Tensor:
    """Declare ``h`` a hidden state of a user-written recurrent cell; returns ``h`` unchanged.

    Call it on the new hidden state at each time step inside the cell's forward. Outside a
    measurement it does nothing.
    """
    if _ACTIVE:
        _ACTIVE[-1].setdefault(name, []).append(h)
    return h


def _check(name: str, m: Any) -> None:
    if m.bidirectional or getattr(m, "proj_size", 0):
        raise ProblemError(
            f"recurrent module {name!r} is bidirectional or projected: expected a unidirectional "
            "RNN/LSTM/GRU without proj_size for per-time-step hidden gradients"
        )
    if m.training and m.dropout > 0 and m.num_layers > 1:
        raise ProblemError(
            f"recurrent module {name!r} applies dropout between layers in training mode: call "
            "model.eval() for the measurement"
        )


def _unroll(m: Any, x: Tensor, hx: Any, store: list[Tensor]) -> tuple[Tensor, Any]:
    if m.batch_first:
        x = x.transpose(0, 1)
    unbatched = x.ndim == 2
    if unbatched:
        x = x.unsqueeze(1)
    steps, batch = x.shape[0], x.shape[1]
    lstm = isinstance(m, nn.LSTM)
    zeros = x.new_zeros(m.num_layers, batch, m.hidden_size)
    if hx is None:
        h0, c0 = zeros, zeros
    elif lstm:
        h0, c0 = hx
        if unbatched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
    else:
        h0, c0 = (hx.unsqueeze(1) if unbatched else hx), zeros
    layer_in = x
    h_last, c_last = [], []
    for layer in range(m.num_layers):
        w_ih = getattr(m, f"weight_ih_l{layer}")
        w_hh = getattr(m, f"weight_hh_l{layer}")
        b_ih = getattr(m, f"bias_ih_l{layer}", None) if m.bias else None
        b_hh = getattr(m, f"bias_hh_l{layer}", None) if m.bias else None
        h, c = h0[layer], c0[layer]
        pre_in = torch.nn.functional.linear(layer_in, w_ih, b_ih)
        outs = []
        for t in range(steps):
            gh = torch.nn.functional.linear(h, w_hh, b_hh)
            if isinstance(m, nn.RNN):
                act = torch.tanh if m.nonlinearity == "tanh" else torch.relu
                h = act(pre_in[t] + gh)
            elif lstm:
                i, f, g, o = (pre_in[t] + gh).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                ir, iz, in_ = pre_in[t].chunk(3, dim=-1)
                hr, hz, hn = gh.chunk(3, dim=-1)
                r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                h = (1 - z) * torch.tanh(in_ + r * hn) + z * h
            if layer == m.num_layers - 1:
                store.append(h)
            outs.append(h)
        layer_in = torch.stack(outs)
        h_last.append(h)
        c_last.append(c)
    out = layer_in
    h_n = torch.stack(h_last)
    c_n = torch.stack(c_last)
    if unbatched:
        out, h_n, c_n = out.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
    elif m.batch_first:
        out = out.transpose(0, 1)
    return out, ((h_n, c_n) if lstm else h_n)


@contextlib.contextmanager
def _exposed(model: nn.Module) -> Iterator[dict[str, list[Tensor]]]:
    found: dict[str, list[Tensor]] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, RECURRENT):
            _check(name or type(m).__name__, m)

            def hook(mod, args, output, name=name):
                hx = args[1] if len(args) > 1 else None
                store = found.setdefault(name or type(mod).__name__, [])
                store.clear()
                return _unroll(mod, args[0], hx, store)

            handles.append(m.register_forward_hook(hook))
    _ACTIVE.append(found)
    try:
        yield found
    finally:
        _ACTIVE.pop()
        for h in handles:
            h.remove()


def hidden_state_gradients(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    inputs: Any,
    targets: Any,
) -> dict[str, list[float]]:
    """Norm of dL/dh_t at every time step t, for each recurrent module (or user cell) found.

    The norm is over the batch and the hidden units of the last layer. The model's parameters,
    gradients and random number generators are left as they were.
    """
    with torch.random.fork_rng(devices=[]), _exposed(model) as found:
        out = call_model(model, inputs)
        loss = loss_fn(out, targets)
        names = [n for n, hs in found.items() if hs]
        if not names:
            raise ProblemError(
                "no hidden states were seen: expected an nn.RNN, nn.LSTM or nn.GRU in the model, "
                "or a user cell that calls optiscope.hidden_state(h) at each step"
            )
        flat = [h for n in names for h in found[n]]
        grads = torch.autograd.grad(loss, flat, allow_unused=True)
    result: dict[str, list[float]] = {}
    i = 0
    for n in names:
        k = len(found[n])
        result[n] = [
            0.0 if g is None else float(torch.linalg.vector_norm(g)) for g in grads[i : i + k]
        ]
        i += k
    return result
