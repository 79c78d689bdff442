"""Curvature of a Problem at its point: eigenvalues, trace, spectral density, critical-point type.

Each function accepts a :class:`~optiscope.Problem`, a :class:`~optiscope.LinearOperator` or a
dense symmetric tensor, so the same code path is tested against exact matrices.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from optiscope.core.errors import ProblemError
from optiscope.linalg.hutchpp import (
    TraceEstimate,
    hutchinson_trace,
    hutchpp_trace,
    krylov_trace,
)
from optiscope.linalg.lanczos import EigenResult, kato_temple_bounds, lanczos
from optiscope.linalg.operators import LinearOperator, as_operator
from optiscope.linalg.slq import SpectralDensity, slq_density
from optiscope.problem.hessdiag import exact_hessian_diagonal, supports
from optiscope.problem.problem import Problem

_TRACE_METHODS = ("auto", "krylov", "hutch++", "hutchinson", "exact")


def _operator(target: Problem | LinearOperator | Tensor, matrix: str = "hessian") -> LinearOperator:
    if isinstance(target, Problem):
        if matrix == "hessian":
            return target.hessian_operator()
        if matrix == "ggn":
            return target.ggn_operator()
        raise ValueError(f"matrix must be 'hessian' or 'ggn', got {matrix!r}")
    return as_operator(target)


def hessian_eigenvalues(
    target: Problem | LinearOperator | Tensor,
    k: int = 1,
    which: str = "largest",
    *,
    tol: float = 1e-6,
    max_steps: int | None = None,
    seed: int | None = 0,
    matrix: str = "hessian",
    v0: Tensor | None = None,
    check_float64: bool = True,
) -> EigenResult:
    """Extreme eigenvalues of the Hessian (or ``matrix="ggn"``) by Lanczos.

    ``which`` is ``"largest"`` (largest first), ``"smallest"`` (most negative first) or
    ``"both"``. Converged when each wanted eigenvalue's error bound, from its residual norm, is at
    most ``tol`` times the largest Ritz value's magnitude (so a small eigenvalue is known to
    ``tol * |lambda_max|``, not to ``tol`` of itself). The result carries ``values``, ``vectors``
    (columns), ``residuals``, ``errors``, ``converged`` and ``hvps``.

    For the largest eigenvalues of a Problem whose gradient's graph is cached, Lanczos starts from
    the normalized gradient plus an equal random vector: the gradient lies mostly in the top
    eigenspace (Gur-Ari, Roberts and Dyer 2018), the random part keeps every direction in play,
    and the gradient comes free with the graph. This saves a product or two. ``v0`` overrides it.

    A float32 (or lower) Problem's products carry their own round-off, which the Lanczos bound
    cannot see: on a large model the stated error can be hundreds of times below the real one.
    With ``check_float64`` each pair found is checked on a float64 copy of the problem (one
    product per pair, the copy's memory): the values become their float64 Rayleigh quotients,
    and the errors their float64 residual norms, a bound that holds for the exact Hessian up to
    float64 round-off (``float64_checked``). Pass ``check_float64=False`` where the copy does not
    fit; where the model cannot be copied, the result is returned unchecked.

    A linear model under the mean squared error has the Hessian ``H = 2/n X^T X``, here
    ``diag(1, 4)``:

    >>> import torch, optiscope
    >>> model = torch.nn.Linear(2, 1, bias=False).double()
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> problem = optiscope.Problem(model, torch.nn.MSELoss(), (x, torch.zeros(2, 1).double()))
    >>> [round(v, 9) for v in optiscope.hessian_eigenvalues(problem, k=2).values.tolist()]
    [4.0, 1.0]
    """
    op = _operator(target, matrix)
    if v0 is None and isinstance(target, Problem) and which != "smallest":
        v0 = _gradient_start(target, seed)
    result = lanczos(op, k, which, tol=tol, max_steps=max_steps, seed=seed, v0=v0)
    if check_float64 and isinstance(target, Problem) and target.dtype != torch.float64:
        result = _checked_in_float64(target, result, matrix, tol)
    return result


def _checked_in_float64(
    problem: Problem, result: EigenResult, matrix: str, tol: float
) -> EigenResult:
    """``result`` with each pair's value, residual and error from float64 products: the
    Rayleigh quotient rho of the pair's unit vector y and ||A y - rho y||, within which some
    eigenvalue of A lies."""
    try:
        wide = problem.in_float64()
    except ProblemError:
        return result
    product = wide.hvp if matrix == "hessian" else wide.ggn_vp
    values, residuals = [], []
    for i in range(result.values.shape[0]):
        y = result.vectors[:, i].to(dtype=torch.float64, device=wide.device)
        y = y / torch.linalg.vector_norm(y)
        ay = product(y)
        rho = float(torch.dot(y, ay))
        values.append(rho)
        residuals.append(float(torch.linalg.vector_norm(ay - rho * y)))
    vals = torch.tensor(values, dtype=torch.float64)
    resid = torch.tensor(residuals, dtype=torch.float64)
    # Kato-Temple on the float64 residual, with the gap Lanczos saw between its Ritz values.
    errs = kato_temple_bounds(resid, result.gaps)
    scale = max(float(vals.abs().max()), 1e-300)
    return replace(
        result,
        values=vals,
        residuals=resid,
        errors=errs,
        converged=errs <= tol * scale,
        hvps=result.hvps + len(values),
        float64_checked=True,
    )


def _gradient_start(problem: Problem, seed: int | None) -> Tensor | None:
    grad = problem.cached_gradient()
    if grad is None:
        return None
    norm = torch.linalg.vector_norm(grad)
    if not torch.isfinite(norm) or norm == 0:
        return None
    gen = torch.Generator(device="cpu").manual_seed(0 if seed is None else int(seed))
    z = torch.randn(problem.num_params, generator=gen, dtype=torch.float64)
    z = z.to(device=grad.device, dtype=grad.dtype)
    return grad / norm + z / torch.linalg.vector_norm(z)


def hessian_diagonal(problem: Problem) -> Tensor:
    """The exact Hessian diagonal of a feed-forward network, by one second-order backward pass.

    Supported: ``nn.Sequential`` stacks of Linear, Conv1d/Conv2d, pooling, Flatten, Dropout (eval
    mode) and elementwise activations (ReLU, LeakyReLU, Tanh, Sigmoid, ELU, SiLU, GELU, Softplus,
    ...) with ``CrossEntropyLoss`` or ``MSELoss``. Raises :class:`~optiscope.ProblemError` naming
    the unsupported module or loss otherwise. Never changes the model (its weights are shown the
    point during the pass and restored bitwise).
    """

    point = problem.split(problem.point)
    batches, weights = [], []
    for w, inputs, targets in problem.batches():
        batches.append((inputs, targets))
        weights.append(w)
    own = dict(problem.model.named_parameters())
    selected = [(n, own[n]) for n in problem.names]
    # The pass reads the modules' own weights: show it the point, then restore them.
    with _swapped(problem.model, point):
        diags = exact_hessian_diagonal(problem.model, problem.loss_fn, batches, weights, selected)
    return problem.flatten(diags)


class _swapped:
    """Temporarily point the model's parameters at the analysis point (restored on exit)."""

    def __init__(self, model: torch.nn.Module, values: dict[str, Tensor]) -> None:
        self.model, self.values = model, values
        self.saved: dict[str, Tensor] = {}

    def __enter__(self):
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in self.values:
                    self.saved[name] = p.detach().clone()
                    p.copy_(self.values[name])
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in self.saved:
                    p.copy_(self.saved[name])
        return False


_SMOOTH = (
    torch.nn.Tanh,
    torch.nn.Sigmoid,
    torch.nn.ELU,
    torch.nn.SiLU,
    torch.nn.GELU,
    torch.nn.Softplus,
)


def _diagonal_is_cheap(model: torch.nn.Module) -> bool:
    # Smooth activations after a convolution add one factor column per feature and position.
    mods = list(model.modules())
    has_conv = any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in mods)
    return not (has_conv and any(isinstance(m, _SMOOTH) for m in mods))


