"""Sec. 8.2.3: gradient descent escapes a saddle point, Newton's method is attracted to it, and
the saddle-free Newton method (Dauphin et al. 2014), which divides by |H| instead of H, escapes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import optiscope
from optiscope.lab._framework import Lab, experiment


class _Quadratic(nn.Module):
    """f(x) = x1^2 - c x2^2 as a model whose output is the loss: a saddle at the origin with
    Hessian diag(2, -2c)."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.c = c

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        f = self.x[0] ** 2 - self.c * self.x[1] ** 2
        return f * torch.ones_like(inputs[:, 0])


def _mean(out: torch.Tensor, _targets: torch.Tensor) -> torch.Tensor:
    return out.mean()


def _run(
    problem: optiscope.Problem, x0: torch.Tensor, method: str, lr: float, steps: int, escape: float
) -> tuple[list[list[float]], int | None]:
    """Iterate ``method`` from x0; the path and the first step at which |x2| > escape."""
    x = x0.clone()
    path = [x.tolist()]
    for step in range(1, steps + 1):
        p = problem.at(x)
        g = p.gradient()
        if method == "gd":
            d = g
        else:
            evals, evecs = torch.linalg.eigh(p.dense_hessian())
            inv = 1 / (evals.abs() if method == "sfn" else evals)
            d = evecs @ (inv * (evecs.T @ g))
        x = x - lr * d
        path.append(x.tolist())
        if abs(float(x[1])) > escape:
            return path, step
    return path, None


@experiment(
    "saddle-newton",
    "Saddle points: gradient descent, Newton, saddle-free Newton",
    "Near a saddle point gradient descent escapes along the negative-curvature direction, "
    "Newton's method (x - H^-1 g) jumps to the saddle and stays, and the saddle-free Newton "
    "method (x - |H|^-1 g) escapes, faster than gradient descent where the negative curvature "
    "is weak.",
)
def saddle_newton(lab: Lab) -> None:
    steps = 200 if lab.small else 2000
    # Newton sits exactly on the saddle after one step; a short run shows that it stays.
    newton_steps = 20 if lab.small else 100
    escape = 1.0
    gen = torch.Generator().manual_seed(lab.seed)
    # Start near the saddle: x1 in [0.5, 1], |x2| in [1e-3, 2e-3] with a random sign.
    u = torch.rand(3, generator=gen, dtype=torch.float64)
    x0 = torch.stack([0.5 + 0.5 * u[0], (1e-3 + 1e-3 * u[1]) * torch.sign(u[2] - 0.5)])
    data = (torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))

    results: dict[float, dict[str, tuple[list[list[float]], int | None]]] = {}
    # c = 1: the book's f = x1^2 - x2^2; c = 0.05: a saddle with weak negative curvature.
    for c in (1.0, 0.05):
        problem = optiscope.Problem(_Quadratic(c), _mean, data)
        lmax = 2.0  # the largest |eigenvalue| of diag(2, -2c)
        results[c] = {
            # Step scale matched on the positive-curvature direction: GD with 1/lambda_max, the
            # Newton methods with 1 (each then lands on x1 = 0 in one step).
            "gd": _run(problem, x0, "gd", 1 / lmax, steps, escape),
            "newton": _run(problem, x0, "newton", 1.0, newton_steps, escape),
            "sfn": _run(problem, x0, "sfn", 1.0, steps, escape),
            # The same learning rate 0.1 for both, for the record.
            "gd_lr0.1": _run(problem, x0, "gd", 0.1, steps, escape),
            "sfn_lr0.1": _run(problem, x0, "sfn", 0.1, steps, escape),
        }

    def count(c: float, m: str) -> int | None:
        return results[c][m][1]

    newton_path = results[1.0]["newton"][0]
    newton_dist = [math.hypot(*p) for p in newton_path]
    newton_first = newton_dist[1]
    newton_final = newton_dist[-1]
    gd_iso, sfn_iso = count(1.0, "gd"), count(1.0, "sfn")
    gd_weak, sfn_weak = count(0.05, "gd"), count(0.05, "sfn")
    holds = (
        gd_iso is not None
        and count(1.0, "newton") is None
        and count(0.05, "newton") is None
        and newton_first <= 1e-12
        and newton_final <= 1e-12
        and sfn_iso is not None
        and sfn_iso <= gd_iso
        and gd_weak is not None
        and sfn_weak is not None
        and sfn_weak < gd_weak
    )

    def draw(fig) -> None:
        for i, c in enumerate((1.0, 0.05)):
            ax = fig.add_subplot(1, 2, i + 1)
            g = torch.linspace(-1.2, 1.2, 121, dtype=torch.float64)
            xx, yy = torch.meshgrid(g, g, indexing="xy")
            ax.contour(
                xx.numpy(), yy.numpy(), (xx**2 - c * yy**2).numpy(), levels=15, cmap="RdBu_r"
            )
            for m, style, label in (
                ("gd", "o-", "gradient descent"),
                ("newton", "s-", "Newton"),
                ("sfn", "^-", "saddle-free Newton"),
            ):
                path = torch.tensor(results[c][m][0])
                ax.plot(path[:, 0], path[:, 1].clamp(-1.2, 1.2), style, ms=3, label=label)
            ax.plot([0], [0], "kx", ms=8)
            ax.set_xlim(-1.2, 1.2)
            ax.set_ylim(-1.2, 1.2)
            ax.set_title(f"f = x1^2 - {c:g} x2^2")
            ax.set_xlabel("x1")
            if i == 0:
                ax.set_ylabel("x2")
                ax.legend(fontsize=7)

    lab.figure("trajectories", draw, width=10.0, height=4.6)
    lab.verdict(
        holds,
        f"from x0 near the saddle, within {steps} steps: gradient descent (step 1/lambda_max) "
        f"reaches |x2| > {escape:g} on f = x1^2 - x2^2; Newton lands within 1e-12 of the saddle "
        f"in one step and stays there for {newton_steps} steps (on f and on x1^2 - 0.05 x2^2); "
        "saddle-free Newton "
        "(step 1) escapes in no more steps than gradient descent on f and in strictly fewer on "
        "x1^2 - 0.05 x2^2",
        x0=x0.tolist(),
        escape_threshold=escape,
        max_steps=steps,
        newton_steps=newton_steps,
        gd_steps_to_escape=gd_iso,
        sfn_steps_to_escape=sfn_iso,
        newton_steps_to_escape=count(1.0, "newton"),
        newton_distance_after_one_step=newton_first,
        newton_distance_final=newton_final,
        weak_gd_steps_to_escape=gd_weak,
        weak_sfn_steps_to_escape=sfn_weak,
        weak_newton_steps_to_escape=count(0.05, "newton"),
        same_lr_0_1_gd_steps=count(1.0, "gd_lr0.1"),
        same_lr_0_1_sfn_steps=count(1.0, "sfn_lr0.1"),
        weak_same_lr_0_1_gd_steps=count(0.05, "gd_lr0.1"),
        weak_same_lr_0_1_sfn_steps=count(0.05, "sfn_lr0.1"),
    )
