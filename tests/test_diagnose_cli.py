"""The main job end to end: experiments loaded by name or from the user's code, records and
findings written, the eight verdicts printed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from optiscope.cli import main
from optiscope.diagnosis.detectors import CHALLENGES, SEVERITIES
from optiscope.records.log import read_records
from optiscope.training.experiment import ExperimentError
from optiscope.training.loading import load_experiment


def test_diagnose_the_default_writes_records_and_eight_findings(tmp_path, capsys):
    assert main(["diagnose", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for challenge in CHALLENGES:
        assert challenge in out
    data = json.loads((tmp_path / "findings.json").read_text())
    assert [f["challenge"] for f in data["findings"]] == list(CHALLENGES)
    for f in data["findings"]:
        assert f["severity"] in SEVERITIES and f["summary"]
        if f["severity"] in ("warning", "critical"):
            assert f["evidence"] and f["remedy"]
    rec = read_records(tmp_path)
    assert rec.header["experiment"] == "digits-mlp" and rec.header["seed"] == 0
    assert len(rec.series("loss")[0]) == 300
    analyses = {r.get("name"): r for r in rec.of_type("analysis")}
    assert set(analyses) == {
        "final_point",
        "spectral_density",
        "interpolation",
        "trajectory",
        "surface",
        "exact_steps",
        "larger_batch",  # the noise dominates at batch 128 (B_simple about 200)
    }
    rerun = analyses["larger_batch"]
    assert rerun["batch_size"] == 128 and rerun["batch_size_larger"] == 1024
    assert rerun["steps"] == 300 and rerun["loss"] == analyses["exact_steps"]["loss"]
    # The smoothed Hessian spectral density of the end point integrates to one (to the kernel's
    # tails) and spans the extreme eigenvalues that Lanczos found there.
    sld = analyses["spectral_density"]
    grid = np.array(sld["grid"])
    assert np.trapezoid(sld["density"], grid) == pytest.approx(1.0, abs=2e-2)
    assert grid[0] <= analyses["final_point"]["lambda_min"]
    assert grid[-1] >= analyses["final_point"]["lambda_max"] * 0.99
    traj = analyses["trajectory"]
    assert traj["snapshots"] == 41 and len(traj["coords"]) == 41
    assert 0 < sum(traj["explained"]) <= 1 + 1e-9
    assert traj["distance"] == pytest.approx(analyses["interpolation"]["distance"], rel=1e-5)
    assert traj["path_length"] <= analyses["interpolation"]["path_length"] * (1 + 1e-5)
    plane = analyses["surface"]
    assert len(plane["losses"]) == 21 and len(plane["losses"][0]) == 21
    # The grid's center is the end point, whose loss the interpolation measured last.
    assert plane["losses"][10][10] == pytest.approx(
        analyses["interpolation"]["losses"][-1], rel=1e-5
    )
    lgm = next(f for f in data["findings"] if f["challenge"] == "local-global-mismatch")
    assert lgm["evidence"]["trajectory_explained"] == traj["explained"]


def test_the_convex_control_raises_no_alarm(tmp_path, capsys):
    tb = tmp_path / "tb"
    args = ["diagnose", "logistic-control", "--out", str(tmp_path), "--json"]
    assert main([*args, "--tensorboard", str(tb)]) == 0
    captured = capsys.readouterr()
    findings = json.loads(captured.out)["findings"]  # stdout holds the JSON and nothing else
    assert all(f["severity"] in ("ok", "info") for f in findings), findings
    assert captured.err == ""  # no progress bar under --json
    html = (tmp_path / "report.html").read_text()
    assert all(f'id="{f["challenge"]}"' in html for f in findings)
    # The same run in TensorBoard: the loss at every step, as in the records.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    events.Reload()
    steps, losses = read_records(tmp_path).series("loss")
    scalars = events.Scalars("optiscope/loss")
    assert [e.step for e in scalars] == steps
    assert [e.value for e in scalars] == pytest.approx(losses, rel=1e-6)


def test_a_terminal_gets_a_progress_bar_and_a_verdict_table(tmp_path):
    """Under a pseudo-terminal: rich draws the bar on stderr and the table on stdout."""
    import os
    import pty

    main_fd, term = pty.openpty()
    command = [sys.executable, "-m", "optiscope.cli", "diagnose", "logistic-control"]
    proc = subprocess.Popen(
        [*command, "--out", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=term,
        stderr=term,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(term)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 65536)
        except OSError:  # the terminal closes with the process
            break
        if not data:
            break
        chunks.append(data)
    os.close(main_fd)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.wait(timeout=300) == 0, text
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # colours and cursor moves
    assert "training" in text and "200/200" in text  # the bar, counted in steps
    assert "┃ challenge" in text and "│ ill-conditioning" in text  # the table's box drawing
    assert f"report.html in {tmp_path}/" in text


def test_a_users_experiment_file_is_loaded_with_its_seed(tmp_path):
    path = tmp_path / "my_exp.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch, optiscope

            def make(seed):
                model = torch.nn.Linear(3, 2)
                x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
                opt = torch.optim.SGD(model.parameters(), lr=0.1)
                return optiscope.Experiment(model, torch.nn.CrossEntropyLoss(), [(x, y)], opt,
                                            steps=5, name=f"mine-{seed}")

            def wrong():
                return 42
            """
        )
    )
    sys.path.insert(0, "")
    exp = load_experiment(f"{path}:make", seed=7)
    assert exp.name == "mine-7" and exp.seed == 7
    with pytest.raises(ExperimentError, match=r"returned a int, expected an optiscope.Experiment"):
        load_experiment(f"{path}:wrong")
    with pytest.raises(ExperimentError, match=r"has no function 'nope': expected one of"):
        load_experiment(f"{path}:nope")
    with pytest.raises(ExperimentError, match=r"experiment file '.*missing.py' not found"):
        load_experiment(f"{tmp_path}/missing.py:make")
    with pytest.raises(ExperimentError, match=r"cannot import module 'no_such_pkg.mod'"):
        load_experiment("no_such_pkg.mod:make")