def hessian_trace(
    target: Problem | LinearOperator | Tensor,
    budget: int = 99,
    *,
    method: str = "auto",
    seed: int | None = 0,
) -> TraceEstimate:
    """The Hessian trace: exact where the model allows it, else estimated from ``budget`` products.

    ``method``:

    - ``"auto"``: the exact Hessian diagonal for supported feed-forward networks (one
      second-order backward pass, no products), else ``"krylov"``;
    - ``"krylov"``: Lanczos deflation of the extreme eigenvalues plus Hutchinson on the rest;
    - ``"hutch++"``: Hutch++ (Meyer et al. 2021);
    - ``"hutchinson"``: Hutchinson (1989);
    - ``"exact"``: the exact diagonal, or n products with the unit vectors for small problems.

    Returns ``.value``, ``.std_error`` (zero when exact), ``.hvps`` and ``.method``.

    A dense symmetric matrix stands for its own Hessian (the trace is then exact):

    >>> import torch, optiscope
    >>> optiscope.hessian_trace(torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))).value
    5.0
    """
    if method not in _TRACE_METHODS:
        raise ValueError(f"method must be one of {_TRACE_METHODS}, got {method!r}")
    if isinstance(target, Problem) and method in ("auto", "exact"):
        reason = supports(target.model, target.loss_fn)
        if reason is None and method == "auto" and not _diagonal_is_cheap(target.model):
            reason = "smooth activations in a convolutional network make the exact pass slow"
        if reason is None:
            diag = hessian_diagonal(target)
            return TraceEstimate(float(diag.double().sum()), 0.0, 0, "exact-diagonal")
        if method == "exact" and target.num_params > 5000:
            raise ProblemError(
                f"no exact trace for this model: {reason}; and {target.num_params} parameters "
                "are too many for n products. Use method='hutch++'"
            )
    op = _operator(target)
    if method == "exact":
        return hutchinson_trace(op, max(op.shape[0], 2), seed=seed)
    if method == "hutchinson":
        return hutchinson_trace(op, budget, seed=seed)
    if method == "hutch++":
        return hutchpp_trace(op, budget, seed=seed)
    return krylov_trace(op, budget, seed=seed)


