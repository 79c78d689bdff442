"""Surfaces under torch.distributed, run by tests/test_distributed.py as

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_surface.py OUT

Each rank writes ``OUT/rank<r>.json``: how many grid points it evaluated itself and the gathered
surfaces (exact and sampled).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from optiscope.core import shard as _shard
from optiscope.landscape.surface import _Grid, random_directions, surface
from optiscope.problem.problem import Problem

EVALUATED = {"points": 0}


def problem() -> Problem:
    """A small classifier on a fixed random data set: the same on every rank and in the test."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(300, 6, generator=gen)
    y = (x[:, :4] + 0.5 * torch.randn(300, 4, generator=gen)).argmax(1)
    return Problem(model, nn.CrossEntropyLoss(), (x, y))


def surfaces(p: Problem) -> dict[str, list]:
    dirs = random_directions(p, seed=0)
    exact = surface(p, dirs, steps=9)
    sampled = surface(p, dirs, steps=9, tol=0.02, sample=40, coarse=4)
    return {"exact": exact.losses.tolist(), "sampled": sampled.losses.tolist()}


def _counting() -> None:
    losses, means = _Grid.losses, _Grid.mean_losses

    def counted_losses(self, points, rows=None):
        EVALUATED["points"] += len(points)
        return losses(self, points, rows)

    def counted_means(self, points):
        EVALUATED["points"] += len(points)
        return means(self, points)

    _Grid.losses = counted_losses  # type: ignore[method-assign]
    _Grid.mean_losses = counted_means  # type: ignore[method-assign]


if __name__ == "__main__":
    torch.set_num_threads(1)
    assert _shard.init_from_env(), "expected to run under torchrun with several ranks"
    _counting()
    result = surfaces(problem())
    rank = _shard.world()[0]
    out = Path(sys.argv[1]) / f"rank{rank}.json"
    out.write_text(json.dumps({"evaluated": EVALUATED["points"], **result}))
    _shard.finish()
