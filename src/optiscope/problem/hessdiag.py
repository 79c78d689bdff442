"""Exact Hessian diagonal of feed-forward networks by a second-order backward pass.

This is the DiagHessian extension of BackPACK (Dangel, Kunstner & Hennig, "BackPACK: Packing
more into backprop", ICLR 2020), which rests on the Hessian backpropagation of Dangel, Harmeling
& Hennig ("Modular block-diagonal curvature approximations for feedforward architectures",
AISTATS 2020), written from scratch in plain torch.

Per sample, the Hessian of the loss w.r.t. the network output is written as S diag(w) S^T
(cross-entropy: S = diag(sqrt p) Q with c - 1 columns, Q an orthonormal basis of the complement
of sqrt p, so that S S^T = diag(p) - p p^T; MSE: S = I, w = 2). The columns of S travel backwards
through each layer's transposed Jacobian, so the Hessian w.r.t. a layer's output is
sum_k w_k s_k s_k^T, and the diagonal of its weight block is sum_k w_k (J_theta^T s_k)^2 over
columns and samples: J_theta^T s_k is an outer product with the input for Linear and a
contraction with the unfolded input for convolutions (which keeps the cross terms between
positions).

An activation a = sigma(z) adds the residual diag(sigma''(z) * dL/da), which can be indefinite.
Residuals are kept as one diagonal diag(rho) while only elementwise layers are crossed: the next
Linear or conv takes its share in closed form (rho times the squared input), and its transposed
Jacobian turns diag(rho) into columns sqrt|rho_j| J^T e_j of weight sign(rho_j), where BackPACK
propagates separate positive and negative parts. Where only elementwise layers remain down to a
Linear on flat inputs, only the diagonal is needed and diag(J^T diag(rho) J) = (J * J)^T rho
replaces the columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optiscope.core.errors import ProblemError
from optiscope.core.modules import STOCHASTIC

__all__ = ["UnsupportedModelError", "exact_hessian_diagonal", "supports"]

# Bound on the elements of one chunk's work tensors; bigger batches are split by samples.
_CHUNK_ELEMENTS = 2**25

_SUPPORTED = (
    "nn.Sequential of Linear, Conv1d, Conv2d (groups=1, zero padding), ReLU, ReLU6, Hardtanh, "
    "LeakyReLU, Tanh, Sigmoid, ELU, SiLU, GELU, Softplus, Flatten, Unflatten, Identity, "
    "Dropout (eval mode), MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d"
)


class UnsupportedModelError(ProblemError):
    """The model or loss is outside what the exact Hessian-diagonal backward pass handles."""


def _fallback(reason: str) -> str:
    return f"{reason}; no exact Hessian diagonal for this model: estimate the trace instead"


# Activation derivatives (sigma'(z), sigma''(z)); None for a second derivative that is zero a.e.
def _relu(m, z, a):
    return (z > 0).to(z.dtype), None


def _leaky_relu(m, z, a):
    s = m.negative_slope
    return (z > 0).to(z.dtype) * (1.0 - s) + s, None


def _hardtanh(m, z, a):
    return ((z > m.min_val) & (z < m.max_val)).to(z.dtype), None


def _tanh(m, z, a):
    d1 = 1 - a * a
    return d1, -2 * a * d1


def _sigmoid(m, z, a):
    d1 = a * (1 - a)
    return d1, d1 * (1 - 2 * a)


def _elu(m, z, a):
    pos = z > 0
    e = m.alpha * torch.exp(z.clamp(max=0))
    return e.masked_fill(pos, 1.0), e.masked_fill(pos, 0.0)


def _silu(m, z, a):
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s)), s * (1 - s) * (2 + z * (1 - 2 * s))


def _gelu(m, z, a):
    if m.approximate == "tanh":
        c, k = math.sqrt(2 / math.pi), 0.044715
        t = torch.tanh(c * (z + k * z**3))
        dt = 1 - t * t
        du = c * (1 + 3 * k * z * z)
        d2 = dt * du + 0.5 * z * dt * (6 * c * k * z - 2 * t * du * du)
        return 0.5 * (1 + t) + 0.5 * z * dt * du, d2
    phi = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    return cdf + z * phi, phi * (2 - z * z)


def _softplus(m, z, a):
    bz = m.beta * z
    linear = bz > m.threshold  # torch switches to the identity there
    s = torch.sigmoid(bz)
    return s.masked_fill(linear, 1.0), (m.beta * s * (1 - s)).masked_fill(linear, 0.0)


_ACTIVATIONS: dict[type, Callable] = {
    nn.ReLU: _relu,
    nn.LeakyReLU: _leaky_relu,
    nn.Hardtanh: _hardtanh,  # and ReLU6
    nn.Tanh: _tanh,
    nn.Sigmoid: _sigmoid,
    nn.ELU: _elu,
    nn.SiLU: _silu,
    nn.GELU: _gelu,
    nn.Softplus: _softplus,
}
_CURVED = (nn.Tanh, nn.Sigmoid, nn.ELU, nn.SiLU, nn.GELU, nn.Softplus)
_IDENTITY = (nn.Identity, *STOCHASTIC)
_RESHAPE = (nn.Flatten, nn.Unflatten)
_LOCAL = ("act", "identity", "reshape")  # layers that do not mix features
_SQUARABLE = ("linear", "conv", "maxpool")  # with a transposed squared Jacobian at hand
_MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d)
# Linear and the same for every sample: transposed via autograd on a zero input.
_LINOP = (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)


@dataclass
class _Layer:
    module: nn.Module
    kind: str  # linear, conv, act, identity, reshape, maxpool, linop
    deriv: Callable | None = None
    curved: bool = False


def _matches(module: nn.Module, cls: type) -> bool:
    # A subclass with its own forward computes something else.
    return isinstance(module, cls) and type(module).forward is cls.forward


def _classify(module: nn.Module, name: str) -> tuple[_Layer | None, str | None]:
    label = f"module {name!r} ({type(module).__name__})"
    is_conv = _matches(module, nn.Conv1d) or _matches(module, nn.Conv2d)
    if is_conv or _matches(module, nn.Linear):
        own = {n for n, _ in module.named_parameters(recurse=False)}
        if own - {"weight", "bias"} or next(module.children(), None) is not None:
            # weight_norm, spectral_norm, parametrize: the weight is a function of other tensors
            return None, f"{label} has reparametrized weights"
    if _matches(module, nn.Linear):
        return _Layer(module, "linear"), None
    if is_conv:
        if module.groups != 1:
            return None, f"{label} has groups={module.groups}; only groups=1 is supported"
        if module.padding_mode != "zeros":
            return None, f"{label} has padding_mode={module.padding_mode!r}; only 'zeros'"
        return _Layer(module, "conv"), None
    for cls, deriv in _ACTIVATIONS.items():
        if _matches(module, cls):
            return _Layer(module, "act", deriv, isinstance(module, _CURVED)), None
    for cls in _IDENTITY:
        if _matches(module, cls):
            # Only dropout modules hold a rate in .p (an Identity subclass may hold anything).
            if isinstance(module, STOCHASTIC) and module.training and float(module.p) > 0:
                return None, f"{label} is in training mode (random); call model.eval() first"
            return _Layer(module, "identity"), None
    if _matches(module, nn.Flatten) and module.start_dim == 0:
        return None, f"{label} flattens the batch dimension"
    if _matches(module, nn.Unflatten) and module.dim == 0:
        return None, f"{label} unflattens the batch dimension"
    if any(_matches(module, cls) for cls in _RESHAPE):
        return _Layer(module, "reshape"), None
    if any(_matches(module, cls) for cls in _MAXPOOL):
        if module.return_indices:
            return None, f"{label} returns indices"
        return _Layer(module, "maxpool"), None
    if any(_matches(module, cls) for cls in _LINOP):
        return _Layer(module, "linop"), None
    return None, f"{label} is not supported (supported: {_SUPPORTED})"


def _flatten(model: nn.Module) -> tuple[list[_Layer], str | None]:
    layers: list[_Layer] = []
    seen: set[int] = set()

    def visit(module: nn.Module, name: str) -> str | None:
        if _matches(module, nn.Sequential):
            # Not named_children(): it skips repeated modules, which Sequential runs every time.
            for child_name, child in module._modules.items():
                reason = visit(child, f"{name}.{child_name}" if name else child_name)
                if reason is not None:
                    return reason
            return None
        layer, reason = _classify(module, name or "<model>")
        if layer is None:
            return reason
        if any(id(p) in seen for p in module.parameters()):
            # The diagonal would need the cross terms between the uses.
            return f"module {name!r} ({type(module).__name__}) shares parameters with another layer"
        seen.update(id(p) for p in module.parameters())
        layers.append(layer)
        return None

    return layers, visit(model, "")


def _loss_reason(loss_fn: Any) -> str | None:
    label = f"loss {type(loss_fn).__name__}"
    if _matches(loss_fn, nn.CrossEntropyLoss):
        if loss_fn.weight is not None:
            return f"{label} has class weights; only unweighted cross-entropy is supported"
        if loss_fn.label_smoothing != 0:
            return f"{label} has label_smoothing={loss_fn.label_smoothing}; only 0 is supported"
    elif not _matches(loss_fn, nn.MSELoss):
        return f"{label} is not supported (supported: nn.CrossEntropyLoss, nn.MSELoss)"
    if loss_fn.reduction not in ("mean", "sum"):
        return f"{label} has reduction={loss_fn.reduction!r}; only 'mean' or 'sum'"
    return None


def supports(model: nn.Module, loss_fn: Any) -> str | None:
    """None if `exact_hessian_diagonal` handles `model` with `loss_fn`, else the reason why not."""
    _, reason = _flatten(model)
    return reason if reason is not None else _loss_reason(loss_fn)


@dataclass
class _ConvGeometry:
    weight: Tensor  # as a 2-d convolution's weight
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    pad: list[int] | None  # explicit F.pad amounts for asymmetric 'same' padding
    one_d: bool


def _conv_geometry(m: nn.Module) -> _ConvGeometry:
    one_d = isinstance(m, nn.Conv1d)
    kernel, dilation = tuple(m.kernel_size), tuple(m.dilation)
    if isinstance(m.padding, str):
        total = (
            [0] * len(kernel)
            if m.padding == "valid"
            else [d * (k - 1) for k, d in zip(kernel, dilation)]
        )
        sides = [(t // 2, t - t // 2) for t in total]
    else:
        sides = [(p, p) for p in m.padding]
    weight, stride = m.weight, tuple(m.stride)
    if one_d:  # a 1-d convolution is a 2-d one over a height-1 image
        weight, stride, dilation, sides = (
            weight.unsqueeze(2),
            (1, *stride),
            (1, *dilation),
            [(0, 0), *sides],
        )
    if all(lo == hi for lo, hi in sides):
        return _ConvGeometry(weight, stride, (sides[0][0], sides[1][0]), dilation, None, one_d)
    pad = [sides[1][0], sides[1][1], sides[0][0], sides[0][1]]
    return _ConvGeometry(weight, stride, (0, 0), dilation, pad, one_d)


def _conv_input(geo: _ConvGeometry, x: Tensor) -> Tensor:
    x = x.unsqueeze(2) if geo.one_d else x
    return x if geo.pad is None else F.pad(x, geo.pad)


def _prod(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def _forward(layers: list[_Layer], x: Tensor) -> tuple[list[Tensor], dict[int, Tensor]]:
    """All layer inputs (and the output last), plus max-pool indices."""
    n = x.shape[0]
    acts, indices = [x], {}
    for i, layer in enumerate(layers):
        m, h = layer.module, acts[-1]
        if layer.kind == "conv" and h.dim() != (3 if isinstance(m, nn.Conv1d) else 4):
            raise UnsupportedModelError(
                _fallback(f"{type(m).__name__} got an input of shape {tuple(h.shape)} (no batch)")
            )
        if layer.kind in ("linear", "maxpool", "linop") and h.dim() < 2:
            raise UnsupportedModelError(_fallback(f"{type(m).__name__} got a 1-d input"))
        if layer.kind == "maxpool":
            pool = F.max_pool1d if isinstance(m, nn.MaxPool1d) else F.max_pool2d
            h, indices[i] = pool(
                h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, return_indices=True
            )
        else:
            h = m(h.clone() if getattr(m, "inplace", False) else h)
        if h.dim() == 0 or h.shape[0] != n:
            raise UnsupportedModelError(
                _fallback(
                    f"{type(m).__name__} mixes the samples of a batch (output {tuple(h.shape)})"
                )
            )
        acts.append(h)
    return acts, indices


def _transpose(
    layer: _Layer, s: Tensor, z: Tensor, a: Tensor, index: Tensor | None, squared: bool = False
) -> Tensor:
    """Apply the layer's transposed Jacobian to every column: [n, K, *out] -> [n, K, *in].

    With `squared`, its elementwise square instead (not for linop): diag(J^T diag(r) J) = J^2^T r.
    """
    m, (n, k) = layer.module, s.shape[:2]
    if layer.kind == "linear":
        return s @ (m.weight * m.weight if squared else m.weight)
    if layer.kind == "identity":
        return s
    if layer.kind == "reshape":
        return s.reshape(n, k, *z.shape[1:])
    if layer.kind == "conv":
        geo = _conv_geometry(m)
        x = _conv_input(geo, z)
        cols = s.reshape(n * k, *a.shape[1:])
        cols = cols.unsqueeze(2) if geo.one_d else cols
        size = (n * k, *x.shape[1:])
        weight = geo.weight * geo.weight if squared else geo.weight
        out = torch.nn.grad.conv2d_input(size, weight, cols, geo.stride, geo.padding, geo.dilation)
        if geo.pad is not None:
            left, right, top, bottom = geo.pad
            out = out[..., top : out.shape[-2] - bottom, left : out.shape[-1] - right]
        return out.reshape(n, k, *z.shape[1:])
    if layer.kind == "maxpool":
        d = 1 if isinstance(m, nn.MaxPool1d) else 2
        rows, p_out, p_in = _prod(a.shape[1:-d]), _prod(a.shape[-d:]), _prod(z.shape[-d:])
        src = s.reshape(n, k, rows, p_out)
        idx = index.reshape(n, 1, rows, p_out).expand(n, k, rows, p_out)
        out = s.new_zeros(n, k, rows, p_in).scatter_add_(3, idx, src)
        return out.reshape(n, k, *z.shape[1:])
    # linop
    with torch.enable_grad():
        dummy = s.new_zeros((n * k, *z.shape[1:]), requires_grad=True)
        (out,) = torch.autograd.grad(m.forward(dummy), dummy, s.reshape(n * k, *a.shape[1:]))
    return out.reshape(n, k, *z.shape[1:])


def _accumulate(
    layer: _Layer,
    s: Tensor,
    omega: Tensor,
    rho: Tensor | None,
    z: Tensor,
    acc: dict[str, Tensor],
) -> None:
    """Add sum_{n,k} omega_nk (J_theta^T s_nk)^2 plus the diagonal part rho's share."""
    m, (n, k) = layer.module, s.shape[:2]
    if layer.kind == "linear" and s.dim() == 3:
        h = torch.bmm(omega.unsqueeze(1), s * s).squeeze(1)  # diag of the output Hessian
        if rho is not None:
            h = h + rho
        if "weight" in acc:
            acc["weight"] += h.T @ (z * z)
        if "bias" in acc:
            acc["bias"] += h.sum(0)
        return
    d_out = m.weight.shape[0]
    if layer.kind == "linear":  # extra (position) dimensions
        positions = _prod(s.shape[2:-1])
        per_pos = s.reshape(n, k, positions, d_out)
        cols = per_pos.transpose(2, 3).reshape(n, k * d_out, positions)
        inputs = z.reshape(n, positions, -1)
        rho = None if rho is None else rho.reshape(n, positions, d_out).transpose(1, 2)
    else:
        per_pos = s.reshape(n, k, d_out, -1).transpose(2, 3)
        cols = s.reshape(n, k * d_out, -1)
        rho = None if rho is None else rho.reshape(n, d_out, -1)
        if "weight" in acc:
            geo = _conv_geometry(m)
            x = _conv_input(geo, z)
            kernel = geo.weight.shape[2:]
            inputs = F.unfold(x, kernel, geo.dilation, geo.padding, geo.stride).transpose(1, 2)
    if "weight" in acc:
        grads = torch.bmm(cols, inputs).square_()  # [n, K * out, in]
        diag = omega.reshape(1, n * k) @ grads.reshape(n * k, -1)
        if rho is not None:  # a diagonal Hessian weights each position's squared input
            diag = diag.reshape(d_out, -1) + torch.bmm(rho, inputs * inputs).sum(0)
        acc["weight"] += diag.reshape(m.weight.shape)
    if "bias" in acc:
        b = per_pos.sum(2)
        diag = torch.bmm(omega.unsqueeze(1), b * b).sum(0).squeeze(0)
        acc["bias"] += diag if rho is None else diag + rho.sum((0, 2))


