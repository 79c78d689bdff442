"""Per-sample gradient moments from one forward and one backward pass.

For a layer whose per-sample gradient is a product of its input and its output gradient
(Linear, Conv1d, Conv2d, Conv3d, Hugging Face's Conv1D), and for LayerNorm and Embedding
(closed forms below), ``sum_i g_i`` and ``sum_i ||g_i||^2`` over the samples of a
batch come from one backward pass of the summed per-sample losses, without materialising one
gradient per sample
(Goodfellow 2015, "Efficient per-example gradient computations"; BackPACK's ``BatchL2Grad``).

For a linear layer y_t = W a_t + b over positions t of sample i (t is the sequence or the
spatial position; one position for a plain MLP), with output gradients d_t:

    grad_W l_i = sum_t d_t a_t^T,   ||grad_W l_i||^2 = sum_{t,s} (a_t . a_s)(d_t . d_s),

computed either way, whichever takes fewer multiplications. A convolution's per-sample weight
gradients come from one weight-gradient convolution with the batch folded into the groups.
Models with any other trainable layer get ``None``, and the caller falls back to per-sample
gradients (``torch.func.vmap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from optiscope.core.modules import LAYERS
from optiscope.problem.problem import (
    Problem,
    TrainingModeError,
    _call,
    batch_size,
    check_deterministic,
)

# Per-sample convolution weight gradients held at once, in elements.
_CHUNK_ELEMENTS = 1 << 24


@dataclass
class Moments:
    """First and second moments of the per-sample gradients g_i of a batch of ``n`` samples."""

    n: int
    total: Tensor  # sum_i g_i, flat in the problem's parameter order
    sq_norms: Tensor  # ||g_i||^2, one per sample (float64)


def _hf_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): ``y = x W + b`` with ``W`` of shape (in, out), a
    linear layer transposed; recognised by name so that transformers need not be imported."""
    w = getattr(module, "weight", None)
    return type(module).__name__ == "Conv1D" and isinstance(w, Tensor) and w.ndim == 2


def _supported(module: nn.Module) -> bool:
    if type(module) is nn.LayerNorm:
        return True
    if type(module) is nn.Embedding:
        emb: Any = module
        return emb.max_norm is None and not emb.sparse and not emb.scale_grad_by_freq
    if _hf_conv1d(module):
        return True
    kind = next((k for k in LAYERS if type(module) is k), None)
    if kind is None:
        return False
    if kind is nn.Linear:
        return True
    conv: Any = module
    if conv.padding_mode != "zeros":
        return False
    if conv.padding == "same":
        return all(d * (k - 1) % 2 == 0 for d, k in zip(conv.dilation, conv.kernel_size))
    return True


def _linear_sq(a: Tensor, d: Tensor) -> Tensor:
    """||sum_t d_t a_t^T||^2 per sample, for a (B, T, in) and d (B, T, out)."""
    t = a.shape[1]
    if t == 1:
        return a.square().sum((1, 2)) * d.square().sum((1, 2))
    # Multiply-adds per sample: t^2 (in + out) for the Gram matrices, t in out for the gradient.
    if t * (a.shape[2] + d.shape[2]) <= a.shape[2] * d.shape[2]:
        return (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(d, d.transpose(1, 2))).sum((1, 2))
    return torch.bmm(d.transpose(1, 2), a).square().sum((1, 2))


