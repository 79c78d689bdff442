"""The records log: written line by line, read back exactly, and robust to a killed run."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optiscope.records.log import RecordsError, RecordWriter, parse_records, read_records


def test_records_round_trip_with_non_finite_values(tmp_path):
    path = tmp_path / "run" / "records.jsonl"
    with RecordWriter(path, {"experiment": "x", "seed": 3}) as w:
        w.write({"type": "step", "step": 0, "values": {"loss": 1.5, "grad_norm": math.inf}})
        w.write({"type": "step", "step": 1, "values": {"loss": math.nan, "r": [1.0, -math.inf]}})
    rec = read_records(path.parent)
    assert rec.header["experiment"] == "x" and rec.header["seed"] == 3
    assert rec.header["schema"] == 1 and not rec.truncated
    steps, loss = rec.series("loss")
    assert steps == [0, 1] and loss[0] == 1.5 and math.isnan(loss[1])
    assert rec.records[0]["values"]["grad_norm"] == math.inf
    assert rec.records[1]["values"]["r"] == [1.0, -math.inf]
    # Strict JSON on disk: no NaN tokens.
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_each_record_is_on_disk_as_soon_as_it_is_written(tmp_path):
    path = tmp_path / "records.jsonl"
    w = RecordWriter(path, {})
    w.write({"type": "step", "step": 7, "values": {"loss": 0.25}})
    assert read_records(path).series("loss") == ([7], [0.25])
    w.close()
    with pytest.raises(RecordsError, match="already closed"):
        w.write({"type": "step"})


def test_a_run_killed_with_sigkill_leaves_readable_records(tmp_path):
    path = tmp_path / "records.jsonl"
    code = textwrap.dedent(
        f"""
        from optiscope.records.log import RecordWriter
        w = RecordWriter({str(path)!r}, {{"experiment": "killed"}})
        step = 0
        while True:
            w.write({{"type": "step", "step": step, "values": {{"loss": 1.0 / (step + 1)}}}})
            step += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 30
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 20000):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rec = read_records(path)
    steps, loss = rec.series("loss")
    assert len(steps) > 100
    assert steps == list(range(len(steps)))
    assert loss[-1] == pytest.approx(1.0 / len(steps))


def test_a_truncated_last_line_is_dropped_and_flagged():
    good = b'{"type":"header","schema":1}\n{"type":"step","step":0,"values":{"loss":1}}\n'
    rec = parse_records(good + b'{"type":"step","st')
    assert rec.truncated and len(rec.records) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"expected a header record on the first line, got nothing"),
        (b'{"type":"step"}\n', r"expected a header record on the first line, got 'step'"),
        (b'{"type":"header","schema":99}\n', r"records schema 99, expected 1"),
        (
            b'{"type":"header","schema":1}\nnot json\n{"type":"step"}\n',
            r"line 2: expected one JSON object per line, got b'not json'",
        ),
    ],
)
def test_unreadable_records_raise_a_clear_error(data, message):
    with pytest.raises(RecordsError, match=message):
        parse_records(data)


def test_unwritable_and_missing_paths_raise_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordsError, match=r"cannot write records to .*pass another --out"):
        RecordWriter(blocker / "records.jsonl", {})
    with pytest.raises(RecordsError, match=r"cannot read records from .*records.jsonl of a run"):
        read_records(tmp_path / "nowhere")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_the_reader_raises_only_its_own_error_on_arbitrary_bytes(data):
    try:
        parse_records(data)
    except RecordsError:
        pass


def test_a_new_run_in_the_same_folder_replaces_the_old_records(tmp_path):
    for run in range(2):
        with RecordWriter(tmp_path / "records.jsonl", {"run": run}) as w:
            w.write({"type": "step", "step": 0, "values": {"loss": float(run)}})
    rec = read_records(tmp_path)
    assert rec.header["run"] == 1 and len(rec.records) == 1
