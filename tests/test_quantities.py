"""Step quantities against closed forms: stability thresholds, sharpness, second-order change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optiscope import Problem
from optiscope._quantities import (
    adam_preconditioner,
    sharpness,
    stability_threshold,
    step_curvature,
)

from .conftest import make_case


def _diverges(lam: float, lr: float, momentum: float) -> bool:
    x = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = torch.optim.SGD([x], lr=lr, momentum=momentum)
    for _ in range(2000):
        opt.zero_grad()
        (0.5 * lam * x**2).sum().backward()
        opt.step()
    return bool(x.abs() > 1.0)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_sgd_threshold_is_where_a_quadratic_starts_to_diverge(momentum):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=momentum)
    th = stability_threshold(opt)
    assert th.value == pytest.approx((2 + 2 * momentum) / 0.1)
    assert not th.preconditioned and "exact" in th.note
    assert not _diverges(0.98 * th.value, 0.1, momentum)
    assert _diverges(1.02 * th.value, 0.1, momentum)


def test_adam_threshold_and_preconditioner():
    p = nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = torch.optim.Adam([p], lr=1e-2, betas=(0.9, 0.99), eps=1e-8)
    th = stability_threshold(opt)
    assert th.value == pytest.approx(38 / 1e-2) and th.preconditioned
    assert adam_preconditioner(opt, [p]) is None  # no state before the first step
    grads = []
    for _ in range(3):
        opt.zero_grad()
        (p**3).sum().backward()
        grads.append(p.grad.clone())
        opt.step()
    v = torch.zeros(3)
    for g in grads:
        v = 0.99 * v + 0.01 * g**2
    expected = (v / (1 - 0.99**3)).sqrt() + 1e-8
    torch.testing.assert_close(adam_preconditioner(opt, [p]), expected)
    other = torch.optim.RMSprop([p], lr=0.1)
    assert "approximation" in stability_threshold(other).note


def test_sharpness_plain_and_preconditioned_match_dense():
    case = make_case("mlp", "mean", "one")
    problem = Problem(case.model, case.loss_fn, case.data)
    dense = case.dense_hessian()
    top = float(torch.linalg.eigvalsh(dense)[-1])
    res = sharpness(problem, tol=1e-10, max_steps=200)
    assert res["value"] == pytest.approx(top, rel=1e-8)
    prec = torch.linspace(0.5, 2.0, problem.num_params, dtype=torch.float64)
    dhalf = prec.rsqrt()
    exact = float(torch.linalg.eigvalsh(dhalf[:, None] * dense * dhalf[None, :])[-1])
    res = sharpness(problem, preconditioner=prec, tol=1e-10, max_steps=200)
    assert res["value"] == pytest.approx(exact, rel=1e-8) and res["preconditioned"]


def test_second_order_prediction_is_exact_on_a_quadratic_and_close_for_small_steps():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(30, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(4, 1).double()
    problem = Problem(model, nn.MSELoss(), (x, y))
    g = problem.gradient()
    for lr in (0.01, 0.5, 2.0):
        d = -lr * g
        q = step_curvature(problem, g, d)
        actual = problem.loss(problem.point + d) - problem.loss()
        assert q["predicted_change"] == pytest.approx(actual, rel=1e-9, abs=1e-12)
        # SGD's form: -lr g^T g + lr^2 / 2 g^T H g.
        assert q["predicted_change"] == pytest.approx(-lr * q["gtg"] + lr**2 / 2 * q["gthg"])
    # A non-quadratic loss: the prediction's error shrinks like lr^3.
    case = make_case("mlp", "mean", "one")
    problem = Problem(case.model, case.loss_fn, case.data)
    g = problem.gradient()
    errs = []
    for lr in (0.1, 0.05):
        q = step_curvature(problem, g, -lr * g)
        actual = problem.loss(problem.point - lr * g) - problem.loss()
        errs.append(abs(q["predicted_change"] - actual))
    assert errs[1] < errs[0] / 5
