"""Detectors on synthetic record series: they detect, they do not cry wolf, they never raise."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optiscope.diagnosis import CHALLENGES, DETECTORS, Finding, Severity, diagnose
from optiscope.diagnosis.detectors import SEVERITIES, detect_cliffs
from optiscope.diagnosis.findings import THEORETICAL_LIMITS
from optiscope.records import schema
from optiscope.records.log import RecordsError, RecordWriter, read_records


def step(i, values):
    return {schema.TYPE: schema.STEP_RECORD, schema.STEP: i, schema.VALUES: values}


def steps(loss, grad_norm):
    return [
        step(i, {schema.LOSS: a, schema.GRAD_NORM: b})
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


def test_the_theoretical_limits_are_a_statement_not_a_measurement():
    (limits,) = [f for f in diagnose([]) if f.challenge == THEORETICAL_LIMITS]
    assert limits.measured is False and limits.severity is Severity.INFO
    assert limits.to_dict()[schema.MEASURED] is False
    assert all(f.measured for f in diagnose([]) if f.challenge != THEORETICAL_LIMITS)


def test_severities_are_strings_and_a_finding_writes_plain_ones():
    assert Severity.WARNING == "warning" and f"{Severity.ERROR}" == "error"
    assert [s.value for s in Severity] == ["ok", "info", "warning", "critical", "error"]
    f = Finding("cliffs", "critical", "x", {"a": 1.0}, "clip")  # a string is taken
    assert f.severity is Severity.CRITICAL
    d = f.to_dict()
    assert type(d[schema.SEVERITY]) is str and d[schema.SEVERITY] == "critical"
    # findings.json's fields are those of the schema.
    assert set(d) == {
        schema.CHALLENGE,
        schema.SEVERITY,
        schema.SUMMARY,
        schema.EVIDENCE,
        schema.REMEDY,
        schema.MEASURED,
    }
    with pytest.raises(ValueError, match=r"severity must be one of \['ok', .*got 'bad'"):
        Finding("cliffs", "bad", "x")


def test_a_detector_that_raises_gives_an_error_finding(monkeypatch):
    def broken(records):
        raise TypeError("boom")

    monkeypatch.setitem(DETECTORS, "cliffs", broken)
    findings = diagnose(steps([1.0] * 30, [1.0] * 30))
    (cliffs,) = [f for f in findings if f.challenge == "cliffs"]
    assert cliffs.severity is Severity.ERROR
    assert cliffs.summary == "the detector failed: TypeError: boom"
    assert [f.challenge for f in findings] == list(CHALLENGES)
    assert all(f.severity != "error" for f in findings if f.challenge != "cliffs")


def test_diagnose_takes_a_folder_a_records_file_a_records_or_dicts(tmp_path):
    recs = steps([2.0 - 0.01 * i for i in range(30)], [1.0] * 30)
    with RecordWriter(tmp_path / "records.jsonl", {"experiment": "x"}) as w:
        for r in recs:
            w.write(r)
    expected = [f.to_dict() for f in diagnose(recs)]
    for run in (
        tmp_path,
        str(tmp_path),
        tmp_path / "records.jsonl",
        read_records(tmp_path),
        iter(recs),
        (r for r in recs),
    ):
        assert [f.to_dict() for f in diagnose(run)] == expected, run


@pytest.mark.parametrize(
    ("run", "tail"),
    [
        (None, "NoneType. Pass the run's folder, e.g. diagnose('runs/digits-mlp')"),
        (3, "int. Pass the run's folder, e.g. diagnose('runs/digits-mlp')"),
        (
            {"type": "step"},
            "dict. Pass the run's folder, e.g. diagnose('runs/digits-mlp'); for one record, "
            "pass [record]",
        ),
        (
            b"{}",
            "bytes. Pass the run's folder, e.g. diagnose('runs/digits-mlp'); for the bytes of a "
            "records file, pass parse_records(data)",
        ),
    ],
)
def test_diagnose_on_anything_else_says_what_it_takes(run, tail):
    with pytest.raises(RecordsError) as err:
        diagnose(run)
    assert str(err.value) == (
        "diagnose expected a run: its folder (or its records.jsonl) as a str or a path, the "
        "Records that read_records returns, or an iterable of record dicts; got " + tail
    )


def test_diagnose_on_a_folder_without_records_says_so(tmp_path):
    with pytest.raises(RecordsError, match=r"cannot read records from .*records.jsonl of a run"):
        diagnose(tmp_path)


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
    recs = steps([a for a, _ in pairs], [b for _, b in pairs])
    recs.append(step("x", None))
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
    return [step(i, v) for i, v in enumerate(rows)]


def hidden(module, norms, at=5):
    return [
        {
            schema.TYPE: schema.HIDDEN_GRADIENTS,
            schema.STEP: at,
            schema.MODULE: module,
            schema.NORMS: norms,
        }
    ]


def test_long_term_dependencies_vanishing_exploding_and_healthy():
    vanishing = hidden("rnn", [0.5 ** (29 - t) for t in range(30)])
    f = detect_long_term_dependencies(vanishing)
    assert f.severity == "critical"  # 0.5^29 < 1e-6
    assert f.evidence["rate_per_step"] == pytest.approx(0.5)
    assert f.evidence["memory_horizon"] == pytest.approx(math.log(1e-2) / math.log(0.5))
    assert "nn.LSTM" in f.remedy
    milder = hidden("rnn", [0.7 ** (29 - t) for t in range(30)])
    assert detect_long_term_dependencies(milder).severity == "warning"
    exploding = hidden("rnn", [1.5 ** (29 - t) for t in range(30)])
    f = detect_long_term_dependencies(exploding)
    assert f.severity == "critical" and f.evidence["rate_per_step"] == pytest.approx(1.5)
    healthy = hidden("lstm", [1.0 + 0.01 * t for t in range(30)])
    assert detect_long_term_dependencies(healthy).severity == "ok"
    assert detect_long_term_dependencies([]).severity == "info"


def test_inexact_gradients_compares_the_batch_with_the_critical_batch():
    noisy = with_values(
        [
            {
                schema.TRACE_COV: 2000.0,
                schema.GRAD_NORM_SQ_UNBIASED: 1.0,
                schema.BATCH_SIZE: 8,
                schema.SNR: 0.02,
            }
        ]
        * 3
    )
    f = detect_inexact_gradients(noisy)
    assert f.severity == "warning" and "2e+03" in f.summary and "toward 2000" in f.remedy
    fine = with_values(
        [
            {
                schema.TRACE_COV: 100.0,
                schema.GRAD_NORM_SQ_UNBIASED: 1.0,
                schema.BATCH_SIZE: 128,
                schema.SNR: 5.0,
            }
        ]
        * 3
    )
    assert detect_inexact_gradients(fine).severity == "ok"
    assert detect_inexact_gradients(with_values([{schema.LOSS: 1.0}])).severity == "info"


def test_ill_conditioning_the_books_test_and_sharpness():
    rows = [
        {schema.GTG: 1.0, schema.GTHG: 0.5 * 1.3**i, schema.PREDICTED_CHANGE: -0.1}
        for i in range(40)
    ]
    f = detect_ill_conditioning(with_values(rows))
    assert f.severity == "warning" and "g^T H g grew" in f.summary
    calm = [
        {
            schema.GTG: 1.0 / (i + 1),
            schema.GTHG: 0.5 / (i + 1),
            schema.PREDICTED_CHANGE: -0.1,
            schema.SHARPNESS: 10.0,
            schema.STABILITY_THRESHOLD: 20.0,
        }
        for i in range(40)
    ]
    assert detect_ill_conditioning(with_values(calm)).severity == "ok"
    edge = [{**r, schema.SHARPNESS: 25.0} for r in calm]
    f = detect_ill_conditioning(with_values(edge))
    assert f.severity == "warning" and "sharpness 25 >= stability threshold 20" in f.summary
    assert "scale the learning rate by 0.72" in f.remedy
    steep = [
        {**r, schema.CURVATURE_ALONG_GRADIENT: 30.0, schema.GRADIENT_THRESHOLD: 20.0} for r in calm
    ]
    f = detect_ill_conditioning(with_values(steep))
    assert f.severity == "warning" and "g^T H g / g^T g, reached the stability" in f.summary
    assert "scale the learning rate by 0.6 " in f.remedy


def test_saddle_and_plateau_and_a_descending_run():
    n = 100
    loss = [2.0 - 1.0 * min(i, 30) / 30 for i in range(n)]
    gn = [1.0 if i < 30 else 1e-3 for i in range(n)]
    rows = [{schema.LOSS: a, schema.GRAD_NORM: b} for a, b in zip(loss, gn)]
    assert detect_saddle_points(with_values(rows)).severity == "info"
    rows[-1] = {**rows[-1], schema.LAMBDA_MIN: -0.5, schema.SHARPNESS: 2.0}
    f = detect_saddle_points(with_values(rows))
    assert f.severity == "warning" and "lambda_min -0.5" in f.summary
    descending = [{schema.LOSS: 2.0 * 0.97**i, schema.GRAD_NORM: 1.0} for i in range(n)]
    assert detect_saddle_points(with_values(descending)).severity == "ok"
    assert detect_local_minima(with_values(descending)).severity == "ok"


def test_the_negative_test_for_local_minima():
    stalled = [{schema.LOSS: 1.0 + 1e-4 * (i % 2), schema.GRAD_NORM: 3.0} for i in range(60)]
    f = detect_local_minima(with_values(stalled))
    assert f.severity == "info" and "not a critical point" in f.summary
    converged = [{schema.LOSS: 1.0, schema.GRAD_NORM: 3.0 * 0.8**i} for i in range(60)]
    f = detect_local_minima(with_values(converged))
    assert "a critical point" in f.summary and "restarts" in f.remedy


def test_local_global_mismatch_reads_the_interpolation():
    rec = [
        {
            schema.TYPE: schema.ANALYSIS,
            schema.NAME: schema.INTERPOLATION,
            schema.BARRIER: 0.3,
            schema.PATH_LENGTH: 5.0,
            schema.DISTANCE: 2.0,
        }
    ]
    assert detect_local_global_mismatch(rec).severity == "warning"
    rec = [{**rec[0], schema.BARRIER: 0.0, schema.PATH_LENGTH: 50.0}]
    f = detect_local_global_mismatch(rec)
    assert f.severity == "info" and f.evidence["length_over_distance"] == 25.0
    assert detect_local_global_mismatch([]).severity == "info"
    # A barrier at rounding level is no barrier; the trajectory's plane joins the evidence.
    rec = [
        {**rec[0], schema.BARRIER: 1e-9, schema.PATH_LENGTH: 5.0, schema.LOSSES: [2.0, 1.0, 0.5]},
        {
            schema.TYPE: schema.ANALYSIS,
            schema.NAME: schema.TRAJECTORY,
            schema.EXPLAINED: [0.7, 0.2],
            schema.RATIO: 3.0,
        },
    ]
    f = detect_local_global_mismatch(rec)
    assert f.severity == "ok" and f.evidence["trajectory_explained"] == [0.7, 0.2]
    assert "two directions hold 90% of the trajectory's variance" in f.summary
