"""The records log: written line by line, read back exactly, and robust to a killed run."""

from __future__ import annotations

import json
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

from optiscope.records import schema
from optiscope.records.log import (
    RecordsError,
    RecordWriter,
    parse_records,
    read_findings,
    read_records,
    series,
    write_findings,
)


def step(i, values):
    return {schema.TYPE: schema.STEP_RECORD, schema.STEP: i, schema.VALUES: values}


def test_records_round_trip_with_non_finite_values(tmp_path):
    path = tmp_path / "run" / "records.jsonl"
    with RecordWriter(path, {"experiment": "x", "seed": 3}) as w:
        w.write(step(0, {schema.LOSS: 1.5, schema.GRAD_NORM: math.inf}))
        w.write(step(1, {schema.LOSS: math.nan, "r": [1.0, -math.inf]}))
    rec = read_records(path.parent)
    assert rec.header["experiment"] == "x" and rec.header["seed"] == 3
    assert rec.header["schema"] == 1 and not rec.truncated
    steps, loss = rec.series(schema.LOSS)
    assert steps == [0, 1] and loss[0] == 1.5 and math.isnan(loss[1])
    assert rec.records[0][schema.VALUES][schema.GRAD_NORM] == math.inf
    assert rec.records[1][schema.VALUES]["r"] == [1.0, -math.inf]
    # Strict JSON on disk: no NaN tokens.
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_each_record_is_on_disk_as_soon_as_it_is_written(tmp_path):
    path = tmp_path / "records.jsonl"
    w = RecordWriter(path, {})
    w.write(step(7, {schema.LOSS: 0.25}))
    assert read_records(path).series(schema.LOSS) == ([7], [0.25])
    w.close()
    with pytest.raises(RecordsError, match="already closed"):
        w.write({schema.TYPE: schema.STEP_RECORD})


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
    steps, loss = rec.series(schema.LOSS)
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
            w.write(step(0, {schema.LOSS: float(run)}))
    rec = read_records(tmp_path)
    assert rec.header["run"] == 1 and len(rec.records) == 1


def test_one_series_rule_for_every_reader():
    """Only step records whose values are a mapping, whose step is an int (not a bool), and
    whose value is a number (a 0-d array counts, a bool does not)."""
    np = pytest.importorskip("numpy")
    records = [
        step(0, {schema.LOSS: 1}),
        step(1, {schema.LOSS: "1.0"}),
        step(2, {schema.LOSS: True}),
        step(3, {schema.LOSS: None}),
        step(4, {schema.LOSS: [1.0]}),
        step(5.0, {schema.LOSS: 1.0}),
        step("6", {schema.LOSS: 1.0}),
        step(True, {schema.LOSS: 1.0}),
        step(8, [1.0]),
        {schema.TYPE: schema.HIDDEN_GRADIENTS, schema.STEP: 9, schema.VALUES: {schema.LOSS: 1}},
        "not a record",
        step(10, {schema.LOSS: np.float32(0.5)}),
        step(11, {schema.LOSS: np.array(0.25)}),
        step(12, {schema.LOSS: 10**400}),
        step(13, {schema.GRAD_NORM: 1.0}),
    ]
    steps, values = series(records, schema.LOSS)
    assert steps == [0, 10, 11, 12] and values == [1.0, 0.5, 0.25, math.inf]
    assert all(type(v) is float for v in values)
    # Read back from a file, the same rule: 5.0 is read back as a float, "6" as a string.
    header = {schema.TYPE: schema.HEADER, schema.SCHEMA: schema.VERSION}
    lines = [json.dumps(r) for r in [header, *records[:10]] if isinstance(r, dict)]
    rec = parse_records(("\n".join(lines) + "\n").encode())
    assert rec.series(schema.LOSS) == ([0], [1.0])


