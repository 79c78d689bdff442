"""Sec. 8.2.1: ill-conditioning. A gradient step of size lr changes the loss by about
-lr g^T g + lr^2/2 g^T H g, so the step raises the loss once the curvature term exceeds the
first-order one; and in training, g^T g can stay put while g^T H g grows by an order of
magnitude, so learning slows although the gradient is strong."""

from __future__ import annotations

import statistics
from typing import Any

import torch
from torch import nn

import optiscope
from optiscope import train
from optiscope.lab._framework import Lab, digits, experiment


def _taylor(problem: optiscope.Problem, factors: list[float]) -> dict[str, Any]:
    """Predicted and actual loss change of a gradient step at lr = factor * lr_star, where
    lr_star = 2 g^T g / g^T H g is where the predicted change crosses zero."""
    loss0, g = problem.loss_and_gradient()
    gg = float(g @ g)
    ghg = float(g @ problem.hvp(g))
    lr_star = 2.0 * gg / ghg
    lrs = [f * lr_star for f in factors]
    predicted = [-lr * gg + 0.5 * lr * lr * ghg for lr in lrs]
    actual = [problem.loss(problem.point - lr * g) - loss0 for lr in lrs]
    return {"gg": gg, "ghg": ghg, "lr_star": lr_star, "lrs": lrs, "pred": predicted, "act": actual}


