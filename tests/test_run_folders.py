"""Run folders that never lie (issue 14): one run per folder, one writer at a time, outputs
written whole, findings that name the records they describe, and the defects found by trying.

Each ``test_defect_N`` fails on the code before the fix; the scenarios at the end run real
processes: two concurrent writers, a kill during the final analysis, a reused folder and a run
on a full disk (a small tmpfs, where this machine lets root mount one).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import optiscope
from optiscope.cli import main

HERE = Path(__file__).resolve().parent
WRITER = HERE / "run_folder_writer.py"

pytestmark = pytest.mark.usefixtures("one_thread")


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))


def _train(monitor, model, opt, steps=5, lr_scale=1.0):
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x) * lr_scale, y)
        loss.backward()
        monitor.step(loss)
        opt.step()


def _run(folder, steps=5, lr=0.1, **kwargs):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    monitor = optiscope.Monitor(model, opt, out=folder, **kwargs)
    _train(monitor, model, opt, steps)
    return monitor


def _writer(folder, steps, lr, end, *flags):
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(folder), str(steps), str(lr), end, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _wait_ready(proc):
    line = proc.stdout.readline()
    assert line.strip() == "READY", proc.stderr.read()


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # also closes its pipes


def _verdicts(folder):
    """The report's verdict on each challenge, read from the HTML it writes."""
    text = optiscope.write_report(folder, save_findings=True).read_text()
    return text


# -- 1. stale findings ----------------------------------------------------------------------------


def test_defect_1_a_second_run_into_a_folder_that_holds_one_is_refused(tmp_path):
    _run(tmp_path).close()
    with pytest.raises(
        optiscope.OptiscopeError, match=r"already holds a run: one run per folder.*overwrite=True"
    ):
        _run(tmp_path)


def test_defect_1_a_replacing_run_killed_before_close_leaves_no_stale_verdict(tmp_path):
    _run(tmp_path).close()
    assert (tmp_path / "findings.json").exists()
    proc = _writer(tmp_path, 30, 1e20, "pause", "overwrite")  # diverges at once
    try:
        _wait_ready(proc)
        assert not (tmp_path / "findings.json").exists()  # the old run's verdicts are gone
    finally:
        _kill(proc)
    findings = {f.challenge: f for f in optiscope.diagnose(tmp_path)}
    assert findings["cliffs"].severity == "critical"
    text = _verdicts(tmp_path)
    assert "findings.json was missing: the verdicts were recomputed" in text


def test_defect_1_findings_saved_from_a_live_run_are_recomputed_once_it_grew(tmp_path):
    proc = _writer(tmp_path, 10, 0.1, "pause")
    try:
        _wait_ready(proc)
        text = optiscope.write_report(tmp_path, save_findings=True).read_text()
        assert "The run is still being written (process" in text
        assert not (tmp_path / "findings.json").exists()  # left to the run
    finally:
        _kill(proc)
    # A findings.json from an earlier look at the run (fewer steps) is not trusted.
    log = optiscope.read_records(tmp_path)
    from optiscope.records.log import write_findings

    write_findings(tmp_path, [], "x", run_id=log.header["run_id"], last_step=3)
    text = optiscope.write_report(tmp_path, save_findings=True).read_text()
    assert "findings.json was built from the records up to step 3, but they reach step 9" in text
    payload = json.loads((tmp_path / "findings.json").read_text())
    assert payload["last_step"] == 9 and len(payload["findings"]) == 8


# -- 2. two writers -------------------------------------------------------------------------------


def test_defect_2_a_second_writer_is_refused_at_once_with_the_holders_pid(tmp_path):
    proc = _writer(tmp_path, 3, 0.1, "pause")
    try:
        _wait_ready(proc)
        t0 = time.perf_counter()
        with pytest.raises(
            optiscope.OptiscopeError,
            match=rf"is being written by process {proc.pid}: one run writes to a folder at a time",
        ):
            _run(tmp_path, overwrite=True)
        assert time.perf_counter() - t0 < 5
        assert len(optiscope.read_records(tmp_path).records) == 3  # the first run's, intact
    finally:
        _kill(proc)


