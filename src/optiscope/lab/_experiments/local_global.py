"""Sec. 8.2.7, poor correspondence between local and global structure: the straight line from
the initial point to the solution is often free of barriers (Goodfellow, Vinyals and Saxe 2015),
yet training does not take it: its path is longer than the distance it covers and bends in a
low-dimensional subspace (Li et al. 2018), drawn on the surface of its principal plane."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import optiscope
from optiscope import flat_parameters, train
from optiscope.lab._framework import Lab, digits, experiment


@experiment(
    "local-global-structure",
    "Local and global structure: the straight path and the path taken",
    "The straight line from the initial point to the trained one has no barrier, while "
    "training's own path is markedly longer than that line and lies mostly in a plane whose "
    "surface shows it bending around the slope.",
)
def local_global(lab: Lab) -> None:
    torch.manual_seed(lab.seed)
    n, steps = (400, 150) if lab.small else (1797, 400)
    x, y = digits(n)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(lab.seed)
    draws = (torch.randint(0, n, (32,), generator=gen) for _ in range(steps))
    snapshots = [flat_parameters(model)]

    def keep(step: int, loss: torch.Tensor) -> None:
        if step % max(1, steps // 40) == 0:
            snapshots.append(flat_parameters(model))

    batches = ((x[idx], y[idx]) for idx in draws)
    train(model, nn.functional.cross_entropy, batches, opt, after_step=keep)
    problem = optiscope.Problem(model, nn.CrossEntropyLoss(), (x, y))
    line = optiscope.interpolate(
        problem, snapshots[0], snapshots[-1], points=21 if lab.small else 41
    )
    traj = optiscope.trajectory_directions(snapshots)
    coords = np.asarray(traj.coords)
    box = (
        float(coords[:, 0].min()) - 0.2 * np.ptp(coords[:, 0]),
        float(coords[:, 0].max()) + 0.2 * np.ptp(coords[:, 0]),
        float(coords[:, 1].min()) - 0.2 * np.ptp(coords[:, 1]),
        float(coords[:, 1].max()) + 0.2 * np.ptp(coords[:, 1]),
    )
    plane = optiscope.surface(problem, traj.directions, span=box, steps=15 if lab.small else 31)
    explained = sum(traj.explained)
    start_loss = line.losses[0]
    holds = line.barrier <= 1e-3 * start_loss and traj.ratio >= 1.2 and explained >= 0.5

    def draw(fig) -> None:
        ax = fig.add_subplot(1, 2, 1)
        ax.plot(line.alphas, line.losses)
        ax.set_xlabel("alpha (0: initial point, 1: trained)")
        ax.set_ylabel("loss on the straight line")
        ax = fig.add_subplot(1, 2, 2)
        gx, gy = np.meshgrid(plane.xs, plane.ys)
        cs = ax.contourf(gx, gy, np.log10(plane.losses), levels=20)
        fig.colorbar(cs, ax=ax, label="log10 loss")
        ax.plot(coords[:, 0], coords[:, 1], "w.-", lw=1)
        ax.plot([coords[0, 0], 0], [coords[0, 1], 0], "r--", lw=1)
        ax.set_xlabel(f"PC1 ({traj.explained[0]:.0%})")
        ax.set_ylabel(f"PC2 ({traj.explained[1]:.0%})")

    lab.figure("paths", draw, width=9.0)
    lab.verdict(
        holds,
        "the barrier on the straight line from the initial to the trained point is <= 1e-3 of "
        "the initial loss, the trajectory (snapshots every 1/40 of the run) is >= 1.2x longer "
        "than the distance it covers, and its first two principal components hold >= 50% of its "
        "variance",
        barrier=line.barrier,
        start_loss=start_loss,
        end_loss=line.losses[-1],
        path_length=traj.path_length,
        distance=traj.distance,
        length_over_distance=traj.ratio,
        explained=traj.explained,
        surface_min=float(np.nanmin(plane.losses)),
    )
