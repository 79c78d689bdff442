"""Lanczos iteration with full reorthogonalization for extreme eigenpairs of a symmetric operator.

After m steps from a unit vector q_1 the Lanczos relation is A Q_m = Q_m T_m + beta_m q_{m+1} e_m^T
with T_m tridiagonal (Lanczos 1950; Golub and Van Loan, Matrix Computations, ch. 10). A Ritz pair
(theta, y = Q_m s) of T_m has residual ||A y - theta y|| = beta_m |s_m|, computed for free. For a
symmetric A some eigenvalue lies within that residual r of theta, and within r^2 / gap when theta is
separated by ``gap`` from the rest of the spectrum (Kato-Temple; Parlett, The Symmetric Eigenvalue
Problem, sec. 11.7). Convergence is decided on that bound, never on the change of the estimate.

The eigensolver keeps a bounded basis: when it is full, it restarts from the Ritz vectors nearest
the wanted end and the last residual (thick restart, Wu and Simon 2000), so its memory is a few
vectors more than the eigenpairs wanted, whatever the number of steps.

After the three-term recurrence, every new vector is orthogonalized against all earlier ones by
classical Gram-Schmidt, with a second pass only when the first removed most of its norm ("twice
is enough", Giraud et al. 2005), so no spurious copies of converged eigenvalues appear. Stochastic
Lanczos quadrature may skip this: it needs only T, and finite-precision Lanczos still yields
accurate Gauss quadrature (Greenbaum 1989; Chen, Trogdon and Ubaru 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from optiscope.core.errors import NonFiniteError
from optiscope.linalg.operators import LinearOperator, as_operator, require_square

_WHICH = ("largest", "smallest", "both")


@dataclass(frozen=True)
class EigenResult:
    """Extreme eigenpairs found by Lanczos.

    ``values`` are ordered largest first for ``which="largest"``, most negative first for
    ``"smallest"``; for ``"both"`` the k largest (largest first) come before the k smallest (most
    negative first). ``vectors[:, i]`` goes with ``values[i]``; ``residuals[i]`` is
    ``||A v_i - values[i] v_i||``; ``errors[i]`` bounds ``|values[i] - lambda|`` for the nearest
    eigenvalue lambda; ``converged[i]`` says whether that bound met the tolerance. The bounds hold
    for the products as the operator computed them: in float32 its own round-off is not in them,
    unless ``float64_checked`` (values, residuals and errors then come from float64 products).
    """

    values: Tensor
    vectors: Tensor
    residuals: Tensor
    errors: Tensor
    converged: Tensor
    hvps: int
    steps: int
    which: str
    float64_checked: bool = False
    gaps: Tensor | None = None  # each value's estimated gap to the rest of the spectrum

    @property
    def largest(self) -> Tensor:
        """The largest eigenvalue(s) found, largest first."""
        if self.which == "smallest":
            raise ValueError("this result holds the smallest eigenvalues; ask for which='both'")
        k = len(self.values) // 2 if self.which == "both" else len(self.values)
        return self.values[:k]

    @property
    def smallest(self) -> Tensor:
        """The smallest (most negative) eigenvalue(s) found, most negative first."""
        if self.which == "largest":
            raise ValueError("this result holds the largest eigenvalues; ask for which='both'")
        k = len(self.values) // 2 if self.which == "both" else len(self.values)
        return self.values[-k:] if self.which == "both" else self.values

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())


class _Basis:
    """Lanczos vectors as rows of a buffer that grows by doubling."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device, capacity: int) -> None:
        self.rows = torch.empty((max(capacity, 2), n), dtype=dtype, device=device)
        self.size = 0

    def append(self, v: Tensor) -> None:
        if self.size == self.rows.shape[0]:
            grown = torch.empty(
                (2 * self.rows.shape[0], self.rows.shape[1]),
                dtype=self.rows.dtype,
                device=self.rows.device,
            )
            grown[: self.size] = self.rows
            self.rows = grown
        self.rows[self.size] = v
        self.size += 1

    @property
    def matrix(self) -> Tensor:
        return self.rows[: self.size]

    def orthogonalize(self, w: Tensor) -> Tensor:
        q = self.matrix
        before = torch.linalg.vector_norm(w)
        w = w - q.T @ (q @ w)
        if torch.linalg.vector_norm(w) < 0.7 * before:
            w = w - q.T @ (q @ w)
        return w


