"""2D slices of the error surface: ``L(c + x d1 + y d2)`` on a grid, on three kinds of plane.

- Filter-normalized random directions (Li, Xu, Taylor, Studer and Goldstein 2018, "Visualizing
  the Loss Landscape of Neural Nets", sec. 4): a Gaussian direction whose every filter (a row of
  a Linear weight, an output channel of a convolution) is rescaled to the norm of the same filter
  of the parameters, ``d_ij <- d_ij / ||d_ij|| * ||theta_ij||``. Parameters with one dimension
  (biases, normalization layers' weights and biases) get a zero direction, as in the paper's
  figures (its code's ``ignore='biasbn'``), or a copy of the parameter (its other choice); never
  a per-element "filter", which leaves only a random sign (the loss-landscapes package's issue #3).
- The top two eigenvectors of the Hessian (Lanczos).
- The first two principal components of the training trajectory ``theta_t - theta_T`` (Li et al.
  sec. 7), with the trajectory projected onto the plane.

Grid evaluation does no model copy and no autograd: the grid points' parameters are formed as one
``(K, n)`` matrix ``c + [x y] [d1; d2]`` and run through the model with ``torch.func.vmap`` over
the K points. For a sequential model that starts with a Linear or convolution layer, that layer's
output is linear in the plane's coordinates, ``z(x, y) = z_c + x z_1 + y z_2``: computed once,
it replaces the first layer at every point.

With a tolerance, the grid is evaluated coarse to fine: a coarse grid of anchors on all the data,
every other point on a fixed random subsample S of m of the N samples with a control variate.
The cubic interpolation ``I`` of the anchors is exact for the whole data's losses and for each
sample's, so ``L(p) = I[L](p) + mean_i (l_i(p) - I[l_i](p))``, and the mean of the residuals is
estimated from S: unbiased, with standard error ``s_r / sqrt(m) * sqrt(1 - m / N)`` from the
residuals' own spread. Points whose bound (``z`` standard errors) exceeds the tolerance are
completed on the other N - m samples, which makes them exact.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from optiscope.core.modules import ACTIVATIONS, LAYERS
from optiscope.core.shard import gather, mine
from optiscope.landscape.line import LandscapeError, as_point, loss_or_nan
from optiscope.problem.problem import Problem, _call
from optiscope.quantities.curvature import hessian_eigenvalues

# Cap on the first layer's three stored outputs.
_REUSE_ELEMENTS = 1 << 27


@dataclass
class Directions:
    """Two directions spanning a plane, with how they were made (``kind``) and what was measured
    on the way (``info``: eigenvalues, explained variance, normalization)."""

    d1: Tensor
    d2: Tensor
    kind: str
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "norms": [float(self.d1.norm()), float(self.d2.norm())],
            "cosine": float(
                torch.dot(self.d1.double(), self.d2.double())
                / max(float(self.d1.norm() * self.d2.norm()), 1e-300)
            ),
            **self.info,
        }


def random_directions(
    problem: Problem,
    *,
    seed: int = 0,
    normalization: str = "filter",
    one_dim: str = "zero",
    center: Tensor | nn.Module | None = None,
) -> Directions:
    """Two Gaussian directions normalized to the parameters at ``center`` (default: the
    problem's point).

    ``normalization``: ``"filter"`` (Li et al. 2018: each filter to its parameter filter's norm),
    ``"layer"`` (each tensor to its parameter tensor's norm) or ``"none"``. ``one_dim``: what
    one-dimensional parameters (biases, normalization layers) get under ``"filter"`` or
    ``"layer"``: ``"zero"`` (the paper's figures) or ``"copy"`` (the parameter itself).
    """
    if normalization not in ("filter", "layer", "none"):
        raise LandscapeError(
            f"normalization {normalization!r} is not one of 'filter', 'layer', 'none'"
        )
    if one_dim not in ("zero", "copy"):
        raise LandscapeError(f"one_dim {one_dim!r} is not one of 'zero', 'copy'")
    c = problem.point if center is None else as_point(problem, center, "center")
    gen = torch.Generator().manual_seed(seed)
    dirs = []
    for _ in range(2):
        d = torch.randn(problem.num_params, generator=gen, dtype=torch.float64)
        if normalization != "none":
            parts = []
            for t, w in zip(torch.split(d, problem.numels), problem.split(c.double()).values()):
                w = w.detach().cpu()
                t = t.view(w.shape)
                if w.ndim <= 1:
                    t = torch.zeros_like(t) if one_dim == "zero" else w.clone()
                elif normalization == "filter":
                    dn = t.reshape(len(t), -1).norm(dim=1)
                    wn = w.reshape(len(w), -1).norm(dim=1)
                    t = t * (wn / dn.clamp_min(1e-300)).view(-1, *[1] * (w.ndim - 1))
                else:
                    t = t * (w.norm() / t.norm().clamp_min(1e-300))
                parts.append(t.reshape(-1))
            d = torch.cat(parts)
        dirs.append(d.to(device=problem.device, dtype=problem.dtype))
    return Directions(
        dirs[0],
        dirs[1],
        "random",
        {"seed": seed, "normalization": normalization, "one_dim": one_dim},
    )


def hessian_directions(
    problem: Problem, *, center: Tensor | nn.Module | None = None, tol: float = 1e-4
) -> Directions:
    """The unit eigenvectors of the two largest Hessian eigenvalues at ``center``."""

    if problem.num_params < 2:
        raise LandscapeError(
            f"a plane needs at least 2 parameters, the problem has {problem.num_params}"
        )
    at = problem if center is None else problem.at(as_point(problem, center, "center"))
    res = hessian_eigenvalues(at, k=2, which="largest", tol=tol, check_float64=False)
    vecs = res.vectors.to(dtype=problem.dtype)
    return Directions(
        vecs[:, 0].clone(),
        vecs[:, 1].clone(),
        "hessian",
        {"eigenvalues": [float(v) for v in res.values], "hvps": res.hvps},
    )


@dataclass
class Trajectory:
    """A training trajectory seen in the plane of its first two principal components.

    ``coords[t]`` are the coordinates of ``theta_t - center`` along ``d1, d2`` (orthonormal);
    ``residuals[t]`` its distance from the plane. ``explained`` is the fraction of the
    trajectory's variance along each component. ``path_length`` sums the distances between
    consecutive points (a lower bound on the length travelled when points are sampled sparsely);
    ``distance`` is from the first point to the last.
    """

    directions: Directions
    coords: list[tuple[float, float]]
    residuals: list[float]
    explained: list[float]
    path_length: float
    distance: float

    @property
    def ratio(self) -> float:
        return self.path_length / self.distance if self.distance > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "coords": [list(c) for c in self.coords],
            "residuals": self.residuals,
            "explained": self.explained,
            "path_length": self.path_length,
            "distance": self.distance,
            "ratio": self.ratio,
        }


def _stack_points(points: Sequence[Tensor] | Tensor) -> Tensor:
    if isinstance(points, Tensor):
        if points.ndim != 2:
            raise LandscapeError(
                f"a trajectory as a tensor must be 2-D (steps x parameters), got shape "
                f"{tuple(points.shape)}"
            )
        return points.detach().double()
    if len(points) == 0:
        raise LandscapeError("the trajectory is empty: expected at least 3 points")
    shapes = {tuple(p.shape) for p in points}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise LandscapeError(
            f"trajectory points must be flat vectors of one length, got shapes {sorted(shapes)[:3]}"
        )
    return torch.stack([p.detach().double() for p in points])


def trajectory_directions(
    points: Sequence[Tensor] | Tensor, *, center: Tensor | None = None
) -> Trajectory:
    """PCA of ``theta_t - center`` (default center: the last point), as Li et al. 2018 sec. 7.

    The components come from the eigenvectors of the points' T x T Gram matrix, so memory is
    that of the points themselves whatever the parameter count."""
    p = _stack_points(points)
    if len(p) < 3:
        raise LandscapeError(
            f"a trajectory of {len(p)} points spans no plane: expected at least 3 points"
        )
    c = p[-1] if center is None else center.detach().to(p.device, torch.float64)
    m = p - c
    mc = m - m.mean(0)
    gram = mc @ mc.T
    evals, evecs = torch.linalg.eigh(gram)
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    if float(evals[1]) <= 1e-12 * max(float(evals[0]), 1e-300):
        raise LandscapeError(
            "the trajectory lies on a line (or a point): its second principal component is "
            "zero. Record more varied points, or use random directions"
        )
    dirs = (mc.T @ evecs[:, :2]) / evals[:2].sqrt()
    # Sign: the first point has positive coordinates, so plots read the same across runs.
    signs = torch.sign(m[0] @ dirs)
    dirs = dirs * torch.where(signs == 0, 1.0, signs)
    coords = m @ dirs
    residuals = (m - coords @ dirs.T).norm(dim=1)
    steps = (p[1:] - p[:-1]).norm(dim=1)
    total = float(evals.sum())
    directions = Directions(
        dirs[:, 0].clone(),
        dirs[:, 1].clone(),
        "pca",
        {"explained": [float(evals[0]) / total, float(evals[1]) / total]},
    )
    return Trajectory(
        directions,
        [(float(a), float(b)) for a, b in coords.tolist()],
        [float(r) for r in residuals],
        directions.info["explained"],
        float(steps.sum()),
        float((p[-1] - p[0]).norm()),
    )


@dataclass
class Surface:
    """Losses on a grid of the plane ``center + x d1 + y d2``: ``losses[j, i]`` at ``(xs[i],
    ys[j])``.

    ``bounds[j, i]`` is the error bound of a point estimated from a subsample (``z`` standard
    errors; 0 where the point was evaluated on all the data, marked in ``exact``). ``cost`` is
    what the surface cost in full-data forward passes per grid point (1.0: each point evaluated
    once on all the data); ``first_layer`` says whether the first layer's outputs were reused.
    Non-finite losses are NaN.
    """

    xs: np.ndarray
    ys: np.ndarray
    losses: np.ndarray
    bounds: np.ndarray
    exact: np.ndarray
    directions: Directions
    center_loss: float
    method: str
    samples: int
    sample: int
    cost: float
    first_layer: bool
    seconds: float
    trajectory: Trajectory | None = None
    tol: float | None = None
    z: float = 3.0

    def relative_bounds(self) -> np.ndarray:
        return self.bounds / np.maximum(np.abs(self.losses), 1e-300)

    def to_dict(self) -> dict[str, Any]:
        rel = self.relative_bounds()
        out = {
            "xs": self.xs.tolist(),
            "ys": self.ys.tolist(),
            "losses": _nan_to_none(self.losses),
            "center_loss": self.center_loss,
            "directions": self.directions.to_dict(),
            "method": self.method,
            "samples": self.samples,
            "sample": self.sample,
            "tol": self.tol,
            "z": self.z,
            "max_relative_bound": float(np.nanmax(rel)) if rel.size else 0.0,
            "exact_fraction": float(self.exact.mean()),
            "cost": self.cost,
            "first_layer": self.first_layer,
            "seconds": self.seconds,
            "min_loss": float(np.nanmin(self.losses)) if np.isfinite(self.losses).any() else None,
        }
        if self.trajectory is not None:
            out["trajectory"] = self.trajectory.to_dict()
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The numbers as arrays, for ``numpy.savez``."""
        out = {
            "xs": self.xs,
            "ys": self.ys,
            "losses": self.losses,
            "bounds": self.bounds,
            "exact": self.exact,
        }
        if self.trajectory is not None:
            out["trajectory"] = np.asarray(self.trajectory.coords, dtype=np.float64)
        return out


def _nan_to_none(a: np.ndarray) -> list[Any]:
    return [[None if not math.isfinite(v) else float(v) for v in row] for row in a.tolist()]


# -- grid evaluation ------------------------------------------------------------------------


def _chain(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]] | None:
    """A sequential model as its leaf modules in order, with their names; None if not one."""
    if type(model) is not nn.Sequential:
        return None
    out: list[tuple[str, nn.Module]] = []
    for name, m in model.named_children():
        full = f"{prefix}{name}"
        if type(m) is nn.Sequential:
            sub = _chain(m, f"{full}.")
            if sub is None:
                return None
            out.extend(sub)
        else:
            out.append((full, m))
    return out


def _sample_loss_fn(loss_fn: Any) -> Any:
    """Per-sample losses: the loss's own ``reduction="none"`` for torch's common losses (checked
    against the loss itself before use), else ``loss_fn`` on each sample through vmap."""
    import torch.nn.functional as F

    def rows(v: Tensor) -> Tensor:
        return v.reshape(len(v), -1).mean(1)

    plain = (
        getattr(loss_fn, "weight", None) is None and getattr(loss_fn, "pos_weight", None) is None
    )
    if loss_fn is F.cross_entropy or (type(loss_fn) is nn.CrossEntropyLoss and plain):
        smoothing = getattr(loss_fn, "label_smoothing", 0.0)
        return lambda o, t: rows(F.cross_entropy(o, t, reduction="none", label_smoothing=smoothing))
    if loss_fn is F.mse_loss or type(loss_fn) is nn.MSELoss:
        return lambda o, t: rows((o - t) ** 2)
    if loss_fn is F.binary_cross_entropy_with_logits or (
        type(loss_fn) is nn.BCEWithLogitsLoss and plain
    ):
        return lambda o, t: rows(F.binary_cross_entropy_with_logits(o, t, reduction="none"))

    def one(o: Tensor, t: Tensor) -> Tensor:
        return loss_fn(o.unsqueeze(0), t.unsqueeze(0))

    return vmap(one)


class _Grid:
    """Per-sample losses at points ``c + x d1 + y d2``.

    The points' parameters are written into one private copy of the model (made once), whose
    parameters are views of one flat buffer: two vector operations per point, no autograd, no
    per-point copy.
    """

    def __init__(self, problem: Problem, center: Tensor, d1: Tensor, d2: Tensor, reuse: bool):
        self.problem = problem
        self.center, self.d1, self.d2 = center, d1, d2
        self.fast = False
        self.first_layer = False
        self.why = ""
        inputs, targets = [], []
        for _, x, y in problem.batches():
            if not (isinstance(x, Tensor) and isinstance(y, Tensor)):
                self.why = "inputs or targets are not tensors"
                return
            inputs.append(x)
            targets.append(y)
        self.x = torch.cat(inputs) if len(inputs) > 1 else inputs[0]
        self.y = torch.cat(targets) if len(targets) > 1 else targets[0]
        self.n = len(self.y)
        self.per_sample = _sample_loss_fn(problem.loss_fn)
        if not self._decomposes():
            return
        try:
            self.net = copy.deepcopy(problem.model)
        except Exception as err:  # a model that cannot be copied: one pass per point
            self.why = f"the model cannot be copied ({type(err).__name__})"
            return
        self.net.requires_grad_(False)
        # The copy's selected parameters become views of one flat buffer: a point is then three
        # operations on that buffer.
        named = dict(self.net.named_parameters())
        self.buffer = center.clone()
        for name, view in problem.split(self.buffer).items():
            named[name].data = view
        self.parts = [list(problem.split(t).values()) for t in (center, d1, d2)]
        self.fast = True
        chain = _chain(self.net) if reuse else None
        self.modules = [m for _, m in chain] if chain else []
        index = {n: i for i, n in enumerate(problem.names)}
        # Each module's selected parameters, by their index in the flat vector's split.
        self.owned = [
            [
                (local, index[f"{name}.{local}"])
                for local, _ in m.named_parameters(recurse=False)
                if f"{name}.{local}" in index
            ]
            for name, m in chain or []
        ]
        # Linear layers and elementwise functions only: points go through batched products.
        self.dense = bool(chain) and all(
            isinstance(m, (nn.Linear, *ACTIVATIONS)) for m in self.modules
        )
        # The first layer's output is reused where it costs more than the sum that replaces it.
        if chain and isinstance(chain[0][1], LAYERS) and chain[0][1].weight[0].numel() >= 16:
            self._setup_first_layer(chain[0][1], dict(self.owned[0]))

    def _decomposes(self) -> bool:
        """The loss is the mean (or sum) of the per-sample losses, checked on a few samples."""
        k = min(self.n, 8)
        try:
            with torch.no_grad():
                out = _call(self.problem.model, self.problem.split(self.center), self.x[:k])
                whole = float(self.problem.loss_fn(out, self.y[:k]))
                each = self.per_sample(out, self.y[:k]).double()
        except Exception as err:  # a loss that cannot be taken per sample: one pass per point
            self.why = f"the loss cannot be taken per sample ({type(err).__name__})"
            return False
        reduced = float(each.mean() if self.problem.reduction == "mean" else each.sum())
        if each.shape != (k,) or abs(reduced - whole) > 1e-4 * max(abs(whole), 1e-6):
            self.why = "the loss is not the mean or sum of per-sample losses"
            return False
        return True

    def _setup_first_layer(self, layer: nn.Module, selected: dict[str, int]) -> None:
        states: list[dict[str, Tensor]] = [{}, {}, {}]
        for local, tensor in layer.named_parameters(recurse=False):
            i = selected.get(local)
            for k in range(3):
                if i is not None:
                    states[k][local] = self.parts[k][i]
                else:  # frozen: the same at every point
                    states[k][local] = tensor.detach() if k == 0 else torch.zeros_like(tensor)
        with torch.no_grad():
            z0 = functional_call(layer, states[0], (self.x,))
            if 3 * z0.numel() > _REUSE_ELEMENTS:
                return
            self.z = [z0, *(functional_call(layer, st, (self.x,)) for st in states[1:])]
        self.first_layer = True

    def _set(self, a: float, b: float) -> None:
        torch.add(self.center, self.d1, alpha=a, out=self.buffer).add_(self.d2, alpha=b)

    def outputs(self, a: float, b: float, rows: Tensor | None) -> Any:
        self._set(a, b)
        if self.first_layer:
            z0, z1, z2 = self.z if rows is None else (z[rows] for z in self.z)
            h = torch.add(z0, z1, alpha=a).add_(z2, alpha=b)
            for module in self.modules[1:]:
                h = module(h)
            return h
        return self.net(self.x if rows is None else self.x[rows])

    def losses(self, points: Sequence[tuple[float, float]], rows: Tensor | None = None) -> Tensor:
        """Per-sample losses ``(len(points), len(rows))`` in float64."""
        y = self.y if rows is None else self.y[rows]
        with torch.no_grad():
            out = [self.per_sample(self.outputs(a, b, rows), y).double() for a, b in points]
        m = self.n if rows is None else len(rows)
        return torch.stack(out) if out else torch.zeros(0, m, dtype=torch.float64)

    def sampled_losses(self, coords: Tensor, rows: Tensor | None) -> Tensor:
        """Per-sample losses ``(K, m)`` at K points, each on its own rows ``rows[k]`` (None: all
        the data), several points through one forward: batched products for Linear layers,
        vmap otherwise."""
        problem = self.problem
        m = self.n if rows is None else rows.shape[1]
        out = []
        k = max(1, (1 << 22) // max(1, m * self._width()))
        with torch.no_grad():
            for s in range(0, len(coords), k):
                c = coords[s : s + k].to(self.d1)
                r = None if rows is None else rows[s : s + k]
                thetas = self.center + c[:, :1] * self.d1 + c[:, 1:] * self.d2
                parts = torch.split(thetas, problem.numels, dim=1)
                params = [
                    {n: parts[i].view(-1, *problem.shapes[i]) for n, i in own} for own in self.owned
                ]
                start = 1 if self.first_layer else 0
                if self.first_layer:
                    z = self.z if r is None else [t[r] for t in self.z]
                    view = (-1, *[1] * (z[0].ndim - (r is not None)))
                    h = z[0] + c[:, 0].view(view) * z[1] + c[:, 1].view(view) * z[2]
                else:
                    h = self.x.expand(len(c), *self.x.shape) if r is None else self.x[r]
                if self.dense:
                    o = self._dense(params[start:], h, start)
                elif self.modules:
                    o = vmap(functools.partial(self._tail, start=start))(params[start:], h)
                else:
                    o = vmap(self._whole)(thetas, h)
                y = self.y.expand(len(c), *self.y.shape) if r is None else self.y[r]
                out.append(vmap(self.per_sample)(o, y).double())
        return torch.cat(out)

    def _dense(self, params: list[dict[str, Tensor]], h: Tensor, start: int) -> Tensor:
        for module, own in zip(self.modules[start:], params):
            if isinstance(module, nn.Linear):
                k = len(h)
                w = own.get("weight", module.weight.expand(k, *module.weight.shape))
                b = own.get("bias", None if module.bias is None else module.bias.expand(k, -1))
                h = (
                    torch.bmm(h, w.transpose(1, 2))
                    if b is None
                    else torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
                )
            else:
                h = module(h)
        return h

    def _tail(self, params: list[dict[str, Tensor]], h: Tensor, start: int) -> Tensor:
        for module, own in zip(self.modules[start:], params):
            h = functional_call(module, own, (h,)) if own else module(h)
        return h

    def _whole(self, theta: Tensor, x: Tensor) -> Tensor:
        return functional_call(self.net, self.problem.split(theta), (x,))

    def _width(self) -> int:
        """Elements of all the modules' outputs for one sample: what a sampled row holds."""
        if not hasattr(self, "width"):
            total = [0]

            def hook(_m: nn.Module, _i: Any, out: Any) -> None:
                if isinstance(out, Tensor):
                    total[0] += out[0].numel()

            leaves = [m for m in self.net.modules() if not list(m.children())]
            handles = [m.register_forward_hook(hook) for m in leaves]
            try:
                with torch.no_grad():
                    self.net(self.x[:1])
            finally:
                for handle in handles:
                    handle.remove()
            self.width = max(total[0], 1)
        return self.width

    def mean_losses(self, points: Sequence[tuple[float, float]]) -> list[float]:
        """The loss on all the data at each point (the mean, or sum, of the per-sample losses)."""
        with torch.no_grad():
            return [
                float(self.problem.loss_fn(self.outputs(a, b, None), self.y)) for a, b in points
            ]

    def total(self, a: float, b: float) -> float:
        """The problem's own loss at one point, without per-sample losses."""
        return loss_or_nan(self.problem, self.center + a * self.d1 + b * self.d2)


def _lagrange_weights(nodes: np.ndarray, at: np.ndarray, q: int) -> np.ndarray:
    """Lagrange weights of the (up to) ``q`` nearest nodes: ``f(at) ~ W @ f(nodes)``; exact for
    polynomials of degree ``q - 1`` and at the nodes."""
    w = np.zeros((len(at), len(nodes)))
    q = min(q, len(nodes))
    for r, t in enumerate(at):
        lo = int(np.clip(np.searchsorted(nodes, t) - q // 2, 0, len(nodes) - q))
        idx = range(lo, lo + q)
        for a in idx:
            num = 1.0
            for b in idx:
                if b != a:
                    num *= (t - nodes[b]) / (nodes[a] - nodes[b])
            w[r, a] = num
    return w


def surface(
    problem: Problem,
    directions: Directions | tuple[Tensor, Tensor] | None = None,
    *,
    center: Tensor | nn.Module | None = None,
    span: float | tuple[float, float, float, float] = 1.0,
    steps: int | tuple[int, int] = 41,
    tol: float | None = None,
    sample: int | None = None,
    coarse: int = 11,
    z: float = 3.0,
    seed: int = 0,
    reuse: bool = True,
    trajectory: Trajectory | None = None,
) -> Surface:
    """The loss of ``problem`` on a grid of the plane ``center + x d1 + y d2``.

    ``directions``: a :class:`Directions`, a pair of flat vectors, or None (filter-normalized
    random directions with ``seed``). ``span``: the grid covers ``[-span, span]`` on both axes, or
    ``(xmin, xmax, ymin, ymax)``. ``steps``: points per axis.

    ``tol=None`` evaluates every point on all the data. ``tol=0.01`` asks that every point be
    within 1% of its full-data loss, to ``z`` standard errors: ``coarse`` anchors per axis on all
    the data, every other point on ``sample`` draws (default: a 32nd of the data, at least 64)
    with a control variate, completed on all the data where its bound misses (see
    :func:`_sampled`); ``bounds`` holds each point's bound and ``cost`` what it cost. Under
    torchrun the points are split across the ranks and gathered; the result does not depend on
    the number of ranks.
    """
    t0 = time.perf_counter()
    c = problem.point if center is None else as_point(problem, center, "center")
    directions = _as_directions(problem, directions, seed, c)
    nx, ny = (steps, steps) if isinstance(steps, int) else steps
    if min(nx, ny) < 2:
        raise LandscapeError(f"steps must be at least 2 per axis, got {steps}")
    box = (-span, span, -span, span) if isinstance(span, (int, float)) else tuple(span)
    if len(box) != 4 or not (box[0] < box[1] and box[2] < box[3]):
        raise LandscapeError(
            f"span must be a positive number or (xmin, xmax, ymin, ymax) with min < max, got {span}"
        )
    if tol is not None and not tol > 0:
        raise LandscapeError(f"tol must be positive (0.01 for 1%) or None, got {tol}")
    if sample is not None and not (isinstance(sample, int) and sample >= 2):
        raise LandscapeError(f"sample must be a count of at least 2 samples, got {sample!r}")
    xs, ys = np.linspace(box[0], box[1], nx), np.linspace(box[2], box[3], ny)
    d1 = directions.d1.to(device=problem.device, dtype=problem.dtype)
    d2 = directions.d2.to(device=problem.device, dtype=problem.dtype)
    grid = _Grid(problem, c, d1, d2, reuse)
    mesh = [(float(x), float(y)) for y in ys for x in xs]
    exact = np.ones((ny, nx), dtype=bool)
    bounds = np.zeros((ny, nx))
    n = grid.n if grid.fast else problem.num_samples
    m = min(n, sample or max(64, n // 32))
    scale = float(n) if problem.reduction == "sum" else 1.0
    if not grid.fast:
        idx = mine(len(mesh))
        vals = gather(idx, [grid.total(*mesh[i]) for i in idx], len(mesh))
        losses = np.asarray(vals, dtype=np.float64).reshape(ny, nx)
        method, cost = f"exact, one pass per point ({grid.why})", 1.0
    elif tol is None or m >= n or min(nx, ny) <= coarse:
        idx = mine(len(mesh))
        mine_vals = grid.mean_losses([mesh[i] for i in idx])
        vals = gather(idx, mine_vals, len(mesh))
        losses = np.asarray(vals, dtype=np.float64).reshape(ny, nx)
        method, cost = "exact", 1.0
    else:
        losses, bounds, exact, cost = _sampled(grid, xs, ys, coarse, m, tol, z, seed)
        losses, bounds = losses * scale, bounds * scale
        method = "sampled"
    losses = np.where(np.isfinite(losses), losses, np.nan)
    center_loss = grid.mean_losses([(0.0, 0.0)])[0] if grid.fast else problem.loss(c)
    return Surface(
        xs=xs,
        ys=ys,
        losses=losses,
        bounds=bounds,
        exact=exact,
        directions=directions,
        center_loss=center_loss,
        method=method,
        samples=n,
        sample=m if method == "sampled" else n,
        cost=cost,
        first_layer=grid.first_layer,
        seconds=time.perf_counter() - t0,
        trajectory=trajectory,
        tol=tol,
        z=z,
    )


def _as_directions(problem: Problem, directions: Any, seed: int, c: Tensor) -> Directions:
    if directions is None:
        return random_directions(problem, seed=seed, center=c)
    if isinstance(directions, Directions):
        return directions
    if isinstance(directions, tuple) and len(directions) == 2:
        d1, d2 = as_point(problem, directions[0], "d1"), as_point(problem, directions[1], "d2")
        return Directions(d1, d2, "given")
    got = f"a tuple of {len(directions)}" if isinstance(directions, tuple) else type(directions)
    raise LandscapeError(
        f"directions must be a Directions, a pair of flat vectors (d1, d2) or None, got {got}"
    )


def _shared(grid: _Grid, points: Sequence[tuple[float, float]]) -> Tensor:
    """Per-sample losses on all the data at ``points``, each rank taking its share."""
    idx = mine(len(points))
    local: Any = grid.losses([points[i] for i in idx]) if idx else []
    return torch.stack(gather(idx, list(local), len(points))).to(torch.float64)


def _sampled(
    grid: _Grid,
    xs: np.ndarray,
    ys: np.ndarray,
    coarse: int,
    m: int,
    tol: float,
    z: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Coarse to fine, with a sampled correction and its error bound.

    ``coarse`` anchors per axis are evaluated on all N samples. At every other point p, each
    sample's loss is predicted from the anchors by cubic interpolation, ``I_i(p)``, and the
    residual ``R(p) = sum_i (l_i(p) - I_i(p))`` is estimated from m samples drawn with
    probabilities ``q_i`` proportional to a guess of each residual's size (the gap between cubic
    and linear interpolation plus 5% of ``I_i``): ``R ~ mean_k r_k / q_k`` (Hansen and Hurwitz
    1943), unbiased whatever the guess, with its standard error from the same draws. A point
    whose ``z`` standard errors exceed ``tol`` of its loss draws 4m more samples, then is
    evaluated on all the data.
    """
    nx, ny, n = len(xs), len(ys), grid.n
    ax = np.unique(np.round(np.linspace(0, nx - 1, coarse)).astype(int))
    ay = np.unique(np.round(np.linspace(0, ny - 1, coarse)).astype(int))
    anchor = np.zeros((ny, nx), dtype=bool)
    anchor[np.ix_(ay, ax)] = True
    a_pts = [(float(xs[i]), float(ys[j])) for j in ay for i in ax]
    per_anchor = _shared(grid, a_pts).view(len(ay), len(ax), n)
    w3 = [torch.from_numpy(_lagrange_weights(v[a], v, 4)) for v, a in ((xs, ax), (ys, ay))]
    w1 = [torch.from_numpy(_lagrange_weights(v[a], v, 2)) for v, a in ((xs, ax), (ys, ay))]
    fine = [(j, i) for j in range(ny) for i in range(nx) if not anchor[j, i]]
    device = grid.y.device
    flat_anchor = per_anchor.reshape(-1, n).float()

    def predict(points: list[tuple[int, int]], w: list[Tensor]) -> Tensor:
        # Tensor-product interpolation weights, one row per point, times every sample's anchors.
        rows = torch.stack([torch.outer(w[1][j], w[0][i]).reshape(-1) for j, i in points])
        return (rows.float() @ flat_anchor).double()

    def chunk(ks: list[int]) -> list[tuple[float, float, int]]:
        points = [fine[k] for k in ks]
        cubic, linear = predict(points, w3), predict(points, w1)
        coords = torch.tensor([(xs[i], ys[j]) for j, i in points], dtype=torch.float64)
        results: list[tuple[float, float, int] | None] = [None] * len(ks)
        finite = torch.isfinite(cubic).all(1)
        size = (cubic - linear).abs() + 0.05 * cubic.abs()
        size = size + 1e-12 * size.amax(1, keepdim=True) + 1e-300
        q = torch.where(finite[:, None], size / size.sum(1, keepdim=True), 1.0 / n)
        # One generator per chunk, seeded by its first point: the draws do not depend on ranks.
        gen = torch.Generator().manual_seed(seed * 1_000_003 + ks[0])
        idx = torch.multinomial(q, m, replacement=True, generator=gen)
        values = grid.sampled_losses(coords, idx.to(device))
        todo = finite.clone()
        used = torch.full((len(ks),), m)
        for extra in (4 * m, 0):
            ratio = (values - cubic.gather(1, idx)) / q.gather(1, idx)
            est = (cubic.sum(1) + ratio.mean(1)) / n
            bound = z * ratio.std(1) / math.sqrt(idx.shape[1]) / n
            ok = todo & (bound <= tol * est.abs())
            for r in ok.nonzero().squeeze(1).tolist():
                results[r] = (float(est[r]), float(bound[r]), int(used[r]))
            # More draws only where they can meet the tolerance: the bound shrinks as one over
            # the square root of the draws (with a 25% margin); elsewhere, all the data at once.
            needed = 1.25 * idx.shape[1] * (bound / (tol * est.abs())) ** 2
            todo &= ~ok & (needed <= idx.shape[1] + extra)
            if not extra or not bool(todo.any()):
                break
            more = torch.multinomial(q, extra, replacement=True, generator=gen)
            sel = todo.nonzero().squeeze(1)
            new = torch.zeros(len(ks), extra, dtype=torch.float64)
            new[sel] = grid.sampled_losses(coords[sel], more[sel].to(device))
            used[sel] += extra
            idx, values = torch.cat([idx, more], 1), torch.cat([values, new], 1)
        for r, got in enumerate(results):
            if got is None:  # the bound missed the tolerance, or an overflow nearby
                j, i = points[r]
                full = grid.losses([(float(xs[i]), float(ys[j]))])[0]
                results[r] = (float(full.mean()), 0.0, n + int(used[r]))
        return results  # type: ignore[return-value]

    # Chunks are fixed before they are shared: a point's numbers do not depend on the ranks.
    # Large enough to amortise each forward's overhead, small enough for 32 shares at least.
    size = min(64, max(4, len(fine) // 32))
    chunks = [list(range(s, min(s + size, len(fine)))) for s in range(0, len(fine), size)]
    idx = [k for c in mine(len(chunks)) for k in chunks[c]]
    local = [r for c in mine(len(chunks)) for r in chunk(chunks[c])]
    results = gather(idx, local, len(fine))
    losses = np.zeros((ny, nx))
    bounds = np.zeros((ny, nx))
    exact = anchor.copy()
    losses[np.ix_(ay, ax)] = per_anchor.mean(2).numpy()
    used = anchor.sum() * n
    for (j, i), (est, bound, rows) in zip(fine, results):
        losses[j, i], bounds[j, i] = est, bound
        exact[j, i] = bound == 0.0 and rows >= n
        used += rows
    return losses, bounds, exact, float(used) / (n * nx * ny)
