"""A model, a loss and data seen as one function of a flat parameter vector (layer 1 of the design).

``F(theta) = sum_b w_b * loss_fn(model(x_b; theta), y_b)`` with ``w_b = n_b / N`` for a loss with
``reduction="mean"`` and ``w_b = 1`` for ``"sum"``: the loss that ``loss_fn`` would give on the
whole data set as one batch, however it is split into batches. The model is called through
``torch.func.functional_call``, so its own parameters, buffers and ``.grad`` are never touched.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._pytree import tree_map

from optiscope.core.errors import NonFiniteError, OptiscopeError, ProblemError, TrainingModeError
from optiscope.core.modules import STOCHASTIC
from optiscope.core.vectors import dot64
from optiscope.linalg.operators import LinearOperator
from optiscope.problem import forward

ParamSpec = None | str | Sequence[str] | nn.Module | Callable[[str, Tensor], bool]


def _describe(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, dict):
        return f"a dict with keys {sorted(map(str, x))}"
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)} items"
    return f"a {type(x).__name__}"


def first_line(err: BaseException) -> str:
    """``err`` in one line for a message: its type and the first line of its text."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else repr(err)


def loss_hint(loss_fn: Any, out: Any, targets: Any) -> str:
    """Why ``loss_fn(out, targets)`` likely failed, as a sentence starting with ". ", or ""."""
    if not isinstance(out, Tensor):
        example = "out[0]" if isinstance(out, (tuple, list)) else "out['logits']"
        return (
            f". The model returns {_describe(out)}: wrap the loss so that it picks the tensor to "
            f"compare, e.g. loss_fn=lambda out, y: criterion({example}, y)"
        )
    if not isinstance(targets, Tensor):
        return ""
    if out.ndim and targets.ndim and out.shape[0] != targets.shape[0]:
        return (
            f". The outputs hold {out.shape[0]} samples and the targets {targets.shape[0]}: "
            "each batch needs one target per input"
        )
    if (
        isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss))
        and targets.is_floating_point()
        and targets.shape != out.shape
    ):
        return (
            ". Class indices must be integers: convert the targets with targets.long() (float "
            "targets are read as class probabilities, of the outputs' shape)"
        )
    return ""


def call_loss(
    loss_fn: Callable[[Any, Any], Any],
    out: Any,
    targets: Any,
    where: str = "",
    error: type[OptiscopeError] = ProblemError,
) -> Any:
    """``loss_fn(out, targets)``; where it raises, ``error`` saying what it was given
    (``where``: " on batch 3") and, where it can tell, how to fix it."""
    try:
        return loss_fn(out, targets)
    except OptiscopeError:
        raise
    except (RuntimeError, TypeError, ValueError, IndexError) as err:
        raise error(
            f"loss_fn could not take the model's outputs ({_describe(out)}) and the targets "
            f"({_describe(targets)}){where}: {first_line(err).rstrip('.')}"
            f"{loss_hint(loss_fn, out, targets)}"
        ) from err


def batch_size(inputs: Any, targets: Any) -> int:
    """The number of samples in a batch: the first dimension of ``targets``, else of the first
    input tensor; a :class:`ProblemError` when neither has one."""
    if isinstance(targets, Tensor) and targets.ndim >= 1:
        return int(targets.shape[0])
    leaves = [t for t in torch.utils._pytree.tree_leaves(inputs) if isinstance(t, Tensor)]
    if leaves and leaves[0].ndim >= 1:
        return int(leaves[0].shape[0])
    raise ProblemError(
        f"cannot tell the batch size: expected targets as a tensor whose first dimension counts "
        f"samples, got {_describe(targets)}"
    )