def _densify(
    layer: _Layer,
    rho: Tensor,
    z: Tensor,
    a: Tensor,
    index: Tensor | None,
    bases: dict[tuple, Tensor],
    key: tuple,
) -> tuple[Tensor, Tensor] | None:
    """Columns J^T sqrt|rho_j| e_j and weights sign(rho_j) of the diagonal part diag(rho)."""
    n = rho.shape[0]
    v = rho.reshape(n, -1)
    sel = (v != 0).any(0).nonzero().squeeze(1)
    if sel.numel() == 0:
        return None
    every = sel.numel() == v.shape[1]  # the usual case for smooth activations: skip copies
    vals = v if every else v[:, sel]
    root = vals.abs().sqrt()
    m = sel.numel()
    if layer.kind == "maxpool":  # the only sample-dependent Jacobian here
        unit = v.new_zeros(n, m, v.shape[1])
        unit[:, torch.arange(m, device=v.device), sel] = root
        return _transpose(layer, unit.reshape(n, m, *a.shape[1:]), z, a, index), torch.sign(vals)
    if layer.kind == "linear" and z.dim() == 2:
        basis = layer.module.weight if every else layer.module.weight[sel]
    else:  # J^T e_j is the same for every sample: transpose the unit vectors once
        basis = bases.get(key)
        if basis is None:
            d_out = v.shape[1]
            cache = d_out * _prod(z.shape[1:]) <= _CHUNK_ELEMENTS
            units = torch.arange(d_out, device=v.device) if cache else sel
            eye = v.new_zeros(units.numel(), d_out)
            eye[torch.arange(units.numel(), device=v.device), units] = 1
            basis = _transpose(layer, eye.reshape(1, -1, *a.shape[1:]), z[:1], a[:1], None)[0]
            if cache:
                bases[key] = basis
        if basis.shape[0] != m:  # a cached basis holds every unit vector
            basis = basis[sel]
    return root.reshape(n, m, *[1] * (z.dim() - 1)) * basis, torch.sign(vals)


