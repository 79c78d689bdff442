"""2D surfaces: closed forms on quadratics and the saddle, directions, and the fast paths against
plain evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from optiscope import Problem
from optiscope.landscape.line import LandscapeError
from optiscope.landscape.surface import (
    hessian_directions,
    random_directions,
    surface,
    trajectory_directions,
)

from .conftest import Saddle

pytestmark = pytest.mark.usefixtures("one_thread")


def _regression(n=40, reduction="mean"):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 0.1 * torch.randn(
        n, 1, generator=gen, dtype=torch.float64
    )
    model = nn.Linear(3, 1).double()
    return Problem(model, nn.MSELoss(reduction=reduction), (x, y)), x, y


def _mlp_problem(batches=1, n=60, dtype=torch.float64):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Linear(16, 8), nn.Tanh()), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)
    ).to(dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 16, generator=gen, dtype=dtype)
    y = torch.randint(0, 3, (n,), generator=gen)
    data = (x, y) if batches == 1 else list(zip(x.chunk(batches), y.chunk(batches)))
    return Problem(model, nn.CrossEntropyLoss(), data)


def test_a_convex_quadratic_gives_its_bowl():
    problem, x, y = _regression()
    # Least squares with a bias column: the minimum, where the gradient is zero.
    a = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(a, y).solution.reshape(-1)
    center = torch.cat([sol[:3], sol[3:]])
    h = 2 / len(x) * a.T @ a  # H = 2/n A^T A
    evals, evecs = torch.linalg.eigh(h)
    s = surface(problem, (evecs[:, -1], evecs[:, 0]), center=center, span=2.0, steps=9, reuse=False)
    base = problem.loss(center)
    xs, ys = np.meshgrid(s.xs, s.ys)
    bowl = base + 0.5 * (float(evals[-1]) * xs**2 + float(evals[0]) * ys**2)
    np.testing.assert_allclose(s.losses, bowl, rtol=1e-10, atol=1e-12)
    assert s.losses.argmin() == s.losses.size // 2  # the minimum at the center
    assert s.center_loss == pytest.approx(base, rel=1e-12)
    assert s.method == "exact" and s.exact.all() and not s.bounds.any()


def test_the_saddle_slice_shows_the_saddle():
    model = Saddle()
    data = (torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    problem = Problem(model, lambda out, _: out.mean(), data)
    e1, e2 = torch.eye(2, dtype=torch.float64)
    s = surface(problem, (e1, e2), steps=5, span=1.0)
    xs, ys = np.meshgrid(s.xs, s.ys)
    np.testing.assert_allclose(s.losses, xs**2 - ys**2, atol=1e-14)
    row, col = s.losses[2], s.losses[:, 2]
    assert row.argmin() == 2 and col.argmax() == 2  # a minimum along x1, a maximum along x2


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_every_point_equals_the_problems_loss(reduction):
    problem, _, _ = _regression(reduction=reduction)
    dirs = random_directions(problem, seed=3, normalization="none")
    s = surface(problem, dirs, steps=4, span=(-1.0, 0.5, -0.3, 2.0))
    for j, yv in enumerate(s.ys):
        for i, xv in enumerate(s.xs):
            want = problem.loss(problem.point + xv * dirs.d1 + yv * dirs.d2)
            assert s.losses[j, i] == pytest.approx(want, rel=1e-12)


def test_batches_reuse_and_nesting_change_nothing():
    one = _mlp_problem(batches=1)
    many = _mlp_problem(batches=3)
    dirs = random_directions(one, seed=0)
    plain = surface(one, dirs, steps=5, reuse=False)
    fast = surface(one, dirs, steps=5)
    split = surface(many, dirs, steps=5)
    assert fast.first_layer and not plain.first_layer
    np.testing.assert_allclose(fast.losses, plain.losses, rtol=1e-12)
    np.testing.assert_allclose(split.losses, plain.losses, rtol=1e-12)
    ref = [one.loss(one.point + x * dirs.d1 + y * dirs.d2) for y in plain.ys for x in plain.xs]
    np.testing.assert_allclose(plain.losses.reshape(-1), ref, rtol=1e-12)


def test_a_frozen_first_layer_and_a_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(8, 3)
    ).double()
    model[0].weight.requires_grad_(False)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(20, 2, 4, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=gen)
    problem = Problem(model, nn.CrossEntropyLoss(), (x, y))
    assert "0.weight" not in problem.names and "0.bias" in problem.names
    dirs = random_directions(problem, seed=1, one_dim="copy")
    fast, plain = surface(problem, dirs, steps=4), surface(problem, dirs, steps=4, reuse=False)
    assert fast.first_layer
    np.testing.assert_allclose(fast.losses, plain.losses, rtol=1e-12)
    # Convolutions run several points per forward (vmap): each equals the problem's own loss.
    ref = [
        problem.loss(problem.point + a * dirs.d1 + b * dirs.d2) for b in fast.ys for a in fast.xs
    ]
    np.testing.assert_allclose(fast.losses.reshape(-1), ref, rtol=1e-12)
    sampled = surface(problem, dirs, steps=9, tol=0.05, sample=6, coarse=4)
    err = np.abs(sampled.losses - surface(problem, dirs, steps=9).losses) / sampled.losses
    assert (~sampled.exact).any() and err.max() <= 0.05 * 1.5


def test_the_model_is_left_untouched():
    problem = _mlp_problem()
    before = [p.detach().clone() for p in problem.model.parameters()]
    surface(problem, steps=3)
    surface(problem, steps=9, tol=0.05, sample=8, coarse=4)
    assert all(torch.equal(a, b) for a, b in zip(before, problem.model.parameters()))


def test_a_loss_that_is_not_per_sample_takes_the_plain_path():
    problem, x, y = _regression()

    def rmse(out, target):
        return ((out - target) ** 2).mean().sqrt()

    rooted = Problem(problem.model, rmse, (x, y), reduction="mean")
    dirs = random_directions(rooted, seed=0, normalization="none")
    s = surface(rooted, dirs, steps=3, tol=0.01)
    assert s.method.startswith("exact, one pass per point (the loss is not the mean")
    for j, yv in enumerate(s.ys):
        for i, xv in enumerate(s.xs):
            want = rooted.loss(rooted.point + xv * dirs.d1 + yv * dirs.d2)
            assert s.losses[j, i] == pytest.approx(want, rel=1e-12)


def _digits_problem():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data[:600], dtype=torch.float32) / 16
    y = torch.tensor(digits.target[:600])
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return Problem(model, nn.CrossEntropyLoss(), (x, y))


def test_the_sampled_surface_keeps_its_bound():
    problem = _digits_problem()
    dirs = random_directions(problem, seed=0)
    exact = surface(problem, dirs, steps=21, span=0.5)
    fast = surface(problem, dirs, steps=21, span=0.5, tol=0.01, sample=96, coarse=8)
    err = np.abs(fast.losses - exact.losses) / exact.losses
    sampled = ~fast.exact
    assert fast.method == "sampled" and sampled.mean() > 0.5
    assert fast.cost < 0.9  # measured 0.80 of one full pass per point, duplicates counted
    # Within the tolerance, the bound holding to its z = 3 standard errors (a statistical bound:
    # measured 1.2% at the worst of about 300 sampled points).
    assert err.max() <= 0.015
    assert np.mean(err[sampled] <= fast.bounds[sampled] / exact.losses[sampled] + 1e-12) >= 0.95
    assert (fast.relative_bounds() <= 0.01 + 1e-12).all()
    np.testing.assert_allclose(fast.losses[fast.exact], exact.losses[fast.exact], rtol=1e-5)
    again = surface(problem, dirs, steps=21, span=0.5, tol=0.01, sample=96, coarse=8)
    np.testing.assert_array_equal(again.losses, fast.losses)  # deterministic under its seed


def test_filter_normalization_follows_the_paper():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3)
    ).eval()
    problem = Problem(
        model, nn.CrossEntropyLoss(), (torch.randn(5, 1, 4, 4), torch.zeros(5).long())
    )
    dirs = random_directions(problem, seed=4)
    for d in (dirs.d1, dirs.d2):
        parts = problem.split(d)
        for name, w in problem.split(problem.point).items():
            if w.ndim <= 1:  # biases and batch norm: a zero direction (the paper's figures)
                assert not parts[name].any(), name
            else:
                got = parts[name].reshape(len(w), -1).norm(dim=1)
                want = w.reshape(len(w), -1).norm(dim=1)
                torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    assert abs(dirs.to_dict()["cosine"]) < 0.5
    copied = random_directions(problem, seed=4, one_dim="copy")
    assert torch.equal(problem.split(copied.d1)["0.bias"], problem.split(problem.point)["0.bias"])
    layer = random_directions(problem, seed=4, normalization="layer")
    w = problem.split(problem.point)["4.weight"]
    assert float(problem.split(layer.d1)["4.weight"].norm()) == pytest.approx(float(w.norm()))
    assert torch.equal(random_directions(problem, seed=4).d1, dirs.d1)


def test_hessian_directions_are_the_top_eigenvectors():
    problem = _mlp_problem()
    h = problem.dense_hessian()
    evals, evecs = torch.linalg.eigh(h)
    dirs = hessian_directions(problem, tol=1e-8)
    assert dirs.info["eigenvalues"] == pytest.approx(evals[-2:].flip(0).tolist(), rel=1e-6)
    assert abs(float(dirs.d1 @ evecs[:, -1])) == pytest.approx(1.0, abs=1e-6)
    assert abs(float(dirs.d2 @ evecs[:, -2])) == pytest.approx(1.0, abs=1e-6)


def test_the_trajectory_plane_and_its_projection():
    gen = torch.Generator().manual_seed(0)
    n = 50
    e = torch.linalg.qr(torch.randn(n, 2, generator=gen, dtype=torch.float64)).Q
    t = torch.linspace(0, 1, 30, dtype=torch.float64)
    # A spiral into the end point: wide along e1, narrow along e2.
    u, v = 3 * (1 - t) * torch.cos(6 * t), (1 - t) * torch.sin(6 * t)
    points = list(e[:, 0] * u[:, None] + e[:, 1] * v[:, None] + 5.0)
    traj = trajectory_directions(points)
    d = traj.directions
    plane = torch.stack([d.d1, d.d2], 1)
    torch.testing.assert_close(plane @ (plane.T @ e), e, rtol=0, atol=1e-10)  # the same plane
    assert abs(float(d.d1 @ d.d2)) < 1e-12 and float(d.d2.norm()) == pytest.approx(1.0)
    assert max(traj.residuals) < 1e-10  # the points lie in the plane
    assert sum(traj.explained) == pytest.approx(1.0) and traj.explained[0] > traj.explained[1]
    for (a, b), p in zip(traj.coords, points):
        torch.testing.assert_close(points[-1] + a * d.d1 + b * d.d2, p, rtol=0, atol=1e-10)
    steps = torch.stack(points).diff(dim=0).norm(dim=1).sum()
    assert traj.path_length == pytest.approx(float(steps))
    assert traj.distance == pytest.approx(float((points[-1] - points[0]).norm()))
    assert traj.ratio > 1.5  # a spiral is longer than its chord
    assert traj.coords[0][0] > 0  # the sign convention: the start has positive coordinates


def test_bad_input_is_refused():
    problem, _, _ = _regression()
    with pytest.raises(LandscapeError, match=r"steps must be at least 2 per axis, got 1"):
        surface(problem, steps=1)
    with pytest.raises(LandscapeError, match=r"span must be a positive number or"):
        surface(problem, span=(1.0, 0.0, 0.0, 1.0))
    with pytest.raises(LandscapeError, match=r"tol must be positive \(0.01 for 1%\) or None"):
        surface(problem, tol=0.0)
    with pytest.raises(LandscapeError, match=r"sample must be a count of at least 2 samples"):
        surface(problem, tol=0.01, sample=1)
    with pytest.raises(LandscapeError, match=r"directions must be a Directions, a pair"):
        surface(problem, directions="pca")  # type: ignore[arg-type]
    with pytest.raises(LandscapeError, match=r"normalization 'unit' is not one of"):
        random_directions(problem, normalization="unit")
    with pytest.raises(LandscapeError, match=r"a trajectory of 2 points spans no plane"):
        trajectory_directions([torch.zeros(3), torch.ones(3)])
    line = [torch.full((3,), float(k)) for k in range(5)]
    with pytest.raises(LandscapeError, match=r"the trajectory lies on a line"):
        trajectory_directions(line)
    assert math.isfinite(surface(problem, steps=2).center_loss)