# -- 3. reserved header keys ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["type", "schema", "time", "run_id"])
def test_defect_3_reserved_header_keys_are_refused(tmp_path, key):
    with pytest.raises(optiscope.OptiscopeError, match=rf"header key '{key}' is reserved"):
        _run(tmp_path, header={key: "ablation"})
    assert not (tmp_path / "records.jsonl").exists()


# -- 5, 6. atomic outputs and a full disk ---------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 48 KiB tmpfs: a full disk within a few hundred steps."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk needs a tmpfs, which only root can mount")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"this machine does not let root mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_defect_5_6_a_full_disk_warns_once_keeps_training_and_loses_no_record(small_disk):
    model, plain = _model(), _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt_plain = torch.optim.SGD(plain.parameters(), lr=0.1)
    monitor = optiscope.Monitor(model, opt, out=small_disk / "run")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.manual_seed(1)
        _train(monitor, model, opt, steps=600)
        findings = monitor.close()
    full = [w for w in seen if "cannot write records to" in str(w.message)]
    assert len(full) == 1 and "No space left on device" in str(full[0].message)
    assert "kept in memory only" in monitor.write_error
    cliffs = {f.challenge: f for f in findings}["cliffs"]
    assert cliffs.evidence["steps_measured"] == 600  # on disk and in memory: every step
    # findings.json could not be written: no empty or half file is left to be trusted.
    assert not (small_disk / "run" / "findings.json").exists()
    torch.manual_seed(1)
    _train(_NoMonitor(), plain, opt_plain, steps=600)
    for a, b in zip(model.parameters(), plain.parameters()):
        assert torch.equal(a, b)  # training went on, unchanged


class _NoMonitor:
    def step(self, loss):
        pass


def test_defect_6_on_write_error_raise_stops_the_run_with_the_file_named(small_disk):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = optiscope.Monitor(model, opt, out=small_disk / "run", on_write_error="raise")
    with pytest.raises(
        optiscope.OptiscopeError,
        match=r"cannot write records to .*records.jsonl': No space left on device",
    ):
        _train(monitor, model, opt, steps=600)
    monitor.close()


def test_defect_5_a_report_that_cannot_be_written_leaves_the_old_one_whole(small_disk, tmp_path):
    run = tmp_path / "run"
    _run(run, steps=20).close()
    report = small_disk / "report.html"
    report.write_text("the old report\n")
    (small_disk / "filler").write_bytes(b"x" * 40_000)  # leaves less room than a report needs
    with pytest.raises(
        optiscope.OptiscopeError, match=r"cannot write the report to .*report.html'"
    ):
        optiscope.write_report(run, report)
    assert report.read_text() == "the old report\n"


# -- 7, 8, 11, 12. the Monitor's arguments and calls ----------------------------------------------


def test_defect_7_step_after_close_is_refused():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = optiscope.Monitor(model, opt)
    _train(monitor, model, opt, steps=2)
    monitor.close()
    with pytest.raises(
        optiscope.OptiscopeError, match=r"monitor.step after monitor.close\(\) \(at step 2\)"
    ):
        _train(monitor, model, opt, steps=1)


def test_defect_8_step_before_backward_is_refused():
    model = _model()
    monitor = optiscope.Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1))
    loss = nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.zeros(8, dtype=torch.long))
    with pytest.raises(
        optiscope.OptiscopeError,
        match=r"found no gradient in .grad of the model's 4 trainable parameters: call it after "
        r"loss.backward\(\)",
    ):
        monitor.step(loss)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"out": 123}, r"out must be a folder path \(a str or os.PathLike\), got int 123"),
        ({"header": [("seed", 0)]}, r"header must be a mapping of facts .*got list"),
        (
            {"header": {"f": object()}},
            r"header\['f'\] is a object, which cannot be written as JSON",
        ),
        (
            {"quantities": "loss"},
            r"quantities must be a list of names, got the string 'loss': pass "
            r"quantities=\['loss'\]",
        ),
        ({"on_write_error": "ignore"}, r"on_write_error='ignore': expected 'warn'"),
    ],
)
def test_defect_11_bad_monitor_arguments_say_what_to_pass(kwargs, message):
    with pytest.raises(optiscope.OptiscopeError, match=message):
        optiscope.Monitor(_model(), **kwargs)


