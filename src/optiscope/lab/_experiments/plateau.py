"""Sec. 8.2.3 (saddle points and plateaus): a deep linear network started near the origin, which
is a saddle point of its loss, sits on a long plateau of almost constant loss, and then its loss
falls suddenly (Saxe, McClelland and Ganguli 2014)."""

from __future__ import annotations

import itertools

import torch
from torch import nn

import optiscope
from optiscope import flat_parameters, train
from optiscope.lab._framework import Lab, experiment

_WIDTH = 6
_DEPTH = 3
_SAMPLES = 100
# The target's singular values: one strong mode, the rest weak, so that the plateau ends in one
# sudden drop rather than a staircase of them.
_SINGULAR = (3.0, 0.3, 0.2, 0.1, 0.05, 0.02)


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(_SAMPLES, _WIDTH, generator=gen, dtype=torch.float64)
    u, _ = torch.linalg.qr(torch.randn(_WIDTH, _WIDTH, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(_WIDTH, _WIDTH, generator=gen, dtype=torch.float64))
    target = u @ torch.diag(torch.tensor(_SINGULAR, dtype=torch.float64)) @ v.T
    return x, x @ target.T


def _network(seed: int, scale: float) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(_WIDTH, _WIDTH, bias=False) for _ in range(_DEPTH)]
    model = nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)  # a small multiple of the standard initialization
    return model


@experiment(
    "plateau",
    "Plateaus: a deep linear network escaping the saddle at the origin",
    "A deep linear network initialized near the origin, a saddle point of its loss, trains on a "
    "long plateau where the loss barely moves and the Hessian has negative curvature, then its "
    "loss drops suddenly (Saxe et al. 2014).",
)
def plateau(lab: Lab) -> None:
    # Small: a 3e-2 multiple of the standard initialization; full: 1e-2, a longer plateau.
    steps, lr, every, scale = (900, 0.2, 50, 3e-2) if lab.small else (3000, 0.1, 100, 1e-2)
    x, y = _data(lab.seed)
    model = _network(lab.seed, scale)
    loss_fn = nn.MSELoss()
    problem = optiscope.Problem(model, loss_fn, (x, y))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses: list[float] = []  # at the point after t steps, t = 0..steps
    checks: list[tuple[int, float, float]] = []  # (step, lambda_min, lambda_max)

    def check(t: int, loss: torch.Tensor | None = None) -> None:
        if loss is not None:
            losses.append(float(loss.detach()))  # the loss before step t's update
        if t % every == 0:
            evals = torch.linalg.eigvalsh(problem.at(flat_parameters(model)).dense_hessian())
            checks.append((t, float(evals[0]), float(evals[-1])))

    check(0)
    train(model, loss_fn, itertools.repeat((x, y), steps), opt, after_step=check)
    losses.append(float(loss_fn(model(x), y).detach()))

    start, end = losses[0], losses[-1]
    # The plateau: the first steps whose loss stays within 5% of the starting loss.
    plateau_end = next((t for t, v in enumerate(losses) if v < 0.95 * start), len(losses))
    # The drop: from leaving the plateau to a tenth of the starting loss.
    tenth = next((t for t, v in enumerate(losses) if v <= 0.1 * start), None)
    drop_steps = (tenth - plateau_end) if tenth is not None else None
    on_plateau = [(t, lo, hi) for t, lo, hi in checks if 0 < t < plateau_end]
    saddle = [lo < -1e-6 * abs(hi) for _, lo, hi in on_plateau]
    plateau_ratio = max(lo / abs(hi) for _, lo, hi in on_plateau) if on_plateau else float("nan")
    min_plateau = 0.25 * steps
    holds = (
        plateau_end >= min_plateau
        and drop_steps is not None
        and drop_steps <= plateau_end / 2
        and end <= start / 10
        and bool(saddle)
        and all(saddle)
    )

    def draw(fig) -> None:
        ax = fig.add_subplot(1, 2, 1)
        ax.semilogy(losses)
        ax.axvspan(0, plateau_end, color="0.85", label="plateau (loss within 5%)")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8)
        ax = fig.add_subplot(1, 2, 2)
        ax.plot([t for t, _, _ in checks], [lo / abs(hi) for _, lo, hi in checks], "o-")
        ax.axvspan(0, plateau_end, color="0.85")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel("lambda_min / |lambda_max|")

    lab.figure("plateau", draw, width=8.0)
    lab.verdict(
        holds,
        "the loss stays within 5% of its starting value for at least a quarter of the run (the "
        "plateau), then falls from 95% to 10% of it in at most half as many steps as the plateau "
        "lasted, ending at most a tenth of its start; at every Hessian check on the plateau "
        f"(every {every} steps, dense Hessian) lambda_min < -1e-6 |lambda_max|",
        steps=steps,
        learning_rate=lr,
        init_scale=scale,
        start_loss=start,
        final_loss=end,
        loss_reduction=start / end,
        plateau_steps=plateau_end,
        drop_steps=drop_steps,
        plateau_checks=len(on_plateau),
        plateau_max_lambda_ratio=plateau_ratio,
        plateau_lambda_min=[lo for _, lo, _ in on_plateau],
        final_lambda_min=checks[-1][1],
        final_lambda_max=checks[-1][2],
    )