def test_findings_round_trip_with_non_finite_evidence(tmp_path):
    findings = [
        {schema.CHALLENGE: "cliffs", schema.SEVERITY: "ok", schema.EVIDENCE: {"x": math.nan}},
        {schema.CHALLENGE: "local-minima", schema.EVIDENCE: {"y": [math.inf, -math.inf]}},
    ]
    path = write_findings(tmp_path / "run", findings, "exp", run_id="r1", last_step=41)
    assert path == tmp_path / "run" / schema.FINDINGS_FILE
    text = path.read_text()
    assert text.endswith("}\n") and "NaN" not in text and "Infinity" not in text
    payload = json.loads(text)
    assert payload == {
        schema.EXPERIMENT: "exp",
        schema.RUN_ID: "r1",  # the run and the last step the findings were built from
        schema.LAST_STEP: 41,
        schema.FINDINGS: [
            {schema.CHALLENGE: "cliffs", schema.SEVERITY: "ok", schema.EVIDENCE: {"x": "nan"}},
            {schema.CHALLENGE: "local-minima", schema.EVIDENCE: {"y": ["inf", "-inf"]}},
        ],
    }
    assert text == json.dumps(payload, indent=2) + "\n"
    back = read_findings(tmp_path / "run")
    assert math.isnan(back[0][schema.EVIDENCE]["x"])
    assert back[1][schema.EVIDENCE]["y"] == [math.inf, -math.inf]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [schema.FINDINGS_FILE]
    assert json.loads(write_findings(tmp_path, [], None).read_text())[schema.EXPERIMENT] is None


def test_missing_findings_keep_their_cause_and_malformed_ones_say_what_was_expected(tmp_path):
    with pytest.raises(RecordsError, match=r"cannot read the findings from .*findings.json") as err:
        read_findings(tmp_path)
    assert isinstance(err.value.__cause__, FileNotFoundError)
    for text in ("{ not json", "[1, 2]", '{"findings": 3}', '{"findings": [{"challenge": 1}]}'):
        (tmp_path / schema.FINDINGS_FILE).write_text(text)
        with pytest.raises(
            RecordsError, match=r'expected \{"experiment": \.\.\., "findings"'
        ) as err:
            read_findings(tmp_path)
        assert not isinstance(err.value.__cause__, FileNotFoundError)
        assert "delete it and run `optiscope report` to recompute it" in str(err.value)
    (tmp_path / schema.FINDINGS_FILE).write_bytes(b"\xff\xfe")
    with pytest.raises(RecordsError, match="expected"):
        read_findings(tmp_path)


def test_unwritable_findings_raise_a_records_error_with_the_os_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordsError, match=r"cannot write the findings to .*writable run") as err:
        write_findings(blocker, [], None)
    assert isinstance(err.value.__cause__, OSError)


def test_record_names_are_spelled_in_the_schema_only():
    """Where the code writes or reads a record (a subscript, ``.get``, ``series``, a
    comparison), a quantity or record-type name comes from ``records.schema``, never a string
    literal: a rename is one edit and a typo an ImportError."""
    import ast
    from pathlib import Path

    from optiscope.records import schema

    # The step quantities, record types and analysis names ("step" and "loss" are also plain
    # words of the code: Adam's state, a model's outputs, evidence).
    quantities = {
        *schema.CHEAP,
        *schema.NOISE,
        *(schema.GTG, schema.GTHG, schema.CURVATURE_ALONG_GRADIENT, schema.GRADIENT_THRESHOLD),
        *(schema.PREDICTED_CHANGE, schema.ACTUAL_CHANGE, schema.SKIPPED, schema.GRAD_NORM_SQ),
        *(schema.SHARPNESS, schema.LAMBDA_MIN, schema.SHARPNESS_HVPS),
        *(schema.STABILITY_THRESHOLD, schema.THRESHOLD_PRECONDITIONED),
        *schema.RECORD_TYPES,
        *(schema.FINAL_POINT, schema.SPECTRAL_DENSITY, schema.INTERPOLATION, schema.TRAJECTORY),
        *(schema.SURFACE, schema.STOPPED),
    } - {schema.STEP_RECORD}
    root = Path(__file__).resolve().parents[1] / "src" / "optiscope"
    readers = ("records", "diagnosis", "report", "monitor", "runner")
    found = []
    for package in readers:
        for path in (root / package).rglob("*.py"):
            if path.name == "schema.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                keys: list[ast.expr] = []
                if isinstance(node, ast.Subscript):
                    keys.append(node.slice)
                elif isinstance(node, ast.Call):
                    fn = node.func
                    name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                    if name in ("get", "series", "analysis", "of_type", "pop", "setdefault"):
                        keys.extend(node.args)
                elif isinstance(node, ast.Compare):
                    keys.extend([node.left, *node.comparators])
                found += [
                    f"{path.relative_to(root)}:{k.lineno} {k.value!r}"
                    for k in keys
                    if isinstance(k, ast.Constant) and k.value in quantities
                ]
    assert found == []