def _quadratic(seed: int, dim: int) -> tuple[optiscope.Problem, torch.Tensor]:
    """Least squares with a known Hessian H = 2/n X^T X, condition number ~1e3."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4 * dim, dim, generator=gen, dtype=torch.float64)
    x = x * torch.logspace(0, -1.5, dim, dtype=torch.float64)
    y = x @ torch.randn(dim, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(dim, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, dim, generator=gen, dtype=torch.float64))
    return optiscope.Problem(model, nn.MSELoss(), (x, y)), 2.0 / len(x) * x.T @ x


@experiment(
    "ill-conditioning",
    "Ill-conditioning: the second-order term of a gradient step",
    "A gradient step -lr g changes the loss by about -lr g^T g + lr^2/2 g^T H g: the prediction "
    "matches small steps, and the step raises the loss once lr^2/2 g^T H g > lr g^T g. In "
    "training, g^T g may not shrink while g^T H g grows by more than an order of magnitude.",
)
def ill_conditioning(lab: Lab) -> None:
    torch.manual_seed(lab.seed)
    n_lr = 13 if lab.small else 41
    # lr from 1e-3 to 4 times the crossing lr_star = 2 g^T g / g^T H g.
    factors = [float(f) for f in torch.logspace(-3, 0.6, n_lr, dtype=torch.float64)]
    small_steps = [i for i, f in enumerate(factors) if f <= 1e-2]
    # Sign checked away from the crossing itself, where the change is near zero either way.
    # (the second-order model is local: checked up to 2 lr_star).
    signed = [i for i, f in enumerate(factors) if f <= 2.0 and not 0.8 <= f <= 1.25]

    # 1. A quadratic with a known Hessian: the prediction is exact.
    quad, h = _quadratic(lab.seed, 10)
    g = quad.gradient()
    hvp_error = float(
        torch.linalg.vector_norm(quad.hvp(g) - h @ g) / torch.linalg.vector_norm(h @ g)
    )
    q = _taylor(quad, factors)

    # 2. + 3. The digits MLP: train with plain SGD, watching g^T g and g^T H g on a fixed batch.
    n_train, steps, every = (512, 200, 10) if lab.small else (512, 200, 4)
    xs, ys = digits(n_train, seed=lab.seed, dtype=torch.float64)
    fixed = (xs[:256], ys[:256])
    torch.manual_seed(lab.seed)
    head = nn.Linear(64, 10)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), head).double()
    with torch.no_grad():  # near-uniform outputs at the start, as in an untrained classifier
        head.weight.mul_(0.1)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    gen = torch.Generator().manual_seed(lab.seed)
    track: dict[str, list[float]] = {"step": [], "loss": [], "gg": [], "ghg": []}
    mid = None

    def watch(step: int, _: torch.Tensor | None = None) -> None:
        nonlocal mid
        if step % every:
            return
        p = optiscope.Problem(model, loss_fn, fixed, check=False)
        loss, gr = p.loss_and_gradient()
        track["step"].append(step)
        track["loss"].append(loss)
        track["gg"].append(float(gr @ gr))
        track["ghg"].append(float(gr @ p.hvp(gr)))
        if step == steps // 2:
            mid = p

    watch(0)
    draws = (torch.randint(0, n_train, (32,), generator=gen) for _ in range(steps))
    train(model, loss_fn, ((xs[idx], ys[idx]) for idx in draws), opt, after_step=watch)
    assert mid is not None
    m = _taylor(mid, factors)

    def rel(t: dict, i: int) -> float:
        # Relative to the first-order term lr g^T g (the actual change is ~0 at lr_star).
        return abs(t["act"][i] - t["pred"][i]) / (t["lrs"][i] * t["gg"])

    quad_rel = max(rel(q, i) for i in range(n_lr))
    mlp_rel = max(rel(m, i) for i in small_steps)
    quad_sign = sum((q["act"][i] > 0) == (q["pred"][i] > 0) for i in signed) / len(signed)
    mlp_sign = sum((m["act"][i] > 0) == (m["pred"][i] > 0) for i in signed) / len(signed)
    quad_raises = all((q["act"][i] > 0) == (factors[i] > 1) for i in signed)
    mlp_raises = all((m["act"][i] > 0) == (factors[i] > 1) for i in signed)

    last = len(track["gg"]) - max(1, len(track["gg"]) // 4)
    gg_ratio = statistics.median(track["gg"][last:]) / track["gg"][0]
    ghg_ratio = statistics.median(track["ghg"][last:]) / track["ghg"][0]
    book = gg_ratio >= 0.5 and ghg_ratio > 10.0

    holds = (
        hvp_error < 1e-10
        and quad_rel < 1e-6
        and mlp_rel < 0.05
        and quad_sign == 1.0
        and mlp_sign == 1.0
        and quad_raises
        and mlp_raises
        and book
    )

    def draw_taylor(fig) -> None:
        for k, (t, label) in enumerate(((q, "quadratic"), (m, "digits MLP"))):
            ax = fig.add_subplot(1, 2, k + 1)
            ax.plot(t["lrs"], t["act"], "o", label="actual change")
            ax.plot(t["lrs"], t["pred"], "-", label="-lr g'g + lr^2/2 g'Hg")
            ax.axvline(t["lr_star"], color="k", ls=":", lw=0.8)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xscale("log")
            ax.set_yscale("symlog", linthresh=abs(t["pred"][0]))
            ax.set_xlabel("learning rate")
            ax.set_title(label)
            if k == 0:
                ax.set_ylabel("loss change")
                ax.legend(fontsize=7)

    def draw_training(fig) -> None:
        ax = fig.add_subplot()
        ax.semilogy(track["step"], track["gg"], label="g^T g")
        ax.semilogy(track["step"], track["ghg"], label="g^T H g")
        ax.semilogy(track["step"], track["loss"], "--", label="loss")
        ax.set_xlabel("SGD step")
        ax.legend()

    lab.figure("taylor", draw_taylor, width=9.0)
    lab.figure("training", draw_training)
    lab.verdict(
        holds,
        "quadratic: hvp matches the known H to 1e-10 and the prediction matches the actual "
        "change to 1e-6 of lr g'g at every lr; MLP: error < 5% of lr g'g for lr <= 1e-2 lr_star "
        "(lr_star = 2 g'g / g'Hg); for both, for lr in [1e-3, 2] lr_star outside [0.8, 1.25] "
        "lr_star, the predicted and "
        "actual changes have the same sign at every lr, and the loss rises exactly when lr > "
        "lr_star; SGD training: median g'g over the last quarter >= 0.5 of its initial value "
        "while the median g'Hg over the last quarter is > 10 times its initial value",
        learning_rates=n_lr,
        quadratic_hvp_error=hvp_error,
        quadratic_max_relative_error=quad_rel,
        quadratic_sign_agreement=quad_sign,
        mlp_lr_star=m["lr_star"],
        mlp_max_relative_error_small_steps=mlp_rel,
        mlp_sign_agreement=mlp_sign,
        quadratic_rises_iff_beyond_lr_star=quad_raises,
        mlp_rises_iff_beyond_lr_star=mlp_raises,
        sgd_steps=steps,
        gg_start=track["gg"][0],
        ghg_start=track["ghg"][0],
        gg_ratio_end_to_start=gg_ratio,
        ghg_ratio_end_to_start=ghg_ratio,
        gg_trace=track["gg"],
        ghg_trace=track["ghg"],
    )
