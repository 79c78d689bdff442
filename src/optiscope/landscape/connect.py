"""Mode connectivity: a trained quadratic Bezier curve between two minima (Garipov, Izmailov,
Podoprikhin, Vetrov and Wilson 2018, "Loss Surfaces, Mode Connectivity, and Fast Ensembling of
DNNs").

Two minima ``a`` and ``b`` that the straight line joins only over a high barrier are often joined
by a simple curve along which the loss stays low. The curve is the quadratic Bezier curve with
one free control point ``theta``::

    phi_theta(t) = (1 - t)^2 a + 2 t (1 - t) theta + t^2 b,    t in [0, 1],

so that ``phi(0) = a`` and ``phi(1) = b``; with ``theta = (a + b) / 2`` it is the straight line
``(1 - t) a + t b``. The control point minimises the loss averaged along the curve, with the ends
held fixed::

    l(theta) = E_{t ~ U(0, 1)} L(phi_theta(t)),
    grad l(theta) = E_t [ 2 t (1 - t) grad L(phi_theta(t)) ],

estimated with one ``t`` per step (the paper's uniform-``t`` objective, which it uses in place of
the length-weighted one). The barrier of a path is its largest loss minus the larger of its two
end losses, at least 0, over evenly spaced ``t``; the same for the line and the curve makes them
comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core.errors import NonFiniteError
from optiscope.landscape.line import LandscapeError, as_point, barrier, interpolate, loss_or_nan
from optiscope.problem.problem import Problem

_LR_FRACTION = 0.02


@dataclass
class Connection:
    """A trained quadratic Bezier curve between two points and the straight line beside it.

    ``ts`` are evenly spaced in [0, 1], both ends included; ``curve_losses`` and ``line_losses``
    are the losses at ``phi(t)`` and at ``(1 - t) a + t b`` (NaN where not finite).
    ``curve_barrier`` and ``line_barrier`` are the largest finite loss on each path minus the
    larger end loss, at least 0. ``control`` is the trained control point ``theta`` (a flat
    vector), ``train_losses`` the one-sample training objective ``L(phi(t_k))`` at each step's
    random ``t_k``, and ``steps`` the number of training steps.
    """

    ts: list[float]
    curve_losses: list[float]
    line_losses: list[float]
    curve_barrier: float
    line_barrier: float
    control: Tensor
    train_losses: list[float]
    steps: int

    def to_dict(self) -> dict[str, Any]:
        """Everything but the control tensor, as plain values; ``control_norm`` stands for it."""
        return {
            "ts": self.ts,
            "curve_losses": self.curve_losses,
            "line_losses": self.line_losses,
            "curve_barrier": self.curve_barrier,
            "line_barrier": self.line_barrier,
            "control_norm": float(torch.linalg.vector_norm(self.control.double())),
            "train_losses": self.train_losses,
            "steps": self.steps,
        }


def bezier(a: Tensor, control: Tensor, b: Tensor, t: float) -> Tensor:
    """The quadratic Bezier curve ``phi(t) = (1-t)^2 a + 2t(1-t) theta + t^2 b`` at ``t``, with
    ``theta = control``."""
    if not a.shape == control.shape == b.shape:
        raise LandscapeError(
            f"a, control and b must have one shape, got {tuple(a.shape)}, "
            f"{tuple(control.shape)} and {tuple(b.shape)}: pass three flat parameter vectors of "
            "the same model"
        )
    s = 1.0 - t
    return (s * s) * a + (2.0 * t * s) * control + (t * t) * b


def _schedule(step: int, steps: int) -> float:
    # The schedule of the authors' code (per epoch there, per step here): the late small steps
    # average out the noise of the one-sample gradient.
    frac = step / steps
    if frac <= 0.5:
        return 1.0
    if frac <= 0.9:
        return 1.0 - (frac - 0.5) / 0.4 * 0.99
    return 0.01


def connect(
    problem: Problem,
    a: Tensor | nn.Module,
    b: Tensor | nn.Module,
    *,
    steps: int = 300,
    lr: float | None = None,
    points: int = 21,
    seed: int = 0,
    control: Tensor | nn.Module | None = None,
) -> Connection:
    """Train the control point of a quadratic Bezier curve from ``a`` to ``b`` and compare the
    losses along it with those along the straight line.

    Parameters
    ----------
    problem:
        The loss ``L`` as a function of the flat parameter vector.
    a, b:
        The two ends (usually two minima), as flat vectors or models of the problem's
        architecture; they stay fixed.
    steps:
        Training steps; each draws one ``t ~ U(0, 1)`` and costs one gradient of ``L``. With
        ``steps=0`` the curve is measured at its initial control point.
    lr:
        Adam's learning rate. Adam moves each coordinate by at most about ``lr`` per step,
        whatever the scale of the gradient, so the default is a fraction of the distance between
        the ends per coordinate: ``lr = 0.02 * ||b - a|| / sqrt(num_params)``; the 300 default
        steps can then take the control point up to about 4 ``||b - a||`` off the line. It is
        held for the first half of the run, then lowered linearly to 1% of itself by 90% of the
        run and kept there (the schedule of Garipov et al.'s code).
    points:
        Number of evenly spaced ``t`` in [0, 1], both ends included, at which both paths are
        measured.
    seed:
        Seeds the ``torch.Generator`` that draws the ``t`` of each step.
    control:
        The initial control point (a flat vector or a model); default ``(a + b) / 2``, where the
        curve is the straight line. There the gradient is zero along any direction in which the
        loss is symmetric about the line; start off it to break such a symmetry.
    """
    if points < 2:
        raise LandscapeError(
            f"points must be at least 2 (the two ends), got {points}: pass points=21 or more"
        )
    if steps < 0:
        raise LandscapeError(
            f"steps must be 0 or more (0 measures the initial curve), got {steps}: pass steps=300"
        )
    start, end = as_point(problem, a, "a"), as_point(problem, b, "b")
    if control is None:
        theta = (start + end) / 2
    else:
        if isinstance(control, Tensor) and control.shape != (problem.num_params,):
            raise LandscapeError(
                f"control must be a flat vector of {problem.num_params} parameters in the "
                f"problem's order, got a tensor of shape {tuple(control.shape)}: pass "
                "control=None to start at (a + b) / 2, or a model of the problem's architecture"
            )
        theta = as_point(problem, control, "control").clone()
    if lr is None:
        distance = float(torch.linalg.vector_norm((end - start).double()))
        if distance == 0.0:
            raise LandscapeError(
                "a and b are the same point, so the default lr (a fraction of ||b - a||) is 0: "
                "expected two distinct points; pass lr= to train a loop from a point to itself"
            )
        lr = _LR_FRACTION * distance / math.sqrt(problem.num_params)
    if not (math.isfinite(lr) and lr > 0):
        raise LandscapeError(f"lr must be a finite number above 0, got {lr}: pass lr=None")

    # Adam (Kingma and Ba 2015) written out on the flat vector: torch.optim would import
    # torch._dynamo on first use, seconds for a few lines of arithmetic.
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    gen = torch.Generator().manual_seed(seed)
    train_losses: list[float] = []
    for step in range(steps):
        t = float(torch.rand((), generator=gen, dtype=torch.float64))
        try:
            loss, grad = problem.loss_and_gradient(bezier(start, theta, end, t))
        except NonFiniteError as err:
            raise NonFiniteError(
                f"training the curve, step {step}: the loss at t={t:.3f} is not finite. Lower "
                f"lr (it was {lr:.3g}) or start from another control point"
            ) from err
        grad = (2.0 * t * (1.0 - t)) * grad
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        k = step + 1
        size = lr * _schedule(step, steps) / (1 - beta1**k)
        theta = theta - size * m / ((v / (1 - beta2**k)).sqrt() + eps)
        train_losses.append(loss)

    line = interpolate(problem, start, end, points)
    curve_losses = [loss_or_nan(problem, bezier(start, theta, end, t)) for t in line.alphas]
    return Connection(
        ts=line.alphas,
        curve_losses=curve_losses,
        line_losses=line.losses,
        curve_barrier=barrier(curve_losses),
        line_barrier=line.barrier,
        control=theta,
        train_losses=train_losses,
        steps=steps,
    )
