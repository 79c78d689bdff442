"""Curvature of Problems with closed-form answers: quadratics, the saddle x1^2 - x2^2."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import optiscope
from optiscope import Problem

from .conftest import make_case


class Point(nn.Module):
    """A 'model' whose output is its parameter vector: the loss is then any f(x)."""

    def __init__(self, x) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.as_tensor(x, dtype=torch.float64))

    def forward(self, inputs):
        return self.x


DUMMY = (torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))


def saddle(x, _):
    return x[0] ** 2 - x[1] ** 2


def test_saddle_is_classified_as_a_saddle():
    cp = optiscope.critical_point(Problem(Point([0.0, 0.0]), saddle, DUMMY))
    assert cp.kind == "saddle"
    assert cp.curvature == "indefinite"
    assert cp.lambda_max == pytest.approx(2.0, abs=1e-12)
    assert cp.lambda_min == pytest.approx(-2.0, abs=1e-12)
    assert cp.index == pytest.approx(0.5, abs=1e-12)
    assert cp.gradient_norm == 0.0


def test_away_from_the_saddle_it_is_not_a_critical_point():
    cp = optiscope.critical_point(Problem(Point([1.0, 0.0]), saddle, DUMMY))
    assert cp.kind == "not a critical point"
    assert cp.gradient_norm == pytest.approx(2.0)
    assert "gradient norm 2 > 0.001" in cp.reason
    assert cp.curvature == "indefinite"


@pytest.mark.parametrize(
    ("diag", "kind", "curvature"),
    [
        ([1.0, 2.0, 3.0], "minimum", "positive definite"),
        ([-1.0, -2.0, -0.5], "maximum", "negative definite"),
        ([1.0, 0.0, 3.0], "minimum", "positive semi-definite"),
        ([1.0, -2.0, 3.0], "saddle", "indefinite"),
    ],
)
def test_quadratics_with_closed_form_eigenvalues(diag, kind, curvature):
    d = torch.tensor(diag, dtype=torch.float64)

    def quad(x, _):
        return 0.5 * (d * x * x).sum()

    problem = Problem(Point([0.0, 0.0, 0.0]), quad, DUMMY)
    cp = optiscope.critical_point(problem)
    assert (cp.kind, cp.curvature) == (kind, curvature)
    assert cp.lambda_max == pytest.approx(float(d.max()))
    assert cp.lambda_min == pytest.approx(float(d.min()))
    assert cp.index == pytest.approx(float((d < 0).double().mean()))
    tr = optiscope.hessian_trace(problem, method="exact")
    assert tr.value == pytest.approx(float(d.sum()))


def test_linear_regression_hessian_is_two_over_n_xtx():
    # Closed form: F = mean (Xw + b - y)^2 has H = 2/n [X 1]^T [X 1].
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(40, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(5, 1).double()
    problem = Problem(model, nn.MSELoss(), (x, y))
    xa = torch.cat([x, torch.ones(40, 1, dtype=torch.float64)], 1)
    exact = torch.linalg.eigvalsh(2 / 40 * xa.T @ xa)
    res = optiscope.hessian_eigenvalues(problem, k=2, which="both", tol=1e-12)
    torch.testing.assert_close(res.largest, exact.flip(0)[:2], rtol=1e-10, atol=0)
    torch.testing.assert_close(res.smallest, exact[:2], rtol=1e-10, atol=0)
    cp = optiscope.critical_point(problem)
    assert cp.curvature == "positive definite"


def test_trace_estimates_on_a_problem_agree_with_the_dense_trace():
    case = make_case("rnn", "mean", "batches")
    problem = Problem(case.model, case.loss_fn, case.data)
    exact = float(case.dense_hessian().trace())
    assert optiscope.hessian_trace(problem, method="exact").value == pytest.approx(exact)
    # 30 products on ~90 parameters: a few standard errors of slack.
    est = optiscope.hessian_trace(problem, 30, method="hutch++", seed=1)
    assert abs(est.value - exact) < 5 * est.std_error + 1e-9
    assert est.hvps == 30
    assert problem.hvp_count >= 30


def test_spectral_density_of_a_problem_integrates_to_one():
    case = make_case("cnn", "mean", "one")
    problem = Problem(case.model, case.loss_fn, case.data)
    exact = torch.linalg.eigvalsh(case.dense_hessian()).numpy()
    dens = optiscope.spectral_density(problem, steps=problem.num_params, probes=2, seed=0)
    assert np.trapezoid(dens.density, dens.grid) == pytest.approx(1.0, abs=1e-3)
    # A full Lanczos run has the exact eigenvalues as its nodes.
    nodes = np.sort(dens.nodes[0])
    assert nodes[0] == pytest.approx(exact[0], abs=1e-8)
    assert nodes[-1] == pytest.approx(exact[-1], abs=1e-8)
    assert dens.fraction_below(0.0) == pytest.approx(float((exact < 0).mean()), abs=0.2)


def test_the_critical_point_gives_the_density_its_index_came_from():
    # The runner's spectral density is this quadrature on a coarser grid: it must be the same
    # density as a run of its own (same probe, same steps), for no product of its own.
    case = make_case("cnn", "mean", "one")
    problem = Problem(case.model, case.loss_fn, case.data)
    cp = optiscope.critical_point(problem, index_steps=20)
    assert cp.density is not None and cp.density.hvps == 20
    before = problem.hvp_count
    coarse = cp.density.on_grid(200)
    assert problem.hvp_count == before
    alone = optiscope.spectral_density(problem, steps=20, seed=0, grid_size=200)
    np.testing.assert_allclose(coarse.grid, alone.grid, rtol=0, atol=1e-12)
    np.testing.assert_allclose(coarse.density, alone.density, rtol=1e-10, atol=1e-12)
    assert coarse.sigma == alone.sigma and coarse.hvps == 20
    assert cp.index == pytest.approx(coarse.fraction_below(-cp.evidence["zero_threshold"]))
    with pytest.raises(ValueError, match="grid_size must be at least 2, got 1"):
        cp.density.on_grid(1)


def test_ggn_eigenvalues_through_the_matrix_argument():
    case = make_case("mlp", "mean", "one", "mse")
    problem = Problem(case.model, case.loss_fn, case.data)
    res = optiscope.hessian_eigenvalues(problem, k=1, which="smallest", matrix="ggn", tol=1e-10)
    assert float(res.values[0]) > -1e-10
    with pytest.raises(ValueError, match="matrix must be 'hessian' or 'ggn', got 'fisher'"):
        optiscope.hessian_eigenvalues(problem, matrix="fisher")


def test_a_trained_network_is_found_at_a_minimum():
    # An over-parametrized MLP fits 6 points exactly (L-BFGS in float64): the gradient vanishes,
    # the Hessian is positive semi-definite with many flat directions.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    x = torch.randn(6, 2, dtype=torch.float64)
    y = torch.randn(6, 1, dtype=torch.float64)
    opt = torch.optim.LBFGS(
        model.parameters(),
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=0,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    problem = Problem(model, nn.MSELoss(), (x, y))
    cp = optiscope.critical_point(problem, grad_tol=1e-6)
    assert cp.loss < 1e-10
    assert cp.kind == "minimum"
    assert cp.curvature == "positive semi-definite"
    exact = torch.linalg.eigvalsh(problem.dense_hessian())
    assert cp.lambda_max == pytest.approx(float(exact[-1]), rel=1e-4)
    assert cp.index == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_problem_matches_cpu():
    case = make_case("rnn", "mean", "batches")
    cpu = Problem(case.model, case.loss_fn, case.data)
    v = torch.linspace(-1, 1, cpu.num_params, dtype=torch.float64)
    expected = cpu.hvp(v)
    gpu = Problem(case.model.cuda(), case.loss_fn, case.data)
    assert gpu.device.type == "cuda"
    got = gpu.hvp(v.cuda())
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-9, atol=1e-12)
    res = optiscope.hessian_eigenvalues(gpu, k=2, which="both", tol=1e-10)
    ref = optiscope.hessian_eigenvalues(cpu, k=2, which="both", tol=1e-10)
    torch.testing.assert_close(res.values, ref.values, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(("kind", "split"), [("mlp", "batches"), ("cnn", "one")])
def test_exact_diagonal_through_a_problem_matches_the_dense_hessian(kind, split):
    case = make_case(kind, "mean", split)
    problem = Problem(case.model, case.loss_fn, case.data)
    dense = case.dense_hessian()
    torch.testing.assert_close(
        optiscope.hessian_diagonal(problem), dense.diagonal(), rtol=1e-10, atol=1e-12
    )
    tr = optiscope.hessian_trace(problem)
    # Tanh after a convolution makes the exact pass costly, so "auto" estimates instead: here the
    # budget covers the dimension and the estimate is exact too.
    assert tr.method == ("exact-diagonal" if kind == "mlp" else "exact")
    assert tr.value == pytest.approx(float(dense.trace()), rel=1e-10)
    # At another point and on a parameter subset, with the model left as it was.
    before = [p.detach().clone() for p in case.model.parameters()]
    moved = problem.at(problem.point * 0.7)
    sub = Problem(case.model, case.loss_fn, case.data, params=lambda n, p: n.endswith("bias"))
    dense_moved = torch.func.hessian(case.objective)(case.theta() * 0.7)
    torch.testing.assert_close(
        optiscope.hessian_diagonal(moved), dense_moved.diagonal(), rtol=1e-10, atol=1e-12
    )
    mask = torch.cat(
        [torch.full((p.numel(),), n.endswith("bias")) for n, p in case.model.named_parameters()]
    )
    torch.testing.assert_close(
        optiscope.hessian_diagonal(sub), dense.diagonal()[mask], rtol=1e-10, atol=1e-12
    )
    for p, b in zip(case.model.parameters(), before):
        assert torch.equal(p, b)


def test_unsupported_models_fall_back_to_an_estimate():
    case = make_case("rnn", "mean", "one")
    problem = Problem(case.model, case.loss_fn, case.data)
    with pytest.raises(optiscope.ProblemError, match=r"\(TinyRNN\) is not supported"):
        optiscope.hessian_diagonal(problem)
    tr = optiscope.hessian_trace(problem, 30)
    assert tr.method == "krylov" and tr.hvps == 30


def test_gradient_start_is_used_when_free_and_skipped_when_zero():
    # At the saddle's origin the gradient vanishes: a random start is used instead.
    at_origin = Problem(Point([0.0, 0.0]), saddle, DUMMY)
    res = optiscope.hessian_eigenvalues(at_origin, k=1, tol=1e-12)
    assert float(res.values[0]) == pytest.approx(2.0, abs=1e-12)
    case = make_case("mlp", "mean", "one")
    problem = Problem(case.model, case.loss_fn, case.data)
    exact = torch.linalg.eigvalsh(case.dense_hessian())
    for seed in range(3):
        res = optiscope.hessian_eigenvalues(problem, k=2, tol=1e-10, seed=seed)
        torch.testing.assert_close(res.values, exact.flip(0)[:2], rtol=1e-8, atol=0)
    # Without a cached graph the start is random (no extra gradient pass is spent).
    uncached = Problem(case.model, case.loss_fn, case.data, cache_graph=False)
    assert uncached.cached_gradient() is None
    res = optiscope.hessian_eigenvalues(uncached, k=2, tol=1e-10)
    torch.testing.assert_close(res.values, exact.flip(0)[:2], rtol=1e-8, atol=0)
    assert uncached.gradient_count == 0


def test_float32_eigenvalue_errors_include_the_products_round_off():
    # 20000 samples through a float32 tanh net: the Lanczos bound reaches 1e-15 while the
    # float32 products themselves are only good to ~1e-8 relative. The stated error must cover
    # the distance to the float64 eigenvalue (the exact Hessian up to float64 round-off).
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10)
    )
    x, y = torch.randn(20000, 16) * 10, torch.randint(0, 10, (20000,))
    loss = nn.CrossEntropyLoss()
    exact = optiscope.hessian_eigenvalues(
        Problem(copy.deepcopy(model).double(), loss, (x.double(), y)), k=2, tol=1e-12
    ).values
    problem = Problem(model, loss, (x, y))
    res = optiscope.hessian_eigenvalues(problem, k=2, tol=1e-10, max_steps=200)
    assert res.float64_checked
    assert ((res.values - exact).abs() <= res.errors).all()
    # The float64 Rayleigh quotient of the float32 vector is accurate to its residual squared
    # over the gap: far below float32's own round-off.
    assert float((res.values - exact).abs().max()) < 1e-11
    # Unchecked, the bound holds for the float32 products only (and falls short here).
    raw = optiscope.hessian_eigenvalues(problem, k=2, tol=1e-10, max_steps=200, check_float64=False)
    assert not raw.float64_checked and ((raw.values - exact).abs() > raw.errors).any()
    # The model and its parameters are left as they were (float32, unchanged).
    assert next(model.parameters()).dtype == torch.float32
    # Within a tolerance float32 can meet, the checked pairs converge.
    assert optiscope.hessian_eigenvalues(problem, k=2, tol=1e-5).converged.all()
