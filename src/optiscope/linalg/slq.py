"""Stochastic Lanczos quadrature for the spectral density (Golub and Meurant 2010; Ubaru, Chen and
Saad 2017; used for neural networks by Ghorbani, Krishnan and Xiao 2019).

For a unit probe v, m Lanczos steps give T_m = S diag(theta) S^T; the Gauss quadrature with nodes
theta_i and weights tau_i = S_{1i}^2 integrates any smooth f against the spectral measure
sum_j (v^T u_j)^2 delta(lambda - lambda_j), whose expectation over random v is the spectral density
(1/n) sum_j delta(lambda - lambda_j). The density is smoothed with a Gaussian kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh_tridiagonal
from torch import Tensor

from optiscope.linalg.lanczos import lanczos_tridiagonal
from optiscope.linalg.operators import LinearOperator, as_operator, require_square


@dataclass(frozen=True)
class SpectralDensity:
    """A smoothed spectral density on a grid, and the quadrature it came from.

    ``nodes[p]`` and ``weights[p]`` are the Ritz values and Gauss weights of probe p (weights of a
    probe sum to one). ``density`` integrates to one over ``grid`` up to the kernel's tails.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: list[np.ndarray]
    weights: list[np.ndarray]
    sigma: float
    hvps: int

    def fraction_below(self, threshold: float) -> float:
        """Estimated fraction of eigenvalues below ``threshold`` (quadrature, no smoothing)."""
        return float(np.mean([w[t < threshold].sum() for t, w in zip(self.nodes, self.weights)]))

    def on_grid(self, grid_size: int) -> SpectralDensity:
        """The same quadrature and kernel width smoothed on a grid of ``grid_size`` points
        (no products: a coarser grid for a record, a finer one for a figure)."""
        if grid_size < 2:
            raise ValueError(f"grid_size must be at least 2, got {grid_size}")
        return _smoothed(self.nodes, self.weights, grid_size, self.sigma, self.hvps)

    def moment(self, power: int) -> float:
        """Estimated (1/n) tr(A^power) from the quadrature."""
        return float(np.mean([(w * t**power).sum() for t, w in zip(self.nodes, self.weights)]))


def slq_density(
    a: Tensor | LinearOperator,
    steps: int = 100,
    probes: int = 1,
    *,
    seed: int | None = 0,
    grid_size: int = 1000,
    sigma: float | None = None,
    reorthogonalize: bool = False,
) -> SpectralDensity:
    """Spectral density by ``probes`` runs of ``steps`` Lanczos steps from Rademacher vectors.

    ``sigma`` is the kernel width; by default 1% of the spread of the Ritz values. Without
    ``reorthogonalize`` each run stores two vectors and costs its products alone; rounding may then
    repeat a converged outlier among the nodes, splitting its weight but not moving the mass.
    """
    import torch

    op = as_operator(a)
    require_square(op, "a spectral density")
    if steps < 1 or probes < 1:
        raise ValueError(f"steps and probes must be positive, got steps={steps}, probes={probes}")
    start = op.products
    n = op.shape[0]
    gen = torch.Generator(device="cpu")
    gen.manual_seed(0 if seed is None else int(seed))
    nodes, weights = [], []
    for _ in range(probes):
        v = (2 * torch.randint(0, 2, (n,), generator=gen) - 1).to(op.dtype)
        alpha, beta, _ = lanczos_tridiagonal(
            op, steps, v0=v.to(op.device), reorthogonalize=reorthogonalize
        )
        theta, s = eigh_tridiagonal(alpha, beta[: len(alpha) - 1])
        nodes.append(theta)
        weights.append(s[0, :] ** 2)
    return _smoothed(nodes, weights, grid_size, sigma, op.products - start)


def _smoothed(
    nodes: list[np.ndarray],
    weights: list[np.ndarray],
    grid_size: int,
    sigma: float | None,
    hvps: int,
) -> SpectralDensity:
    lo = min(float(t.min()) for t in nodes)
    hi = max(float(t.max()) for t in nodes)
    spread = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    if sigma is None:
        sigma = 0.01 * spread
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, int(grid_size))
    density = np.zeros_like(grid)
    norm = 1.0 / (sigma * np.sqrt(2 * np.pi) * len(nodes))
    for theta, w in zip(nodes, weights):
        kernel = np.exp(-0.5 * ((grid[:, None] - theta) / sigma) ** 2)
        density += norm * (w[None, :] * kernel).sum(1)
    return SpectralDensity(grid, density, nodes, weights, float(sigma), hvps)