def spectral_density(
    target: Problem | LinearOperator | Tensor,
    steps: int = 100,
    probes: int = 1,
    *,
    seed: int | None = 0,
    grid_size: int = 1000,
    sigma: float | None = None,
    matrix: str = "hessian",
    reorthogonalize: bool = False,
) -> SpectralDensity:
    """The Hessian's spectral density by stochastic Lanczos quadrature (Ubaru et al. 2017).

    ``probes`` Rademacher start vectors, ``steps`` Lanczos steps each; the quadrature nodes and
    weights are smoothed with a Gaussian of width ``sigma`` (default 1% of the spectral spread).
    The quadrature needs no reorthogonalization (Greenbaum 1989); ask for it to get nodes free of
    repeated outliers, at the cost of storing the Lanczos basis.
    """
    return slq_density(
        _operator(target, matrix),
        steps,
        probes,
        seed=seed,
        grid_size=grid_size,
        sigma=sigma,
        reorthogonalize=reorthogonalize,
    )


@dataclass(frozen=True)
class CriticalPoint:
    """What kind of point this is, and the numbers behind the verdict.

    ``kind`` is ``"minimum"``, ``"saddle"``, ``"maximum"`` or ``"not a critical point"``;
    ``curvature`` describes the Hessian whatever the gradient: ``"positive definite"``,
    ``"positive semi-definite"``, ``"indefinite"``, ``"negative semi-definite"`` or
    ``"negative definite"``; ``index`` is the estimated fraction of negative eigenvalues.
    """

    kind: str
    curvature: str
    loss: float
    gradient_norm: float
    lambda_max: float
    lambda_min: float
    index: float
    hvps: int
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    # The quadrature the index came from (its products are in ``hvps``): the spectral density
    # at this point, for no further products.
    density: SpectralDensity | None = field(default=None, repr=False, compare=False)


