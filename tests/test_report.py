"""The HTML report: sections, figures, missing data, escaping, decimation and the CLI."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optiscope.cli import main
from optiscope.diagnosis import CHALLENGES, Finding, Severity
from optiscope.records import schema
from optiscope.records.log import (
    Records,
    RecordsError,
    RecordWriter,
    last_step,
    read_findings,
    read_records,
)
from optiscope.report.figures import MAX_POINTS, decimate
from optiscope.report.page import ReportError, render_report
from optiscope.runner import report as runner_report
from optiscope.runner.report import render_run, write_report

HEADER = {
    "experiment": "synthetic",
    "description": "records of every kind with known values",
    "seed": 3,
    "steps": 60,
}
EVIL = "<script>alert(1)</script>"


def step_values(step: int, full: bool = True) -> dict:
    values = {
        schema.LOSS: 2.0 * math.exp(-step / 10) + 0.01,
        schema.GRAD_NORM: 1.0 / (1 + step),
    }
    if full:
        values.update(
            {
                schema.GTG: 0.5 / (1 + step),
                schema.GTHG: 0.1 * (1 + step),
                schema.SHARPNESS: 1.0 + 0.1 * step,
                schema.STABILITY_THRESHOLD: 4.0,
                schema.PREDICTED_CHANGE: -0.01,
                schema.ACTUAL_CHANGE: -0.009,
                schema.LAMBDA_MIN: -0.1,
                schema.UPDATE_RATIO: 0.01,
                schema.GRAD_NORM_SQ_UNBIASED: 0.2,
                schema.TRACE_COV: 20.0,
                schema.B_SIMPLE: 100.0,
                schema.BATCH_SIZE: 32,
            }
        )
    return values


def step_record(step, values: dict) -> dict:
    return {schema.TYPE: schema.STEP_RECORD, schema.STEP: step, schema.VALUES: values}


def hidden_record(step, module, norms) -> dict:
    return {
        schema.TYPE: schema.HIDDEN_GRADIENTS,
        schema.STEP: step,
        schema.MODULE: module,
        schema.NORMS: norms,
    }


def analysis_record(name: str, **fields) -> dict:
    return {schema.TYPE: schema.ANALYSIS, schema.NAME: name, **fields}


def write_run(
    folder: Path,
    *,
    steps: int = 60,
    full: bool = True,
    header: dict | None = None,
) -> Path:
    with RecordWriter(folder / "records.jsonl", header or HEADER) as w:
        for s in range(steps):
            w.write(step_record(s, step_values(s, full)))
            if full and s % 20 == 0:
                w.write(hidden_record(s, "rnn", [0.9**t for t in range(30, 0, -1)]))
        if full:
            grid = np.linspace(-1, 5, 50)
            density = np.exp(-((grid - 2) ** 2)) + 0.1 * np.exp(-((grid + 0.5) ** 2) * 10)
            w.write(
                analysis_record(
                    schema.SPECTRAL_DENSITY,
                    **{
                        schema.GRID: grid.tolist(),
                        schema.DENSITY: density.tolist(),
                        schema.SIGMA: 0.05,
                        schema.FRACTION_NEGATIVE: 0.04,
                    },
                )
            )
            w.write(
                analysis_record(
                    schema.FINAL_POINT,
                    **{
                        schema.KIND: "saddle point",
                        schema.LAMBDA_MAX: 4.5,
                        schema.LAMBDA_MIN: -0.5,
                        schema.INDEX: 0.04,
                    },
                )
            )
            alphas = np.linspace(0, 1, 11)
            w.write(
                analysis_record(
                    schema.INTERPOLATION,
                    **{
                        schema.ALPHAS: alphas.tolist(),
                        schema.LOSSES: (2 - 1.9 * alphas + np.sin(alphas * math.pi)).tolist(),
                        schema.BARRIER: 0.55,
                        schema.DISTANCE: 3.0,
                        schema.PATH_LENGTH: 9.0,
                    },
                )
            )
            xs = np.linspace(-2, 2, 9)
            w.write(
                analysis_record(
                    schema.TRAJECTORY,
                    **{
                        schema.COORDS: [[2 - 0.2 * i, 0.1 * i] for i in range(10)],
                        schema.EXPLAINED: [0.9, 0.08],
                    },
                )
            )
            w.write(
                analysis_record(
                    schema.SURFACE,
                    **{
                        schema.XS: xs.tolist(),
                        schema.YS: xs.tolist(),
                        schema.LOSSES: [[0.1 + x * x + 2 * y * y for x in xs] for y in xs],
                        "center_loss": 0.1,
                        schema.EXPLAINED: [0.9, 0.08],
                    },
                )
            )
    return folder


def sections(text: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', text)


def test_a_full_run_has_every_section_and_figure(tmp_path):
    text = write_report(write_run(tmp_path)).read_text()
    assert sections(text) == ["verdicts", "overview", *CHALLENGES]
    for challenge in CHALLENGES:  # the summary table links to each section
        assert f'<a href="#{challenge}">' in text
    # overview 1, ill-conditioning 3, saddle 2, cliffs 2, long-term 1, inexact 2, local-global 2
    assert text.count("<svg") == 13
    assert "Not recorded" not in text and "could not be drawn" not in text
    assert "findings.json was missing: the verdicts were recomputed" in text
    assert "synthetic" in text and "records of every kind" in text


def test_only_step_records_say_what_was_not_recorded(tmp_path):
    text = render_run(write_run(tmp_path, full=False))
    assert sections(text) == ["verdicts", "overview", *CHALLENGES]
    assert text.count("<svg") == 2  # the overview and the gradient-norm spikes
    for missing in (
        "Not recorded in this run: &quot;gtg&quot;, &quot;gthg&quot; in the step records.",
        "Not recorded in this run: the &quot;spectral_density&quot; analysis record",
        "Not recorded in this run: the &quot;final_point&quot; analysis record",
        "Not recorded in this run: hidden-state gradients",
        "Not recorded in this run: the &quot;interpolation&quot; analysis record",
        "Not recorded in this run: the &quot;surface&quot; analysis record",
        "Not recorded in this run: &quot;b_simple&quot;",
    ):
        assert missing in text
    assert "could not be drawn" not in text


def test_every_user_string_is_escaped(tmp_path):
    header = {**HEADER, "experiment": EVIL, "description": EVIL, "config": {EVIL: EVIL}}
    write_run(tmp_path, header=header, full=False)
    with open(tmp_path / "records.jsonl", "a") as f:
        f.write(json.dumps(hidden_record(1, EVIL, [1.0, 0.1])) + "\n")
    finding = {
        schema.CHALLENGE: "cliffs",
        schema.SEVERITY: EVIL,
        schema.SUMMARY: EVIL,
        schema.REMEDY: EVIL,
    }
    finding[schema.EVIDENCE] = {EVIL: EVIL, "n": [EVIL]}
    # The findings of this very run (its id and last step), so the report renders them.
    log = read_records(tmp_path)
    payload = {
        schema.EXPERIMENT: EVIL,
        schema.RUN_ID: log.header[schema.RUN_ID],
        schema.LAST_STEP: last_step(log.records),
        schema.FINDINGS: [finding],
    }
    (tmp_path / "findings.json").write_text(json.dumps(payload))
    text = write_report(tmp_path).read_text()
    assert "<script" not in text.lower()
    assert "alert(1)" in text
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8
    assert sections(text) == ["verdicts", "overview", "cliffs", *CHALLENGES[:3], *CHALLENGES[4:]]


def test_a_truncated_records_file_is_reported(tmp_path):
    write_run(tmp_path, steps=30, full=False)
    with open(tmp_path / "records.jsonl", "a") as f:
        f.write('{"type": "step", "step": 30, "val')
    text = render_run(tmp_path)
    assert "the run was cut short" in text
    assert sections(text) == ["verdicts", "overview", *CHALLENGES]


def test_nonfinite_values_and_broken_records_do_not_crash(tmp_path):
    with RecordWriter(tmp_path / "records.jsonl", HEADER) as w:
        for s in range(20):
            v = step_values(s)
            if s % 3 == 0:
                v = {k: (math.nan if i % 2 else math.inf) for i, k in enumerate(v)}
            w.write(step_record(s, v))
        w.write({schema.TYPE: schema.STEP_RECORD, schema.VALUES: {schema.LOSS: 1.0}})  # no step
        w.write(hidden_record(0, "m", []))
        w.write(hidden_record(1, "m", [0.0, math.nan]))
        w.write(
            analysis_record(schema.SPECTRAL_DENSITY, **{schema.GRID: [1.0], schema.DENSITY: []})
        )
        w.write(
            analysis_record(schema.INTERPOLATION, **{schema.ALPHAS: [0, 1], schema.LOSSES: [1]})
        )
        w.write(
            analysis_record(
                schema.SURFACE, **{schema.XS: [0, 1], schema.YS: [0, 1], schema.LOSSES: 3}
            )
        )
        w.write(analysis_record(schema.TRAJECTORY, **{schema.ERROR: "too few snapshots"}))
        w.write(analysis_record(schema.FINAL_POINT, **{schema.LAMBDA_MIN: math.nan}))
    (tmp_path / "findings.json").write_text("{ not json")
    text = render_run(tmp_path)
    assert sections(text) == ["verdicts", "overview", *CHALLENGES]
    assert "findings.json was unreadable: the verdicts were recomputed" in text
    assert "could not be drawn" not in text
    assert "Not recorded in this run: a finite Hessian spectral density" in text
    assert "Not recorded in this run: the trajectory&#x27;s plane (too few snapshots)" in text


def test_decimation_keeps_the_extremes_and_bounds_the_file(tmp_path):
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 50)
    y[12_345] = 99.0
    y[777] = math.nan
    dx, dy = decimate(x, y)
    assert len(dx) <= MAX_POINTS and np.all(np.diff(dx) > 0)
    assert dy.max() == 99.0 and dy.min() == y[np.isfinite(y)].min()

    # 20,000 steps of a dozen quantities: each line is thinned to MAX_POINTS points.
    size = write_report(write_run(tmp_path, steps=20_000)).stat().st_size
    assert size < 1_000_000, size


def test_without_matplotlib_the_report_keeps_its_text(tmp_path, monkeypatch):
    from optiscope.report import plot as _plot

    def unavailable(*args, **kwargs):
        raise _plot.PlotUnavailable("no matplotlib")

    monkeypatch.setattr(_plot, "_figure", unavailable)
    text = render_run(write_run(tmp_path))
    assert "<svg" not in text
    assert "matplotlib is not installed, so the figures are left out" in text
    assert sections(text) == ["verdicts", "overview", *CHALLENGES]


def test_importing_the_report_does_not_load_matplotlib():
    code = "import sys, optiscope, optiscope.report.page; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    from optiscope.runner.run import run_experiment
    from optiscope.training.loading import load_experiment

    out = tmp_path_factory.mktemp("logistic")
    run_experiment(load_experiment("logistic-control", seed=0), out)  # about 3 s
    return out


def test_a_real_run(real_run):
    text = write_report(real_run).read_text()
    assert sections(text) == ["verdicts", "overview", *CHALLENGES]
    assert text.count("<svg") == 11  # all but the RNN heat map and the lambda_min trace
    assert "logistic-control" in text
    for forbidden in ("http://", "https://", "<script", "<link", "<img", "@import"):
        if forbidden.startswith("http"):  # only the SVG namespaces may name a URL
            urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
            assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
        else:
            assert forbidden not in text


def test_cli_writes_the_report(tmp_path, capsys):
    real_run = write_run(tmp_path / "run", full=False)
    assert main(["report", str(real_run)]) == 0
    assert (real_run / "report.html").is_file()
    assert f"report written to {real_run / 'report.html'}" in capsys.readouterr().out
    out = tmp_path / "sub" / "r.html"
    assert main(["report", str(real_run), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_cli_on_a_missing_folder_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["report", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"optiscope report: error: expected a run folder holding records.jsonl, but "
        f"'{missing}' does not exist. Pass the folder written by `optiscope diagnose` "
        "(default runs/EXPERIMENT)\n"
    )
    with pytest.raises(ReportError, match=r"expected '.*records.jsonl', but the folder has no"):
        write_report(tmp_path)


def _finding(challenge: str, severity: str, summary: str, **more) -> dict:
    return {schema.CHALLENGE: challenge, schema.SEVERITY: severity, schema.SUMMARY: summary, **more}


def test_render_report_renders_what_it_is_given_and_reads_nothing(tmp_path):
    records = Records({schema.TYPE: schema.HEADER}, [step_record(0, step_values(0, False))])
    findings = [
        _finding("cliffs", "warning", "a spike"),
        _finding("local-minima", "error", "the detector failed: TypeError: boom"),
        _finding("theoretical-limits", "info", "NP-complete", **{schema.MEASURED: False}),
    ]
    text = render_report(records, findings, note="a note of the caller", name_hint="my-run")
    assert "<h1>optiscope report: my-run</h1>" in text
    assert '<p class="note">a note of the caller</p>' in text
    # The given findings only: nothing recomputed for the others.
    assert text.count("no verdict recorded") == len(CHALLENGES) - 3
    assert ">warning</span>" in text and "a spike" in text
    # A failed detector shows as an error, in its own colour, with what that means.
    assert '<span class="sev" style="background:#6a1b9a">error</span>' in text
    assert "No verdict: the detector failed on these records" in text
    # The theoretical limits read nothing from the run: a statement, not an "info" verdict.
    assert '<span class="sev" style="background:#546e7a">statement</span>' in text
    assert '<p class="summary statement">NP-complete</p>' in text
    assert ">info</span>" not in text
    assert list(tmp_path.iterdir()) == []


def test_the_report_of_a_diagnosis_shows_the_statement_and_an_error(tmp_path, monkeypatch):
    from optiscope.diagnosis import DETECTORS

    def broken(records):
        raise TypeError("boom")

    monkeypatch.setitem(DETECTORS, "cliffs", broken)
    write_run(tmp_path, full=False)
    text = render_run(tmp_path)
    assert "the detector failed: TypeError: boom" in text
    assert text.count(">statement</span>") == 2  # the verdict table and the section
    assert text.count(">error</span>") == 2


def test_a_report_that_cannot_save_the_findings_says_why(tmp_path, monkeypatch):
    def refuse(folder, findings, experiment, **identity):
        raise RecordsError("cannot write") from PermissionError(13, "Permission denied")

    monkeypatch.setattr(runner_report, "write_findings", refuse)
    text = render_run(write_run(tmp_path, full=False), save_findings=True)
    assert (
        "findings.json was missing: the verdicts were recomputed from the records (they could "
        "not be saved: Permission denied). The run never closed its Monitor" in text
    )
    assert not (tmp_path / "findings.json").exists()


def test_saved_findings_are_the_ones_rendered(tmp_path):
    write_run(tmp_path, full=False)
    first = render_run(tmp_path, save_findings=True)
    assert f"and written to {tmp_path / 'findings.json'}." in first
    payload = json.loads((tmp_path / "findings.json").read_text())
    assert payload[schema.EXPERIMENT] == HEADER["experiment"]
    assert [f[schema.CHALLENGE] for f in payload[schema.FINDINGS]] == list(CHALLENGES)
    # Read back, they are what a second report renders, and it says nothing of them.
    assert [f[schema.CHALLENGE] for f in read_findings(tmp_path)] == list(CHALLENGES)
    assert "findings.json was" not in render_run(tmp_path)
    again = render_report(read_records(tmp_path), read_findings(tmp_path), name_hint="x")
    assert sections(again) == ["verdicts", "overview", *CHALLENGES]


def test_the_terminal_shows_an_error_and_a_statement(capsys):
    from optiscope.cli import _term

    findings = [
        Finding("cliffs", Severity.CRITICAL, "a cliff", remedy="clip"),
        Finding("local-minima", Severity.ERROR, "the detector failed: TypeError: boom"),
        Finding("theoretical-limits", Severity.INFO, "NP-complete", measured=False),
    ]
    _term.verdicts("title", findings, "footer")
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "title",
        "  cliffs              critical   a cliff",
        "                                 try: clip",
        "  local-minima        error      the detector failed: TypeError: boom",
        "                                 no verdict: the detector failed (an optiscope bug; "
        "please report it)",
        "  theoretical-limits  statement  NP-complete",
        "footer",
    ]


def test_the_overview_marks_the_episodes_the_findings_name():
    from optiscope.report.figures import Run, episodes, fig_overview

    findings = [
        {
            "challenge": "saddle-points",
            "severity": "warning",
            "evidence": {"plateaus": [{"first_step": 0, "last_step": 40}]},
        },
        {
            "challenge": "cliffs",
            "severity": "critical",
            "evidence": {
                "spikes": [
                    {"step": 50, "loss_jump": 3.0, "outsized_update": False},
                    {"step": 60, "loss_jump": 1.0, "outsized_update": False},  # crossed unharmed
                ],
                "outsized_updates": [70],
                # A cliff past the first 20 spikes, and one also among them (marked once).
                "cliffs": [
                    {"step": 50, "loss_jump": 3.0, "outsized_update": False},
                    {"step": 75, "loss_jump": 1.0, "outsized_update": True},
                ],
            },
        },
    ]
    records = [
        {"type": "step", "step": i, "values": {"loss": 1.0 / (i + 1), "grad_norm": 1.0}}
        for i in range(80)
    ]
    run = Run({}, records, False, findings, "")
    assert episodes(run) == ([(0.0, 40.0)], [50.0, 70.0, 75.0])
    svg = fig_overview(run)
    assert "plateau" in svg and "cliff" in svg  # the legend names both
    quiet = Run({}, records, False, [], "")
    assert episodes(quiet) == ([], [])
    assert "plateau" not in fig_overview(quiet)
