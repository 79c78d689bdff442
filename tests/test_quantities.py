"""Step quantities against closed forms: stability thresholds, sharpness, second-order change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import optiscope
from optiscope import Problem
from optiscope.core.vectors import add64_
from optiscope.quantities.step import (
    adam_preconditioner,
    gradient_noise,
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


def _diverges_with(lam: float, **sgd) -> bool:
    x = nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = torch.optim.SGD([x], **sgd)
    for _ in range(4000):
        opt.zero_grad()
        (0.5 * lam * x**2).sum().backward()
        opt.step()
    return not bool(x.abs() <= 1.0)  # NaN: diverged past overflow


@pytest.mark.parametrize(
    "sgd, expected",
    [
        # Nesterov: the characteristic root crosses -1 at lr lambda = (2 + 2 beta) / (1 + 2 beta),
        # a factor 1 + 2 beta below heavy ball's (2.8 at beta 0.9).
        ({"momentum": 0.9, "nesterov": True}, 3.8 / (2.8 * 0.1)),
        ({"momentum": 0.5, "nesterov": True}, 3.0 / (2.0 * 0.1)),
        # Dampening scales the gradient into the buffer: heavy ball at lr (1 - tau).
        ({"momentum": 0.9, "dampening": 0.5}, 3.8 / (0.5 * 0.1)),
    ],
)
def test_nesterov_and_dampened_thresholds_are_where_a_quadratic_starts_to_diverge(sgd, expected):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, **sgd)
    th = stability_threshold(opt)
    assert th.value == pytest.approx(expected) and "exact" in th.note
    assert not _diverges_with(0.98 * th.value, lr=0.1, **sgd)
    assert _diverges_with(1.02 * th.value, lr=0.1, **sgd)


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


@pytest.mark.parametrize("chunk", [3, 64])
def test_gradient_noise_matches_the_per_sample_matrix(chunk):
    case = make_case("cnn", "mean", "one")
    problem = Problem(case.model, case.loss_fn, case.data)
    x, y = case.data
    q = gradient_noise(problem, x, y, chunk=chunk)
    rows = problem.per_sample_gradients()
    mean = rows.mean(0)
    cov_trace = float(((rows - mean) ** 2).sum() / (len(rows) - 1))
    assert q["batch_size"] == 11
    assert q["trace_cov"] == pytest.approx(cov_trace, rel=1e-10)
    assert q["grad_norm_sq"] == pytest.approx(float(mean @ mean), rel=1e-10)
    g2 = float(mean @ mean) - cov_trace / 11
    assert q["grad_norm_sq_unbiased"] == pytest.approx(g2, rel=1e-10)
    assert q["snr"] == pytest.approx(float(mean @ mean) / (cov_trace / 11), rel=1e-10)
    assert q["b_simple"] == (cov_trace / g2 if g2 > 0 else float("inf"))
    # The mean of the per-sample gradients is the batch gradient.
    torch.testing.assert_close(mean, problem.gradient(), rtol=1e-10, atol=1e-12)


def test_gradient_noise_estimates_the_critical_batch_size_in_expectation():
    # Linear regression: over 200 disjoint batches of 32 the means of tr(Sigma) and of the
    # unbiased |G|^2 are within 4 standard errors of their population values.
    gen = torch.Generator().manual_seed(0)
    w_true = torch.randn(5, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_true + 0.3).T)
    big_x = torch.randn(20000, 5, generator=gen, dtype=torch.float64)
    big_y = big_x @ w_true + 0.5 * torch.randn(20000, 1, generator=gen, dtype=torch.float64)
    pop = Problem(model, nn.MSELoss(), (big_x, big_y))
    rows = pop.per_sample_gradients()
    true_g2 = float(rows.mean(0) @ rows.mean(0))
    true_tr = float(((rows - rows.mean(0)) ** 2).sum() / (len(rows) - 1))
    trs, g2s = [], []
    for b in range(200):
        sl = slice(32 * b, 32 * b + 32)
        q = gradient_noise(pop, big_x[sl], big_y[sl])
        trs.append(q["trace_cov"])
        g2s.append(q["grad_norm_sq_unbiased"])
    for est, true in ((torch.tensor(trs), true_tr), (torch.tensor(g2s), true_g2)):
        assert abs(float(est.mean()) - true) < 4 * float(est.std()) / 200**0.5
    with pytest.raises(ValueError, match="at least 2 samples in the batch, got 1"):
        gradient_noise(pop, big_x[:1], big_y[:1])


def test_noise_of_one_sample_batches_from_consecutive_steps_in_expectation():
    # Linear regression trained at lr 0 on batches of one sample (the point does not move):
    # two consecutive steps' gradients are independent draws, so the Monitor's estimate from
    # each pair is unbiased for tr(Sigma) and |G|^2; over 400 pairs the means are within 4
    # standard errors of the population values.
    gen = torch.Generator().manual_seed(0)
    w_true = torch.randn(5, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_true + 0.3).T)
    x = torch.randn(4000, 5, generator=gen, dtype=torch.float64)
    y = x @ w_true + 0.5 * torch.randn(4000, 1, generator=gen, dtype=torch.float64)
    rows = Problem(model, nn.MSELoss(), (x, y)).per_sample_gradients()
    true_g2 = float(rows.mean(0) @ rows.mean(0))
    true_tr = float(((rows - rows.mean(0)) ** 2).sum() / (len(rows) - 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with optiscope.Monitor(model, opt, loss_fn=nn.MSELoss(), every={"noise": 2}) as mon:
        optiscope.train(
            model,
            nn.MSELoss(),
            [(x[i : i + 1], y[i : i + 1]) for i in range(800)],
            opt,
            monitor=mon,
        )
    steps = [r for r in mon.history if r.get("type") == "step" and "trace_cov" in r["values"]]
    assert len(steps) == 400 and all(s["step"] % 2 == 1 for s in steps)
    assert {s["values"]["noise_method"] for s in steps} == {"consecutive-steps"}
    trs = torch.tensor([s["values"]["trace_cov"] for s in steps])
    g2s = torch.tensor([s["values"]["grad_norm_sq_unbiased"] for s in steps])
    # tr(Sigma) is clipped at 0 per pair: the clipped mean is biased up by at most a few percent.
    assert abs(float(trs.mean()) - true_tr) < 4 * float(trs.std()) / 400**0.5 + 0.05 * true_tr
    assert abs(float(g2s.mean()) - true_g2) < 4 * float(g2s.std()) / 400**0.5 + 0.05 * true_tr


def test_add64_is_the_float64_sum_chunk_by_chunk():
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(1000, generator=gen)  # float32, across 7 chunks of 150
    total = torch.randn(1000, generator=gen, dtype=torch.float64)
    expected = total + v.double()
    assert add64_(total, v, chunk=150) is total
    assert torch.equal(total, expected)
