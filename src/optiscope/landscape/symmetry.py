"""Weight-space symmetry: permutations and rescalings of hidden units, and weight matching.

A network whose hidden units are permuted (rows of one layer and the matching columns of the
next) computes the same function: a layer of n units has n! equivalent orderings, m such layers
n!^m (Deep Learning sec. 8.2.2). A ReLU unit is also unchanged when its incoming weights and bias
are scaled by a > 0 and its outgoing weights by 1/a. Two trained networks that look far apart in
parameter space may be the same minimum up to these symmetries; weight matching (Ainsworth,
Hayase and Srinivasa 2022, "Git Re-Basin", Algorithm 1) finds the permutation of one that brings
it closest to the other: coordinate descent over the layers, each step a linear assignment
problem (``scipy.optimize.linear_sum_assignment``) on the similarity of the units' weights.

Supported: an ``nn.Sequential`` (nested ones are flattened) of Linear and Conv1d/2d/3d layers,
with elementwise activations, dropout, pooling, batch norm (permuted with its channel) and one
Flatten between the convolutions and the Linear layers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core.errors import OptiscopeError
from optiscope.core.modules import ELEMENTWISE, HOMOGENEOUS, LAYERS, NORMS, POOLS


class SymmetryError(OptiscopeError):
    """A model or a transform the symmetry tools cannot handle."""


@dataclass
class _Hidden:
    """One hidden layer: the layer producing its units, what sits between, the layer reading it."""

    producer: Any  # a Linear or Conv layer
    between: list[Any]
    consumer: Any

    @property
    def size(self) -> int:
        w = self.producer.weight
        return int(w.shape[0])

    def homogeneous(self) -> bool:
        return all(isinstance(m, HOMOGENEOUS + POOLS + (nn.Flatten,)) for m in self.between)


def _modules(model: nn.Module) -> list[nn.Module]:
    if not isinstance(model, nn.Sequential):
        raise SymmetryError(
            f"expected an nn.Sequential of Linear/Conv layers and activations, got a "
            f"{type(model).__name__}. Build the network as nn.Sequential(...)"
        )
    out: list[Any] = []
    for m in model:
        out.extend(_modules(m) if isinstance(m, nn.Sequential) else [m])
    return out


def hidden_layers(model: nn.Module) -> list[_Hidden]:
    """The hidden layers of a plain network, in order; refuses what it cannot permute."""
    layers: list[Any] = []
    between: list[list[Any]] = []
    pending: list[Any] = []
    for m in _modules(model):
        if isinstance(m, LAYERS):
            if getattr(m, "groups", 1) != 1:
                raise SymmetryError(
                    f"{type(m).__name__} with groups={m.groups}: expected groups=1 (grouped "
                    "convolutions tie units across groups)"
                )
            if layers:
                between.append(pending)
            layers.append(m)
            pending = []
        elif isinstance(m, ELEMENTWISE + NORMS + (nn.Flatten,)):
            pending.append(m)
        else:
            raise SymmetryError(
                f"cannot permute the units around a {type(m).__name__}: expected Linear/Conv "
                "layers with elementwise activations, dropout, pooling, batch norm and Flatten "
                "between them"
            )
    if len(layers) < 2:
        raise SymmetryError(
            f"the network has {len(layers)} Linear/Conv layer(s): expected at least 2 (a hidden "
            "layer between them) for units to permute"
        )
    return [_Hidden(layers[i], between[i], layers[i + 1]) for i in range(len(layers) - 1)]


def _in_block(h: _Hidden) -> int:
    """How many input features of the consumer belong to each unit (1, or the spatial size
    after a Flatten from a convolution)."""
    n_in = h.consumer.weight.shape[1]
    if n_in % h.size:
        raise SymmetryError(
            f"the layer after a hidden layer of {h.size} units takes {n_in} inputs: expected a "
            "multiple of the units"
        )
    return n_in // h.size


def _permute_hidden(h: _Hidden, perm: Tensor) -> None:
    with torch.no_grad():
        p = h.producer
        p.weight.copy_(p.weight[perm])
        if p.bias is not None:
            p.bias.copy_(p.bias[perm])
        for m in h.between:
            if isinstance(m, NORMS):
                for t in (m.weight, m.bias, m.running_mean, m.running_var):
                    if t is not None:
                        t.copy_(t[perm])
        c = h.consumer
        w = c.weight
        block = _in_block(h)
        grouped = w.reshape(w.shape[0], h.size, block, *w.shape[2:])
        w.copy_(grouped[:, perm].reshape(w.shape))


def _scale_hidden(h: _Hidden, scale: Tensor) -> None:
    with torch.no_grad():
        p = h.producer
        shape = (-1,) + (1,) * (p.weight.ndim - 1)
        p.weight.mul_(scale.reshape(shape))
        if p.bias is not None:
            p.bias.mul_(scale)
        c = h.consumer
        w = c.weight
        grouped = w.reshape(w.shape[0], h.size, _in_block(h), *w.shape[2:])
        inv = (1 / scale).reshape((1, -1) + (1,) * (grouped.ndim - 2))
        w.copy_((grouped * inv).reshape(w.shape))


def unit_counts(model: nn.Module) -> list[int]:
    """The number of units in each hidden layer (their orderings: prod n_l!)."""
    return [h.size for h in hidden_layers(model)]


def permute_units(model: nn.Module, perms: list[Tensor] | list[list[int]]) -> nn.Module:
    """A copy of ``model`` with hidden layer l's units reordered: new unit i is old unit
    ``perms[l][i]``. The copy computes the same function."""
    hidden = hidden_layers(model)
    if len(perms) != len(hidden):
        raise SymmetryError(
            f"expected {len(hidden)} permutations (one per hidden layer), got {len(perms)}"
        )
    out = copy.deepcopy(model)
    for h, perm in zip(hidden_layers(out), perms):
        perm_t = torch.as_tensor(perm, dtype=torch.long, device=h.producer.weight.device)
        if sorted(perm_t.tolist()) != list(range(h.size)):
            raise SymmetryError(
                f"expected a permutation of 0..{h.size - 1} for a hidden layer of {h.size} "
                f"units, got {perm_t.tolist()[:10]}{'...' if len(perm_t) > 10 else ''}"
            )
        _permute_hidden(h, perm_t)
    return out


def rescale_units(model: nn.Module, scales: list[Tensor] | list[list[float]]) -> nn.Module:
    """A copy of ``model`` with hidden unit j of layer l scaled by ``scales[l][j] > 0`` on its
    way in (weights and bias) and by its inverse on its way out. The copy computes the same
    function where the units' activations are positively homogeneous (ReLU, leaky ReLU)."""
    hidden = hidden_layers(model)
    if len(scales) != len(hidden):
        raise SymmetryError(
            f"expected {len(hidden)} scale vectors (one per hidden layer), got {len(scales)}"
        )
    for i, h in enumerate(hidden):
        if not h.homogeneous():
            names = ", ".join(type(m).__name__ for m in h.between) or "nothing"
            raise SymmetryError(
                f"hidden layer {i} is followed by {names}: rescaling keeps the function only "
                "through positively homogeneous activations (ReLU, LeakyReLU, pooling); batch "
                "norm, tanh or sigmoid break it"
            )
    out = copy.deepcopy(model)
    for h, scale in zip(hidden_layers(out), scales):
        s = torch.as_tensor(scale, dtype=h.producer.weight.dtype, device=h.producer.weight.device)
        if s.shape != (h.size,) or not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
            raise SymmetryError(
                f"expected {h.size} finite positive scales for a hidden layer of {h.size} "
                f"units, got a tensor of shape {tuple(s.shape)}"
            )
        _scale_hidden(h, s)
    return out