def _loss_factor(
    loss_fn: Any, out: Tensor, y: Tensor, scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Factor S [n, K, *out], column weights omega [n, K] and per-sample gradient dl/dout."""
    n = out.shape[0]
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        c = out.shape[1]
        p = torch.softmax(out, dim=1)
        root = p.sqrt()
        # diag(p) - p p^T = diag(root) (I - root root^T) diag(root) has rank c - 1: its factor
        # diag(root) Q takes Q = the first c - 1 columns of the Householder reflection that maps
        # root to -e_c, which are an orthonormal basis of root's complement.
        v = torch.cat([root[:, :-1], root[:, -1:] + 1], dim=1)
        q = v[:, :-1, None] * (v / (1 + root[:, -1:])).unsqueeze(1)
        s = (torch.eye(c - 1, c, dtype=out.dtype, device=out.device) - q) * root.unsqueeze(1)
        omega = out.new_full((n, c - 1), scale)
        if y.is_floating_point():  # class probabilities: Hessian scales with their sum
            y = y.to(out.dtype)
            mass = y.sum(1, keepdim=True)
            return s, omega * mass, mass * p - y
        return s, omega, p - F.one_hot(y, c).to(out.dtype)
    d = out[0].numel()
    eye = torch.eye(d, dtype=out.dtype, device=out.device)
    s = eye.expand(n, d, d).reshape(n, d, *out.shape[1:])
    return s, out.new_full((n, d), 2 * scale), 2 * (out - y.to(out.dtype))


def _check_targets(loss_fn: Any, out_shape: torch.Size, y: Tensor, n: int) -> None:
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        if len(out_shape) != 1:
            raise UnsupportedModelError(
                _fallback(f"CrossEntropyLoss on outputs (N, *{tuple(out_shape)}); only (N, C)")
            )
        c = out_shape[0]
        want = (n, c) if y.is_floating_point() else (n,)
        if tuple(y.shape) != want:
            raise ValueError(
                f"targets of shape {tuple(y.shape)} for logits ({n}, {c}); expected {want}"
            )
        if not y.is_floating_point() and y.numel() and (y.min() < 0 or y.max() >= c):
            raise ValueError(f"class targets must lie in [0, {c})")
    elif tuple(y.shape) != (n, *out_shape):
        raise ValueError(
            f"targets of shape {tuple(y.shape)} for outputs of shape {(n, *out_shape)}"
        )


def _cost_per_sample(
    layers: list[_Layer], shapes: list[torch.Size], first: int, closed: int | None, k: int
) -> int:
    """Rough count of elements held per sample at the peak of the backward pass."""
    numel = [_prod(s) for s in shapes]
    peak, diagonal = 0, False
    for i in range(len(layers) - 1, first - 1, -1):
        layer, d_in, d_out = layers[i], numel[i], numel[i + 1]
        cost = k * d_out + d_out
        w = layer.module.weight if layer.kind in ("conv", "linear") else None
        if w is not None and (layer.kind == "conv" or len(shapes[i + 1]) > 1):
            cost += 2 * k * w.numel() + 2 * w[0].numel() * (d_out // w.shape[0])  # grads, unfold
        if i > first:
            if layer.kind == "act":
                diagonal = diagonal or layer.curved
            elif diagonal and layer.kind not in ("identity", "reshape") and i != closed:
                diagonal, k = False, k + d_out
                cost += d_out * d_out if layer.kind == "maxpool" else 0
            cost += 2 * k * d_in
        peak = max(peak, cost)
    return peak + sum(numel)


def _backward(
    layers: list[_Layer],
    loss_fn: Any,
    x: Tensor,
    y: Tensor,
    scale: float,
    first: int,
    closed: int | None,
    acc: dict[int, dict[str, Tensor]],
    bases: dict[tuple, Tensor],
) -> None:
    acts, indices = _forward(layers, x)
    s, omega, g = _loss_factor(loss_fn, acts[-1], y, scale)
    # The residuals stay a diagonal diag(rho) (weights included) until a layer mixes features:
    # that layer's parameters take it in closed form, and only earlier layers need its columns.
    rho = None
    curved = [i for i, layer in enumerate(layers) if layer.curved and i > first]
    stop = min(curved, default=len(layers))  # below it the gradient is no longer needed
    for i in range(len(layers) - 1, first - 1, -1):
        layer, z, a = layers[i], acts[i], acts[i + 1]
        if i in acc:
            _accumulate(layer, s, omega, rho, z, acc[i])
        if i == first:
            break
        if layer.kind == "act":
            d1, d2 = layer.deriv(layer.module, z, a)
            s = s * d1.unsqueeze(1)
            if rho is not None:
                rho = rho * (d1 * d1)
            if layer.curved:
                r = (scale * d2) * g
                rho = r if rho is None else rho + r
            g = g * d1 if i > stop else None
            continue
        index = indices.get(i)
        s = _transpose(layer, s, z, a, index)
        if rho is not None and layer.kind in ("identity", "reshape"):
            rho = rho.reshape(z.shape)
        elif rho is not None and i == closed:  # no mixing below: the diagonal suffices
            rho = _transpose(layer, rho.unsqueeze(1), z, a, index, squared=True).squeeze(1)
        elif rho is not None:
            cols = _densify(layer, rho, z, a, index, bases, (i, tuple(z.shape[1:])))
            if cols is not None:
                s, omega = torch.cat([s, cols[0]], dim=1), torch.cat([omega, cols[1]], dim=1)
            rho = None
        if i > stop:
            g = _transpose(layer, g.unsqueeze(1), z, a, index).squeeze(1)


def exact_hessian_diagonal(
    model: nn.Module,
    loss_fn: Any,
    batches: Sequence[tuple[Tensor, Tensor]],
    weights: Sequence[float],
    params: Sequence[tuple[str, Tensor]],
) -> list[Tensor]:
    """Exact diagonal of the Hessian of F(theta) = sum_b weights[b] * loss_fn(model(x_b), y_b).

    model: torch.nn.Module; loss_fn: an nn.Module loss; batches: list of (inputs, targets)
    tensors; weights: one float per batch; params: list of (name, tensor), the parameters to
    report, a subset of model.named_parameters().
    Returns one tensor per entry of `params`, the exact diagonal of d^2F/dtheta^2 for that
    parameter, with the parameter's shape, dtype and device.
    Raises UnsupportedModelError before doing any work when the model or loss is not supported
    (see `supports`); the caller should then fall back to a Hutch++ estimate.
    """
    layers, reason = _flatten(model)
    if reason is None:
        reason = _loss_reason(loss_fn)
    if reason is not None:
        raise UnsupportedModelError(_fallback(reason))
    batches, weights = list(batches), [float(w) for w in weights]
    if len(batches) != len(weights):
        raise ValueError(f"{len(batches)} batches but {len(weights)} weights")
    is_ce = isinstance(loss_fn, nn.CrossEntropyLoss)
    if is_ce:
        for _, y in batches:
            if not y.is_floating_point() and bool((y == loss_fn.ignore_index).any()):
                raise UnsupportedModelError(
                    _fallback(
                        f"targets contain ignore_index={loss_fn.ignore_index} of CrossEntropyLoss"
                    )
                )
    owner = {}
    for i, layer in enumerate(layers):
        for pname, p in layer.module.named_parameters(recurse=False):
            owner[id(p)] = (i, pname)
    keys = []
    acc: dict[int, dict[str, Tensor]] = {}
    for name, p in params:
        if id(p) not in owner:
            raise ValueError(f"parameter {name!r} is not a parameter of the model")
        i, pname = owner[id(p)]
        keys.append((i, pname))
        zeros = torch.zeros_like(p, memory_format=torch.contiguous_format)
        acc.setdefault(i, {}).setdefault(pname, zeros)
    if acc:
        first = min(acc)
        bases: dict[tuple, Tensor] = {}
        with torch.no_grad():
            for (x, y), w in zip(batches, weights):
                n = x.shape[0]
                if w == 0.0 or n == 0:
                    continue
                probe, _ = _forward(layers, x[:1])
                out_shape = probe[-1].shape[1:]
                _check_targets(loss_fn, out_shape, y, n)
                per_sample = _prod(out_shape)
                scale = w / (n if is_ce else n * per_sample) if loss_fn.reduction == "mean" else w
                k = out_shape[0] - 1 if is_ce else per_sample
                # The first feature-mixing layer above a Linear on flat inputs only needs to pass
                # on the diagonal of its residual part, in closed form.
                mixing = [j for j in range(first + 1, len(layers)) if layers[j].kind not in _LOCAL]
                closed = None
                if mixing and layers[mixing[0]].kind in _SQUARABLE:
                    if layers[first].kind == "linear" and probe[first].dim() == 2:
                        closed = mixing[0]
                cost = _cost_per_sample(layers, [t.shape[1:] for t in probe], first, closed, k)
                chunk = max(1, _CHUNK_ELEMENTS // cost)
                for start in range(0, n, chunk):
                    sl = slice(start, start + chunk)
                    _backward(layers, loss_fn, x[sl], y[sl], scale, first, closed, acc, bases)
    result, seen = [], set()
    for key in keys:
        t = acc[key[0]][key[1]]
        result.append(t.clone() if key in seen else t)
        seen.add(key)
    return result