def _step(
    op: LinearOperator,
    q: Tensor,
    q_prev: Tensor | None,
    beta_prev: float,
    basis: _Basis | None,
) -> tuple[float, Tensor, float]:
    """One Lanczos step from q: (alpha, the unnormalized next vector, its norm beta)."""
    w = op.matvec(q)
    alpha = float(torch.dot(q, w))
    w = w - alpha * q
    if q_prev is not None:
        w = w - beta_prev * q_prev
    if basis is not None:
        w = basis.orthogonalize(w)
    return alpha, w, float(torch.linalg.vector_norm(w))


def _start_vector(n: int, dtype, device, seed: int | None, v0: Tensor | None) -> Tensor:
    if v0 is not None:
        v = v0.detach().to(dtype=dtype, device=device).reshape(-1).clone()
        if v.shape[0] != n:
            raise ValueError(f"v0 has length {v.shape[0]}, expected {n}")
    else:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(0 if seed is None else int(seed))
        v = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    norm = torch.linalg.vector_norm(v)
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("the Lanczos start vector must be finite and nonzero")
    return v / norm


def lanczos_tridiagonal(
    a: Tensor | LinearOperator,
    steps: int,
    *,
    seed: int | None = 0,
    v0: Tensor | None = None,
    keep_basis: bool = False,
    reorthogonalize: bool = True,
) -> tuple[np.ndarray, np.ndarray, Tensor | None]:
    """Run ``steps`` Lanczos steps; return the diagonal and off-diagonal of T and, if asked, Q.

    Stops early when an invariant subspace is found (beta vanishes): then T's eigenvalues are
    exact eigenvalues of A. Without ``reorthogonalize`` and ``keep_basis`` it stores only two
    vectors. Used by stochastic Lanczos quadrature and the Krylov trace estimator.
    """
    op = as_operator(a)
    require_square(op, "Lanczos")
    n = op.shape[0]
    steps = min(int(steps), n)
    q = _start_vector(n, op.dtype, op.device, seed, v0)
    store = reorthogonalize or keep_basis
    basis = _Basis(n, op.dtype, op.device, min(steps + 1, 64)) if store else None
    if basis is not None:
        basis.append(q)
    alphas: list[float] = []
    betas: list[float] = []
    scale = 0.0
    eps = np.finfo(_np_dtype(op.dtype)).eps
    q_prev: Tensor | None = None
    beta = 0.0
    for _ in range(steps):
        alpha, w, beta = _step(op, q, q_prev, beta, basis if reorthogonalize else None)
        alphas.append(alpha)
        scale = max(scale, abs(alpha), beta)
        if beta <= 10 * eps * max(scale, 1e-300):
            betas.append(0.0)
            break
        betas.append(beta)
        q_prev, q = q, w / beta
        if basis is not None:
            basis.append(q)
    q_mat = basis.matrix[: len(alphas)] if (keep_basis and basis is not None) else None
    return np.asarray(alphas), np.asarray(betas), q_mat


def _np_dtype(dtype: torch.dtype):
    return {torch.float64: np.float64, torch.float16: np.float16, torch.bfloat16: np.float32}.get(
        dtype, np.float32
    )