def test_defect_11_step_given_none_says_what_to_pass():
    model = _model()
    monitor = optiscope.Monitor(model)
    nn.functional.cross_entropy(
        model(torch.randn(8, 4)), torch.zeros(8, dtype=torch.long)
    ).backward()
    with pytest.raises(
        optiscope.OptiscopeError,
        match=r"monitor.step expects the loss \(a scalar tensor or a number\), got NoneType",
    ):
        monitor.step(None)


def test_defect_12_a_model_on_the_meta_device_is_refused_by_the_monitor():
    with torch.device("meta"):
        model = nn.Linear(4, 3)
    with pytest.raises(
        optiscope.OptiscopeError, match=r"on the meta device, which holds no values"
    ):
        optiscope.Monitor(model)


# -- 9. symbolic links ----------------------------------------------------------------------------


def test_defect_9_links_in_the_run_folder_are_never_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "records.jsonl").symlink_to(outside)
    with pytest.raises(optiscope.OptiscopeError, match="already holds a run"):
        _run(run)
    _run(run, overwrite=True).close()  # the link is removed, not written through
    assert outside.read_text() == "precious\n"
    assert not (run / "records.jsonl").is_symlink()
    (run / "report.html").symlink_to(outside)
    with pytest.raises(optiscope.OptiscopeError, match=r"report.html'.*is a symbolic link"):
        optiscope.write_report(run)
    assert outside.read_text() == "precious\n"


# -- the command line -----------------------------------------------------------------------------


def test_diagnose_takes_a_fresh_folder_or_refuses_one_that_holds_a_run(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    argv = ["diagnose", "logistic-control", "--preset", "default", "--json"]
    assert main(argv) == 0 and main(argv) == 0
    assert (tmp_path / "runs" / "logistic-control" / "findings.json").exists()
    assert (tmp_path / "runs" / "logistic-control-2" / "findings.json").exists()
    capsys.readouterr()
    assert main([*argv, "--out", "runs/logistic-control"]) == 2
    err = capsys.readouterr().err
    expected = (
        "already holds a run (one run per folder): pass --overwrite to replace it, or a fresh "
        "folder, e.g. --out runs/logistic-control-3"
    )
    assert expected in err
    assert main([*argv, "--out", "runs/logistic-control", "--overwrite"]) == 0


# -- the scenarios: real processes ----------------------------------------------------------------


def test_a_kill_during_the_final_analysis_loses_no_step_and_leaves_no_stale_verdict(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "optiscope.cli", "diagnose", "digits-mlp", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the last step written: the analysis has begun
            records = out / "records.jsonl"
            if records.exists() and '"step":299,' in records.read_text():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run never reached its last step")
    finally:
        _kill(proc)
    assert not (out / "findings.json").exists()
    log = optiscope.read_records(out)
    assert [r["step"] for r in log.records if r["type"] == "step"] == list(range(300))
    assert main(["report", str(out)]) == 0
    payload = json.loads((out / "findings.json").read_text())
    assert payload["run_id"] == log.header["run_id"] and payload["last_step"] == 299


def test_two_diagnose_runs_into_one_folder_one_is_refused_the_other_is_whole(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "optiscope.cli", "diagnose", "logistic-control"]
    command += ["--preset", "default", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        for _ in range(2)
    ]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    codes = sorted(rc for _, _, rc in results)
    assert codes == [0, 2], results
    refused = next(err for _, err, rc in results if rc == 2)
    assert refused.count("\n") == 1 and (
        "already holds a run" in refused or "one run writes to a folder at a time" in refused
    )
    log = optiscope.read_records(out)
    payload = json.loads((out / "findings.json").read_text())
    assert payload["run_id"] == log.header["run_id"]
    assert payload["last_step"] == 199 and len(payload["findings"]) == 8
