"""The lab's machinery: registry, runner, files, index page and CLI (each experiment has its own
test of its claim)."""

from __future__ import annotations

import json

import pytest

import optiscope.lab as lab
from optiscope.cli import main
from optiscope.lab._framework import REGISTRY, Lab, LabError, experiment
from optiscope.lab._runner import write_index

pytestmark = pytest.mark.usefixtures("one_thread")


def test_convexity_reproduces_its_claim():
    r = lab.run("convexity", small=True, seed=0)
    assert r.reproduced
    assert r.numbers["logistic_min_ratio"] >= -1e-9  # PSD up to rounding
    assert r.numbers["network_points_with_negative_curvature"] >= 1
    assert lab.run("convexity", small=True, seed=0).numbers == r.numbers  # deterministic


def test_files_and_an_escaped_index(tmp_path):
    r = lab.run("convexity", out=tmp_path, small=True)
    data = json.loads((tmp_path / "convexity" / "result.json").read_text())
    assert data["reproduced"] is True and data["criterion"] == r.criterion
    assert (tmp_path / "convexity" / "curvature.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r.title = "<script>alert(1)</script>"
    page = write_index(tmp_path, [r]).read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "1 of 1 claims reproduced" in page


def test_an_experiment_must_state_one_verdict():
    @experiment("broken-test-only", "Broken", "never states a verdict")
    def broken(lab_: Lab) -> None:
        pass

    try:
        with pytest.raises(LabError, match=r"ended without stating its verdict"):
            lab.run("broken-test-only")
    finally:
        del REGISTRY["broken-test-only"]


def test_unknown_names_and_the_cli(tmp_path, capsys):
    with pytest.raises(LabError, match=r"unknown lab experiment 'nope': expected one of"):
        lab.run("nope")
    assert main(["lab", "list"]) == 0
    assert "convexity" in capsys.readouterr().out
    assert main(["lab", "run", "convexity", "--small", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["name"] == "convexity" and out[0]["reproduced"] is True
    assert main(["lab", "run"]) == 2
    assert "lab run needs an experiment name or all" in capsys.readouterr().err


def test_the_experiments_come_in_the_chapters_order():
    from optiscope.lab._experiments import ORDER

    assert set(lab.names()) <= set(ORDER)
    assert lab.names() == [n for n in ORDER if n in lab.names()]
