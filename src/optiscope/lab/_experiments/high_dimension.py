"""Sec. 8.2.3: geometry in high dimension. Random directions are nearly orthogonal (|cos| of two
Gaussian vectors shrinks like 1/sqrt(d)); a random symmetric matrix, the coin-flip model of a
Hessian at a critical point of a random function, is positive definite with a probability that
falls fast with the dimension; and the Hessian of a small tanh network has a share of
negative-curvature directions that does not vanish as the network widens."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn

import optiscope
from optiscope.lab._framework import Lab, experiment


def _mean_abs_cos(d: int, pairs: int, gen: torch.Generator) -> float:
    total = 0.0
    chunk = max(1, min(pairs, 4_000_000 // d))
    done = 0
    while done < pairs:
        k = min(chunk, pairs - done)
        a = torch.randn(k, d, generator=gen)
        b = torch.randn(k, d, generator=gen)
        cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
        total += float(cos.abs().double().sum())
        done += k
    return total / pairs


def _goe_positive(n: int, samples: int, gen: torch.Generator) -> float:
    """P(every eigenvalue > 0) for A = (G + G^T) / 2, G with i.i.d. N(0, 1) entries."""
    g = torch.randn(samples, n, n, generator=gen, dtype=torch.float64)
    evals = torch.linalg.eigvalsh((g + g.transpose(1, 2)) / 2)
    return float((evals[:, 0] > 0).double().mean())


def _network_fractions(
    width: int, x: torch.Tensor, y: torch.Tensor, points: int, gen: torch.Generator
) -> list[float]:
    """Fraction of negative Hessian eigenvalues (below -1e-8 lambda_max) at random points of a
    one-hidden-layer tanh network of ``width`` units."""
    model = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 1)).double()
    problem = optiscope.Problem(model, nn.MSELoss(), (x, y))
    out = []
    for _ in range(points):
        theta = torch.randn(problem.num_params, generator=gen, dtype=torch.float64)
        evals = torch.linalg.eigvalsh(problem.at(theta).dense_hessian())
        scale = float(evals.abs().max())
        out.append(float((evals < -1e-8 * scale).double().mean()))
    return out


@experiment(
    "high-dimension",
    "High dimension: orthogonal directions and negative curvature",
    "In high dimension random directions are nearly orthogonal (|cos| ~ 1/sqrt(d)); a random "
    "critical point is a minimum with a probability that falls fast with the dimension, so "
    "saddle points dominate; and the Hessian of a network keeps a non-vanishing share of "
    "negative-curvature directions as it widens.",
)
def high_dimension(lab: Lab) -> None:
    gen = torch.Generator().manual_seed(lab.seed)
    # (a) Random directions.
    dims = [10, 100, 1000, 10_000, 100_000]
    pairs = 200 if lab.small else 2000
    cosines = [_mean_abs_cos(d, pairs, gen) for d in dims]
    slope, intercept = np.polyfit(np.log10(dims), np.log10(cosines), 1)
    # E|cos| -> sqrt(2 / (pi d)) for large d.
    ratios = [c * math.sqrt(d) / math.sqrt(2 / math.pi) for c, d in zip(cosines, dims)]

    # (b) Coin-flip model: a random symmetric Gaussian matrix as the Hessian of a critical point.
    ns = [1, 2, 3, 4, 5, 6]
    goe_samples = 20_000 if lab.small else 200_000
    positive = [_goe_positive(n, goe_samples, gen) for n in ns]
    # Falls strictly until too rare to be seen in the sample.
    falls = all(b < a or (a == 0 and b == 0) for a, b in itertools.pairwise(positive))

    # (c) A one-hidden-layer tanh network on a fixed small data set, at random points.
    widths = [2, 4, 8, 16] if lab.small else [2, 4, 8, 16, 32]
    points = 4 if lab.small else 16
    data_gen = torch.Generator().manual_seed(lab.seed + 1)
    x = torch.randn(30, 2, generator=data_gen, dtype=torch.float64)
    y = torch.randn(30, 1, generator=data_gen, dtype=torch.float64)
    fractions = {w: _network_fractions(w, x, y, points, gen) for w in widths}
    mean_fraction = [float(np.mean(fractions[w])) for w in widths]
    psd_share = [float(np.mean([f == 0 for f in fractions[w]])) for w in widths]

    # Standard error of the ratio: sd(|cos| sqrt(d)) / sqrt(2/pi) = sqrt(pi/2 - 1) per pair.
    ratio_tol = 4 * math.sqrt(math.pi / 2 - 1) / math.sqrt(pairs)
    holds = (
        -0.55 <= slope <= -0.45
        and all(abs(r - 1) <= ratio_tol for r in ratios[1:])
        and abs(positive[0] - 0.5) <= 0.02
        and falls
        and positive[-1] <= 0.01
        and min(mean_fraction) >= 0.1
        and psd_share[-1] <= psd_share[0]
    )

    def draw_cos(fig) -> None:
        ax = fig.add_subplot()
        ax.loglog(dims, cosines, "o-", label="mean |cos| of random pairs")
        ax.loglog(dims, [math.sqrt(2 / (math.pi * d)) for d in dims], "k--", label="sqrt(2/(pi d))")
        ax.set_xlabel("dimension d")
        ax.set_ylabel("mean |cos|")
        ax.set_title(f"fitted slope {slope:.3f}")
        ax.legend()

    def draw_index(fig) -> None:
        ax1 = fig.add_subplot(1, 2, 1)
        ax1.semilogy(ns, [max(p, 0.5 / goe_samples) for p in positive], "o-", label="GOE")
        ax1.semilogy(ns, [0.5**n for n in ns], "k--", label="coin flips 2^-n")
        ax1.set_xlabel("dimension n")
        ax1.set_ylabel("P(all eigenvalues > 0)")
        ax1.legend()
        ax2 = fig.add_subplot(1, 2, 2)
        for w in widths:
            ax2.plot([w] * len(fractions[w]), fractions[w], ".", color="0.6")
        ax2.plot(widths, mean_fraction, "o-", label="mean")
        ax2.set_xscale("log", base=2)
        ax2.set_ylim(0, 0.6)
        ax2.set_xlabel("hidden units (tanh)")
        ax2.set_ylabel("fraction of negative eigenvalues")
        ax2.legend()

    lab.figure("cosines", draw_cos)
    lab.figure("index", draw_index, width=10.0, height=4.4)
    lab.verdict(
        holds,
        f"(a) over {pairs} Gaussian pairs per d in 10..1e5, the log-log slope of mean |cos| is in "
        "[-0.55, -0.45] and mean |cos| sqrt(d) / sqrt(2/pi) is within 4 standard errors "
        f"({ratio_tol:.3f}) of 1 for d >= 100; "
        f"(b) over {goe_samples} random symmetric Gaussian matrices per n, P(all eigenvalues > 0) "
        "is 0.5 +- 0.02 at n = 1, falls strictly with n = 1..6 (until no sample is positive "
        "definite) and is <= 1% at n = 6; (c) at random points of a one-hidden-layer tanh "
        "network (MSE, 30 fixed samples), the mean fraction of Hessian eigenvalues below "
        "-1e-8 lambda_max is >= 0.1 at every width, and the share of points without negative "
        "curvature is no larger at the widest than at the narrowest",
        dims=dims,
        mean_abs_cos=cosines,
        cos_loglog_slope=float(slope),
        cos_sqrt_d_ratio=ratios,
        cos_ratio_tolerance=ratio_tol,
        goe_n=ns,
        goe_p_positive_definite=positive,
        widths=widths,
        points_per_width=points,
        mean_negative_fraction=mean_fraction,
        min_mean_negative_fraction=min(mean_fraction),
        share_points_without_negative_curvature=psd_share,
        intercept=float(intercept),
    )
