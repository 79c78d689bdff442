"""The lab's error-surface experiments: local against global structure, and random restarts."""

from __future__ import annotations

import pytest

import optiscope.lab as lab

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_straight_path_has_no_barrier_and_training_does_not_take_it():
    r = lab.run("local-global-structure", small=True, seed=0)
    assert r.reproduced
    n = r.numbers
    assert n["barrier"] == 0.0 and n["end_loss"] < 0.1 * n["start_loss"]
    assert n["length_over_distance"] > 1.2  # measured 1.71
    assert n["path_length"] == pytest.approx(n["length_over_distance"] * n["distance"])
    assert sum(n["explained"]) > 0.5  # measured 0.98


def test_restarts_on_xor_fail_often_and_the_best_of_five_rarely():
    r = lab.run("random-restarts", small=True, seed=0)
    assert r.reproduced
    n = r.numbers
    stuck = [v for v in n["losses"] if v > min(n["losses"]) + 0.05]
    assert n["failed"] == pytest.approx(len(stuck) / n["restarts"])  # measured 6 of 12
    assert all(abs(v - 0.3466) < 0.03 for v in stuck)  # one input misclassified: ln(2)/2
    assert n["best_of_5_success"] > 0.9
