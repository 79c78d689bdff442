"""The sec. 8.2 lab experiments on identifiability, saddle points and high-dimensional geometry,
at their small size: each reproduces its claim with the numbers behind it."""

from __future__ import annotations

import math

import pytest

import optiscope.lab
from optiscope.lab._experiments import (  # noqa: F401  (registers them)
    high_dimension,
    identifiability,
    saddle_newton,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_identifiability():
    r = optiscope.lab.run("identifiability", small=True, seed=0)
    assert r.reproduced, r.numbers
    n = r.numbers
    assert n["hidden_layers"] == 2 and n["width"] == 16
    assert n["log10_equivalent_orderings"] == pytest.approx(2 * math.log10(math.factorial(16)))
    assert n["max_relative_output_diff"] <= 1e-6
    assert n["max_abs_loss_diff"] <= 1e-6
    assert n["min_relative_distance"] >= 0.1
    assert n["train_accuracy"] >= 0.9
    assert n["permutation_recovered"] is True
    assert n["align_distance_after"] == 0.0 < n["align_distance_before"]
    assert {t["kind"] for t in n["transforms_detail"]} == {"permute", "rescale", "both"}


def test_saddle_newton_and_determinism():
    r = optiscope.lab.run("saddle-newton", small=True, seed=0)
    assert r.reproduced, r.numbers
    n = r.numbers
    assert n["newton_steps_to_escape"] is None and n["weak_newton_steps_to_escape"] is None
    assert n["newton_distance_after_one_step"] <= 1e-12
    # On x1^2 - x2^2 with step 1/lambda_max, |x2| doubles per step from ~1e-3: 10 steps.
    assert n["gd_steps_to_escape"] == n["sfn_steps_to_escape"] == 10
    # On x1^2 - 0.05 x2^2 gradient descent grows |x2| by 1.05 per step, saddle-free Newton by 2.
    assert n["weak_sfn_steps_to_escape"] == 10
    assert n["weak_gd_steps_to_escape"] > 100
    again = optiscope.lab.run("saddle-newton", small=True, seed=0)
    assert again.numbers == r.numbers
    other = optiscope.lab.run("saddle-newton", small=True, seed=1)
    assert other.numbers["x0"] != r.numbers["x0"]


def test_high_dimension_and_determinism():
    r = optiscope.lab.run("high-dimension", small=True, seed=0)
    assert r.reproduced, r.numbers
    n = r.numbers
    assert n["dims"] == [10, 100, 1000, 10_000, 100_000]
    assert -0.55 <= n["cos_loglog_slope"] <= -0.45
    for c, d in zip(n["mean_abs_cos"], n["dims"]):
        assert c == pytest.approx(math.sqrt(2 / (math.pi * d)), rel=0.25)
    p = n["goe_p_positive_definite"]
    assert p[0] == pytest.approx(0.5, abs=0.02)
    assert p[1] == pytest.approx((2 - math.sqrt(2)) / 4, abs=0.02)  # 2x2 GOE: (2 - sqrt(2)) / 4
    assert p[-1] <= 0.01
    assert min(n["mean_negative_fraction"]) >= 0.1
    assert max(n["mean_negative_fraction"]) <= 0.6
    again = optiscope.lab.run("high-dimension", small=True, seed=0)
    assert again.numbers == r.numbers
