"""Interpolation between two points: exact barriers on closed forms, and with symmetry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optiscope import Problem
from optiscope.landscape.line import LandscapeError, interpolate
from optiscope.landscape.symmetry import align_units, permute_units, unit_counts

from .conftest import Saddle


def _saddle():
    model = Saddle()
    data = (torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    return Problem(model, lambda out, _: out.mean(), data)


def test_a_convex_problem_has_no_barrier_and_a_convex_path():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(40, 1, generator=gen, dtype=torch.float64)
    problem = Problem(nn.Linear(3, 1).double(), nn.MSELoss(), (x, y))
    a = torch.randn(problem.num_params, generator=gen, dtype=torch.float64)
    b = torch.randn(problem.num_params, generator=gen, dtype=torch.float64)
    res = interpolate(problem, a, b, points=11)
    assert res.barrier == 0.0
    assert res.distance == pytest.approx(float((b - a).norm()))
    second = [res.losses[i - 1] - 2 * res.losses[i] + res.losses[i + 1] for i in range(1, 10)]
    assert min(second) > 0  # a quadratic with a positive definite Hessian along the line


def test_the_saddle_has_the_barrier_of_its_closed_form():
    problem = _saddle()
    # Along x1 = 0 from x2 = -1 to 1: f = -x2^2, ends at -1, top 0 at the middle: barrier 1.
    res = interpolate(
        problem, torch.tensor([0.0, -1.0]).double(), torch.tensor([0.0, 1.0]).double()
    )
    assert res.barrier == pytest.approx(1.0, abs=1e-12)
    assert res.losses[10] == pytest.approx(0.0, abs=1e-12)
    # Along x2 = 0 from x1 = -1 to 1: f = x1^2 falls to 0 in between: no barrier.
    res = interpolate(
        problem, torch.tensor([-1.0, 0.0]).double(), torch.tensor([1.0, 0.0]).double()
    )
    assert res.barrier == 0.0 and min(res.losses) == pytest.approx(0.0, abs=1e-12)


def test_a_network_and_its_permutation_are_joined_without_barrier_only_after_alignment():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=gen, dtype=torch.float64)
    y = model(x).argmax(1).detach()  # the network fits its own labels: a low loss
    problem = Problem(model, nn.CrossEntropyLoss(), (x, y))
    perms = [torch.randperm(n, generator=gen) for n in unit_counts(model)]
    twin = permute_units(model, perms)
    before = interpolate(problem, model, twin)
    assert before.losses[0] == pytest.approx(before.losses[-1], rel=1e-12)
    assert before.barrier > 0.01  # the midpoint averages unrelated units
    aligned = align_units(model, twin).model
    after = interpolate(problem, model, aligned)
    assert after.distance == 0.0 and after.barrier == 0.0


def test_bad_points_are_refused():
    problem = _saddle()
    with pytest.raises(
        LandscapeError, match=r"expected a flat vector of 2 parameters or a model, got \(3,\)"
    ):
        interpolate(problem, torch.zeros(3), torch.zeros(2))
    with pytest.raises(LandscapeError, match=r"points must be at least 2"):
        interpolate(problem, torch.zeros(2), torch.zeros(2), points=1)
    with pytest.raises(LandscapeError, match=r"b is a model without the parameters \['x'\]"):
        interpolate(problem, torch.zeros(2), nn.Linear(2, 2))
