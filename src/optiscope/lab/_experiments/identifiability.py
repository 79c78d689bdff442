"""Sec. 8.2.2: a neural network is not identifiable. Permuting the hidden units of a layer (weight
space symmetry) or scaling a ReLU unit's incoming weights by a > 0 and its outgoing ones by 1/a
gives a different parameter vector with the same function and the same loss; m layers of n units
have n!^m equivalent orderings, and weight matching undoes a random permutation."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

import optiscope
from optiscope import flat_parameters, train
from optiscope.lab._framework import Lab, digits, experiment


def _train(width: int, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train(model, nn.CrossEntropyLoss(), itertools.repeat((x, y), steps), opt)
    return model


@experiment(
    "identifiability",
    "Model identifiability: weight space symmetry",
    "Permuting the hidden units of a trained network, or rescaling a ReLU unit's incoming "
    "weights by a > 0 and its outgoing weights by 1/a, moves the parameter vector far but leaves "
    "the outputs and the loss unchanged; m layers of n units give n!^m equivalent networks.",
)
def identifiability(lab: Lab) -> None:
    width = 16 if lab.small else 64
    samples = 300 if lab.small else 1000
    steps = 150 if lab.small else 400
    transforms = 6 if lab.small else 20
    x, y = digits(samples, seed=lab.seed)
    model = _train(width, x, y, steps, lab.seed)
    loss_fn = nn.CrossEntropyLoss()
    with torch.no_grad():
        out = model(x)
    scale_out = float(out.abs().max())
    loss = optiscope.Problem(model, loss_fn, (x, y)).loss()
    theta = flat_parameters(model).double()
    norm = float(torch.linalg.vector_norm(theta))
    accuracy = float((out.argmax(1) == y).double().mean())

    counts = optiscope.unit_counts(model)
    log10_count = sum(math.lgamma(n + 1) for n in counts) / math.log(10)

    gen = torch.Generator().manual_seed(lab.seed + 1)
    rows: list[dict[str, float | str]] = []
    for i in range(transforms):
        kind = ("permute", "rescale", "both")[i % 3]
        other: nn.Module = model
        if kind in ("permute", "both"):
            other = optiscope.permute_units(
                other, [torch.randperm(n, generator=gen) for n in counts]
            )
        if kind in ("rescale", "both"):
            # log-uniform scales in [1/4, 4]
            scales = [
                torch.exp((torch.rand(n, generator=gen) * 2 - 1) * math.log(4)) for n in counts
            ]
            other = optiscope.rescale_units(other, scales)
        with torch.no_grad():
            out_t = other(x)
        moved = flat_parameters(other).double() - theta
        rows.append(
            {
                "kind": kind,
                "distance": float(torch.linalg.vector_norm(moved)) / norm,
                "output_diff": float((out_t - out).abs().max()) / scale_out,
                "loss_diff": abs(optiscope.Problem(other, loss_fn, (x, y)).loss() - loss),
            }
        )
    max_out = max(float(r["output_diff"]) for r in rows)
    max_loss = max(float(r["loss_diff"]) for r in rows)
    min_dist = min(float(r["distance"]) for r in rows)

    # Weight matching undoes a random permutation exactly.
    perms = [torch.randperm(n, generator=gen) for n in counts]
    shuffled = optiscope.permute_units(model, perms)
    aligned = optiscope.align_units(model, shuffled, seed=lab.seed)
    recovered = all(
        torch.equal(perms[i][p], torch.arange(n))
        for i, (p, n) in enumerate(zip(aligned.perms, counts))
    )
    align_before = aligned.distance_before / norm
    align_after = aligned.distance_after / norm

    holds = (
        max_out <= 1e-6
        and max_loss <= 1e-6
        and min_dist >= 0.1
        and recovered
        and align_after == 0.0
    )

    def draw(fig) -> None:
        ax = fig.add_subplot()
        for kind, marker in (("permute", "o"), ("rescale", "s"), ("both", "^")):
            pts = [r for r in rows if r["kind"] == kind]
            ax.scatter(
                [float(r["distance"]) for r in pts],
                [max(float(r["output_diff"]), 1e-12) for r in pts],
                marker=marker,
                label=kind,
            )
        ax.axhline(1e-6, color="k", lw=0.8, ls="--", label="1e-6 (criterion)")
        ax.set_yscale("log")
        ax.set_xlabel("||theta' - theta|| / ||theta||")
        ax.set_ylabel("max |f'(x) - f(x)| / max |f(x)|")
        ax.set_title(
            f"{len(counts)} hidden layers of {width} units: 10^{log10_count:.1f} orderings"
        )
        ax.legend()

    lab.figure("symmetry", draw)
    lab.verdict(
        holds,
        "for every random transform (permutation, log-uniform rescaling in [1/4, 4], or both) of "
        "the trained float32 network, max |output difference| <= 1e-6 of max |output| and the "
        "loss difference <= 1e-6 nats (float32 rounding; the trained loss is near 0), while "
        "the parameter vector moves by at least 0.1 of "
        "its norm; and weight matching (align_units) recovers a random permutation exactly "
        "(distance after = 0)",
        width=width,
        hidden_layers=len(counts),
        samples=samples,
        train_accuracy=accuracy,
        loss=loss,
        log10_equivalent_orderings=log10_count,
        transforms=transforms,
        max_relative_output_diff=max_out,
        max_abs_loss_diff=max_loss,
        min_relative_distance=min_dist,
        max_relative_distance=max(float(r["distance"]) for r in rows),
        align_distance_before=align_before,
        align_distance_after=align_after,
        align_sweeps=aligned.sweeps,
        permutation_recovered=recovered,
        transforms_detail=rows,
    )
