"""Theoretical limits: the LP trains a threshold unit; the MILP decides the 3-node network."""

from __future__ import annotations

import numpy as np
import pytest

import optiscope.lab as lab
from optiscope.lab._experiments import limits

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_exact_solvers_on_instances_with_known_answers():
    rng = np.random.default_rng(0)
    x, y = limits._separable(50, 3, rng)
    assert limits._lp_single_layer(x, y)[0]
    # XOR has no single threshold unit but has a 3-node network (two half-planes and an AND).
    xor = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    labels = np.array([False, False, True, True])
    assert not limits._lp_single_layer(xor, labels)[0]
    found, params, _ = limits._milp_three_node(xor, ~labels)  # positives on the diagonal band
    assert found and limits._consistent(params, xor, ~labels)
    # On a line, an AND of two half-lines is an interval: positives at both ends with negatives
    # between them have no consistent network.
    band = np.array([[-2.0], [-1.0], [1.0], [2.0], [0.0]])
    assert not limits._milp_three_node(band, np.array([True, False, False, True, False]))[0]


def test_the_claim_is_reproduced_at_reduced_size():
    r = lab.run("theoretical-limits", small=True, seed=0)
    assert r.reproduced
    n = r.numbers
    assert n["milp_found"] == n["instances"] and n["lp_separated"] == 5
    assert n["gradient_descent_found"] < n["instances"]
    assert all(0.5 < a < 1.0 for a in n["gradient_descent_best_accuracy"] if a < 1.0)
