"""Sec. 8.2 (introduction): a convex problem, a single neuron's logistic regression, has a
positive semi-definite Hessian everywhere; a network with a hidden layer does not."""

from __future__ import annotations

import torch
from torch import nn

import optiscope
from optiscope.lab._framework import Lab, experiment


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    y = (x[:, 0] * x[:, 1] + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64) > 0).long()
    return x, y


def _extremes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, points: int, seed: int):
    """Smallest and largest Hessian eigenvalue at ``points`` random parameter vectors."""
    problem = optiscope.Problem(model, nn.CrossEntropyLoss(), (x, y))
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(points):
        theta = 2.0 * torch.randn(problem.num_params, generator=gen, dtype=torch.float64)
        evals = torch.linalg.eigvalsh(problem.at(theta).dense_hessian())
        out.append((float(evals[0]), float(evals[-1])))
    return out


@experiment(
    "convexity",
    "Convexity: one neuron against a hidden layer",
    "Logistic regression (a single neuron) has a positive semi-definite Hessian at every point; "
    "a network with one hidden layer has points of negative curvature.",
)
def convexity(lab: Lab) -> None:
    torch.manual_seed(lab.seed)
    points = 8 if lab.small else 40
    x, y = _data(200, lab.seed)
    single = nn.Linear(4, 2).double()
    hidden = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    lin = _extremes(single, x, y, points, lab.seed)
    net = _extremes(hidden, x, y, points, lab.seed + 1)
    # PSD up to rounding: the smallest eigenvalue is at least -1e-9 of the largest.
    worst_single = min(lo / hi for lo, hi in lin)
    worst_hidden = min(lo / hi for lo, hi in net)
    negative = sum(lo < -1e-6 * hi for lo, hi in net)
    holds = worst_single >= -1e-9 and negative > 0

    def draw(fig) -> None:
        ax = fig.add_subplot()
        ax.plot(range(points), [lo / hi for lo, hi in lin], "o", label="logistic regression")
        ax.plot(range(points), [lo / hi for lo, hi in net], "s", label="one hidden layer (tanh)")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("random point")
        ax.set_ylabel("lambda_min / lambda_max")
        ax.legend()

    lab.figure("curvature", draw)
    lab.verdict(
        holds,
        "at every one of the sampled points lambda_min >= -1e-9 lambda_max for logistic "
        "regression, and at one point at least lambda_min < -1e-6 lambda_max for the network",
        points=points,
        logistic_min_ratio=worst_single,
        network_min_ratio=worst_hidden,
        network_points_with_negative_curvature=negative,
    )
