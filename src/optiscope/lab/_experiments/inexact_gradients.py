"""Sec. 8.2.5 (inexact gradients) with sec. 8.1.3: a minibatch gradient is a noisy estimate of
the full gradient whose noise shrinks as the batch grows; the gradient noise scale
``B_simple = tr(Sigma) / |G|^2`` (McCandlish et al. 2018), read from per-sample gradients, says
at which batch size the noise stops dominating."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
from torch import nn

import optiscope
from optiscope import train
from optiscope.lab._framework import Lab, digits, experiment


def _mlp(seed: int, hidden: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10)).double()


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int) -> None:
    """A brief run of minibatch SGD, so that the gradients are measured off the initialization."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    draws = (torch.randint(0, len(y), (32,), generator=gen) for _ in range(steps))
    train(model, nn.CrossEntropyLoss(), ((x[idx], y[idx]) for idx in draws), opt)


@experiment(
    "inexact-gradients",
    "Inexact gradients: minibatch noise and the critical batch size",
    "A minibatch gradient is an unbiased but noisy estimate of the full gradient: its alignment "
    "with the full gradient and its signal-to-noise ratio grow with the batch size B, with noise "
    "variance tr(Sigma)/B, so that the gradient noise scale B_simple = tr(Sigma)/|G|^2 marks the "
    "batch size where signal and noise are equal (McCandlish et al. 2018).",
)
def inexact_gradients(lab: Lab) -> None:
    hidden, train_steps, draws = (16, 100, 120) if lab.small else (32, 300, 500)
    sizes = [1, 4, 16, 64, 256]
    x, y = digits(dtype=torch.float64)
    n = len(y)
    model = _mlp(lab.seed, hidden)
    _train(model, x, y, train_steps, lab.seed)
    loss_fn = nn.CrossEntropyLoss()
    problem = optiscope.Problem(model, loss_fn, (x, y))
    full = problem.gradient()
    per = problem.per_sample_gradients()  # (N, P); the full gradient is their mean
    g2 = float(full @ full)
    trace = float(((per - per.mean(0)) ** 2).sum(1).mean())  # tr(Sigma), divisor N
    b_simple = trace / g2
    gen = torch.Generator().manual_seed(lab.seed + 1)
    rows = []
    for b in sizes:
        sq, cos, err = [], [], []
        for _ in range(draws):
            idx = torch.randperm(n, generator=gen)[:b]  # without replacement
            g = optiscope.Problem(model, loss_fn, (x[idx], y[idx]), check=False).gradient()
            sq.append(float(g @ g))
            cos.append(float(g @ full) / (float(g.norm()) * g2**0.5))
            err.append(float((g - full) @ (g - full)))
        # Sampling B of N without replacement scales the noise by (N - B) / (N - 1).
        noise = trace / b * (n - b) / (n - 1)
        rows.append(
            {
                "batch": b,
                "mean_sq_norm": float(np.mean(sq)),
                "predicted_sq_norm": g2 + noise,
                "mean_cosine": float(np.mean(cos)),
                "mean_sq_cosine": float(np.mean(np.square(cos))),
                "predicted_sq_cosine": g2 / (g2 + noise),
                "snr": g2 / float(np.mean(err)),
            }
        )
    norm_err = max(abs(r["mean_sq_norm"] / r["predicted_sq_norm"] - 1) for r in rows)
    cos_err = max(abs(r["mean_sq_cosine"] - r["predicted_sq_cosine"]) for r in rows)
    cosines = [r["mean_cosine"] for r in rows]
    snrs = [r["snr"] for r in rows]
    grows = all(a < b for a, b in pairwise(cosines)) and all(a < b for a, b in pairwise(snrs))
    holds = grows and norm_err <= 0.10 and cos_err <= 0.10

    def draw(fig) -> None:
        ax = fig.add_subplot(1, 2, 1)
        ax.semilogx(sizes, cosines, "o-", label="mean cos(g_B, G)")
        ax.semilogx(sizes, [r["mean_sq_cosine"] for r in rows], "s", label="mean cos^2")
        ax.semilogx(
            sizes, [r["predicted_sq_cosine"] for r in rows], "k--", label="1 / (1 + B_simple/B)"
        )
        ax.axvline(b_simple, color="r", lw=0.8, label=f"B_simple = {b_simple:.3g}")
        ax.set_xlabel("batch size B")
        ax.set_ylabel("cosine with the full gradient")
        ax.legend(fontsize=7)
        ax = fig.add_subplot(1, 2, 2)
        ax.loglog(sizes, snrs, "o-", label="|G|^2 / E|g_B - G|^2")
        ax.loglog(
            sizes,
            [b / b_simple * (n - 1) / (n - b) for b in sizes],
            "k--",
            label="B / B_simple (finite-N corrected)",
        )
        ax.axvline(b_simple, color="r", lw=0.8)
        ax.set_xlabel("batch size B")
        ax.set_ylabel("gradient signal-to-noise ratio")
        ax.legend(fontsize=7)

    lab.figure("inexact_gradients", draw, width=8.0)
    lab.verdict(
        holds,
        f"over {draws} minibatches drawn without replacement per B in {sizes}: the mean cosine "
        "between the minibatch and full gradients and the SNR |G|^2 / mean |g_B - G|^2 both grow "
        "strictly with B; for every B the mean |g_B|^2 matches |G|^2 + tr(Sigma)/B (N-B)/(N-1) "
        "within 10% (tr(Sigma) from per-sample gradients), and the mean squared cosine matches "
        "1 / (1 + B_simple/B (N-B)/(N-1)) within 0.10",
        samples=n,
        parameters=problem.num_params,
        gradient_sq_norm=g2,
        trace_sigma=trace,
        b_simple=b_simple,
        max_sq_norm_rel_error=norm_err,
        max_sq_cosine_abs_error=cos_err,
        cosines=cosines,
        snrs=snrs,
        per_batch=rows,
    )
