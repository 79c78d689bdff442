"""Stochastic trace estimators: Hutchinson (1989) and Hutch++ (Meyer, Musco, Musco, Woodruff 2021).

Hutchinson: tr(A) = E[z^T A z] for Rademacher z; its variance is 2 ||A||_F^2 - 2 sum_i A_ii^2
per probe. Hutch++ spends a third of the budget on a sketch S, takes Q = orth(A S), computes
tr(Q^T A Q) exactly (a second third) and estimates the trace of the deflated remainder
(I - QQ^T) A (I - QQ^T) with Hutchinson (the last third). Its error decays as 1/m instead of
1/sqrt(m) when the spectrum decays, because the large eigenvalues are captured exactly.

Krylov deflation (in the spirit of Chen and Hallman, "Krylov-aware stochastic trace estimation",
2023): s Lanczos steps give an orthonormal basis Q whose tr(Q^T A Q) is the sum of the Lanczos
diagonal, at one product per dimension instead of Hutch++'s two, and whose span holds the extreme
eigenvectors at both ends of an indefinite spectrum. Hutchinson estimates the rest. Unbiased for
any fixed start vector, since the probes are drawn independently of Q.

When the budget is at least the dimension, the trace is computed exactly from n basis products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from optiscope.linalg.lanczos import lanczos_tridiagonal
from optiscope.linalg.operators import LinearOperator, as_operator, require_square


@dataclass(frozen=True)
class TraceEstimate:
    """A trace with its standard error (zero when computed exactly) and the products it cost."""

    value: float
    std_error: float
    hvps: int
    method: str

    @property
    def error(self) -> float:
        """Alias of ``std_error``: one standard error of the stochastic part."""
        return self.std_error


def _rademacher(n: int, m: int, gen: torch.Generator, dtype, device) -> Tensor:
    z = torch.randint(0, 2, (n, m), generator=gen, dtype=torch.int8).to(dtype=dtype, device=device)
    return 2 * z - 1


def _generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator(device="cpu")
    gen.manual_seed(0 if seed is None else int(seed))
    return gen


def _exact(op: LinearOperator, start: int) -> TraceEstimate:
    n = op.shape[0]
    total = 0.0
    for i in range(n):
        e = torch.zeros(n, dtype=op.dtype, device=op.device)
        e[i] = 1
        total += float(op.matvec(e)[i])
    return TraceEstimate(total, 0.0, op.products - start, "exact")


def _probe_samples(
    op: LinearOperator, probes: int, gen: torch.Generator, basis: Tensor | None
) -> Tensor:
    """z^T A z for Rademacher z, projected off the span of ``basis``'s orthonormal rows."""
    n = op.shape[0]
    samples = torch.empty(probes, dtype=torch.float64)
    for j in range(probes):
        z = _rademacher(n, 1, gen, op.dtype, op.device)[:, 0]
        if basis is not None:
            z = z - basis.T @ (basis @ z)
        samples[j] = float(torch.dot(z, op.matvec(z)))
    return samples


def _estimate(low: float, samples: Tensor, op: LinearOperator, start: int, method: str):
    probes = len(samples)
    std = float(samples.std(unbiased=True) / math.sqrt(probes)) if probes > 1 else math.inf
    return TraceEstimate(low + float(samples.mean()), std, op.products - start, method)


def _check(budget: int, least: int) -> int:
    budget = int(budget)
    if budget < least:
        raise ValueError(f"budget must be at least {least} products, got {budget}")
    return budget


def hutchinson_trace(
    a: Tensor | LinearOperator, budget: int = 100, *, seed: int | None = 0
) -> TraceEstimate:
    """Hutchinson's estimator with ``budget`` Rademacher probes (one product each)."""
    op = as_operator(a)
    require_square(op, "a trace")
    budget = _check(budget, 2)
    start = op.products
    n = op.shape[0]
    if budget >= n:
        return _exact(op, start)
    samples = _probe_samples(op, budget, _generator(seed), None)
    return _estimate(0.0, samples, op, start, "hutchinson")


def hutchpp_trace(
    a: Tensor | LinearOperator, budget: int = 99, *, seed: int | None = 0
) -> TraceEstimate:
    """Hutch++ with ``budget`` products: a third sketch, a third exact, a third Hutchinson.

    The standard error reported is that of the Hutchinson part on the deflated remainder.
    """
    op = as_operator(a)
    require_square(op, "a trace")
    budget = _check(budget, 3)
    start = op.products
    n = op.shape[0]
    if budget >= n:
        return _exact(op, start)
    gen = _generator(seed)
    sketch = budget // 3
    probes = budget - 2 * sketch
    y = op.matmat(_rademacher(n, sketch, gen, op.dtype, op.device))
    q = torch.linalg.qr(y)[0]
    del y
    # tr(Q^T A Q) column by column: A Q is never stored.
    t_low = sum(float(torch.dot(q[:, j], op.matvec(q[:, j].contiguous()))) for j in range(sketch))
    samples = _probe_samples(op, probes, gen, q.T.contiguous())
    return _estimate(t_low, samples, op, start, "hutch++")


def krylov_trace(
    a: Tensor | LinearOperator,
    budget: int = 99,
    *,
    seed: int | None = 0,
    deflation: float = 2 / 3,
) -> TraceEstimate:
    """Lanczos deflation plus Hutchinson: ``deflation * budget`` Lanczos steps, the rest probes.

    On Hessians of trained networks (a few outliers at both ends and a wide bulk) this beats
    Hutch++ at the same budget: the Krylov space captures the outliers at one product each.
    """

    op = as_operator(a)
    require_square(op, "a trace")
    budget = _check(budget, 3)
    if not 0 < deflation < 1:
        raise ValueError(f"deflation must be between 0 and 1, got {deflation}")
    start = op.products
    n = op.shape[0]
    if budget >= n:
        return _exact(op, start)
    gen = _generator(seed)
    steps = max(1, min(round(deflation * budget), budget - 2))
    v0 = _rademacher(n, 1, gen, op.dtype, op.device)[:, 0]
    alphas, _, q_rows = lanczos_tridiagonal(op, steps, v0=v0, keep_basis=True)
    assert q_rows is not None
    t_low = float(alphas.sum())
    samples = _probe_samples(op, budget - len(alphas), gen, q_rows)
    return _estimate(t_low, samples, op, start, "krylov")
