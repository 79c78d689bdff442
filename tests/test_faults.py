"""Faults: a run killed mid-training, a records file cut mid-line, and a training loop that raises.

The killed run is a real subprocess that trains under a Monitor until it gets SIGKILL: what it
flushed before stays readable, and ``optiscope report`` rebuilds its findings and report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

import optiscope
from optiscope.cli import main
from optiscope.diagnosis import CHALLENGES
from optiscope.records import schema
from optiscope.records.log import read_records

TRAIN = textwrap.dedent(
    """
    import sys, time
    import torch
    from torch import nn
    import optiscope

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    monitor = optiscope.Monitor(model, opt, out=sys.argv[1], loss_fn=loss_fn,
                                header={"experiment": "killed <run>", "steps": 100000})
    for step in range(100000):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        monitor.step(loss, batch=(x, y))
        opt.step()
        time.sleep(0.005)
    monitor.close()
    """
)


def _step_lines(path) -> int:
    try:
        lines = path.read_bytes().split(b"\n")[:-1]  # whole lines only
    except FileNotFoundError:
        return 0
    return sum(b'"type":"step"' in line for line in lines)


def test_a_killed_run_keeps_its_records_and_report_rebuilds_its_findings(tmp_path, capsys):
    script, run = tmp_path / "train.py", tmp_path / "run"
    script.write_text(TRAIN)
    proc = subprocess.Popen([sys.executable, str(script), str(run)], stderr=subprocess.PIPE)
    records = run / "records.jsonl"
    try:
        deadline = time.monotonic() + 60
        while _step_lines(records) < 20:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the training subprocess wrote no 20 steps in 60 s"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "findings.json").exists()  # the Monitor never closed

    # What was flushed reads back whole (a kill mid-write would leave a cut last line: dropped).
    whole = _step_lines(records)
    log = read_records(run)
    assert whole >= 20
    assert sum(1 for _ in log.of_type(schema.STEP_RECORD)) == whole

    # A kill in the middle of a write: the last line is cut short.
    with open(records, "ab") as f:
        f.write(b'{"type":"step","step":99999,"values":{"loss":0.')
    log = read_records(run)
    assert log.truncated
    steps = [r[schema.STEP] for r in log.of_type(schema.STEP_RECORD)]
    assert steps == list(range(whole))

    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"findings recomputed from its records, written to {run / 'findings.json'}" in out
    payload = json.loads((run / "findings.json").read_text())
    assert payload[schema.EXPERIMENT] == "killed <run>"
    assert len(payload[schema.FINDINGS]) == len(CHALLENGES) == 8
    html = (run / "report.html").read_text()
    assert "killed &lt;run&gt;" in html and "killed <run>" not in html
    assert "The records file ends in a line cut short: the run was cut short" in html
    assert "findings.json was missing: the verdicts were recomputed from the records and " in html
    assert "The run never closed its Monitor, so it was cut short" in html
    for challenge in CHALLENGES:
        assert f'<section id="{challenge}">' in html

    # A second report reads the findings written the first time, and says nothing of them.
    assert main(["report", str(run)]) == 0
    assert "recomputed" not in capsys.readouterr().out
    assert "findings.json was missing" not in (run / "report.html").read_text()


def test_a_training_loop_that_raises_keeps_its_records_and_findings(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    with pytest.raises(RuntimeError, match="data loader failed"):
        with optiscope.Monitor(model, opt, out=tmp_path, loss_fn=loss_fn) as monitor:
            for step in range(100):
                if step == 12:
                    raise RuntimeError("data loader failed")
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                monitor.step(loss, batch=(x, y))
                opt.step()
    log = read_records(tmp_path)
    assert not log.truncated
    assert [r[schema.STEP] for r in log.of_type(schema.STEP_RECORD)] == list(range(12))
    findings = json.loads((tmp_path / schema.FINDINGS_FILE).read_text())[schema.FINDINGS]
    assert len(findings) == len(CHALLENGES)