def batch_samples(batch: Any) -> int:
    """:func:`batch_size` of an ``(inputs, targets)`` pair, 0 where ``batch`` is no pair or its
    size cannot be told (for callers that only tune by it)."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        return 0
    try:
        return batch_size(batch[0], batch[1])
    except ProblemError:
        return 0


def scalar_loss(loss: Any, where: str, error: type[OptiscopeError] = ProblemError) -> Tensor:
    """``loss`` if it is a scalar tensor; else ``error`` saying what ``loss_fn`` returned
    ``where`` (``"on batch 3"``) and how to reduce it."""
    if isinstance(loss, Tensor) and loss.ndim == 0:
        return loss
    raise error(
        f"loss_fn must return a scalar tensor, got {_describe(loss)} {where}. Use a loss with "
        "reduction='mean' or 'sum', or reduce it yourself (loss.mean())"
    )


def _is_one_batch(data: Any) -> bool:
    """One ``(inputs, targets)`` pair, rather than a collection of them: targets are a tensor,
    or None for a model that computes its own loss from its inputs (labels among them)."""
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and (isinstance(data[1], Tensor) or data[1] is None)
    )


def _double(tree: Any) -> Any:
    """Every floating-point tensor of ``tree`` in float64 (integers, masks and the rest as they
    are)."""
    return tree_map(
        lambda t: t.to(torch.float64) if isinstance(t, Tensor) and t.is_floating_point() else t,
        tree,
    )


class _Double:
    """A re-iterable collection of batches seen in float64, batch by batch (a DataLoader's
    batches are converted as they come, never all at once)."""

    def __init__(self, data: Iterable[Any]) -> None:
        self.data = data

    def __iter__(self) -> Iterator[Any]:
        return (_double(batch) for batch in self.data)


def take_samples(tree: Any, part: slice, n: int) -> Any:
    """The samples ``part`` of every tensor in ``tree`` whose first dimension counts the ``n``
    samples of the batch; anything else (a mask, a scalar, None) as it is."""
    return tree_map(
        lambda t: t[part] if isinstance(t, Tensor) and t.ndim and len(t) == n else t, tree
    )


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model`` on a batch's inputs as everything in optiscope calls it (the training loop, the
    Problem, the tiers): a dict as keyword arguments (Hugging Face style), a tuple or list as
    positional ones, anything else as the one argument."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _call(model: nn.Module, params: dict[str, Tensor], inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return functional_call(model, params, (), inputs)
    if isinstance(inputs, (tuple, list)):
        return functional_call(model, params, tuple(inputs))
    return functional_call(model, params, (inputs,))


def _select(model: nn.Module, params: ParamSpec) -> list[tuple[str, Tensor]]:
    named: list[tuple[str, Tensor]] = list(model.named_parameters())
    if not named:
        raise ProblemError(
            f"the model ({type(model).__name__}) has no parameters: expected at least one "
            "nn.Parameter to differentiate with respect to"
        )
    trainable: list[tuple[str, Tensor]] = [(n, p) for n, p in named if p.requires_grad]
    if not trainable:
        raise ProblemError(
            f"the model has no trainable parameters: all {len(named)} parameters have "
            "requires_grad=False. Unfreeze the ones to analyse (p.requires_grad_(True))"
        )
    if params is None:
        return trainable
    if isinstance(params, nn.Module):
        ids = {id(p) for p in params.parameters()}
        chosen: list[tuple[str, Tensor]] = [(n, p) for n, p in trainable if id(p) in ids]
        if not ids or not any(id(p) in ids for _, p in named):
            raise ProblemError(
                f"params is a module ({type(params).__name__}) that is not part of the model: "
                "expected a submodule such as model.fc1"
            )
        what = f"module {type(params).__name__}"
    elif isinstance(params, str) or (
        isinstance(params, Sequence) and all(isinstance(s, str) for s in params)
    ):
        names = [params] if isinstance(params, str) else list(params)
        known = dict(named)
        chosen = []
        for name in names:
            if name in known:
                chosen.append((name, known[name]))
                continue
            # A module name selects all of its parameters.
            prefixed = [(n, p) for n, p in named if n.startswith(name + ".")]
            if not prefixed:
                raise ProblemError(
                    f"unknown parameter or module name {name!r}: expected one of "
                    f"{[n for n, _ in named][:12]}{' ...' if len(named) > 12 else ''}"
                )
            chosen.extend(prefixed)
        chosen = list(dict(chosen).items())
        chosen = [(n, p) for n, p in chosen if p.requires_grad]
        what = f"names {names}"
    elif callable(params):
        chosen = [(n, p) for n, p in trainable if params(n, p)]
        what = "the predicate"
    else:
        raise ProblemError(
            "params must be None, a parameter or module name, a list of names, a submodule, or "
            f"a predicate (name, tensor) -> bool; got {_describe(params)}"
        )
    if not chosen:
        raise ProblemError(f"{what} selected no trainable parameter of the model")
    return chosen


def check_deterministic(model: nn.Module, batch_stats: bool = False) -> None:
    """Refuse a model whose loss is a random or batch-coupled function in training mode
    (``batch_stats``: batch norm in training mode is wanted, each batch normalized by its own
    statistics, a fixed function of the parameters for fixed batches)."""
    for name, m in model.named_modules():
        label = name or type(model).__name__
        if not m.training:
            continue
        if batch_stats and isinstance(m, nn.modules.batchnorm._BatchNorm):
            continue
        # Only dropout modules hold a rate in .p (a float); elsewhere p may be any tensor.
        rate = float(cast(float, m.p)) if isinstance(m, STOCHASTIC) else 0.0
        if rate > 0:
            kind = f"dropout ({label!r}, p={rate:g})"
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            kind = f"batch norm ({label!r})"
        elif isinstance(m, nn.RNNBase) and m.dropout > 0:
            kind = f"recurrent dropout ({label!r}, dropout={m.dropout})"
        else:
            continue
        raise TrainingModeError(
            f"the model is in training mode and has {kind}: its loss is then a random or "
            "batch-dependent function, and its Hessian is not that of a fixed function. Call "
            "model.eval() before building the Problem (curvature is then measured in eval mode)"
        )


META_MESSAGE = (
    "the model's parameters are on the meta device, which holds no values: expected parameters "
    "with values. Materialize them first (model.to_empty(device='cpu'), then initialize the "
    "weights)"
)


def check_materialized(model: nn.Module, error: type[OptiscopeError] = ProblemError) -> None:
    """Refuse a model with parameters or buffers on the meta device (shapes, no values), which
    would otherwise fail deep inside the first reading of a loss."""
    if any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
        raise error(META_MESSAGE)


def flat_parameters(model: nn.Module) -> Tensor:
    """A new flat vector of ``model``'s trainable parameters in named order: the point a
    Problem on the model with the default selection uses."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


