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
from optiscope.diagnosis.detectors import CHALLENGES
from optiscope.records.log import RecordWriter
from optiscope.report.page import MAX_POINTS, ReportError, decimate, render_report, write_report

HEADER = {
    "experiment": "synthetic",
    "description": "records of every kind with known values",
    "seed": 3,
    "steps": 60,
}
EVIL = "<script>alert(1)</script>"


def step_values(step: int, full: bool = True) -> dict:
    values = {"loss": 2.0 * math.exp(-step / 10) + 0.01, "grad_norm": 1.0 / (1 + step)}
    if full:
        values.update(
            gtg=0.5 / (1 + step),
            gthg=0.1 * (1 + step),
            sharpness=1.0 + 0.1 * step,
            stability_threshold=4.0,
            predicted_change=-0.01,
            actual_change=-0.009,
            lambda_min=-0.1,
            update_ratio=0.01,
            grad_norm_sq_unbiased=0.2,
            trace_cov=20.0,
            b_simple=100.0,
            batch_size=32,
        )
    return values


def write_run(
    folder: Path,
    *,
    steps: int = 60,
    full: bool = True,
    header: dict | None = None,
) -> Path:
    with RecordWriter(folder / "records.jsonl", header or HEADER) as w:
        for s in range(steps):
            w.write({"type": "step", "step": s, "values": step_values(s, full)})
            if full and s % 20 == 0:
                norms = [0.9**t for t in range(30, 0, -1)]
                w.write({"type": "hidden_gradients", "step": s, "module": "rnn", "norms": norms})
        if full:
            grid = np.linspace(-1, 5, 50)
            density = np.exp(-((grid - 2) ** 2)) + 0.1 * np.exp(-((grid + 0.5) ** 2) * 10)
            w.write(
                {
                    "type": "analysis",
                    "name": "spectral_density",
                    "grid": grid.tolist(),
                    "density": density.tolist(),
                    "sigma": 0.05,
                    "fraction_negative": 0.04,
                }
            )
            w.write(
                {
                    "type": "analysis",
                    "name": "final_point",
                    "kind": "saddle point",
                    "lambda_max": 4.5,
                    "lambda_min": -0.5,
                    "index": 0.04,
                }
            )
            alphas = np.linspace(0, 1, 11)
            w.write(
                {
                    "type": "analysis",
                    "name": "interpolation",
                    "alphas": alphas.tolist(),
                    "losses": (2 - 1.9 * alphas + np.sin(alphas * math.pi)).tolist(),
                    "barrier": 0.55,
                    "distance": 3.0,
                    "path_length": 9.0,
                }
            )
            xs = np.linspace(-2, 2, 9)
            w.write(
                {
                    "type": "analysis",
                    "name": "trajectory",
                    "coords": [[2 - 0.2 * i, 0.1 * i] for i in range(10)],
                    "explained": [0.9, 0.08],
                }
            )
            w.write(
                {
                    "type": "analysis",
                    "name": "surface",
                    "xs": xs.tolist(),
                    "ys": xs.tolist(),
                    "losses": [[0.1 + x * x + 2 * y * y for x in xs] for y in xs],
                    "center_loss": 0.1,
                    "explained": [0.9, 0.08],
                }
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
    text = render_report(write_run(tmp_path, full=False))
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
        hidden = {"type": "hidden_gradients", "step": 1, "module": EVIL, "norms": [1.0, 0.1]}
        f.write(json.dumps(hidden) + "\n")
    finding = {"challenge": "cliffs", "severity": EVIL, "summary": EVIL, "remedy": EVIL}
    finding["evidence"] = {EVIL: EVIL, "n": [EVIL]}
    payload = {"experiment": EVIL, "findings": [finding]}
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
    text = render_report(tmp_path)
    assert "the run was cut short" in text
    assert sections(text) == ["verdicts", "overview", *CHALLENGES]


def test_nonfinite_values_and_broken_records_do_not_crash(tmp_path):
    with RecordWriter(tmp_path / "records.jsonl", HEADER) as w:
        for s in range(20):
            v = step_values(s)
            if s % 3 == 0:
                v = {k: (math.nan if i % 2 else math.inf) for i, k in enumerate(v)}
            w.write({"type": "step", "step": s, "values": v})
        w.write({"type": "step", "values": {"loss": 1.0}})  # no step
        w.write({"type": "hidden_gradients", "step": 0, "module": "m", "norms": []})
        w.write({"type": "hidden_gradients", "step": 1, "module": "m", "norms": [0.0, math.nan]})
        w.write({"type": "analysis", "name": "spectral_density", "grid": [1.0], "density": []})
        w.write({"type": "analysis", "name": "interpolation", "alphas": [0, 1], "losses": [1]})
        w.write({"type": "analysis", "name": "surface", "xs": [0, 1], "ys": [0, 1], "losses": 3})
        w.write({"type": "analysis", "name": "trajectory", "error": "too few snapshots"})
        w.write({"type": "analysis", "name": "final_point", "lambda_min": math.nan})
    (tmp_path / "findings.json").write_text("{ not json")
    text = render_report(tmp_path)
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
    text = render_report(write_run(tmp_path))
    assert "<svg" not in text
    assert "matplotlib is not installed, so the figures are left out" in text
    assert sections(text) == ["verdicts", "overview", *CHALLENGES]


def test_importing_the_report_does_not_load_matplotlib():
    code = "import sys, optiscope, optiscope.report.page; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    from optiscope.runner.run import run_experiment
    from optiscope.training.experiment import load_experiment

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
