"""The negative test for local minima: a stalled loss with a gradient norm that does not shrink."""

from __future__ import annotations

import pytest

import optiscope.lab as lab

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_stall_is_not_a_minimum_and_a_convergence_is():
    r = lab.run("local-minima-negative-test", small=True, seed=0)
    assert r.reproduced
    n = r.numbers
    # lr = 2/100 at the sharp direction's stability limit: x1 bounces at +-1, the loss stalls at
    # 50 (its closed form) and the gradient norm stays at 100 |x1| ~ 0.995 of its first value.
    assert n["stalled_loss"] == pytest.approx(50.0, rel=1e-6)
    assert n["stalled_gradient_norm_ratio"] == pytest.approx(100 / (100**2 + 10**2) ** 0.5)
    assert n["converged_gradient_norm_ratio"] < 1e-6 and n["converged_kind"] == "minimum"
    assert n["converged_lambda_min"] == pytest.approx(1.0)
