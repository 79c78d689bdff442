"""Estimators on dense float64 matrices whose spectra are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optiscope.linalg import (
    DenseOperator,
    LinearOperator,
    hutchinson_trace,
    hutchpp_trace,
    krylov_trace,
    lanczos,
    slq_density,
)
from optiscope.linalg.operators import CallableOperator


def spectrum_matrix(eigs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Q diag(eigs) Q^T with a random orthogonal Q."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=gen, dtype=torch.float64))
    return (q * eigs) @ q.T


def test_operator_algebra_matches_dense():
    a = spectrum_matrix(torch.linspace(-1, 3, 6, dtype=torch.float64))
    b = spectrum_matrix(torch.linspace(0, 1, 6, dtype=torch.float64), seed=1)
    oa, ob = DenseOperator(a), DenseOperator(b)
    v = torch.arange(6, dtype=torch.float64)
    torch.testing.assert_close((oa + ob) @ v, (a + b) @ v)
    torch.testing.assert_close((oa - 2 * ob) @ v, (a - 2 * b) @ v)
    torch.testing.assert_close((oa @ ob) @ v, a @ (b @ v))
    torch.testing.assert_close((-oa).to_dense(), -a)
    rect = DenseOperator(torch.ones(2, 6, dtype=torch.float64))
    torch.testing.assert_close(
        rect.T @ torch.ones(2, dtype=torch.float64), 2 * torch.ones(6).double()
    )
    sp = oa.to_scipy()
    np.testing.assert_allclose(sp.matvec(v.numpy()), (a @ v).numpy())
    with pytest.raises(
        ValueError, match=r"expected a vector of length 6, got a tensor of shape \(5,\)"
    ):
        oa @ torch.ones(5, dtype=torch.float64)
    with pytest.raises(ValueError, match="cannot compose operators of shapes"):
        _ = rect @ rect


def test_operators_count_their_products():
    op = CallableOperator(lambda v: 2 * v, 4, torch.float64, torch.device("cpu"))
    assert isinstance(op, LinearOperator)
    op @ torch.ones(4, dtype=torch.float64)
    op @ torch.ones(4, 3, dtype=torch.float64)
    assert op.products == 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lanczos_extremes_match_eigvalsh(seed):
    gen = torch.Generator().manual_seed(seed)
    eigs = torch.cat(
        [torch.randn(150, generator=gen, dtype=torch.float64), torch.tensor([9.0, 7.5, 6.0])]
    )
    eigs = torch.cat([eigs, torch.tensor([-8.0, -6.5], dtype=torch.float64)])
    a = spectrum_matrix(eigs, seed)
    exact = torch.linalg.eigvalsh(a)
    top = lanczos(a, k=5, which="largest", tol=1e-12, max_steps=155)
    assert top.all_converged
    torch.testing.assert_close(top.values, exact.flip(0)[:5], rtol=1e-6, atol=0)
    bottom = lanczos(a, k=5, which="smallest", tol=1e-12, max_steps=155)
    torch.testing.assert_close(bottom.values, exact[:5], rtol=1e-6, atol=0)
    # Eigenvectors, compared after fixing their sign.
    _, vecs = torch.linalg.eigh(a)
    ref = vecs[:, -1]
    ref = ref * torch.sign(ref[ref.abs().argmax()])
    torch.testing.assert_close(top.vectors[:, 0], ref, rtol=0, atol=1e-6)
    # The residuals reported are the true ones.
    for i in range(5):
        v = top.vectors[:, i]
        r = float(torch.linalg.vector_norm(a @ v - top.values[i] * v))
        assert r == pytest.approx(float(top.residuals[i]), abs=1e-9)


def test_lanczos_stops_on_residual_not_on_iterate_change():
    # Two nearly equal top eigenvalues: the estimate barely moves long before it is accurate.
    eigs = torch.cat([torch.tensor([1.0, 0.999]), torch.linspace(-0.5, 0.5, 300)]).double()
    a = spectrum_matrix(eigs)
    res = lanczos(a, k=1, tol=1e-8, max_steps=302)
    assert res.all_converged
    assert abs(float(res.values[0]) - 1.0) <= float(res.errors[0]) + 1e-12
    assert float(res.errors[0]) <= 1e-8


def test_lanczos_reports_unconverged_when_steps_run_out():
    a = spectrum_matrix(torch.linspace(0, 1, 400, dtype=torch.float64))
    res = lanczos(a, k=1, tol=1e-12, max_steps=5)
    assert res.steps == 5 and res.hvps == 5
    assert not res.all_converged


def test_lanczos_finds_an_invariant_subspace_of_a_low_rank_matrix():
    eigs = torch.zeros(50, dtype=torch.float64)
    eigs[:3] = torch.tensor([4.0, 2.0, -1.0])
    res = lanczos(spectrum_matrix(eigs), k=1, which="both", tol=1e-10)
    assert res.steps <= 4
    torch.testing.assert_close(res.values, torch.tensor([4.0, -1.0], dtype=torch.float64))


@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_thick_restart_lanczos_in_a_small_basis_matches_eigvalsh(which):
    # A basis of 6 vectors on a 400x400 operator: the iteration restarts many times, and what it
    # finds, with its residuals and error bounds, must still be the dense answer.
    eigs = torch.cat(
        [torch.linspace(-1, 1, 395, dtype=torch.float64), torch.tensor([5.0, 4.0, 3.0, -3.0, -2.5])]
    )
    a = spectrum_matrix(eigs, 3)
    exact = torch.linalg.eigvalsh(a)
    res = lanczos(a, k=2, which=which, tol=1e-10, max_steps=400, basis=6)
    assert res.all_converged and res.hvps > 6  # restarted
    want = {
        "largest": exact.flip(0)[:2],
        "smallest": exact[:2],
        "both": torch.cat([exact.flip(0)[:2], exact[:2]]),
    }[which]
    torch.testing.assert_close(res.values, want, rtol=1e-8, atol=0)
    for i in range(len(res.values)):
        v = res.vectors[:, i]
        r = float(torch.linalg.vector_norm(a @ v - res.values[i] * v))
        assert r == pytest.approx(float(res.residuals[i]), abs=1e-8)
        assert abs(float(res.values[i] - want[i])) <= float(res.errors[i]) + 1e-12
    # The default basis (2 w + 8 vectors) reaches the same answer as plain Lanczos.
    plain = lanczos(a, k=2, which=which, tol=1e-10, max_steps=400, basis=401)
    default = lanczos(a, k=2, which=which, tol=1e-10, max_steps=400)
    torch.testing.assert_close(default.values, plain.values, rtol=1e-8, atol=0)


def test_lanczos_holds_no_reference_to_its_start_vector_while_it_iterates():
    # At scale a start vector is a copy of the parameters: once Lanczos has copied it into its
    # basis, it must not stay alive through every product (the sharpness tier passes it inline).
    import weakref

    a = spectrum_matrix(torch.linspace(-1, 3, 40, dtype=torch.float64))
    alive = []

    def start() -> torch.Tensor:
        v = torch.ones(40, dtype=torch.float64)
        alive.append(weakref.ref(v))
        return v

    def product(v: torch.Tensor) -> torch.Tensor:
        assert alive and alive[0]() is None, "the start vector is still referenced"
        return a @ v

    op = CallableOperator(product, 40, torch.float64, torch.device("cpu"))
    res = lanczos(op, 1, "largest", tol=1e-8, v0=start(), basis=6)
    assert float(res.values[0]) == pytest.approx(3.0, abs=1e-7)


def test_lanczos_rejects_bad_arguments():
    a = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"basis must hold at least 4 vectors for 2 wanted"):
        lanczos(torch.eye(40, dtype=torch.float64), k=1, which="both", basis=3)
    with pytest.raises(ValueError, match=r"which must be one of"):
        lanczos(a, which="top")
    with pytest.raises(ValueError, match=r"k must be between 1 and 2 for a 4x4 operator"):
        lanczos(a, k=3, which="both")
    with pytest.raises(TypeError, match=r"expected a square torch.Tensor or an optiscope"):
        lanczos(np.eye(4))


def test_hutchpp_is_unbiased():
    # 400 seeds: the standard error of the mean is ~ std / 20; the bound is 4 of those.
    eigs = torch.linspace(-1, 2, 120, dtype=torch.float64)
    a = spectrum_matrix(eigs)
    true = float(eigs.sum())
    ests = np.array([hutchpp_trace(a, 30, seed=s).value for s in range(400)])
    assert abs(ests.mean() - true) < 4 * ests.std() / np.sqrt(len(ests))
    ests_h = np.array([hutchinson_trace(a, 30, seed=s).value for s in range(400)])
    assert abs(ests_h.mean() - true) < 4 * ests_h.std() / np.sqrt(len(ests_h))


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    # Eigenvalues 1/i^2: Hutch++ captures the head exactly. Over 50 seeds its mean absolute error
    # is expected to be an order of magnitude below Hutchinson's; we ask for 3x.
    eigs = 1.0 / torch.arange(1, 301, dtype=torch.float64) ** 2
    a = spectrum_matrix(eigs)
    true = float(eigs.sum())
    err_pp = np.mean([abs(hutchpp_trace(a, 60, seed=s).value - true) for s in range(50)])
    err_h = np.mean([abs(hutchinson_trace(a, 60, seed=s).value - true) for s in range(50)])
    assert err_pp * 3 < err_h
    est = hutchpp_trace(a, 60, seed=0)
    assert est.hvps == 60 and est.method == "hutch++"
    # The reported standard error is of the right size: the errors are within a few of it.
    errs = [(hutchpp_trace(a, 60, seed=s), s) for s in range(20)]
    assert np.mean([abs(e.value - true) / e.std_error for e, _ in errs]) < 3


def test_trace_is_exact_when_the_budget_covers_the_dimension():
    a = spectrum_matrix(torch.linspace(-3, 5, 20, dtype=torch.float64))
    est = hutchpp_trace(a, 20)
    assert est.method == "exact" and est.std_error == 0
    assert est.value == pytest.approx(float(a.trace()), abs=1e-12)


@pytest.mark.parametrize("reorthogonalize", [False, True])
def test_slq_density_integrates_to_one_and_sits_on_the_spectrum(reorthogonalize):
    # 70% of the eigenvalues near -1, 30% near 4.
    gen = torch.Generator().manual_seed(0)
    eigs = torch.cat(
        [-1 + 0.05 * torch.randn(140, generator=gen), 4 + 0.05 * torch.randn(60, generator=gen)]
    ).double()
    a = spectrum_matrix(eigs)
    dens = slq_density(a, steps=40, probes=8, seed=0, reorthogonalize=reorthogonalize)
    mass = np.trapezoid(dens.density, dens.grid)
    assert mass == pytest.approx(1.0, abs=1e-3)
    # Over 8 probes the fraction below zero is within 0.1 of 0.7 (the weights' std is ~0.03/probe).
    assert dens.fraction_below(1.5) == pytest.approx(0.7, abs=0.1)
    near = np.abs(dens.grid[:, None] - np.array([-1.0, 4.0])).min(1) < 0.5
    assert np.trapezoid(dens.density * near, dens.grid) > 0.95
    assert dens.moment(1) == pytest.approx(float(eigs.mean()), abs=0.4)
    assert dens.hvps == 8 * 40
    for w in dens.weights:
        assert w.sum() == pytest.approx(1.0, abs=1e-12)


def test_krylov_trace_is_unbiased_and_beats_hutchpp_on_a_decaying_indefinite_spectrum():
    # Hessian-like: magnitudes decaying as 1/i, a fifth of them negative. The Krylov space holds
    # both ends at one product per dimension: over 40 seeds at 60 products its mean absolute error
    # is ~0.04 against Hutch++'s ~0.063; we ask for 1.3x.
    gen = torch.Generator().manual_seed(0)
    sign = torch.where(torch.rand(300, generator=gen) < 0.8, 1.0, -1.0).double()
    sign[:3] = 1
    eigs = sign / torch.arange(1, 301, dtype=torch.float64)
    a = spectrum_matrix(eigs)
    true = float(eigs.sum())
    ests = np.array([krylov_trace(a, 30, seed=s).value for s in range(300)])
    assert abs(ests.mean() - true) < 4 * ests.std() / np.sqrt(len(ests))
    err_k = np.mean([abs(krylov_trace(a, 60, seed=s).value - true) for s in range(40)])
    err_pp = np.mean([abs(hutchpp_trace(a, 60, seed=s).value - true) for s in range(40)])
    assert err_k * 1.3 < err_pp
    est = krylov_trace(a, 60, seed=0)
    assert est.hvps == 60 and est.method == "krylov"
    with pytest.raises(ValueError, match=r"deflation must be between 0 and 1, got 1\.5"):
        krylov_trace(a, 60, deflation=1.5)


def test_lanczos_on_a_product_that_is_not_finite_says_so():
    from optiscope.core.errors import NonFiniteError
    from optiscope.linalg.operators import CallableOperator

    def product(v):
        out = 2.0 * v
        out[0] = float("nan")
        return out

    op = CallableOperator(product, 5, torch.float64, torch.device("cpu"))
    with pytest.raises(NonFiniteError) as err:
        lanczos(op, 1)
    assert str(err.value).startswith(
        "Lanczos: product 1 of the operator is not finite (expected finite values; an "
        "overflowing or NaN matrix-vector product"
    )