def _wanted(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    m = len(theta)
    top = np.arange(m - 1, max(m - 1 - k, -1), -1)
    bottom = np.arange(0, min(k, m))
    if which == "largest":
        return top
    if which == "smallest":
        return bottom
    return np.concatenate([top, bottom])


def _error_bounds(theta: np.ndarray, resid: np.ndarray) -> np.ndarray:
    return np.minimum(resid, _kato_temple(resid, _gaps(theta, resid)))


def _kato_temple(resid: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gaps > 0, resid**2 / gaps, np.inf)


def _gaps(theta: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """Each Ritz value's gap to the rest of the spectrum, estimated from the other Ritz values:
    each has an eigenvalue within its residual, so the nearest lies at least its distance less
    that residual away; less the value's own residual again (0 where unknown). A neighbour not
    yet converged (after a restart, or early on) narrows the gap instead of widening it."""
    if len(theta) == 1:
        return np.zeros_like(theta)
    apart = np.abs(theta[:, None] - theta[None, :]) - resid[None, :]
    np.fill_diagonal(apart, np.inf)
    return np.maximum(apart.min(axis=1) - resid, 0.0)


def kato_temple_bounds(residuals: Tensor, gaps: Tensor | None) -> Tensor:
    """``min(r, r^2 / gap)``: the error bound of a Rayleigh quotient with residual ``r`` whose
    eigenvalue is ``gap`` away from the rest of the spectrum (only ``r`` where none is known)."""
    r = residuals.detach().to("cpu", torch.float64).numpy()
    g = np.zeros_like(r) if gaps is None else gaps.detach().to("cpu", torch.float64).numpy()
    return torch.as_tensor(np.minimum(r, _kato_temple(r, np.maximum(g - r, 0.0))))


def _kept(theta: np.ndarray, keep: int, which: str) -> np.ndarray:
    """The Ritz values a thick restart keeps (indices into ascending ``theta``): the ``keep``
    nearest the wanted end(s) of the spectrum."""
    m = len(theta)
    if which == "largest":
        return np.arange(m - keep, m)
    if which == "smallest":
        return np.arange(0, keep)
    low = keep // 2
    return np.concatenate([np.arange(0, low), np.arange(m - (keep - low), m)])


def lanczos(
    a: Tensor | LinearOperator,
    k: int = 1,
    which: str = "largest",
    *,
    tol: float = 1e-6,
    max_steps: int | None = None,
    seed: int | None = 0,
    v0: Tensor | None = None,
    basis: int | None = None,
) -> EigenResult:
    """Extreme eigenpairs of a symmetric matrix or operator: thick-restart Lanczos with full
    reorthogonalization, in a basis of at most ``basis`` vectors.

    ``tol`` is relative to the largest Ritz value's magnitude: eigenpair i is converged when the
    bound ``min(r_i, r_i^2 / gap_i)`` on its eigenvalue error is at most ``tol * max|theta|``.
    ``max_steps`` (default ``min(n, max(60, 20 k))``) bounds the number of products; at least
    ``k + 4`` steps are taken (``2k + 4`` for ``"both"``) before convergence is judged.

    Memory is ``basis`` vectors (default ``2 w + 8`` for ``w`` wanted eigenvalues, at most n),
    not one per step: when the basis is full, the Ritz vectors nearest the wanted end are kept
    (half the basis) and the iteration goes on from the residual (Wu and Simon 2000, thick
    restart; the projected matrix stays exact because every new vector is projected on the whole
    basis). ``basis=max_steps + 1`` gives plain Lanczos, which may need fewer products on a
    clustered spectrum.

    >>> import torch
    >>> a = torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=torch.float64))
    >>> r = lanczos(a, k=1, which="both", tol=1e-12)
    >>> [round(float(x), 9) for x in r.values]
    [3.0, -2.0]
    """
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")
    op = as_operator(a)
    require_square(op, "Lanczos")
    n = op.shape[0]
    k = int(k)
    if k < 1 or (k * (2 if which == "both" else 1)) > n:
        raise ValueError(
            f"k must be between 1 and {n if which != 'both' else n // 2} for a {n}x{n} operator "
            f"(which={which!r}), got {k}"
        )
    if tol <= 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if max_steps is None:
        max_steps = max(60, 20 * k)
    max_steps = min(int(max_steps), n)
    n_wanted = k * (2 if which == "both" else 1)
    m = min(n, 2 * n_wanted + 8) if basis is None else min(int(basis), n)
    if m < min(n, n_wanted + 2):
        raise ValueError(
            f"basis must hold at least {n_wanted + 2} vectors for {n_wanted} wanted "
            f"eigenvalue(s) (which={which!r}, k={k}), got {basis}: pass a larger basis"
        )
    start_products = op.products
    # A few steps beyond the count wanted, so a Ritz value is not taken for an eigenvalue it
    # merely approaches from a Krylov space too small to have seen the true extreme yet.
    min_steps = min(n, n_wanted + 4)
    eps = np.finfo(_np_dtype(op.dtype)).eps

    q_rows = torch.empty((m, n), dtype=op.dtype, device=op.device)
    q_rows[0] = _start_vector(n, op.dtype, op.device, seed, v0)
    v0 = None  # a parameter-sized vector: held no longer than the caller holds it
    size = 1
    proj = np.zeros((m, m))  # Q^T A Q on the current basis
    scale = 0.0
    theta = s = resid = errors = None
    steps = 0
    while True:
        q = q_rows[:size]
        w = op.matvec(q_rows[size - 1])
        steps += 1
        before = torch.linalg.vector_norm(w)
        h = q @ w
        w = w - q.T @ h
        if torch.linalg.vector_norm(w) < 0.7 * before:  # "twice is enough"
            h2 = q @ w
            w = w - q.T @ h2
            h = h + h2
        col = h.detach().to(device="cpu", dtype=torch.float64).numpy()
        proj[:size, size - 1] = col
        proj[size - 1, :size] = col
        beta = float(torch.linalg.vector_norm(w))
        if not (np.isfinite(col).all() and np.isfinite(beta)):
            raise NonFiniteError(
                f"Lanczos: product {steps} of the operator is not finite (expected finite "
                "values; an overflowing or NaN matrix-vector product, e.g. a Hessian at a point "
                "whose loss or weights have overflowed): no eigenvalue can be estimated there"
            )
        scale = max(scale, float(np.max(np.abs(col))), beta)
        # Below rounding level the Krylov space is invariant; residuals still use the true beta.
        invariant = beta <= 10 * eps * max(scale, 1e-300)
        if steps >= min_steps or invariant or steps == max_steps or size == m:
            theta, s = np.linalg.eigh(proj[:size, :size])
            # A Q = Q P + w e_last^T: a Ritz pair's residual is beta times its last coefficient.
            resid = np.abs(beta * s[-1, :])
            errors = _error_bounds(theta, resid)
            idx = _wanted(theta, k, which)
            ritz_scale = max(float(np.max(np.abs(theta))), 1e-300)
            converged = errors[idx] <= tol * ritz_scale
            done = steps >= min_steps and len(idx) == n_wanted and converged.all()
            if done or invariant or steps == max_steps:
                break
        if size == m:
            assert theta is not None and s is not None  # judged above whenever the basis is full
            keep = _kept(theta, max(n_wanted, (m - 1) // 2), which)
            coeffs = torch.as_tensor(s[:, keep], dtype=op.dtype, device=op.device)
            q_rows[: len(keep)] = coeffs.T @ q_rows[:size]
            proj[:] = 0.0
            proj[range(len(keep)), range(len(keep))] = theta[keep]
            size = len(keep)
        q_rows[size] = w / beta
        size += 1

    assert theta is not None and s is not None and resid is not None and errors is not None
    idx = _wanted(theta, k, which)
    coeffs = torch.as_tensor(s[:, idx], dtype=op.dtype, device=op.device)
    vectors = q_rows[:size].T @ coeffs
    # Fix the sign: the largest-magnitude component is positive.
    pivot = vectors.abs().argmax(dim=0)
    signs = torch.sign(vectors.gather(0, pivot[None, :]))
    signs[signs == 0] = 1
    vectors = vectors * signs
    ritz_scale = max(float(np.max(np.abs(theta))), 1e-300)
    return EigenResult(
        values=torch.as_tensor(theta[idx], dtype=torch.float64),
        vectors=vectors,
        residuals=torch.as_tensor(resid[idx], dtype=torch.float64),
        errors=torch.as_tensor(errors[idx], dtype=torch.float64),
        converged=torch.as_tensor(errors[idx] <= tol * ritz_scale),
        hvps=op.products - start_products,
        steps=steps,
        which=which,
        gaps=torch.as_tensor(_gaps(theta, resid)[idx] + resid[idx], dtype=torch.float64),
    )
