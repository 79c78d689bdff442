"""Sec. 8.2.3 and 8.2.5: the plateau of a deep linear network near the saddle at the origin, and
minibatch gradient noise against the gradient noise scale."""

from __future__ import annotations

import pytest

import optiscope.lab as lab
from optiscope.lab._experiments import inexact_gradients, plateau  # noqa: F401  (registers)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_deep_linear_network_plateaus_at_a_saddle_then_drops():
    r = lab.run("plateau", small=True, seed=0)
    assert r.reproduced
    n = r.numbers
    assert n["plateau_steps"] >= 0.25 * n["steps"]
    assert n["drop_steps"] is not None and n["drop_steps"] <= n["plateau_steps"] / 2
    assert n["loss_reduction"] >= 10
    # Seed 0: the strong mode (singular value 3) is learned after ~336 steps, in ~10 steps; the
    # weak modes left unlearned leave a loss ~65x below the start.
    assert n["plateau_steps"] == pytest.approx(336, abs=5)
    assert n["loss_reduction"] == pytest.approx(65.3, rel=0.01)
    # Near the origin the Hessian is a symmetric saddle: lambda_min ~ -lambda_max.
    assert n["plateau_checks"] >= 3
    assert all(v < 0 for v in n["plateau_lambda_min"])
    assert n["plateau_max_lambda_ratio"] < -0.5


def test_minibatch_noise_follows_the_gradient_noise_scale():
    r = lab.run("inexact-gradients", small=True, seed=0)
    assert r.reproduced
    n = r.numbers
    assert n["max_sq_norm_rel_error"] <= 0.10 and n["max_sq_cosine_abs_error"] <= 0.10
    assert n["b_simple"] == pytest.approx(n["trace_sigma"] / n["gradient_sq_norm"])
    assert n["b_simple"] == pytest.approx(66.93, rel=1e-3)  # seed 0, after 100 SGD steps
    assert n["cosines"] == sorted(n["cosines"]) and n["snrs"] == sorted(n["snrs"])
    # The SNR grows about linearly in B: |G|^2 / E|g_B - G|^2 ~ B / B_simple.
    for row in n["per_batch"]:
        b = row["batch"]
        expected = b / n["b_simple"] * (1797 - 1) / (1797 - b)
        assert row["snr"] == pytest.approx(expected, rel=0.35)
