"""Problem against exact dense references on tiny float64 problems.

Tolerances: products and gradients are exact up to float64 rounding of a few hundred
operations, so 1e-10 (relative to the matrix scale) leaves ample room.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import optiscope
from optiscope import NonFiniteError, Problem, ProblemError, TrainingModeError

from .conftest import FusedAttention, make_case


def test_loss_gradient_hvp_match_dense(case):
    problem = Problem(case.model, case.loss_fn, case.data)
    theta = case.theta()
    dense = case.dense_hessian()
    assert problem.num_params == theta.numel()
    assert problem.loss() == pytest.approx(float(case.objective(theta)), rel=1e-12)
    grad = torch.func.grad(case.objective)(theta)
    torch.testing.assert_close(problem.gradient(), grad, rtol=1e-10, atol=1e-12)
    gen = torch.Generator().manual_seed(3)
    scale = float(dense.abs().max())
    for _ in range(3):
        v = torch.randn(theta.numel(), generator=gen, dtype=torch.float64)
        hv = problem.hvp(v)
        assert torch.allclose(hv, dense @ v, rtol=0, atol=1e-10 * scale * v.abs().sum())
    assert problem.hvp_count == 3


def test_graph_cache_off_gives_same_products(case):
    cached = Problem(case.model, case.loss_fn, case.data, cache_graph=True)
    fresh = Problem(case.model, case.loss_fn, case.data, cache_graph=False)
    v = torch.linspace(-1, 1, cached.num_params, dtype=torch.float64)
    torch.testing.assert_close(cached.hvp(v), fresh.hvp(v), rtol=1e-10, atol=1e-12)


def _relerr(found: torch.Tensor, exact: torch.Tensor, scale: float) -> torch.Tensor:
    # Relative to each eigenvalue, but not below 1e-3 of the spectral scale (near-zero ones).
    return (found - exact).abs() / torch.clamp(exact.abs(), min=1e-3 * scale)


def test_extreme_eigenvalues_match_eigvalsh(case):
    problem = Problem(case.model, case.loss_fn, case.data)
    exact = torch.linalg.eigvalsh(case.dense_hessian())
    scale = float(exact.abs().max())
    k = 5
    res = optiscope.hessian_eigenvalues(problem, k=k, which="both", tol=1e-10)
    assert res.all_converged
    top, bottom = res.largest, res.smallest
    assert float(_relerr(top, exact.flip(0)[:k], scale).max()) < 1e-6
    assert float(_relerr(bottom, exact[:k], scale).max()) < 1e-6
    assert res.hvps <= problem.num_params
    # Each vector is an eigenvector: its residual is what the result says.
    dense = case.dense_hessian()
    for i in range(2 * k):
        v = res.vectors[:, i]
        r = torch.linalg.vector_norm(dense @ v - res.values[i] * v)
        assert float(r) == pytest.approx(float(res.residuals[i]), abs=1e-8 * scale)


def test_ggn_matches_dense_gauss_newton():
    case = make_case("mlp", "mean", "batches", "mse")
    problem = Problem(case.model, case.loss_fn, case.data)
    theta = case.theta()
    x = torch.cat([b[0] for b in case.batches])
    y = torch.cat([b[1] for b in case.batches])
    names = problem.names

    def outputs(t):
        return torch.func.functional_call(case.model, problem.split(t), (x,))

    jac = torch.func.jacrev(outputs)(theta).reshape(-1, theta.numel())
    out = outputs(theta).detach()
    h_out = torch.func.hessian(lambda o: case.loss_fn(o, y))(out).reshape(out.numel(), -1)
    ggn = jac.T @ h_out @ jac
    v = torch.randn(theta.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(problem.ggn_vp(v), ggn @ v, rtol=1e-10, atol=1e-12)
    assert len(names) == 6
    vals = torch.linalg.eigvalsh(ggn)
    assert float(vals.min()) > -1e-12 * float(vals.max())


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_per_sample_gradients_add_up_to_the_gradient(reduction):
    case = make_case("cnn", reduction, "batches")
    problem = Problem(case.model, case.loss_fn, case.data)
    rows = problem.per_sample_gradients()
    assert rows.shape == (11, problem.num_params)
    total = rows.sum(0) / (11 if reduction == "mean" else 1)
    torch.testing.assert_close(total, problem.gradient(), rtol=1e-10, atol=1e-12)
    # The fallback loop gives the same rows.
    x, y = case.batches[0]
    torch.testing.assert_close(problem._per_sample_loop(x, y), rows[:4], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "select",
    [
        ["2.weight", "2.bias"],
        "2",
        "module",
        "predicate",
    ],
)
def test_parameter_subset_is_a_block_of_the_full_hessian(select):
    case = make_case("mlp", "mean", "one")
    model = case.model
    if select == "module":
        select = model[2]
    elif select == "predicate":
        select = lambda name, p: name.startswith("2.")  # noqa: E731
    full = case.dense_hessian()
    names = [n for n, _ in model.named_parameters()]
    sizes = [p.numel() for p in model.parameters()]
    start = sum(sizes[: names.index("2.weight")])
    stop = start + sizes[names.index("2.weight")] + sizes[names.index("2.bias")]
    problem = Problem(model, case.loss_fn, case.data, params=select)
    assert problem.names == ["2.weight", "2.bias"]
    block = full[start:stop, start:stop]
    torch.testing.assert_close(problem.dense_hessian(), block, rtol=1e-10, atol=1e-12)
    v = torch.ones(stop - start, dtype=torch.float64)
    torch.testing.assert_close(problem.hvp(v), block @ v, rtol=1e-10, atol=1e-12)


def test_model_is_left_exactly_as_it_was():
    case = make_case("mlp", "mean", "batches")
    before = {n: p.detach().clone() for n, p in case.model.named_parameters()}
    problem = Problem(case.model, case.loss_fn, case.data)
    problem.hvp(torch.ones(problem.num_params, dtype=torch.float64))
    problem.gradient()
    optiscope.hessian_eigenvalues(problem, k=2, which="both")
    for n, p in case.model.named_parameters():
        assert torch.equal(p, before[n])
        assert p.grad is None


def test_the_point_is_a_snapshot_and_at_moves_it():
    case = make_case("mlp", "mean", "one")
    problem = Problem(case.model, case.loss_fn, case.data)
    loss = problem.loss()
    with torch.no_grad():
        for p in case.model.parameters():
            p.mul_(2)
    assert problem.loss() == loss
    moved = problem.at(problem.point * 0.5)
    assert moved.loss() != pytest.approx(loss)
    assert moved.hvp_count == 0


def test_batches_with_a_smaller_last_one_are_weighted_by_size():
    case = make_case("mlp", "mean", "batches")
    problem = Problem(case.model, case.loss_fn, case.data)
    weights = [w for w, _, _ in problem.batches()]
    assert weights == pytest.approx([4 / 11, 4 / 11, 3 / 11])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*[torch.cat(t) for t in zip(*case.batches)]),
        batch_size=4,
    )
    assert Problem(case.model, case.loss_fn, loader).loss() == pytest.approx(problem.loss())


# -- guards: each message says what was expected, what came, and what to do ----------------------


def _mlp():
    return make_case("mlp", "mean", "one")


def test_non_scalar_loss_is_refused():
    case = _mlp()
    with pytest.raises(ProblemError, match=r"reduction is 'none': expected 'mean' or 'sum'"):
        Problem(case.model, nn.CrossEntropyLoss(reduction="none"), case.data)

    def per_sample(out, y):
        return (out - 0).pow(2).sum(1)

    with pytest.raises(ProblemError, match=r"loss_fn must return a scalar tensor, got a tensor"):
        Problem(case.model, per_sample, case.data)


def test_model_without_trainable_parameters_is_refused():
    case = _mlp()
    for p in case.model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ProblemError, match=r"no trainable parameters: all 6 parameters have "):
        Problem(case.model, case.loss_fn, case.data)
    with pytest.raises(ProblemError, match=r"has no parameters"):
        Problem(nn.ReLU(), case.loss_fn, case.data)


def test_empty_data_is_refused():
    case = _mlp()
    with pytest.raises(ProblemError, match=r"data is empty"):
        Problem(case.model, case.loss_fn, [])
    x, y = case.data
    with pytest.raises(ProblemError, match=r"data is empty"):
        Problem(case.model, case.loss_fn, (x[:0], y[:0]))


def test_one_shot_iterator_is_refused():
    case = _mlp()
    with pytest.raises(
        ProblemError, match=r"iterator \(generator\) that can be traversed only once"
    ):
        Problem(case.model, case.loss_fn, (b for b in case.batches))


def test_inputs_that_do_not_fit_the_model_are_refused():
    case = _mlp()
    x, y = case.data
    with pytest.raises(ProblemError, match=r"could not take the first batch: inputs are a tensor "):
        Problem(case.model, case.loss_fn, (torch.randn(11, 7, dtype=torch.float64), y))
    with pytest.raises(ProblemError, match=r"each batch must be a pair \(inputs, targets\)"):
        Problem(case.model, case.loss_fn, [x, y, x])


def test_nan_loss_is_refused():
    case = _mlp()
    x, y = case.data
    x = x.clone()
    x[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"the loss is NaN on batch 0"):
        Problem(case.model, case.loss_fn, (x, y))
    # Construction looks at a few samples only; a NaN further on is caught at first use.
    x = case.data[0].clone()
    x[9, 0] = float("nan")
    late = Problem(case.model, case.loss_fn, (x, y))
    for use in (late.loss, late.gradient, lambda: late.hvp(torch.ones(83, dtype=torch.float64))):
        with pytest.raises(NonFiniteError, match=r"the loss is NaN on batch 0 at this point"):
            use()
    with pytest.raises(NonFiniteError, match=r"the loss is infinite"):
        Problem(case.model, lambda o, t: o.sum() * float("inf"), (case.data[0], y))


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (nn.Dropout(0.5), r"training mode and has dropout \('1', p=0.5\).*model.eval\(\)"),
        (nn.BatchNorm1d(6), r"training mode and has batch norm \('1'\).*model.eval\(\)"),
    ],
)
def test_training_mode_randomness_is_refused(layer, message):
    model = nn.Sequential(nn.Linear(4, 6), layer, nn.Linear(6, 3)).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    with pytest.raises(TrainingModeError, match=message):
        Problem(model, nn.CrossEntropyLoss(), (x, y))
    model.eval()
    assert Problem(model, nn.CrossEntropyLoss(), (x, y)).num_params == 4 * 6 + 6 + 6 * 3 + 3 + (
        12 if isinstance(layer, nn.BatchNorm1d) else 0
    )


def test_bad_parameter_selection_is_refused():
    case = _mlp()
    with pytest.raises(ProblemError, match=r"unknown parameter or module name 'fc9'"):
        Problem(case.model, case.loss_fn, case.data, params="fc9")
    with pytest.raises(ProblemError, match=r"selected no trainable parameter"):
        Problem(case.model, case.loss_fn, case.data, params=lambda n, p: False)
    with pytest.raises(ProblemError, match=r"not part of the model"):
        Problem(case.model, case.loss_fn, case.data, params=nn.Linear(2, 2))


def test_wrong_vector_length_is_refused():
    case = _mlp()
    problem = Problem(case.model, case.loss_fn, case.data)
    with pytest.raises(ProblemError, match=r"expected a vector of 83 entries"):
        problem.hvp(torch.ones(3, dtype=torch.float64))


def _smooth_pair():
    torch.manual_seed(0)
    fused = FusedAttention(True).double()
    plain = FusedAttention(False).double()
    plain.load_state_dict(fused.state_dict())
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(16, 5, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=gen)
    return fused, plain, (x, y)


def test_finite_difference_hvp_matches_dense_on_a_smooth_model():
    # Central differences: truncation O(h^2) and round-off O(eps/h) at h = eps^(1/3), so about
    # eps^(2/3) ~ 4e-11 relative in float64; 1e-8 leaves room for the constants.
    _, plain, data = _smooth_pair()
    exact = Problem(plain, nn.CrossEntropyLoss(), data)
    fd = Problem(plain, nn.CrossEntropyLoss(), data, hvp="finite-difference")
    assert fd.cache_graph is False and fd.cached_gradient() is None
    dense = exact.dense_hessian()
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(exact.num_params, generator=gen, dtype=torch.float64)
        ref = dense @ v
        err = float((fd.hvp(v) - ref).norm() / ref.norm())
        assert err < 1e-8
    assert fd.hvp_count == 3 and fd.gradient_count == 0
    assert float(fd.hvp(torch.zeros(fd.num_params, dtype=torch.float64)).abs().max()) == 0.0


def test_finite_difference_error_in_float32_is_within_the_stated_bound():
    # The docstring's statement for smooth float32 models: about 1e-4 to 1e-3 relative.
    _, plain, (x, y) = _smooth_pair()
    model = plain.float()
    exact = Problem(model, nn.CrossEntropyLoss(), (x.float(), y))
    fd = Problem(model, nn.CrossEntropyLoss(), (x.float(), y), hvp="finite-difference")
    gen = torch.Generator().manual_seed(6)
    errs = []
    for _ in range(5):
        v = torch.randn(exact.num_params, generator=gen)
        ref = exact.hvp(v)
        errs.append(float((fd.hvp(v) - ref).norm() / ref.norm()))
    assert max(errs) < 1e-3


def test_auto_falls_back_to_finite_differences_where_double_backward_cannot_run():
    fused, plain, data = _smooth_pair()
    with pytest.raises(RuntimeError, match=r"derivative for .* is not implemented"):
        Problem(fused, nn.CrossEntropyLoss(), data).hvp(torch.ones(75, dtype=torch.float64))
    auto = Problem(fused, nn.CrossEntropyLoss(), data, hvp="auto")
    assert auto.hvp_method == "exact" and auto.hvp_fallback is None
    v = torch.linspace(-1, 1, auto.num_params, dtype=torch.float64)
    ref = Problem(plain, nn.CrossEntropyLoss(), data).hvp(v)
    hv = auto.hvp(v)
    assert auto.hvp_method == "finite-difference"
    assert "_scaled_dot_product_flash_attention_for_cpu_backward" in auto.hvp_fallback
    assert auto.hvp_count == 1 and auto.cache_graph is False
    assert float((hv - ref).norm() / ref.norm()) < 1e-8
    # An exact model stays exact under "auto", bitwise.
    exact = Problem(plain, nn.CrossEntropyLoss(), data, hvp="auto")
    assert torch.equal(exact.hvp(v), ref) and exact.hvp_method == "exact"


def test_hvp_method_is_checked():
    _, plain, data = _smooth_pair()
    with pytest.raises(ProblemError, match=r"hvp is 'fd': expected one of \['exact', "):
        Problem(plain, nn.CrossEntropyLoss(), data, hvp="fd")


def test_hvp_of_a_parameter_the_loss_does_not_use_is_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1)).double()
    model[2].bias.requires_grad_(True)
    data = (torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64))
    problem = Problem(model, nn.MSELoss(), data)
    dense = problem.dense_hessian()
    v = torch.linspace(-1, 1, problem.num_params, dtype=torch.float64)
    torch.testing.assert_close(problem.hvp(v), dense @ v, rtol=1e-10, atol=1e-12)
