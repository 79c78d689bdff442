"""The lab's sec. 8.2.4-8.2.5 experiments: long-term dependencies and cliffs."""

from __future__ import annotations

import math

import pytest

import optiscope.lab as lab
from optiscope.lab._experiments import cliffs, long_term  # noqa: F401  (registers them)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_long_term_dependencies_reproduces_its_claim():
    r = lab.run("long-term-dependencies", small=True, seed=0)
    n = r.numbers
    assert r.reproduced
    assert n["eig_reconstruction_rel_error"] < 1e-8
    assert abs(n["power_log_slope"] - n["log_lambda_max"]) < 0.02
    assert n["log_lambda_max"] == pytest.approx(math.log(1.1))
    for rho in (0.5, 0.9):  # vanishing, at about rho * mean tanh' per step
        rate = n[f"rate_tanh_rho_{rho}"]
        assert rate < 1 and rate <= 1.02 * rho
        assert rate / n[f"predicted_rate_tanh_rho_{rho}"] == pytest.approx(1, abs=0.15)
    for rho in (0.5, 0.9, 1.5):  # linear: exactly rho per step
        assert n[f"rate_linear_rho_{rho}"] == pytest.approx(rho, rel=0.02)
    assert n["grad_far_linear_rho_1_5"] > 1e6  # explodes
    assert n["grad_far_tanh_rho_0_5"] < 1e-15 and n["grad_far_tanh_rho_0_9"] < 1e-5
    assert n["lstm_advantage"] >= 100
    assert n["grad_far_lstm"] / n["grad_far_tanh_rho_0_9"] >= 100


def test_cliffs_reproduces_its_claim():
    r = lab.run("cliffs", small=True, seed=0)
    n = r.numbers
    assert r.reproduced and n["starts_reproduced"] == 1
    assert n["clipped_largest_step"] == pytest.approx(0.05)  # lr * clip threshold
    assert n["step_ratio"] >= 50
    assert n["plain_diverged"] and n["loss_rise_log10"] >= 2
    assert n["clipped_final_loss"] <= n["start_loss"] / 10
    assert lab.run("cliffs", small=True, seed=0).numbers == n  # deterministic
