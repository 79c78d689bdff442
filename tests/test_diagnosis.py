"""Detectors on synthetic record series: they detect, they do not cry wolf, they never raise."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optiscope.diagnosis.detectors import CHALLENGES, SEVERITIES, detect_cliffs, diagnose


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


from optiscope.diagnosis.detectors import (  # noqa: E402
    detect_ill_conditioning,
    detect_inexact_gradients,
    detect_local_global_mismatch,
    detect_local_minima,
    detect_long_term_dependencies,
    detect_saddle_points,
)


def with_values(rows):
    return [{"type": "step", "step": i, "values": v} for i, v in enumerate(rows)]


def test_long_term_dependencies_vanishing_exploding_and_healthy():
    vanishing = [
        {
            "type": "hidden_gradients",
            "step": 5,
            "module": "rnn",
            "norms": [0.5 ** (29 - t) for t in range(30)],
        }
    ]
    f = detect_long_term_dependencies(vanishing)
    assert f.severity == "critical"  # 0.5^29 < 1e-6
    assert f.evidence["rate_per_step"] == pytest.approx(0.5)
    assert f.evidence["memory_horizon"] == pytest.approx(math.log(1e-2) / math.log(0.5))
    assert "nn.LSTM" in f.remedy
    milder = [dict(vanishing[0], norms=[0.7 ** (29 - t) for t in range(30)])]
    assert detect_long_term_dependencies(milder).severity == "warning"
    exploding = [
        {
            "type": "hidden_gradients",
            "step": 5,
            "module": "rnn",
            "norms": [1.5 ** (29 - t) for t in range(30)],
        }
    ]
    f = detect_long_term_dependencies(exploding)
    assert f.severity == "critical" and f.evidence["rate_per_step"] == pytest.approx(1.5)
    healthy = [
        {
            "type": "hidden_gradients",
            "step": 5,
            "module": "lstm",
            "norms": [1.0 + 0.01 * t for t in range(30)],
        }
    ]
    assert detect_long_term_dependencies(healthy).severity == "ok"
    assert detect_long_term_dependencies([]).severity == "info"


def test_inexact_gradients_compares_the_batch_with_the_critical_batch():
    noisy = with_values(
        [{"trace_cov": 2000.0, "grad_norm_sq_unbiased": 1.0, "batch_size": 8, "snr": 0.02}] * 3
    )
    f = detect_inexact_gradients(noisy)
    assert f.severity == "warning" and "2e+03" in f.summary and "toward 2000" in f.remedy
    fine = with_values(
        [{"trace_cov": 100.0, "grad_norm_sq_unbiased": 1.0, "batch_size": 128, "snr": 5.0}] * 3
    )
    assert detect_inexact_gradients(fine).severity == "ok"
    assert detect_inexact_gradients(with_values([{"loss": 1.0}])).severity == "info"


def test_ill_conditioning_the_books_test_and_sharpness():
    rows = [{"gtg": 1.0, "gthg": 0.5 * 1.3**i, "predicted_change": -0.1} for i in range(40)]
    f = detect_ill_conditioning(with_values(rows))
    assert f.severity == "warning" and "g^T H g grew" in f.summary
    calm = [
        {
            "gtg": 1.0 / (i + 1),
            "gthg": 0.5 / (i + 1),
            "predicted_change": -0.1,
            "sharpness": 10.0,
            "stability_threshold": 20.0,
        }
        for i in range(40)
    ]
    assert detect_ill_conditioning(with_values(calm)).severity == "ok"
    edge = [dict(r, sharpness=25.0) for r in calm]
    f = detect_ill_conditioning(with_values(edge))
    assert f.severity == "warning" and "sharpness 25 >= stability threshold 20" in f.summary
    assert "scale the learning rate by 0.72" in f.remedy
    steep = [dict(r, curvature_along_gradient=30.0, gradient_threshold=20.0) for r in calm]
    f = detect_ill_conditioning(with_values(steep))
    assert f.severity == "warning" and "g^T H g / g^T g, reached the stability" in f.summary
    assert "scale the learning rate by 0.6 " in f.remedy


def test_saddle_and_plateau_and_a_descending_run():
    n = 100
    loss = [2.0 - 1.0 * min(i, 30) / 30 for i in range(n)]
    gn = [1.0 if i < 30 else 1e-3 for i in range(n)]
    rows = [{"loss": a, "grad_norm": b} for a, b in zip(loss, gn)]
    assert detect_saddle_points(with_values(rows)).severity == "info"
    rows[-1] = dict(rows[-1], lambda_min=-0.5, sharpness=2.0)
    f = detect_saddle_points(with_values(rows))
    assert f.severity == "warning" and "lambda_min -0.5" in f.summary
    descending = [{"loss": 2.0 * 0.97**i, "grad_norm": 1.0} for i in range(n)]
    assert detect_saddle_points(with_values(descending)).severity == "ok"
    assert detect_local_minima(with_values(descending)).severity == "ok"


def test_the_negative_test_for_local_minima():
    stalled = [{"loss": 1.0 + 1e-4 * (i % 2), "grad_norm": 3.0} for i in range(60)]
    f = detect_local_minima(with_values(stalled))
    assert f.severity == "info" and "not a critical point" in f.summary
    converged = [{"loss": 1.0, "grad_norm": 3.0 * 0.8**i} for i in range(60)]
    f = detect_local_minima(with_values(converged))
    assert "a critical point" in f.summary and "restarts" in f.remedy


def test_local_global_mismatch_reads_the_interpolation():
    rec = [
        {
            "type": "analysis",
            "name": "interpolation",
            "barrier": 0.3,
            "path_length": 5.0,
            "distance": 2.0,
        }
    ]
    assert detect_local_global_mismatch(rec).severity == "warning"
    rec = [dict(rec[0], barrier=0.0, path_length=50.0)]
    f = detect_local_global_mismatch(rec)
    assert f.severity == "info" and f.evidence["length_over_distance"] == 25.0
    assert detect_local_global_mismatch([]).severity == "info"
    # A barrier at rounding level is no barrier; the trajectory's plane joins the evidence.
    rec = [
        dict(rec[0], barrier=1e-9, path_length=5.0, losses=[2.0, 1.0, 0.5]),
        {"type": "analysis", "name": "trajectory", "explained": [0.7, 0.2], "ratio": 3.0},
    ]
    f = detect_local_global_mismatch(rec)
    assert f.severity == "ok" and f.evidence["trajectory_explained"] == [0.7, 0.2]
    assert "two directions hold 90% of the trajectory's variance" in f.summary