def _flat(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


@dataclass
class Alignment:
    """The result of :func:`align_units`: ``model`` is ``other`` permuted to match the reference."""

    model: nn.Module
    perms: list[Tensor]
    distance_before: float
    distance_after: float
    sweeps: int
    history: list[float] = field(default_factory=list)


def _unit_features(h: _Hidden, model_perm_prev: Tensor | None, prev_block: int) -> Tensor:
    """Each unit's incoming weights and bias (inputs reordered by the previous permutation),
    one row per unit."""
    w = h.producer.weight.detach().double()
    if model_perm_prev is not None:
        grouped = w.reshape(w.shape[0], -1, prev_block, *w.shape[2:])
        w = grouped[:, model_perm_prev].reshape(w.shape)
    rows = [w.reshape(h.size, -1)]
    if h.producer.bias is not None:
        rows.append(h.producer.bias.detach().double()[:, None])
    for m in h.between:
        if isinstance(m, NORMS):
            for t in (m.weight, m.bias, m.running_mean, m.running_var):
                if t is not None:
                    rows.append(t.detach().double()[:, None])
    return torch.cat(rows, 1)


def _out_features(h: _Hidden, next_perm: Tensor | None) -> Tensor:
    """Each unit's outgoing weights (the next layer's outputs reordered by its permutation)."""
    w = h.consumer.weight.detach().double()
    if next_perm is not None:
        w = w[next_perm]
    grouped = w.reshape(w.shape[0], h.size, -1)
    return grouped.transpose(0, 1).reshape(h.size, -1)


def align_units(
    reference: nn.Module, other: nn.Module, *, max_sweeps: int = 100, seed: int = 0
) -> Alignment:
    """Permute ``other``'s hidden units to bring its weights closest to ``reference``'s (weight
    matching). Returns the permuted copy, the permutations, and the Euclidean distance between
    the two parameter vectors before and after; the distance never grows (each step solves its
    layer's assignment exactly, starting from the identity)."""
    from scipy.optimize import linear_sum_assignment

    ha, hb = hidden_layers(reference), hidden_layers(other)
    sizes_a, sizes_b = [h.size for h in ha], [h.size for h in hb]
    shapes_a = [tuple(p.shape) for p in reference.parameters()]
    shapes_b = [tuple(p.shape) for p in other.parameters()]
    if sizes_a != sizes_b or shapes_a != shapes_b:
        raise SymmetryError(
            f"the two networks differ in shape (hidden units {sizes_a} against {sizes_b}): "
            "expected two instances of one architecture"
        )
    device = ha[0].producer.weight.device
    perms = [torch.arange(n, device=device) for n in sizes_a]
    blocks = [_in_block(h) for h in ha]
    gen = torch.Generator().manual_seed(seed)
    ref = _flat(reference)

    def distance(model: nn.Module) -> float:
        return float(torch.linalg.vector_norm(ref - _flat(model)))

    history: list[float] = []
    aligned: nn.Module | None = None
    sweeps = 0
    for sweep in range(1, max_sweeps + 1):
        sweeps = sweep
        changed = False
        for layer in torch.randperm(len(ha), generator=gen).tolist():
            prev = perms[layer - 1] if layer > 0 else None
            prev_block = blocks[layer - 1] if layer > 0 else 1
            nxt = perms[layer + 1] if layer + 1 < len(ha) else None
            fa = torch.cat([_unit_features(ha[layer], None, 1), _out_features(ha[layer], None)], 1)
            fb = torch.cat(
                [_unit_features(hb[layer], prev, prev_block), _out_features(hb[layer], nxt)], 1
            )
            # Incoming weights of `other` are read through the previous layer's permutation and
            # outgoing ones through the next layer's; a's layers are in place.
            sim = (fa @ fb.T).cpu().numpy()
            _, cols = linear_sum_assignment(sim, maximize=True)
            new = torch.as_tensor(cols, dtype=torch.long, device=device)
            old_score = float(sim[range(len(cols)), perms[layer].cpu().numpy()].sum())
            new_score = float(sim[range(len(cols)), cols].sum())
            if new_score > old_score + 1e-12 * max(abs(old_score), 1.0) and not torch.equal(
                new, perms[layer]
            ):
                perms[layer] = new
                changed = True
        aligned = permute_units(other, perms)
        history.append(distance(aligned))
        if not changed:
            break
    if aligned is None:  # max_sweeps < 1
        aligned = permute_units(other, perms)
    return Alignment(
        model=aligned,
        perms=perms,
        distance_before=distance(other),
        distance_after=history[-1] if history else distance(aligned),
        sweeps=sweeps,
        history=history,
    )
