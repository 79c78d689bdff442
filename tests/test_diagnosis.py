"""Detectors on synthetic record series: they detect, they do not cry wolf, they never raise."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optiscope._diagnosis import CHALLENGES, SEVERITIES, detect_cliffs, diagnose


def steps(loss, grad_norm):
    return [
        {"type": "step", "step": i, "values": {"loss": a, "grad_norm": b}}
        for i, (a, b) in enumerate(zip(loss, grad_norm))
    ]


def test_a_spike_followed_by_a_loss_jump_is_a_critical_cliff():
    norms = [1.0 + 0.01 * (i % 3) for i in range(60)]
    loss = [2.0 - 0.01 * i for i in range(60)]
    norms[40] = 80.0
    loss[41] = 5 * loss[40]
    f = detect_cliffs(steps(loss, norms))
    assert f.severity == "critical"
    assert f.evidence["spike_count"] == 1
    spike = f.evidence["spikes"][0]
    assert spike["step"] == 40 and spike["ratio"] == pytest.approx(80 / 1.01, rel=0.02)
    assert spike["loss_jump"] == pytest.approx(5.0)
    assert "step 40" in f.summary
    assert f.evidence["suggested_clip_norm"] == pytest.approx(2.02, rel=0.01)
    assert "clip the gradient norm at 2.02" in f.remedy


def test_a_spike_without_a_loss_jump_is_a_warning_and_a_smooth_run_is_ok():
    norms = [1.0] * 50
    loss = [1.0 - 0.01 * i for i in range(50)]
    assert detect_cliffs(steps(loss, norms)).severity == "ok"
    norms[30] = 50.0
    f = detect_cliffs(steps(loss, norms))
    assert f.severity == "warning" and f.evidence["spikes"][0]["step"] == 30


def test_non_finite_values_are_critical_with_their_step():
    norms = [1.0] * 20
    loss = [1.0] * 20
    loss[7] = math.nan
    norms[9] = math.inf
    f = detect_cliffs(steps(loss, norms))
    assert f.severity == "critical"
    assert f.evidence["nonfinite_steps"] == [7, 9]
    assert "step 7" in f.summary


def test_diagnose_gives_one_finding_per_challenge_in_the_fixed_vocabulary():
    findings = diagnose(steps([1.0] * 30, [1.0] * 30))
    assert [f.challenge for f in findings] == list(CHALLENGES)
    assert all(f.severity in SEVERITIES for f in findings)
    assert findings[CHALLENGES.index("theoretical-limits")].severity == "info"


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(0.0),
    st.just(1e300),
    st.just(1e-300),
    st.none(),
    st.text(max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(values, values), max_size=60), st.booleans())
def test_detectors_never_raise_on_arbitrary_series(pairs, constant):
    if constant and pairs:
        pairs = [pairs[0]] * len(pairs)
    recs = [
        {"type": "step", "step": i, "values": {"loss": a, "grad_norm": b}}
        for i, (a, b) in enumerate(pairs)
    ]
    recs.append({"type": "step", "step": "x", "values": None})
    recs.append({"garbage": True})
    findings = diagnose(recs)
    assert len(findings) == len(CHALLENGES)
    for f in findings:
        assert f.severity in SEVERITIES
        assert "detector failed" not in f.summary