def _curvature_type(lmax: float, lmin: float, zero: float) -> str:
    if lmin > zero:
        return "positive definite"
    if lmin >= -zero and lmax > zero:
        return "positive semi-definite"
    if lmax < -zero:
        return "negative definite"
    if lmax <= zero and lmin < -zero:
        return "negative semi-definite"
    if lmin < -zero:
        return "indefinite"
    return "zero"


# Lanczos steps the critical point's two ends may take at most.
CRITICAL_POINT_STEPS = 200


def critical_point_products(num_params: int, index_steps: int = 60) -> int:
    """The most Hessian-vector products :func:`critical_point` takes on ``num_params``
    parameters: Lanczos at both ends, then the index's quadrature."""
    return min(num_params, CRITICAL_POINT_STEPS) + min(num_params, index_steps)


def critical_point(
    problem: Problem,
    *,
    grad_tol: float = 1e-3,
    eig_tol: float = 1e-3,
    index_steps: int = 60,
    seed: int | None = 0,
) -> CriticalPoint:
    """Classify the point: minimum, saddle, maximum, or not a critical point.

    The point is critical when the gradient norm is at most ``grad_tol``. Eigenvalues within
    ``eig_tol`` times the largest magnitude count as zero. The extreme eigenvalues come from
    Lanczos; the index (fraction of negative eigenvalues, Dauphin et al. 2014) from stochastic
    Lanczos quadrature, exactly when the dimension is at most ``index_steps``.

    Least squares at its solution is a minimum (its Hessian ``2/n X^T X`` is positive definite):

    >>> import torch, optiscope
    >>> model = torch.nn.Linear(2, 1, bias=False).double()
    >>> _ = torch.nn.init.zeros_(model.weight)
    >>> data = (torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64))
    >>> optiscope.critical_point(optiscope.Problem(model, torch.nn.MSELoss(), data)).kind
    'minimum'
    """
    loss, grad = problem.loss_and_gradient()
    gnorm = float(torch.linalg.vector_norm(grad.double()))
    op = problem.hessian_operator()
    start = problem.hvp_count
    n = problem.num_params
    which = "both" if n >= 2 else "largest"
    eig = lanczos(op, 1, which, tol=1e-4, max_steps=min(n, CRITICAL_POINT_STEPS), seed=seed)
    lmax = float(eig.values[0])
    lmin = float(eig.values[-1])
    scale = max(abs(lmax), abs(lmin))
    zero = eig_tol * scale
    dens = slq_density(op, min(index_steps, n), 1, seed=seed)
    index = dens.fraction_below(-zero)
    if lmin >= -zero:
        index = 0.0
    curvature = _curvature_type(lmax, lmin, zero)
    if gnorm > grad_tol:
        kind = "not a critical point"
        reason = f"gradient norm {gnorm:.3g} > {grad_tol:.3g}"
    elif curvature in ("positive definite", "positive semi-definite", "zero"):
        kind = "minimum"
        reason = f"gradient norm {gnorm:.3g} <= {grad_tol:.3g} and smallest eigenvalue {lmin:.3g}"
        reason += f" >= -{zero:.3g}"
        if curvature != "positive definite":
            reason += " (flat directions: a degenerate minimum, or a plateau)"
    elif curvature == "indefinite":
        kind = "saddle"
        reason = (
            f"gradient norm {gnorm:.3g} <= {grad_tol:.3g}, eigenvalues of both signs "
            f"({lmin:.3g} and {lmax:.3g}), index {index:.3f}"
        )
    else:
        kind = "maximum"
        reason = f"gradient norm {gnorm:.3g} <= {grad_tol:.3g} and largest eigenvalue {lmax:.3g}"
    return CriticalPoint(
        kind=kind,
        curvature=curvature,
        loss=loss,
        gradient_norm=gnorm,
        lambda_max=lmax,
        lambda_min=lmin,
        index=index,
        hvps=problem.hvp_count - start,
        reason=reason,
        evidence={
            "grad_tol": grad_tol,
            "zero_threshold": zero,
            "lambda_max_error": float(eig.errors[0]),
            "lambda_min_error": float(eig.errors[-1]),
            "lanczos_steps": eig.steps,
            "index_steps": min(index_steps, n),
        },
        density=dens,
    )