def _layer_sq(module: nn.Module, a: Tensor, d: Tensor, which: set[str]) -> Tensor:
    """Squared norms of the per-sample gradients of the layer's selected parameters."""
    b = d.shape[0]
    out = torch.zeros(b, dtype=torch.float64, device=d.device)
    if isinstance(module, nn.LayerNorm):
        # y = x_hat w + b over the normalized shape: grad_w = sum over positions of d x_hat.
        shape = module.normalized_shape
        keep = (b, -1, *shape)
        if "weight" in which:
            x_hat = nn.functional.layer_norm(a, shape, eps=module.eps)
            out += (d * x_hat).reshape(keep).sum(1).reshape(b, -1).square().sum(1).double()
        if "bias" in which:
            out += d.reshape(keep).sum(1).reshape(b, -1).square().sum(1).double()
        return out
    if isinstance(module, nn.Embedding):
        # grad_W = sum_t onehot(x_t) d_t^T: rows of one token add, so ||grad_W||^2 =
        # sum_{t,s} [x_t = x_s] d_t . d_s; the padding index gets no gradient.
        idx, d3 = a.reshape(b, -1), d.reshape(b, a[0].numel(), -1)
        live = torch.ones_like(idx, dtype=d.dtype)
        if module.padding_idx is not None:
            live = (idx != module.padding_idx).to(d.dtype)
        d3 = d3 * live.unsqueeze(-1)
        same = (idx.unsqueeze(2) == idx.unsqueeze(1)).to(d.dtype)
        out += (same * torch.bmm(d3, d3.transpose(1, 2))).sum((1, 2)).double()
        return out
    if isinstance(module, nn.Linear) or _hf_conv1d(module):
        a3, d3 = a.reshape(b, -1, a.shape[-1]), d.reshape(b, -1, d.shape[-1])
        if "weight" in which:
            out += _linear_sq(a3, d3).double()
        if "bias" in which:
            out += d3.sum(1).square().sum(1).double()
        return out
    conv: Any = module
    if "weight" in which:
        # Per-sample weight gradients as the weight gradient of one convolution with the batch
        # folded into the groups, in chunks of samples that bound the memory.
        g, w = conv.groups, conv.weight
        padding = _padding(conv)
        chunk = max(1, _CHUNK_ELEMENTS // max(1, w.numel()))
        for lo in range(0, b, chunk):
            hi = min(lo + chunk, b)
            k = hi - lo
            grad_out = d[lo:hi].reshape(1, k * d.shape[1], *d.shape[2:])
            inp = a[lo:hi].reshape(1, k * a.shape[1], *a.shape[2:])
            shape = (k * w.shape[0], *w.shape[1:])
            _, gw, _ = torch.ops.aten.convolution_backward(
                grad_out,
                inp,
                w.new_zeros(()).expand(shape),  # only its shape is read
                None,
                conv.stride,
                padding,
                conv.dilation,
                False,
                (0,) * len(padding),
                k * g,
                (False, True, False),
            )
            out[lo:hi] += gw.reshape(k, -1).square().sum(1).double()
    if "bias" in which:
        out += d.reshape(b, d.shape[1], -1).sum(2).square().sum(1).double()
    return out


def _padding(conv: Any) -> tuple[int, ...]:
    if conv.padding == "valid":
        return (0,) * len(conv.kernel_size)
    if conv.padding == "same":  # symmetric: checked by _supported
        return tuple(d * (k - 1) // 2 for d, k in zip(conv.dilation, conv.kernel_size))
    return tuple(conv.padding)


def _sample_losses(loss_fn: Any, out: Any, targets: Any, n: int) -> Tensor:
    """``loss_fn`` on each sample alone, as a (n,) tensor."""

    def one(o: Any, t: Any) -> Tensor:
        return loss_fn(*tree_map(lambda x: x.unsqueeze(0) if isinstance(x, Tensor) else x, (o, t)))

    try:
        return torch.func.vmap(one)(out, targets)
    except (RuntimeError, NotImplementedError, ValueError):
        pick = lambda i: lambda x: x[i] if isinstance(x, Tensor) and x.ndim and len(x) == n else x  # noqa: E731
        return torch.stack(
            [one(tree_map(pick(i), out), tree_map(pick(i), targets)) for i in range(n)]
        )


def gradient_moments(problem: Problem, inputs: Any, targets: Any) -> Moments | None:
    """``sum_i g_i`` and each ``||g_i||^2`` for the per-sample losses ``loss_fn(model(x_i), y_i)``
    in one forward and one backward pass, or ``None`` where the model has a trainable layer other
    than Linear, Conv1d/2d/3d (with zero padding), Hugging Face's Conv1D, LayerNorm and Embedding
    (without max_norm or sparse gradients), shares a parameter between two layers (tied
    embeddings), or uses a layer twice in one forward pass."""

    named = dict(problem.model.named_parameters())
    recorder = StepRecorder.for_model(problem.model, [named[n] for n in problem.names])
    if recorder is None:
        return None
    n = batch_size(inputs, targets)
    recorder.arm()
    try:
        inputs, targets = problem._to_device(inputs), problem._to_device(targets)
        leaves = problem._leaves(problem.point)
        with problem._context():
            out = _call(problem.model, dict(zip(problem.names, leaves)), inputs)
            try:
                losses = _sample_losses(problem.loss_fn, out, targets, n)
            except (RuntimeError, TypeError, ValueError, IndexError):
                return None  # the per-sample path then says why the loss fails, with a hint
            if losses.shape != (n,):
                return None
            grads = torch.autograd.grad(losses.sum(), leaves, allow_unused=True)
    finally:
        recorder.disarm()
    sq = recorder.layer_norms()
    if sq is None or sq.shape != (n,):
        return None
    total = problem.flatten(
        torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves)
    ).detach()
    return Moments(n, total, sq)


class StepRecorder:
    """Per-sample squared gradient norms read from the training step's own forward and backward
    passes: no extra pass over the batch.

    Armed before a step's forward pass, it hooks each trainable layer (forward hooks, and a hook
    on each layer's output tensor; nothing is modified) and the model's output. The batch loss
    ``L`` the user differentiates gives per-sample contributions ``c_i = dL/dtheta`` through
    sample i; the per-sample losses, recomputed from the recorded outputs, tell whether ``L`` is
    their mean (``g_i = n c_i``) or their sum (``g_i = c_i``). Anything else (a weighted or
    penalised loss, gradient accumulation, a layer run twice, dropout or batch norm in training
    mode) makes :meth:`collect` return ``None``, and the caller measures on a separate pass.
    """

    def __init__(self, model: nn.Module, owners: dict[nn.Module, set[str]]) -> None:
        self.model = model
        self.owners = owners
        self._handles: list[Any] = []
        self._reset()

    @classmethod
    def for_model(cls, model: nn.Module, params: list[Tensor]) -> StepRecorder | None:
        """A recorder when every trainable parameter lies in a supported layer, else None."""
        ids = {id(p) for p in params}
        seen: set[int] = set()
        owners: dict[nn.Module, set[str]] = {}
        for module in model.modules():
            for local, p in module.named_parameters(recurse=False):
                if id(p) in seen:
                    return None  # shared by two layers: its per-sample gradient sums both
                seen.add(id(p))
                if id(p) not in ids:
                    continue
                if not _supported(module):
                    return None
                owners.setdefault(module, set()).add(local)
        return cls(model, owners) if owners and ids <= seen else None

    def _reset(self) -> None:
        self.forwards: dict[nn.Module, int] = {}
        self.backwards: dict[nn.Module, int] = {}
        self.sq: Tensor | None = None
        self.batch: int | None = None
        self.outputs: Any = None
        self.root_calls = 0
        self.ok = True

    @property
    def armed(self) -> bool:
        return bool(self._handles)

    def arm(self) -> None:
        self.disarm()
        self._reset()
        self._handles = [m.register_forward_hook(self._forward) for m in self.owners]
        self._handles.append(self.model.register_forward_hook(self._root))

    def disarm(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _root(self, module: nn.Module, args: Any, output: Any) -> None:
        if torch.is_grad_enabled():
            self.root_calls += 1
            self.outputs = tree_map(lambda t: t.detach() if isinstance(t, Tensor) else t, output)

    def _forward(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not (torch.is_grad_enabled() and isinstance(output, Tensor) and output.requires_grad):
            return
        self.forwards[module] = self.forwards.get(module, 0) + 1
        if self.forwards[module] > 1 or not args or not isinstance(args[0], Tensor):
            self.ok = False
            return
        a = args[0].detach()

        def backward(grad: Tensor) -> None:
            self.backwards[module] = self.backwards.get(module, 0) + 1
            n = grad.shape[0] if grad.ndim else 0
            if not self.ok or self.backwards[module] > 1 or a.shape[:1] != grad.shape[:1]:
                self.ok = False
                return
            if self.batch is None:
                self.batch = n
                self.sq = torch.zeros(n, dtype=torch.float64, device=grad.device)
            if n != self.batch or self.sq is None:
                self.ok = False
                return
            self.sq += _layer_sq(module, a, grad.detach(), self.owners[module])

        output.register_hook(backward)

    def layer_norms(self) -> Tensor | None:
        """Disarm, and return ``||c_i||^2`` summed over the layers, where every layer ran forward
        and backward exactly once on one batch; else None."""
        self.disarm()
        complete = self.ok and all(
            self.forwards.get(m) == 1 and self.backwards.get(m) == 1 for m in self.owners
        )
        sq = self.sq
        self._reset()
        return sq if complete else None

    def collect(self, loss: Any, loss_fn: Any, targets: Any) -> tuple[Tensor, float] | None:
        """``(||g_i||^2 per sample, scale)`` where the mean per-sample gradient is ``scale``
        times the gradient in ``.grad``; None where the step cannot be read this way."""
        root_once, outputs = self.root_calls == 1, self.outputs
        sq = self.layer_norms()
        if not root_once or sq is None or len(sq) < 2 or not isinstance(loss, Tensor):
            return None
        n = len(sq)
        if _coupled(self.model) or not isinstance(targets, Tensor) or targets.shape[:1] != (n,):
            return None
        with torch.no_grad():
            try:
                losses = _sample_losses(loss_fn, outputs, targets, n).double()
            except Exception:  # a loss that cannot be taken per sample: measure it apart
                return None
            value = float(loss.detach())
            tol = 1e-4 * max(abs(value), 1e-30)
            if losses.shape != (n,):
                return None
            if abs(float(losses.mean()) - value) <= tol:
                return sq * n * n, 1.0  # L = mean l_i: g_i = n c_i, mean of g_i = dL
            if abs(float(losses.sum()) - value) <= tol:
                return sq, 1.0 / n  # L = sum l_i: g_i = c_i, mean of g_i = dL / n
        return None


def _coupled(model: nn.Module) -> bool:
    """Dropout or batch norm in training mode: per-sample gradients of the training loss are
    then not those of a fixed per-sample function."""

    try:
        check_deterministic(model)
    except TrainingModeError:
        return True
    return False
