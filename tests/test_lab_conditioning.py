"""The sec. 8.2 lab experiments on ill-conditioning, at their small size."""

from __future__ import annotations

import pytest

import optiscope.lab
from optiscope.lab._experiments import ill_conditioning  # noqa: F401  (registers it)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ill_conditioning_reproduced_and_deterministic():
    r = optiscope.lab.run("ill-conditioning", small=True, seed=0)
    assert r.reproduced, r.numbers
    n = r.numbers
    assert n["quadratic_hvp_error"] < 1e-10
    assert n["quadratic_max_relative_error"] < 1e-6
    assert n["mlp_max_relative_error_small_steps"] < 0.05
    assert n["quadratic_sign_agreement"] == n["mlp_sign_agreement"] == 1.0
    assert n["quadratic_rises_iff_beyond_lr_star"] and n["mlp_rises_iff_beyond_lr_star"]
    assert n["gg_ratio_end_to_start"] >= 0.5
    assert n["ghg_ratio_end_to_start"] > 10.0
    assert len(n["gg_trace"]) == len(n["ghg_trace"]) == 21
    again = optiscope.lab.run("ill-conditioning", small=True, seed=0)
    assert again.numbers == n
