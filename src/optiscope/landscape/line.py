"""The error surface along lines: linear interpolation between two points and its barrier
(Goodfellow, Vinyals and Saxe 2015, "Qualitatively characterizing neural network optimization
problems")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core.errors import NonFiniteError, OptiscopeError
from optiscope.problem.problem import Problem


class LandscapeError(OptiscopeError):
    """Points or settings the landscape tools cannot use."""


@dataclass
class Interpolation:
    """Losses along ``(1 - alpha) a + alpha b``.

    ``barrier`` is the largest loss on the path minus the larger of the two end losses, at least
    0 (no barrier: the path never rises above its higher end), over the finite losses (a point
    where the loss is not finite is recorded as NaN); ``distance`` is ``||b - a||``.
    """

    alphas: list[float]
    losses: list[float]
    barrier: float
    distance: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "alphas": self.alphas,
            "losses": self.losses,
            "barrier": self.barrier,
            "distance": self.distance,
        }


def as_point(problem: Problem, x: Tensor | nn.Module, what: str) -> Tensor:
    """A flat parameter vector in ``problem``'s order, from a vector or a model of the same
    architecture."""
    if isinstance(x, nn.Module):
        named = dict(x.named_parameters())
        missing = [n for n in problem.names if n not in named]
        if missing:
            raise LandscapeError(
                f"{what} is a model without the parameters {missing[:3]}: expected a model of the "
                "same architecture as the problem's"
            )
        shapes = [tuple(named[n].shape) for n in problem.names]
        if shapes != problem.shapes:
            raise LandscapeError(
                f"{what} has parameters of other shapes than the problem's model: expected the "
                "same architecture"
            )
        x = torch.cat([named[n].detach().reshape(-1) for n in problem.names])
    if not isinstance(x, Tensor) or x.shape != (problem.num_params,):
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise LandscapeError(
            f"{what}: expected a flat vector of {problem.num_params} parameters or a model, got "
            f"{got}"
        )
    return x.detach().to(device=problem.device, dtype=problem.dtype)


def loss_or_nan(problem: Problem, theta: Tensor) -> float:
    """``problem``'s loss at ``theta``, NaN where it is not finite: a path or a plane may cross
    an overflow, which is recorded, not raised."""
    try:
        return problem.loss(theta)
    except NonFiniteError:
        return math.nan


def barrier(losses: list[float]) -> float:
    """The largest finite loss on a path minus the larger of its two end losses, at least 0;
    NaN where an end or every loss is not finite."""
    ends = max(losses[0], losses[-1])
    finite = [v for v in losses if math.isfinite(v)]
    return max(max(finite) - ends, 0.0) if finite and math.isfinite(ends) else math.nan


def interpolate(
    problem: Problem, a: Tensor | nn.Module, b: Tensor | nn.Module, points: int = 21
) -> Interpolation:
    """The loss of ``problem`` at ``points`` evenly spaced points from ``a`` to ``b`` (both
    included), and the barrier between them."""
    if points < 2:
        raise LandscapeError(f"points must be at least 2 (the two ends), got {points}")
    start, end = as_point(problem, a, "a"), as_point(problem, b, "b")
    alphas = [i / (points - 1) for i in range(points)]
    losses = [loss_or_nan(problem, torch.lerp(start, end, alpha)) for alpha in alphas]
    distance = float(torch.linalg.vector_norm((end - start).double()))
    return Interpolation(alphas, losses, barrier(losses), distance)
