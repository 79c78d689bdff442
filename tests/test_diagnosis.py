"""Detectors on synthetic record series: they detect, they do not cry wolf, they never raise."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optiscope.diagnosis import CHALLENGES, DETECTORS, Finding, Severity, diagnose
from optiscope.diagnosis.detectors import SEVERITIES, detect_cliffs, needs_restarts
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
    # The step threw the point: the loss jumps and takes steps to come down again.
    for k, rise in zip((41, 42, 43), (6.0, 5.0, 3.0)):
        loss[k] = rise * loss[40]
    f = detect_cliffs(steps(loss, norms))
    assert f.severity == "critical"
    assert f.evidence["spike_count"] == 1
    spike = f.evidence["spikes"][0]
    assert spike["step"] == 40 and spike["ratio"] == pytest.approx(80 / 1.01, rel=0.02)
    # The rise that held over two of the next three steps, not the largest.
    assert spike["loss_jump"] == pytest.approx(5.0)
    assert "step 40" in f.summary and "the loss rose 5x after it" in f.summary
    assert f.evidence["cliffs"] == [spike]
    # The clip that would have held: the median norm of the run's first steps.
    assert f.evidence["suggested_clip_norm"] == pytest.approx(1.01, rel=0.01)
    assert "clip the gradient norm at about 1.01" in f.remedy


def test_the_spikes_a_cliff_rests_on_are_in_its_evidence_after_many_harmless_ones():
    # 30 harmless spikes first (the spike list keeps 20), then the one that hit a cliff.
    norms = [1.0] * 400
    loss = [2.0 - 0.002 * i for i in range(400)]
    for k in range(30):
        norms[30 + 10 * k] = 50.0
    norms[350] = 80.0
    for k, rise in zip((351, 352, 353), (6.0, 5.0, 3.0)):
        loss[k] = rise * loss[350]
    f = detect_cliffs(steps(loss, norms))
    assert f.severity == "critical" and "at step 350" in f.summary
    assert f.evidence["spike_count"] == 31 and len(f.evidence["spikes"]) == 20
    assert 350 not in [c["step"] for c in f.evidence["spikes"]]
    (cliff,) = f.evidence["cliffs"]
    assert cliff["step"] == 350 and cliff["loss_jump"] == pytest.approx(5.0)


def test_a_hard_batch_after_a_spike_is_no_jump_nor_an_update_outsized_by_the_schedule():
    # A small batch: one batch with a misfit sample spikes the gradient, and the next holds
    # another; the one after is back on the floor. Not a cliff.
    norms = [0.05 + 0.01 * (i % 4) for i in range(120)]
    loss = [1.0] + [0.01 + 0.002 * (i % 5) for i in range(1, 120)]
    ratios = [0.05 * 0.95**i for i in range(120)]  # a decaying schedule's updates
    norms[30], loss[30], loss[31] = 2.0, 0.9, 1.4
    rows = [
        {schema.LOSS: a, schema.GRAD_NORM: b, schema.UPDATE_RATIO: r}
        for a, b, r in zip(loss, norms, ratios)
    ]
    # 3x the updates just before it, though 10 times the run's median update.
    rows[30] = {**rows[30], schema.UPDATE_RATIO: 3 * ratios[29]}
    f = detect_cliffs(with_values(rows))
    assert f.severity == "info", f.summary
    spike = f.evidence["spikes"][0]
    assert spike["step"] == 30 and spike["outsized_update"] is False
    assert rows[30][schema.UPDATE_RATIO] > 10 * f.evidence["median_update_ratio"]
    assert spike["loss_jump"] < 1.5
    # The same spike where the loss climbs on for two steps after it: a cliff.
    rows[31] = {**rows[31], schema.LOSS: 2.0}
    rows[32] = {**rows[32], schema.LOSS: 1.8}
    f = detect_cliffs(with_values(rows))
    assert f.severity == "critical" and "the loss rose 2x after it" in f.summary
    # An update ten times those just before it, and 5% of the parameters' norm: outsized,
    # whatever the loss does.
    rows[31] = {**rows[31], schema.LOSS: loss[31]}
    rows[32] = {**rows[32], schema.LOSS: loss[32]}
    rows[30] = {**rows[30], schema.UPDATE_RATIO: 0.2}
    assert 0.2 > 10 * ratios[29]
    f = detect_cliffs(with_values(rows))
    assert f.severity == "critical" and "the update it made was outsized" in f.summary


def test_a_cliff_must_matter_at_the_runs_scale():
    # Near convergence at a batch of 4 the losses span decades: a spike's batch at 3e-3 and
    # two batches at 8e-3 after it are a 2.7x rise that held, yet 0.5% of the run's starting
    # loss; and a hard sample's update ten times the last ones moves the parameters by 2%.
    norms = [0.003 + 0.001 * (i % 3) for i in range(100)]

    def descent(start):
        return [max(start * 0.7**i, 1e-4 * (1 + i % 4)) for i in range(100)]

    loss = descent(1.0)
    ratios = [1e-3] * 100
    norms[60], loss[60], loss[61], loss[62] = 0.05, 0.003, 0.008, 0.0081
    norms[80], ratios[80] = 0.06, 0.02
    rows = [
        {schema.LOSS: a, schema.GRAD_NORM: b, schema.UPDATE_RATIO: r}
        for a, b, r in zip(loss, norms, ratios)
    ]
    f = detect_cliffs(with_values(rows))
    assert f.severity == "info", f.summary
    first, second = f.evidence["spikes"]
    assert first["step"] == 60 and first["loss_jump"] is None
    assert second["step"] == 80 and second["outsized_update"] is False
    # The same rise on a run that started at 0.03 is a sixth of it: a cliff.
    for i, v in enumerate(descent(0.03)):
        if i < 60:
            rows[i] = {**rows[i], schema.LOSS: v}
    f = detect_cliffs(with_values(rows))
    assert f.severity == "critical" and "at step 60" in f.summary and "rose 2.7x" in f.summary


def test_a_spike_that_changes_nothing_is_reported_not_judged():
    norms = [1.0] * 50
    loss = [1.0 - 0.01 * i for i in range(50)]
    assert detect_cliffs(steps(loss, norms)).severity == "ok"
    norms[30] = 50.0
    f = detect_cliffs(steps(loss, norms))
    assert f.severity == "info" and f.evidence["spikes"][0]["step"] == 30
    assert "no loss jump or outsized update" in f.summary


def test_a_spike_with_an_outsized_update_is_a_cliff_and_noise_is_no_jump():
    norms = [1.0] * 50
    # A noisy loss: a rise of 1.6x at the spike is within its own spread, so no jump.
    loss = [1.0 + 0.8 * ((i * 7) % 5) for i in range(50)]
    rows = [
        {schema.LOSS: a, schema.GRAD_NORM: b, schema.UPDATE_RATIO: 1e-3}
        for a, b in zip(loss, norms)
    ]
    rows[30] = {**rows[30], schema.GRAD_NORM: 50.0}
    assert detect_cliffs(with_values(rows)).severity == "info"
    rows[30] = {**rows[30], schema.UPDATE_RATIO: 0.05}
    f = detect_cliffs(with_values(rows))
    assert f.severity == "critical" and "the update it made was outsized" in f.summary


def test_persistent_explosion_without_a_spike_is_critical():
    # Steep from the first step: no spike against a running median, but the loss rises.
    n = 60
    norms = [500.0 * 1.05**i for i in range(n)]
    loss = [1.1 + 0.1 * i for i in range(n)]
    f = detect_cliffs(steps(loss, norms))
    assert f.severity == "critical" and f.summary.startswith("exploding: the loss rose")
    # Updates as large as the parameters themselves, the loss flat: exploding too.
    rows = [{schema.LOSS: 5.0, schema.GRAD_NORM: 1.0, schema.UPDATE_RATIO: 1.8}] * n
    f = detect_cliffs(with_values(rows))
    assert f.severity == "critical" and "1.8 of their norm" in f.summary
    # Hidden-state gradients growing back in time while the loss does not fall.
    flat = steps([2.0] * n, [1.0] * n) + hidden("rnn", [1.2 ** (29 - t) for t in range(30)])
    f = detect_cliffs(flat)
    assert f.severity == "critical" and "grow 1.2x per step back in time" in f.summary
    # A healthy descent with the same hidden growth is not exploding.
    fine = steps([2.0 * 0.97**i for i in range(n)], [1.0] * n)
    fine += hidden("rnn", [1.2 ** (29 - t) for t in range(30)])
    assert detect_cliffs(fine).severity == "ok"


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


def _noise_rows(n, trace, g2, batch, snr, loss):
    return [
        {
            schema.LOSS: loss(i),
            schema.GRAD_NORM: 1.0,
            schema.TRACE_COV: trace,
            schema.GRAD_NORM_SQ_UNBIASED: g2,
            schema.BATCH_SIZE: batch,
            schema.SNR: snr,
        }
        for i in range(n)
    ]


def test_inexact_gradients_is_judged_against_progress():
    stalled = _noise_rows(60, 2000.0, 1.0, 8, 0.02, lambda i: 2.0 - 0.5 * min(i, 20) / 20)
    # Without the actual change of each step, noise cannot be told from a flat region.
    f = detect_inexact_gradients(with_values(stalled))
    assert f.severity == "info" and "was not measured" in f.summary
    # Each step lowers its own batch's loss by 0.1, and the run keeps none of it.
    stalled = [{**r, schema.ACTUAL_CHANGE: -0.1} for r in stalled]
    f = detect_inexact_gradients(with_values(stalled))
    assert f.severity == "warning" and "2e+03" in f.summary and "toward 2000" in f.remedy
    assert "undoes the steps' progress: each step lowers its own batch's loss by 0.1" in f.summary
    # A flat region: the steps gain nothing even on their own batch.
    flat = [{**r, schema.ACTUAL_CHANGE: -1e-7} for r in stalled]
    f = detect_inexact_gradients(with_values(flat))
    assert f.severity == "info" and "not what stalls it" in f.summary
    # The whole training set in each batch: the gradient is exact.
    whole = {schema.TYPE: schema.HEADER, schema.SAMPLES: 8}
    f = detect_inexact_gradients([whole, *with_values(stalled)])
    assert f.severity == "ok" and "the gradient is exact" in f.summary
    # The remedy stays feasible: no batch larger than the training set.
    header = {schema.TYPE: schema.HEADER, schema.SAMPLES: 500}
    f = detect_inexact_gradients([header, *with_values(stalled)])
    assert "toward 500 (the training set has 500 samples)" in f.remedy
    # The same noise at convergence is how a minimum looks through a minibatch.
    converged = _noise_rows(60, 2000.0, -1.0, 8, 0.5, lambda i: 2.0 * 0.9**i)
    f = detect_inexact_gradients(with_values(converged))
    assert f.severity == "ok" and "where the loss has converged" in f.summary
    falling = _noise_rows(60, 2000.0, 1.0, 8, 0.02, lambda i: 2.0 - 0.02 * i)
    assert detect_inexact_gradients(with_values(falling)).severity == "info"
    fine = _noise_rows(60, 100.0, 1.0, 128, 5.0, lambda i: 2.0 - 0.5 * min(i, 20) / 20)
    f = detect_inexact_gradients(with_values(fine))
    assert f.severity == "ok" and "the batch of 128 is above the critical batch size 100" in (
        f.summary
    )
    # Noise above the signal, B < B_simple, yet within 10x: it dominates the direction.
    near = _noise_rows(60, 800.0, 1.0, 128, 0.2, lambda i: 2.0 - 0.5 * min(i, 20) / 20)
    near = [{**r, schema.ACTUAL_CHANGE: -0.1} for r in near]
    assert detect_inexact_gradients(with_values(near)).severity == "warning"
    assert detect_inexact_gradients(with_values([{schema.LOSS: 1.0}])).severity == "info"


def _exact(start, end, exact, own, steps=20, samples=512):
    return {
        schema.TYPE: schema.ANALYSIS,
        schema.NAME: schema.EXACT_STEPS,
        schema.STEPS: steps,
        schema.SAMPLES: samples,
        schema.LOSS_START: start,
        schema.LOSS: end,
        schema.LOSS_EXACT: exact,
        schema.LOSS_MINIBATCH: own,
    }


def test_exact_steps_decide_whether_noise_holds_the_run_up():
    # A run that looks converged through its minibatch losses: the old rules call it ok.
    converged = with_values(_noise_rows(60, 2000.0, -1.0, 8, 0.5, lambda i: 2.0 * 0.9**i))
    assert detect_inexact_gradients(converged).severity == "ok"
    # Exact steps regain 0.3 of the 1.0 the run gained; its own minibatch steps regain 0.05.
    f = detect_inexact_gradients([*converged, _exact(2.0, 1.0, 0.7, [1.0, 0.9])])
    assert f.severity == "warning" and "raise the batch size toward 80" in f.remedy
    assert f.summary.startswith(
        "gradient noise holds the run up: 20 steps from the end on the exact gradient of 512 "
        "samples take the training loss 1 -> 0.7 (30% of all the run gained, 2 -> 1), as many "
        "on the run's own minibatches 1 -> 0.95"
    )
    assert f.evidence["exact_share_of_run_gain"] == pytest.approx(0.3)
    # The minibatch steps do nearly as well (0.25 of 0.3): no charge on the noise.
    f = detect_inexact_gradients([*converged, _exact(2.0, 1.0, 0.7, [0.75, 0.75])])
    assert f.severity == "ok" and "where the loss has converged" in f.summary
    assert "; 20 steps from the end on the exact gradient of 512 samples" in f.summary
    # Under 8% of the run's gain: not held up.
    assert detect_inexact_gradients([*converged, _exact(2.0, 1.0, 0.93, [1.0])]).severity == "ok"
    # A run that ended above where it started, which exact steps bring far down: held up.
    f = detect_inexact_gradients([*converged, _exact(1.0, 1.2, 0.6, [1.15])])
    assert f.severity == "warning" and "(the run itself gained nothing, 1 -> 1.2)" in f.summary
    # A run that gained nothing (a plateau): the share is meaningless, the floor decides.
    flat = _exact(2.0, 1.9999, 1.999, [2.0])
    assert detect_inexact_gradients([*converged, flat]).severity == "ok"
    # Noise that the old rules charge (each step's own-batch gain undone) is cleared where exact
    # steps regain under 2% of the run's gain.
    stalled = _noise_rows(60, 2000.0, 1.0, 8, 0.02, lambda i: 2.0 - 0.5 * min(i, 20) / 20)
    stalled = with_values([{**r, schema.ACTUAL_CHANGE: -0.1} for r in stalled])
    assert detect_inexact_gradients(stalled).severity == "warning"
    f = detect_inexact_gradients([*stalled, _exact(2.0, 1.5, 1.495, [1.5, 1.5])])
    assert f.severity == "ok" and f.summary.startswith(
        "gradient noise dominates (the critical batch size B_simple is 2e+03 against the batch "
        "of 8, signal-to-noise 0.02) without holding the run up: 20 steps"
    )
    # An analysis that could not run leaves the old rules in charge, and says why.
    failed = {**_exact(2.0, 1.5, 1.4, [1.5]), schema.ERROR: "the data is a loader"}
    f = detect_inexact_gradients([*stalled, failed])
    assert f.severity == "warning" and f.evidence["exact_steps_error"] == "the data is a loader"
    # Noise that does not dominate (B above B_simple) is not charged, exact steps or not.
    fine = with_values(_noise_rows(60, 100.0, 1.0, 128, 5.0, lambda i: 2.0 * 0.9**i))
    assert detect_inexact_gradients([*fine, _exact(2.0, 1.0, 0.7, [1.0])]).severity == "ok"


def _larger(start, end, other, batch=8, size=64, steps=60):
    return {
        schema.TYPE: schema.ANALYSIS,
        schema.NAME: schema.LARGER_BATCH,
        schema.STEPS: steps,
        schema.BATCH_SIZE: batch,
        schema.BATCH_LARGER: size,
        schema.LOSS_START: start,
        schema.LOSS: end,
        schema.LOSS_LARGER: other,
    }


def test_the_larger_batch_rerun_decides_where_it_ran():
    converged = with_values(_noise_rows(60, 2000.0, -1.0, 8, 0.5, lambda i: 2.0 * 0.9**i))
    held_by_arms = [*converged, _exact(2.0, 1.0, 0.7, [1.0, 0.9])]
    assert detect_inexact_gradients(held_by_arms).severity == "warning"
    # Batches of 64 reach 0.8 in the same steps: 20% of the run's gain of 1.0.
    f = detect_inexact_gradients([*converged, _larger(2.0, 1.0, 0.8)])
    assert f.severity == "warning"
    assert f.summary.startswith(
        "gradient noise holds the run up: the same 60 steps on batches of 64 from the run's "
        "first parameters end at a training loss of 0.8 against the run's 1 (a further 0.2: "
        "20% of all the run gained, 2 -> 1)"
    )
    assert f.remedy.startswith("raise the batch size to 64 or more (the rerun's)")
    assert f.evidence["larger_batch_share_of_run_gain"] == pytest.approx(0.2)
    # 12% of the gain (6% of the start): the rerun neither charges nor clears; the arms decide,
    # its numbers beside theirs.
    f = detect_inexact_gradients([*held_by_arms, _larger(2.0, 1.0, 0.88)])
    assert f.severity == "warning" and f.summary.startswith(
        "gradient noise holds the run up: the same 60 steps on batches of 64 from the run's "
        "first parameters end at a training loss of 0.88 against the run's 1 (a further 0.12: "
        "12% of all the run gained, 2 -> 1); 20 steps from the end on the exact gradient"
    )
    f = detect_inexact_gradients([*converged, _larger(2.0, 1.0, 0.88)])
    assert f.severity == "ok" and "; the same 60 steps on batches of 64" in f.summary
    # 8% of the gain but 4% of the start: what the noise costs does not matter at this scale,
    # whatever the arms say.
    f = detect_inexact_gradients([*held_by_arms, _larger(2.0, 1.0, 0.92)])
    assert f.severity == "ok" and (
        "at a cost too small for the run's scale (under 5% of its starting loss): the same 60"
        in f.summary
    )
    # Under 2%: cleared.
    f = detect_inexact_gradients([*held_by_arms, _larger(2.0, 1.0, 0.99)])
    assert f.severity == "ok" and "without holding the run up: the same 60 steps" in f.summary
    assert "(a further 0.01: 1% of all" in f.summary
    f = detect_inexact_gradients([*converged, _larger(2.0, 1.0, 1.05)])
    assert f.severity == "ok" and "(no lower: " in f.summary
    # A run that ended above its start, which the rerun brings below it: held up.
    f = detect_inexact_gradients([*converged, _larger(1.0, 1.2, 0.6)])
    assert f.severity == "warning"
    assert "(a further 0.6: the run itself gained nothing, 1 -> 1.2)" in f.summary
    # A run that gained little: half its gain regained is 1% of the start, not material (5%).
    f = detect_inexact_gradients([*converged, _larger(2.0, 1.96, 1.94)])
    assert f.severity == "ok" and "(a further 0.02: 50% of all the run gained" in f.summary
    assert detect_inexact_gradients([*converged, _larger(2.0, 1.8, 1.7)]).severity == "warning"
    # A rerun that could not run leaves the arms in charge, and says why.
    failed = {**_larger(2.0, 1.0, 0.8), schema.ERROR: "the data is a loader"}
    f = detect_inexact_gradients([*held_by_arms, failed])
    assert f.severity == "warning" and f.evidence["larger_batch_error"] == "the data is a loader"
    # Noise that does not dominate is not charged, whatever a rerun says.
    fine = with_values(_noise_rows(60, 100.0, 1.0, 128, 5.0, lambda i: 2.0 * 0.9**i))
    assert detect_inexact_gradients([*fine, _larger(2.0, 1.0, 0.5)]).severity == "ok"


def test_the_rerun_is_asked_for_where_the_noise_dominates():
    from optiscope.diagnosis.detectors import needs_larger_batch

    dominated = with_values(_noise_rows(60, 2000.0, 1.0, 8, 0.02, lambda i: 2.0))
    assert needs_larger_batch(dominated)
    assert needs_larger_batch(with_values(_noise_rows(60, 10.0, -1.0, 8, 0.5, lambda i: 1.0)))
    assert not needs_larger_batch(with_values(_noise_rows(60, 100.0, 1.0, 128, 5, lambda i: 1)))
    header = {schema.TYPE: schema.HEADER, schema.SAMPLES: 8}
    assert not needs_larger_batch([header, *dominated])  # each step takes the training set
    assert not needs_larger_batch(with_values([{schema.LOSS: 1.0}] * 60))


def test_the_header_reaches_the_detectors_from_a_folder_and_from_a_monitor(tmp_path):
    # A full-batch run (8 samples, batches of 8): the gradient is exact, which only the header's
    # training-set size can tell; diagnose on the folder read it, as on the records in memory.
    rows = with_values(_noise_rows(60, 2000.0, 1.0, 8, 0.02, lambda i: 2.0 - 0.5 * min(i, 20) / 20))
    with RecordWriter(tmp_path / "records.jsonl", {schema.SAMPLES: 8}) as w:
        for r in rows:
            w.write(r)
    for run in (tmp_path, read_records(tmp_path)):
        f = {f.challenge: f for f in diagnose(run)}["inexact-gradients"]
        assert f.severity == "ok" and f.summary.startswith("each step takes the whole training")
    import torch

    from optiscope import Monitor

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(
        model, opt, header={schema.SAMPLES: 8}, every={"noise": 1}, loss_fn=torch.nn.MSELoss()
    )
    x, y = torch.randn(8, 2, generator=torch.Generator().manual_seed(0)), torch.zeros(8, 1)
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        monitor.step(loss, batch=(x, y))
        opt.step()
    f = {f.challenge: f for f in monitor.close()}["inexact-gradients"]
    assert f.evidence["training_samples"] == 8
    assert f.summary.startswith("each step takes the whole training set (8 samples)")


def test_ill_conditioning_is_judged_on_the_optimizers_step():
    # The book's g^T H g growth alone is evidence: a sharpening run that trains well shows it.
    rows = [
        {schema.GTG: 1.0, schema.GTHG: 0.5 * 1.3**i, schema.PREDICTED_CHANGE: -0.1}
        for i in range(40)
    ]
    f = detect_ill_conditioning(with_values(rows))
    assert f.severity == "ok" and f.evidence["gthg_late"] > 10 * f.evidence["gthg_early"]
    calm = [
        {
            schema.GTG: 1.0 / (i + 1),
            schema.GTHG: 0.5 / (i + 1),
            schema.PREDICTED_CHANGE: -0.1,
            schema.ACTUAL_CHANGE: -0.09,
            schema.SHARPNESS: 10.0,
            schema.STABILITY_THRESHOLD: 20.0,
        }
        for i in range(40)
    ]
    assert detect_ill_conditioning(with_values(calm)).severity == "ok"
    # One measurement at the threshold is not enough; a third of them is.
    once = [{**r, schema.SHARPNESS: 25.0} if i == 0 else r for i, r in enumerate(calm)]
    assert detect_ill_conditioning(with_values(once)).severity == "ok"
    # At the edge of stability with the loss still falling: how training often runs, no verdict.
    edge = [{**r, schema.SHARPNESS: 25.0, schema.LOSS: 2.0 * 0.97**i} for i, r in enumerate(calm)]
    f = detect_ill_conditioning(with_values(edge))
    assert f.severity == "ok" and f.evidence["edge_of_stability"] is True
    assert "the edge of stability" in f.summary
    # The same sharpness where the loss stalls far from its end: the step is too long.
    edge = [{**r, schema.LOSS: 2.0 - 0.5 * min(i, 10) / 10} for i, r in enumerate(edge)]
    f = detect_ill_conditioning(with_values(edge))
    assert f.severity == "warning" and "in 40 of 40 measurements" in f.summary
    assert "(first at step 0: 25 >= 20)" in f.summary
    assert "scale the learning rate by 0.72" in f.remedy
    steep = [
        {**r, schema.CURVATURE_ALONG_GRADIENT: 30.0, schema.GRADIENT_THRESHOLD: 20.0} for r in calm
    ]
    f = detect_ill_conditioning(with_values(steep))
    assert f.severity == "warning" and "g^T H g / g^T g, reached the stability" in f.summary
    assert "scale the learning rate by 0.6 " in f.remedy
    # The optimizer's own steps raising their batch's loss (any optimizer: d, not -lr g).
    rising = [
        {**r, schema.PREDICTED_CHANGE: 0.2, schema.ACTUAL_CHANGE: 0.1} if i % 3 == 0 else r
        for i, r in enumerate(calm)
    ]
    f = detect_ill_conditioning(with_values(rising))
    assert f.severity == "warning" and "in 14 of 40 measured steps the optimizer's own" in (
        f.summary
    )
    # Where the curvature overturns a first-order decrease (g^T d < 0), it is at fault ...
    overturned = [
        {**r, schema.UPDATE_SLOPE: -0.1, schema.UPDATE_CURVATURE: 0.6} if i % 3 == 0 else r
        for i, r in enumerate(rising)
    ]
    f = detect_ill_conditioning(with_values(overturned))
    assert f.severity == "warning" and f.evidence["steps_raising_loss"] == 14
    assert f.evidence["steps_uphill_first_order"] == 0
    # ... not where the update climbs its batch's loss from the start (momentum or Adam
    # carrying other batches' gradients): the same predicted rise, from g^T d > 0.
    uphill = [
        {**r, schema.UPDATE_SLOPE: 0.15, schema.UPDATE_CURVATURE: 0.1} if i % 3 == 0 else r
        for i, r in enumerate(rising)
    ]
    f = detect_ill_conditioning(with_values(uphill))
    assert f.severity == "ok" and f.evidence["steps_raising_loss"] == 0
    assert f.evidence["steps_uphill_first_order"] == 14


def test_plateaus_are_found_anywhere_in_the_run():
    n = 200
    # A plateau in the first half at 2.0, an escape at step 80, then convergence.
    loss = [2.0 + 0.01 * ((i * 7) % 3) if i < 80 else 2.0 * 0.95 ** (i - 80) for i in range(n)]
    gn = [1e-3 if i < 80 else 1.0 for i in range(n)]
    rows = [{schema.LOSS: a, schema.GRAD_NORM: b} for a, b in zip(loss, gn)]
    f = detect_saddle_points(with_values(rows))
    assert f.severity == "warning" and "for 40% of the run (steps 0-80" in f.summary
    (episode,) = f.evidence["plateaus"]
    assert episode["first_step"] == 0 and 70 <= episode["last_step"] <= 82
    assert 80 <= episode["escape_step"] <= 90 and episode["loss_level"] == pytest.approx(
        2.01, abs=0.01
    )
    assert "curvature not measured there" in f.summary
    # Negative curvature measured on it: a saddle.
    rows[40] = {**rows[40], schema.LAMBDA_MIN: -0.5, schema.SHARPNESS: 2.0}
    f = detect_saddle_points(with_values(rows))
    assert "negative curvature (lambda_min -0.5): a saddle" in f.summary
    # A run that converges and stays flat has no plateau: flat at its end is convergence.
    descending = [{schema.LOSS: 2.0 * 0.97**i, schema.GRAD_NORM: 1.0} for i in range(n)]
    assert detect_saddle_points(with_values(descending)).severity == "ok"
    assert detect_local_minima(with_values(descending)).severity == "ok"
    # Stuck at the start the whole run, with dead layers: a flat region.
    stuck = [{schema.LOSS: 2.3026, schema.GRAD_NORM: 1e-4} for _ in range(60)]
    layers = [
        {
            schema.TYPE: schema.LAYER_GRADIENTS,
            schema.STEP: i,
            schema.NAMES: ["0", "2", "4"],
            schema.NORMS: [0.0, 0.0, 1e-4],
        }
        for i in range(60)
    ]
    f = detect_saddle_points(with_values(stuck) + layers)
    assert f.severity == "warning" and "never escaped" in f.summary
    assert "2 layers get no gradient at all" in f.summary
    assert f.evidence["layers_without_gradient"] == ["0", "2"]


def _layers(norms, kinds=None, count=10):
    names = [f"layer{i}" for i in range(len(norms))]
    first = {schema.NAMES: names, schema.KINDS: kinds or ["Linear"] * len(norms)}
    return [
        {
            schema.TYPE: schema.LAYER_GRADIENTS,
            schema.STEP: i,
            **(first if i == 0 else {}),
            schema.NORMS: norms,
        }
        for i in range(count)
    ]


def test_depth_vanishing_and_exploding_across_layers():
    vanishing = _layers([10.0 ** (-(19 - i)) for i in range(20)])
    # Adam's updates can stay balanced where the gradient vanishes: evidence beside the verdict.
    updates = [
        {**r, schema.TYPE: schema.LAYER_UPDATES, schema.NORMS: [1e-3] * 20} for r in vanishing
    ]
    f = detect_long_term_dependencies(vanishing + updates)
    assert f.evidence["updates_first_over_last"] == pytest.approx(1.0)
    f = detect_long_term_dependencies(vanishing)
    assert f.evidence["updates_first_over_last"] is None
    assert f.severity == "critical" and "vanishes across depth" in f.summary
    assert f.evidence["layers"] == 20 and f.evidence["first_over_last"] < 1e-12
    mild = _layers([10.0 ** (-(9 - i) / 2) for i in range(10)])  # first/last ~ 1e-4
    assert detect_long_term_dependencies(mild).severity == "warning"
    exploding = _layers([10.0 ** ((9 - i) / 2) for i in range(10)])
    f = detect_long_term_dependencies(exploding)
    assert f.severity == "warning" and "explodes across depth" in f.summary
    healthy = _layers([1.0, 0.5, 2.0, 1.0, 0.7, 1.5, 1.0])
    assert detect_long_term_dependencies(healthy).severity == "ok"
    # Normalization layers and layers without any gradient say nothing about depth.
    mixed = _layers(
        [1.0, 1e-9, 1.0, 0.0, 1.0, 1e-9, 1.0, 1.0],
        kinds=[
            "Linear",
            "LayerNorm",
            "Linear",
            "Linear",
            "Linear",
            "BatchNorm1d",
            "Linear",
            "Linear",
        ],
    )
    f = detect_long_term_dependencies(mixed)
    assert f.severity == "ok" and f.evidence["layers"] == 6
    # Three layers are not deep: not judged.
    assert detect_long_term_dependencies(_layers([1e-9, 1.0, 1.0])).severity == "info"


def test_depth_steady_growth_through_a_deep_stack_is_explosion():
    # x1.25 per layer over 16 layers: 35x, short of the thousandfold, but the same factor from
    # layer to layer (the chaotic regime of a tanh net with a large gain) compounds with depth.
    steady = _layers([1.25 ** (16 - i) for i in range(17)])
    f = detect_long_term_dependencies(steady)
    assert f.severity == "warning" and "steadily from layer to layer" in f.summary
    assert f.evidence["steady_per_layer"] == pytest.approx(1.25)
    assert f.evidence["steady_r2"] == pytest.approx(1.0)
    shrinks = _layers([0.8 ** (16 - i) for i in range(17)])
    assert "vanishes across depth" in detect_long_term_dependencies(shrinks).summary
    # The same first/last ratio from one unlike layer (an embedding's large gradient) is
    # scatter, not a trend through the stack.
    one_layer = _layers([35.0, 1.0, 1.3, 0.8, 1.1, 0.9, 1.2, 1.0, 0.7, 1.1, 1.0, 0.9])
    f = detect_long_term_dependencies(one_layer)
    assert f.severity == "ok" and "steady_r2" not in f.evidence
    # A steady trend that compounds to under tenfold is within what healthy nets show.
    mild = _layers([1.1 ** (16 - i) for i in range(17)])
    assert detect_long_term_dependencies(mild).severity == "ok"
    # Below eight layers a trend is not read: a shallow net's few layers differ by design.
    short = _layers([2.0 ** (6 - i) for i in range(7)])
    assert detect_long_term_dependencies(short).severity == "ok"


def test_long_term_dependencies_reads_every_measurement_and_the_cell():
    # Growth of 1.2x per step back in time over 30 steps (237x) is explosion.
    grows = hidden("rnn", [1.2 ** (29 - t) for t in range(30)])
    f = detect_long_term_dependencies(grows)
    assert f.severity == "warning" and "explodes back in time" in f.summary
    # The median over measurements, not the last one alone.
    runs = hidden("rnn", [0.5 ** (29 - t) for t in range(30)], at=0)
    runs += hidden("rnn", [0.5 ** (29 - t) for t in range(30)], at=5)
    runs += hidden("rnn", [1.0] * 30, at=10)
    f = detect_long_term_dependencies(runs)
    assert f.evidence["rate_per_step"] == pytest.approx(0.5) and f.evidence["measurements"] == 3
    # A gated cell is not told to use a gated cell.
    lstm = hidden("lstm", [0.5 ** (29 - t) for t in range(30)])
    lstm[0][schema.CELL] = "LSTM"
    f = detect_long_term_dependencies(lstm)
    assert "nn.LSTM" not in f.remedy and "the cell is gated already" in f.remedy


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


def _restarts(own, losses):
    return {
        schema.TYPE: schema.ANALYSIS,
        schema.NAME: schema.RESTARTS,
        schema.SEEDS: list(range(1, len(losses) + 1)),
        schema.LOSSES: losses,
        schema.LOSS: own,
        schema.BUDGET: len(losses),
    }


def test_local_minima_judged_against_restarts():
    stalled = with_values(
        [{schema.LOSS: 0.8 - 0.5 * min(i, 20) / 20, schema.GRAD_NORM: 0.9**i} for i in range(60)]
    )
    assert needs_restarts(stalled)
    f = detect_local_minima([*stalled, _restarts(0.3, [0.01, 0.02, 0.3])])
    assert f.severity == "warning" and "a poor local minimum" in f.summary
    assert "2 of 3 restarts from other seeds reached lower (best 0.01)" in f.summary
    f = detect_local_minima([*stalled, _restarts(0.3, [0.3, 0.31, 0.29])])
    assert f.severity == "info" and "equivalent minima" in f.summary
    f = detect_local_minima(stalled)
    assert f.severity == "info" and "which were not run" in f.summary
    # A saddle at the end (significant negative curvature) or a falling loss needs none.
    saddle = {
        schema.TYPE: schema.ANALYSIS,
        schema.NAME: schema.FINAL_POINT,
        schema.LAMBDA_MIN: -0.5,
        schema.LAMBDA_MAX: 2.0,
    }
    assert not needs_restarts([*stalled, saddle])
    falling = with_values([{schema.LOSS: 2.0 * 0.97**i, schema.GRAD_NORM: 1.0} for i in range(60)])
    assert not needs_restarts(falling)
    rising = with_values([{schema.LOSS: 1.0 + 0.1 * i, schema.GRAD_NORM: 1.0} for i in range(60)])
    f = detect_local_minima(rising)
    assert f.severity == "ok" and "the loss rose" in f.summary


def test_a_run_settling_slowly_into_a_minimum_is_judged_like_a_stall():
    # Still falling 5% in its last fifth, but with the gradient 20x below where it started.
    settling = with_values(
        [
            {schema.LOSS: 0.6 + 2.0 * 0.9**i + 0.2 * (1 - i / 100), schema.GRAD_NORM: g}
            for i, g in enumerate([1.0] * 20 + [0.05] * 80)
        ]
    )
    assert needs_restarts(settling)
    # The same fall at a gradient that has not shrunk is progress, not a minimum.
    steady = with_values(
        [
            {schema.LOSS: 0.6 + 2.0 * 0.9**i + 0.2 * (1 - i / 100), schema.GRAD_NORM: 1.0}
            for i in range(100)
        ]
    )
    assert not needs_restarts(steady)
    # Restarts a tenth below the run's own loss, but by less than a twentieth of what the run
    # gained (2.0 -> 0.6, its smoothed start): the seeds' spread about one minimum.
    f = detect_local_minima([*settling, _restarts(0.6, [0.535, 0.535, 0.6])])
    assert f.severity == "info" and f.evidence["margin"] == pytest.approx(0.07, abs=0.005)
    f = detect_local_minima([*settling, _restarts(0.6, [0.2, 0.3, 0.6])])
    assert f.severity == "warning" and f.evidence["restarts_lower"] == 2


def test_a_barrier_is_judged_against_what_training_gained():
    def interp(barrier):
        return [
            {
                schema.TYPE: schema.ANALYSIS,
                schema.NAME: schema.INTERPOLATION,
                schema.BARRIER: barrier,
                schema.PATH_LENGTH: 3.0,
                schema.DISTANCE: 2.0,
                schema.LOSSES: [2.0, 2.0 + barrier, 1.0],
            }
        ]

    # Training gained 1.0: a bump of 0.05 is the path's texture, one of 0.2 a ridge crossed.
    assert detect_local_global_mismatch(interp(0.05)).severity == "ok"
    f = detect_local_global_mismatch(interp(0.2))
    assert f.severity == "warning" and f.evidence["loss_gained"] == 1.0


def test_steps_bouncing_on_the_floor_of_a_converged_run_are_not_ill_conditioning():
    rows = [
        {
            schema.LOSS: 2.0 * 0.9**i,
            schema.GRAD_NORM: 1.0,
            schema.GTG: 1.0,
            schema.GTHG: 0.5,
            schema.PREDICTED_CHANGE: 0.01 if i > 40 and i % 2 else -0.1,
            schema.ACTUAL_CHANGE: 0.01 if i > 40 and i % 2 else -0.1,
        }
        for i in range(80)
    ]
    # Every second step rises, but only once the loss is 99% of the way down.
    assert detect_ill_conditioning(with_values(rows)).severity == "ok"
    early = [
        {**r, schema.PREDICTED_CHANGE: 0.01, schema.ACTUAL_CHANGE: 0.01} if i < 30 and i % 2 else r
        for i, r in enumerate(rows)
    ]
    assert detect_ill_conditioning(with_values(early)).severity == "warning"


def test_a_plateau_on_a_noisy_minibatch_loss_is_still_a_plateau():
    import random

    rng = random.Random(0)
    n = 300
    # Flat at 1.15 (+-8% minibatch noise) for 90 steps, then a descent with a growing gradient.
    loss = [
        1.15 + rng.uniform(-0.09, 0.09) if i < 90 else 1.15 * 0.99 ** (i - 90) for i in range(n)
    ]
    gn = [0.25 if i < 90 else 2.0 for i in range(n)]
    f = detect_saddle_points(
        with_values([{schema.LOSS: a, schema.GRAD_NORM: b} for a, b in zip(loss, gn)])
    )
    episode = f.evidence["plateaus"][0]
    assert f.severity == "warning" and episode["first_step"] < 10 and episode["last_step"] >= 70
    # The same noise on a steady descent is no plateau.
    falling = [2.0 * 0.99**i + rng.uniform(-0.09, 0.09) for i in range(n)]
    rows = [{schema.LOSS: a, schema.GRAD_NORM: 1.0} for a in falling]
    assert detect_saddle_points(with_values(rows)).severity == "ok"


def test_a_plateau_escaped_on_a_slow_start_is_judged_by_the_steepest_descent_after_it():
    n = 300
    # Flat at 1.1 with gradient 0.35 for 90 steps; the loss then creeps down for 40 steps at a
    # gradient 0.6 before the steep descent (gradient 2): the plateau's gradient is small
    # against the descent's peak, though not against the creep just after the plateau.
    loss = [
        1.1 if i < 90 else 1.1 - 0.004 * (i - 90) if i < 130 else 0.94 * 0.97 ** (i - 130)
        for i in range(n)
    ]
    gn = [0.35 if i < 90 else 0.6 if i < 130 else 2.0 for i in range(n)]
    f = detect_saddle_points(
        with_values([{schema.LOSS: a, schema.GRAD_NORM: b} for a, b in zip(loss, gn)])
    )
    assert f.severity == "warning" and f.evidence["plateaus"][0]["first_step"] == 0
    assert f.evidence["plateaus"][0]["grad_norm_descent"] == pytest.approx(2.0)
    # A slow stretch at a steady gradient is not flat: no growth as the loss moves on.
    flat_gradient = [1.0] * n
    f = detect_saddle_points(
        with_values([{schema.LOSS: a, schema.GRAD_NORM: b} for a, b in zip(loss, flat_gradient)])
    )
    assert f.severity == "ok"


def test_a_brief_plateau_escaped_by_the_run_is_reported_not_alarmed():
    n = 300
    # Flat for the first 30 steps (a tenth of the run), then a descent with a growing gradient.
    loss = [2.3 if i < 30 else 2.3 * 0.98 ** (i - 30) for i in range(n)]
    gn = [0.1 if i < 30 else 1.0 for i in range(n)]
    f = detect_saddle_points(
        with_values([{schema.LOSS: a, schema.GRAD_NORM: b} for a, b in zip(loss, gn)])
    )
    assert f.severity == "info" and "brief and escaped by the run itself" in f.summary
    assert f.evidence["plateaus"][0]["first_step"] == 0


def test_the_level_of_a_one_sample_loss_is_its_mean_not_its_median():
    from optiscope.diagnosis.episodes import mean_progress, progress

    # One sample per step: nine in ten fit (loss 0.01), one in ten does not (loss 5): the
    # training loss is their mean, 0.509, while the running median sits at 0.01.
    loss = [2.0] * 20 + [5.0 if i % 10 == 0 else 0.01 for i in range(380)]
    assert progress(loss).end == pytest.approx(0.01)
    level = mean_progress(loss)
    assert level.end == pytest.approx(0.509, abs=0.01) and level.start == pytest.approx(
        (20 * 2.0 + 2 * 5.0 + 18 * 0.01) / 40
    )
    assert not level.converged  # 0.51 is 41% of the first tenth's mean, not 15%