def load_flat_parameters(model: nn.Module, flat: Tensor) -> None:
    """Copy a flat vector laid out as :func:`flat_parameters` into ``model``'s trainable
    parameters, in place."""
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        for p, value in zip(params, torch.split(flat, [p.numel() for p in params])):
            p.copy_(value.view_as(p))


HVP_METHODS = ("exact", "finite-difference", "auto")


def finite_difference_step(dtype: torch.dtype, norm: float, size: int) -> float:
    """The central difference's step along a unit direction, ``eps^(1/3) max(1, rms(x))`` for
    parameters of ``size`` entries and norm ``norm``: it balances the O(h^2) truncation against
    round-off in the gradients."""
    return torch.finfo(dtype).eps ** (1 / 3) * max(1.0, norm / size**0.5)


def _no_double_backward(err: RuntimeError) -> bool:
    """Whether an error says an operation has no double backward (a derivative of a backward
    that PyTorch does not implement)."""
    text = str(err)
    return "not implemented" in text and ("derivative" in text or "double backward" in text)


class Problem:
    """A model, a loss and data seen as a function of one flat parameter vector.

    Parameters
    ----------
    model:
        A ``torch.nn.Module``. Its selected parameters are copied once as the point of analysis;
        the model itself is never modified.
    loss_fn:
        ``loss_fn(model(inputs), targets)`` must return a scalar tensor.
    data:
        One ``(inputs, targets)`` pair of tensors, or a re-iterable collection of such batches (a
        list, a ``DataLoader``). Inputs may also be a tuple (positional arguments) or a dict
        (keyword arguments) of tensors.
    params:
        Which parameters to analyse: ``None`` (all trainable ones), a parameter or module name, a
        list of names, a submodule of the model, or a predicate ``(name, tensor) -> bool``.
    reduction:
        ``"mean"`` or ``"sum"``; read from ``loss_fn.reduction`` when it has one, else ``"mean"``.
    cache_graph:
        Keep the gradient's graph between Hessian-vector products. ``"auto"`` does so when the
        data is a single batch; with many batches each product recomputes the graph batch by batch.
    point:
        The point of analysis as a flat vector (default: the selected parameters' values).
    check:
        Run the model on a few samples of the first batch at construction, so that a wrong
        shape, dtype or device fails here with a clear message. Skip it where the caller has just
        run the model on that batch.
    hvp:
        How Hessian-vector products are computed: ``"exact"`` (double backward) or
        ``"finite-difference"`` (central differences of two gradients, for models where double
        backward cannot run; see :meth:`finite_difference_hvp` for its error), or ``"auto"``
        (exact, falling back to finite differences for good at the first product that finds
        an operation without a double backward; :attr:`hvp_method` and
        :attr:`hvp_fallback` then say so). A finite-difference Problem caches no graph.
    batch_stats:
        Accept batch norm in training mode (each batch normalized by its own statistics, as in
        training); the caller keeps its running statistics (``core.modules.aside``). Other
        sources of randomness in training mode are still refused.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, Any], Tensor],
        data: Any,
        params: ParamSpec = None,
        *,
        reduction: str | None = None,
        cache_graph: bool | str = "auto",
        point: Tensor | None = None,
        check: bool = True,
        batch_stats: bool = False,
        hvp: str = "exact",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ProblemError(f"model must be a torch.nn.Module, got {_describe(model)}")
        if hvp not in HVP_METHODS:
            raise ProblemError(
                f"hvp is {hvp!r}: expected one of {list(HVP_METHODS)} ('finite-difference' "
                "where double backward cannot run, 'auto' to fall back to it there)"
            )
        self._hvp_auto = hvp == "auto"
        self.hvp_method = "exact" if hvp == "auto" else hvp
        # Why an "auto" Problem fell back to finite differences (None while exact).
        self.hvp_fallback: str | None = None
        if not callable(loss_fn):
            raise ProblemError(
                f"loss_fn must be callable as loss_fn(outputs, targets), got {_describe(loss_fn)}"
            )
        self.model = model
        self.loss_fn = loss_fn
        check_deterministic(model, batch_stats)
        selected = _select(model, params)
        devices = {p.device for _, p in selected}
        if len(devices) > 1:
            raise ProblemError(
                f"the selected parameters live on several devices {sorted(map(str, devices))}: "
                "expected one device. Move the model with model.to(device), or select the "
                "parameters of one device with params="
            )
        check_materialized(model)
        dtypes = {p.dtype for _, p in selected}
        if len(dtypes) > 1:
            raise ProblemError(
                f"the selected parameters have several dtypes {sorted(map(str, dtypes))}: "
                "expected one. Convert the model with model.float() or model.double()"
            )
        self.names = [n for n, _ in selected]
        self.shapes = [tuple(p.shape) for _, p in selected]
        self.numels = [p.numel() for _, p in selected]
        self.num_params = sum(self.numels)
        self.device = next(iter(devices))
        self.dtype = next(iter(dtypes))
        if point is None:
            point = torch.cat([p.detach().reshape(-1) for _, p in selected])  # a new tensor
        elif point.shape != (self.num_params,):
            raise ProblemError(
                f"point must be a flat vector of {self.num_params} parameters, got a tensor of "
                f"shape {tuple(point.shape)}"
            )
        self.point = point.detach().to(device=self.device, dtype=self.dtype)
        if reduction is None:
            reduction = getattr(loss_fn, "reduction", "mean")
        if reduction not in ("mean", "sum"):
            raise ProblemError(
                f"the loss reduction is {reduction!r}: expected 'mean' or 'sum' so that the loss "
                "is a scalar. Build the loss with reduction='mean'"
            )
        self.reduction = reduction
        self._data = data
        self._batch_stats = batch_stats
        self._one_batch = _is_one_batch(data)
        if not self._one_batch:
            if isinstance(data, Tensor) or not isinstance(data, Iterable):
                raise ProblemError(
                    "data must be one (inputs, targets) pair or an iterable of such batches, "
                    f"got {_describe(data)}"
                )
            if isinstance(data, Iterator):
                raise ProblemError(
                    f"data is an iterator ({type(data).__name__}) that can be traversed only "
                    "once; a Problem passes over the data many times. Pass a list of batches or "
                    "a DataLoader instead (list(generator) if it fits in memory)"
                )
        self._sizes = [n for n, _ in self._scan()]
        self.num_samples = sum(self._sizes)
        if self.num_samples == 0:
            raise ProblemError("data is empty: expected at least one batch with one sample")
        self._has_rnn = any(isinstance(m, nn.RNNBase) for m in model.modules())
        if cache_graph == "auto":
            cache_graph = self._one_batch
        self.cache_graph = bool(cache_graph) and self.hvp_method == "exact"
        self.hvp_count = 0
        # Why :meth:`directional` fell back to a gradient and a product (None while it runs
        # in forward mode).
        self.directional_fallback: str | None = None
        self.gradient_count = 0
        self._graph: tuple[list[Tensor], list[Tensor]] | None = None
        self._moved: tuple[Any, Any] | None = None
        self._graph_loss: float | None = None
        if check:
            self._check_first_batch()

    # -- data ------------------------------------------------------------------------------

    def _raw_batches(self) -> Iterator[tuple[Any, Any]]:
        if self._one_batch:
            yield self._data[0], self._data[1]
            return
        for i, batch in enumerate(self._data):
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise ProblemError(
                    f"each batch must be a pair (inputs, targets); batch {i} is "
                    f"{_describe(batch)}. Wrap your data so it yields (inputs, targets)"
                )
            yield batch[0], batch[1]

    def _scan(self) -> Iterator[tuple[int, tuple[Any, Any]]]:
        for inputs, targets in self._raw_batches():
            yield batch_size(inputs, targets), (inputs, targets)

    def batches(self) -> Iterator[tuple[float, Any, Any]]:
        """Yield ``(weight, inputs, targets)`` on the model's device, weights as in ``F``."""
        if self._one_batch and self._moved is not None:
            inputs, targets = self._moved
            yield self._weight(self.num_samples), inputs, targets
            return
        for n, (inputs, targets) in self._scan():
            if n == 0:
                continue
            inputs, targets = self._to_device(inputs), self._to_device(targets)
            if self._one_batch:
                self._moved = (inputs, targets)
            yield self._weight(n), inputs, targets

    def _weight(self, n: int) -> float:
        return n / self.num_samples if self.reduction == "mean" else 1.0

    def _to_device(self, x: Any) -> Any:
        return tree_map(
            lambda t: t.to(self.device, non_blocking=True) if isinstance(t, Tensor) else t, x
        )

    # -- the function ------------------------------------------------------------------------

    def split(self, flat: Tensor) -> dict[str, Tensor]:
        """The flat vector as a ``{name: tensor}`` dict of the selected parameters' shapes."""
        return {
            n: t.view(s) for n, t, s in zip(self.names, torch.split(flat, self.numels), self.shapes)
        }

    def flatten(self, tensors: Iterable[Tensor]) -> Tensor:
        """Concatenate per-parameter tensors (in ``names`` order) into one flat vector."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def outputs(self, inputs: Any, theta: Tensor | None = None) -> Any:
        """The model's outputs on ``inputs`` at ``theta`` (default: the point)."""
        return _call(self.model, self.split(self.point if theta is None else theta), inputs)

    def _leaves(self, theta: Tensor) -> list[Tensor]:
        # Per-parameter leaves: double backward through them is faster than through one flat
        # leaf. They are views of theta, not copies (no pass writes into them): at scale a copy
        # of the parameters is a gradient's worth of memory.
        return [t.detach().requires_grad_(True) for t in self.split(theta).values()]

    def _leaf_loss(self, leaves: list[Tensor], inputs: Any, targets: Any, index: int) -> Tensor:
        out = _call(self.model, dict(zip(self.names, leaves)), inputs)
        return self._batch_loss_from_outputs(out, targets, index)

    def _batch_loss(self, theta: Tensor, inputs: Any, targets: Any, index: int = 0) -> Tensor:
        out = _call(self.model, self.split(theta), inputs)
        return self._batch_loss_from_outputs(out, targets, index)

    def _check_first_batch(self) -> None:
        # A few samples show a wrong shape, dtype, device or loss at a fraction of a full pass;
        # non-finite values elsewhere are caught when the full batch is first evaluated.
        for _, inputs, targets in self.batches():
            n = batch_size(inputs, targets)
            if n > 4 and isinstance(targets, Tensor):
                inputs = take_samples(inputs, slice(0, 4), n)
                targets = targets[:4]
            try:
                with torch.no_grad():
                    out = _call(self.model, self.split(self.point), inputs)
            except (RuntimeError, TypeError, ValueError, IndexError) as err:
                raise ProblemError(
                    f"the model could not take the first batch: inputs are {_describe(inputs)}; "
                    f"the model raised {first_line(err)}. Check the input shape, dtype and "
                    "device the model expects"
                ) from err
            with torch.no_grad():
                loss = call_loss(self.loss_fn, out, targets)
            self._check_finite(scalar_loss(loss, "on batch 0"), 0, "loss")
            return

    def _check_finite(self, value: Tensor, index: int, what: str) -> None:
        if not bool(torch.isfinite(value).all()):
            bad = "NaN" if bool(torch.isnan(value).any()) else "infinite"
            raise NonFiniteError(
                f"the {what} is {bad} on batch {index} at this point: curvature is undefined "
                "there. Check the data for NaN/inf, lower the learning rate that led here, or "
                "analyse an earlier checkpoint"
            )

    def _context(self) -> contextlib.ExitStack:
        """The kernels a second-order pass needs: the fused attention kernels (flash, memory
        efficient, on the CPU too) and cuDNN's RNN kernels have no double backward, so attention
        runs on the math kernel (the same function) and cuDNN is off for RNNs on a GPU."""
        stack = contextlib.ExitStack()
        stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        if self._has_rnn and self.device.type == "cuda":
            stack.enter_context(torch.backends.cudnn.flags(enabled=False))
        return stack

    def loss(self, theta: Tensor | None = None) -> float:
        """``F(theta)`` (default: at the point), without building a graph."""
        if theta is None and self._graph_loss is not None:
            return self._graph_loss
        theta = self.point if theta is None else theta.detach()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for i, (w, inputs, targets) in enumerate(self.batches()):
                total += w * self._batch_loss(theta, inputs, targets, i).double()
        self._check_finite(total, 0, "loss")
        return float(total)

    def gradient(self, theta: Tensor | None = None) -> Tensor:
        """``grad F(theta)`` as a flat vector (default: at the point)."""
        if theta is None and self._graph is not None:
            self.gradient_count += 1
            return self.cached_gradient()  # type: ignore[return-value]
        return self.loss_and_gradient(theta)[1]

    def cached_gradient(self) -> Tensor | None:
        """The gradient at the point if the graph is cached (building it if needed), else None."""
        if not self.cache_graph:
            return None
        if self._graph is None:
            self._graph = self._build_graph()
        return self.flatten(g.detach() for g in self._graph[1])

    def release_graph(self) -> None:
        """Free the cached gradient graph (the next product or cached gradient rebuilds it);
        the loss at the point stays known."""
        self._graph = None

    def loss_and_gradient(self, theta: Tensor | None = None) -> tuple[float, Tensor]:
        """``F(theta)`` and its gradient, in one pass over the data."""
        point = self.point if theta is None else theta
        leaves = self._leaves(point)
        # Accumulated into one flat vector through the leaves' .grad (views of it), as the
        # products are: a list of gradients and its concatenation would hold it twice.
        out = torch.zeros_like(point)
        for leaf, view in zip(leaves, self.split(out).values()):
            leaf.grad = view
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        try:
            with self._context():
                for i, (w, inputs, targets) in enumerate(self.batches()):
                    loss = self._leaf_loss(leaves, inputs, targets, i)
                    self._check_finite(loss.detach(), i, "loss")
                    torch.autograd.backward(w * loss, inputs=leaves)
                    total += w * loss.detach().double()
        finally:
            for leaf in leaves:
                leaf.grad = None
        self.gradient_count += 1
        return float(total), out

    def _build_graph(self) -> tuple[list[Tensor], list[Tensor]]:
        leaves = self._leaves(self.point)
        grads: list[Tensor] | None = None
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        with self._context():
            for i, (w, inputs, targets) in enumerate(self.batches()):
                loss = self._leaf_loss(leaves, inputs, targets, i)
                self._check_finite(loss.detach(), i, "loss")
                gs = torch.autograd.grad(w * loss, leaves, create_graph=True)
                grads = list(gs) if grads is None else [a + b for a, b in zip(grads, gs)]
                total += w * loss.detach().double()
        assert grads is not None
        self._graph_loss = float(total)
        return leaves, grads

    def hvp(self, v: Tensor) -> Tensor:
        """The Hessian-vector product ``H v`` at the point (one count of :attr:`hvp_count`).

        By double backward, exact to round-off; with ``hvp="finite-difference"``, by central
        differences of two gradients (see :meth:`finite_difference_hvp`)."""
        v = self._vector(v)
        if self.hvp_method == "finite-difference":
            return self.finite_difference_hvp(v)
        try:
            return self._exact_hvp(v)
        except RuntimeError as err:
            if not (self._hvp_auto and _no_double_backward(err)):
                raise
            self.hvp_count -= 1
            self.hvp_method = "finite-difference"
            self.hvp_fallback = first_line(err)
            self.cache_graph = False
            self.release_graph()
            return self.finite_difference_hvp(v)

    def _vector(self, v: Tensor) -> Tensor:
        if v.shape != (self.num_params,):
            raise ProblemError(
                f"expected a vector of {self.num_params} entries (the selected parameters), "
                f"got a tensor of shape {tuple(v.shape)}"
            )
        return v.to(device=self.device, dtype=self.dtype)

    def _exact_hvp(self, v: Tensor) -> Tensor:
        parts = list(self.split(v).values())
        self.hvp_count += 1
        # The product accumulates into one flat buffer through the leaves' .grad (views of
        # it): a list of per-tensor results and its concatenation would hold it twice.
        out = torch.zeros_like(v)
        with self._context():
            if self.cache_graph:
                if self._graph is None:
                    self._graph = self._build_graph()
                leaves, grads = self._graph
                self._backward_into(out, leaves, grads, parts, retain=True)
                return out
            for i, (w, inputs, targets) in enumerate(self.batches()):
                leaves = self._leaves(self.point)
                loss = self._leaf_loss(leaves, inputs, targets, i)
                gs = torch.autograd.grad(w * loss, leaves, create_graph=True)
                self._backward_into(out, leaves, list(gs), parts, retain=False)
            return out

    def _backward_into(
        self,
        out: Tensor,
        leaves: list[Tensor],
        grads: list[Tensor],
        parts: list[Tensor],
        retain: bool,
    ) -> None:
        for leaf, view in zip(leaves, self.split(out).values()):
            leaf.grad = view  # autograd adds into a leaf's existing .grad in place
        try:
            used = [(g, p) for g, p in zip(grads, parts) if g.requires_grad]
            if used:
                torch.autograd.backward(
                    [g for g, _ in used],
                    [p for _, p in used],
                    inputs=leaves,
                    retain_graph=retain,
                )
        finally:
            for leaf in leaves:
                leaf.grad = None

    def directional(self, v: Tensor) -> tuple[float, float, float]:
        """``F``, ``v^T grad F`` and ``v^T H v`` at the point along ``v`` (one count of
        :attr:`hvp_count`).

        By forward-over-forward mode (:mod:`optiscope.problem.forward`): exact like a product,
        but with no backward graph, so its memory is a forward pass's, not a gradient's graph
        and a double backward's. Where an operation has no forward-mode derivative, or the
        Problem takes finite-difference products, ``v . grad F`` and ``v . Hv`` from a gradient
        and a product instead (:attr:`directional_fallback` says why)."""
        v = self._vector(v)
        if self.directional_fallback is None and self.hvp_method == "exact":
            try:
                return self._forward_directional(v)
            except (NotImplementedError, RuntimeError) as err:
                if not forward.unsupported(err):
                    raise
                self.hvp_count -= 1
                self.directional_fallback = first_line(err)
        value, grad = self.loss_and_gradient()
        slope = dot64(grad, v)
        del grad
        return value, slope, dot64(v, self.hvp(v))

    def _forward_directional(self, v: Tensor) -> tuple[float, float, float]:
        self.hvp_count += 1
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)
        with self._context(), contextlib.ExitStack() as stack:
            if self._has_rnn:
                # oneDNN's CPU RNN kernel (torch 2.14) has no forward-mode rule; the native
                # one, the same function, has.
                stack.enter_context(forward.without_onednn())
            for i, (w, inputs, targets) in enumerate(self.batches()):

                def f(t: Tensor, x: Any = inputs, y: Any = targets, i: int = i) -> Tensor:
                    return self._batch_loss(t, x, y, i)

                parts = forward.second_directional(f, self.point, v)
                # As with products: a finite loss with an overflowing curvature is a value.
                self._check_finite(parts[0], i, "loss")
                for k, part in enumerate(parts):
                    totals[k] += w * part.double()
        value, slope, curvature = totals.tolist()
        return value, slope, curvature

    def finite_difference_hvp(self, v: Tensor, step: float | None = None) -> Tensor:
        """``H v`` by central differences of gradients, ``(g(x + h u) - g(x - h u)) / 2h`` times
        ``|v|`` with ``u = v / |v|``: two gradient passes and no double backward, for models
        where double backward cannot run.

        The default step is ``h = eps^(1/3) max(1, rms(x))`` (eps of the model's dtype, rms the
        parameters' root mean square), which balances the O(h^2) truncation against round-off
        in the gradients. Its error is stated in docs/reliability.md: about 1e-4 to 1e-3
        relative on smooth float32 models, far more where the step crosses the kinks of ReLU
        or max pooling (the difference then sees jumps of the gradient that the Hessian,
        defined almost everywhere, does not)."""
        v = self._vector(v)
        self.hvp_count += 1
        norm = float(v.norm())
        if norm == 0.0:
            return torch.zeros_like(v)
        if step is None:
            step = finite_difference_step(self.dtype, float(self.point.norm()), self.num_params)
        scale = step / norm
        plus = self.loss_and_gradient(self.point + scale * v)[1]
        minus = self.loss_and_gradient(self.point - scale * v)[1]
        self.gradient_count -= 2  # counted as one product, not as gradients
        return plus.sub_(minus).div_(2 * scale)

    def ggn_vp(self, v: Tensor) -> Tensor:
        """The generalized Gauss-Newton product ``J^T H_out J v`` (Schraudolph 2002).

        ``J`` is the Jacobian of the model's outputs and ``H_out`` the Hessian of the loss with
        respect to them; positive semi-definite whenever the loss is convex in the outputs
        (cross-entropy, squared error).
        """
        v = v.to(device=self.device, dtype=self.dtype)
        self.hvp_count += 1
        result = torch.zeros_like(v)
        for i, (w, inputs, targets) in enumerate(self.batches()):

            def f(t, inputs=inputs):
                return _call(self.model, self.split(t), inputs)

            with self._context():
                out, jv = torch.func.jvp(f, (self.point,), (v,))[:2]
                if not isinstance(out, Tensor):
                    raise ProblemError(
                        "the Gauss-Newton matrix needs a model that returns one tensor, got "
                        f"{_describe(out)}; use the Hessian instead"
                    )
                leaf = out.detach().requires_grad_(True)
                loss = self._batch_loss_from_outputs(leaf, targets, i)
                (g,) = torch.autograd.grad(w * loss, leaf, create_graph=True)
                (hjv,) = torch.autograd.grad(g, leaf, jv)
                vjp = torch.func.vjp(f, self.point)[1]
                (jthjv,) = vjp(hjv)
            result += jthjv
        return result

    def _batch_loss_from_outputs(self, out: Any, targets: Any, index: int) -> Tensor:
        where = f"on batch {index}"
        return scalar_loss(call_loss(self.loss_fn, out, targets, " " + where), where)

    def hessian_operator(self) -> HessianOperator:
        """The Hessian at the point as a :class:`LinearOperator` (products count as HVPs)."""
        return HessianOperator(self)

    def ggn_operator(self) -> GGNOperator:
        """The generalized Gauss-Newton matrix at the point as a :class:`LinearOperator`."""
        return GGNOperator(self)

    def dense_hessian(self, max_params: int = 5000) -> Tensor:
        """The full Hessian by ``torch.func.hessian``, for tiny problems and tests.

        Its forward-over-reverse pass runs the normalizations from their definitions
        (:func:`optiscope.problem.forward.definitions`): through PyTorch's layer and batch
        norm kernels it misses second-order terms (0.5-1% off on a tiny float64 case)."""
        if self.num_params > max_params:
            raise ProblemError(
                f"the dense Hessian of {self.num_params} parameters would take "
                f"{self.num_params**2 * 8 / 2**30:.1f} GiB; expected at most {max_params} "
                "parameters. Use hessian_eigenvalues or hessian_trace, or raise max_params"
            )
        total = torch.zeros((self.num_params, self.num_params), dtype=self.dtype)
        total = total.to(self.device)
        with self._context(), forward.definitions():
            for i, (w, inputs, targets) in enumerate(self.batches()):

                def f(t, inputs=inputs, targets=targets, i=i, w=w):
                    return w * self._batch_loss(t, inputs, targets, i)

                total += torch.func.hessian(f)(self.point)
        return total

    def per_sample_gradients(self, inputs: Any = None, targets: Any = None) -> Tensor:
        """Gradients of each sample's own loss ``loss_fn(model(x_i), y_i)``, one row per sample.

        ``F`` is their mean (``reduction="mean"``) or sum. Defaults to all the data, as an
        ``(N, num_params)`` tensor; pass one batch to bound the memory. Uses ``torch.func.vmap``
        and falls back to a loop over samples where the model cannot be vmapped.
        """
        if inputs is None:
            rows = [self.per_sample_gradients(x, y) for _, x, y in self.batches()]
            return torch.cat(rows)
        inputs, targets = self._to_device(inputs), self._to_device(targets)

        def sample_loss(params, x, y):
            one = tree_map(lambda t: t.unsqueeze(0) if isinstance(t, Tensor) else t, (x, y))
            return self._batch_loss_from_outputs(_call(self.model, params, one[0]), one[1], 0)

        n = batch_size(inputs, targets)
        with self._context():
            try:
                # Per-parameter gradients, concatenated after: vmap through the split of one
                # flat vector costs about twice as much.
                # Targets may be None: a model computing its own loss from its inputs.
                dims = (None, 0, 0 if targets is not None else None)
                with warnings.catch_warnings():
                    # vmap over kernels without a batching rule (the LSTM's) runs them sample
                    # by sample and says so at every call; the result is the same.
                    warnings.filterwarnings(
                        "ignore", "There is a performance drop because we have not yet", UserWarning
                    )
                    per = torch.func.vmap(torch.func.grad(sample_loss), in_dims=dims)(
                        self.split(self.point), inputs, targets
                    )
                grads = torch.cat([per[name].reshape(n, -1) for name in self.names], 1)
            except (RuntimeError, NotImplementedError, ValueError):
                grads = self._per_sample_loop(inputs, targets)
        return grads.detach()

    def _per_sample_loop(self, inputs: Any, targets: Any) -> Tensor:
        n = batch_size(inputs, targets)
        rows = []
        for i in range(n):
            x = tree_map(lambda t, i=i: t[i : i + 1] if isinstance(t, Tensor) else t, inputs)
            y = targets[i : i + 1] if targets is not None else None
            theta = self.point.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(self._batch_loss(theta, x, y), theta)
            rows.append(g)
        return torch.stack(rows)

    def in_float64(self) -> Problem:
        """The same problem in float64, at the same point: a copy of the model (and of a loss
        that is a module) in double precision, on the floating-point data in double precision.
        The model itself is not changed. Raises :class:`ProblemError` where the model cannot
        be copied."""
        try:
            model = copy.deepcopy(self.model).double()
            loss_fn = (
                copy.deepcopy(self.loss_fn).double()
                if isinstance(self.loss_fn, nn.Module)
                else self.loss_fn
            )
        except Exception as err:
            raise ProblemError(
                f"the model could not be copied into float64 ({first_line(err)}): check the "
                "float32 result against a float64 model yourself (model.double())"
            ) from err
        names = set(self.names)
        data = _Double(self._data) if not self._one_batch else _double(self._data)
        return Problem(
            model,
            loss_fn,
            data,
            params=lambda name, _: name in names,
            reduction=self.reduction,
            cache_graph=self.cache_graph,
            point=self.point.to(torch.float64),
            check=False,
            batch_stats=self._batch_stats,
            hvp="auto" if self._hvp_auto and self.hvp_fallback is None else self.hvp_method,
        )

    def at(self, theta: Tensor) -> Problem:
        """The same model, loss, data and parameter selection at another point."""
        other = object.__new__(Problem)
        other.__dict__.update(self.__dict__)
        if theta.shape != (self.num_params,):
            raise ProblemError(
                f"expected a flat vector of {self.num_params} parameters, got a tensor of shape "
                f"{tuple(theta.shape)}"
            )
        other.point = theta.detach().to(device=self.device, dtype=self.dtype)
        other._graph = None
        other._graph_loss = None
        other.hvp_count = 0
        other.gradient_count = 0
        return other

    def __repr__(self) -> str:
        return (
            f"Problem({type(self.model).__name__}, {self.num_params} parameters in "
            f"{len(self.names)} tensors, {self.num_samples} samples, reduction={self.reduction!r}, "
            f"device={self.device})"
        )


class HessianOperator(LinearOperator):
    """The Hessian of a :class:`Problem` at its point."""

    symmetric = True

    def __init__(self, problem: Problem) -> None:
        super().__init__((problem.num_params,) * 2, problem.dtype, problem.device)
        self.problem = problem

    def _matvec(self, v: Tensor) -> Tensor:
        return self.problem.hvp(v)


class GGNOperator(LinearOperator):
    """The generalized Gauss-Newton matrix of a :class:`Problem` at its point."""

    symmetric = True

    def __init__(self, problem: Problem) -> None:
        super().__init__((problem.num_params,) * 2, problem.dtype, problem.device)
        self.problem = problem

    def _matvec(self, v: Tensor) -> Tensor:
        return self.problem.ggn_vp(v)