def test_diagnose_list_and_a_bad_name_from_the_command_line():
    proc = subprocess.run(
        [sys.executable, "-m", "optiscope.cli", "diagnose", "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "digits-mlp" in proc.stdout and "logistic-control" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "optiscope.cli", "diagnose", "nothere"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("optiscope diagnose: error: unknown experiment 'nothere'")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("name", "challenge", "severities"),
    [
        ("rnn-long-delay", "long-term-dependencies", ("warning", "critical")),
        ("deep-linear-plateau", "saddle-points", ("warning",)),
        ("ill-conditioned-regression", "ill-conditioning", ("warning", "critical")),
        ("tiny-batch", "inexact-gradients", ("warning", "critical")),
        ("rnn-cliff", "cliffs", ("critical",)),
    ],
)
def test_each_pathology_gets_the_verdict_it_was_built_to_show(
    name, challenge, severities, tmp_path
):
    from optiscope.runner.run import run_experiment

    # As `optiscope diagnose NAME` runs it: with the factory, for the reruns it may ask for.
    result = run_experiment(
        load_experiment(name), tmp_path, factory=lambda seed: load_experiment(name, seed=seed)
    )
    found = {f.challenge: f for f in result.findings}[challenge]
    assert found.severity in severities, found
    assert found.evidence and found.remedy


def test_a_run_that_diverges_stops_there_and_is_still_diagnosed(tmp_path, capsys):
    """The policy of `diagnose`: training stops at the first non-finite loss or gradient; the
    records up to it are diagnosed and reported, the end point is not analysed."""
    path = tmp_path / "diverge.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch, optiscope
            from torch import nn

            def make(seed=0):
                torch.manual_seed(seed)
                model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
                x, y = torch.randn(64, 8), torch.randn(64, 1)
                opt = torch.optim.SGD(model.parameters(), lr=50.0)
                return optiscope.Experiment(model, nn.MSELoss(), [(x, y)], opt, 40)
            """
        )
    )
    out = tmp_path / "run"
    assert main(["diagnose", f"{path}:make", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rec = read_records(out)
    steps = [r["step"] for r in rec.of_type("step")]
    stop = next(rec.of_type("event"))
    assert stop["name"] == "stopped" and stop["step"] == steps[-1] < 39
    assert f"training stopped: non-finite loss and grad_norm at step {steps[-1]}" in text
    assert not any(r.get("name") == "final_point" for r in rec.of_type("analysis"))
    cliffs = next(
        f
        for f in json.loads((out / "findings.json").read_text())["findings"]
        if f["challenge"] == "cliffs"
    )
    assert cliffs["severity"] == "critical" and f"at step {steps[-1]}" in cliffs["summary"]
    assert 'id="cliffs"' in (out / "report.html").read_text()


HELPER = '''
import torch
from torch import nn


class KeywordNet(nn.Module):
    """Takes its inputs as keyword arguments, as Hugging Face models do."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, features):
        return self.lin(features)


def batches(n=8):
    gen = torch.Generator().manual_seed(0)
    return [
        ({"features": torch.randn(16, 4, generator=gen)}, torch.randint(0, 3, (16,), generator=gen))
        for _ in range(n)
    ]
'''

EXPERIMENT = """
import torch
from torch import nn

import optiscope
from helper import KeywordNet, batches  # a sibling of this file


def make(seed=0):
    model = KeywordNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return optiscope.Experiment(model, nn.CrossEntropyLoss(), batches(), opt, steps=20)
"""


def test_an_experiment_file_imports_its_siblings_and_dict_inputs_are_keyword_arguments(
    tmp_path, capsys
):
    """Dict inputs go to the model as keyword arguments in training, in every tier and in the
    end analysis alike; the experiment file's folder is on the import path, as for python."""
    (tmp_path / "helper.py").write_text(HELPER)
    (tmp_path / "exp.py").write_text(EXPERIMENT)
    out = tmp_path / "run"
    assert main(["diagnose", f"{tmp_path / 'exp.py'}:make", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["findings"]) == 8
    log = read_records(out)
    assert log.series("gthg")[0] and log.series("trace_cov")[0]  # the tiers measured
    assert [r["name"] for r in log.records if r["type"] == "analysis"][:1] == ["final_point"]


def test_the_end_of_run_analyses_can_be_skipped(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["diagnose", "logistic-control", "--out", str(out), "--no-end-analysis"]) == 0
    log = read_records(out)
    assert [r for r in log.records if r.get("type") == "analysis"] == []
    found = {f["challenge"]: f for f in json.loads((out / "findings.json").read_text())["findings"]}
    mismatch = found["local-global-mismatch"]
    assert mismatch["severity"] == "info" and mismatch["summary"].startswith("not measured")
    assert len(list(log.of_type("step"))) == 200  # the training itself is whole


def test_the_end_of_run_analyses_are_sized_to_a_budget_and_say_what_they_do(tmp_path, capsys):
    out = tmp_path / "run"
    # A budget far below what the plane needs: it shrinks to its floor, and the terminal hears
    # each stage as it starts. The density comes from the final point's quadrature.
    assert main(["diagnose", "logistic-control", "--out", str(out), "--end-seconds", "1e-6"]) == 0
    said = capsys.readouterr().err
    for stage in (
        "analysing the final point (a loss takes",
        "its curvature and spectral density, up to 260 products",
        "the straight path from the start",
        "the trajectory's plane: 5 x 5 losses",
    ):
        assert stage in said, said
    log = read_records(out)
    (plane,) = [r for r in log.records if r.get("name") == "surface"]
    assert len(plane["xs"]) == 5 and len(plane["ys"]) == 5
    (point,) = [r for r in log.records if r.get("name") == "final_point"]
    (density,) = [r for r in log.records if r.get("name") == "spectral_density"]
    assert density["hvps"] == 60 and density["shared"] == "final_point"
    assert point["hvps"] >= density["hvps"]
    # By default (at least 30 s) a small model keeps the full 21 x 21 plane.
    out2 = tmp_path / "full"
    assert main(["diagnose", "logistic-control", "--out", str(out2)]) == 0
    (plane,) = [r for r in read_records(out2).records if r.get("name") == "surface"]
    assert len(plane["xs"]) == 21
    assert main(["diagnose", "logistic-control", "--end-seconds", "0"]) == 2
    assert "--end-seconds must be a positive number of seconds, got 0.0" in capsys.readouterr().err
