"""Fuzzing: the detectors on arbitrary series and the record reader on arbitrary bytes.

Detectors must never raise and always answer in their fixed vocabulary with JSON-serializable
evidence; the reader must return :class:`Records` or raise :class:`RecordsError`, nothing else.
Every test is derandomized so that CI sees the same examples on every run.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optiscope.core.stats import finite
from optiscope.diagnosis import CHALLENGES, DETECTORS, Finding, Severity, diagnose
from optiscope.diagnosis import detectors as _diagnosis
from optiscope.records import schema
from optiscope.records.log import Records, RecordsError, encode, parse_records

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Whole runs (up to 60 steps of 15 quantities) are dearer to draw: fewer, to keep the file < 15 s.
FUZZ_RUNS = settings(FUZZ, max_examples=100)

NAMES = (
    schema.LOSS,
    schema.GRAD_NORM,
    schema.BATCH_SIZE,
    schema.TRACE_COV,
    schema.GRAD_NORM_SQ_UNBIASED,
    schema.SNR,
    schema.GTHG,
    schema.GTG,
    schema.PREDICTED_CHANGE,
    schema.ACTUAL_CHANGE,
    schema.SHARPNESS,
    schema.STABILITY_THRESHOLD,
    schema.LAMBDA_MIN,
    schema.CURVATURE_ALONG_GRADIENT,
    schema.GRADIENT_THRESHOLD,
)
NASTY = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    1e308,
    -1e308,
    1e-308,
    -1e-308,
    5e-324,
    -5e-324,
    math.nan,
    math.inf,
    -math.inf,
    10**400,
    -(10**400),
    True,
    False,
    None,
    "nan",
    "inf",
    "",
    "x",
]

# What a value slot of a record may hold: numbers of every size and kind, and the wrong types.
numbers = st.one_of(
    st.sampled_from(NASTY),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-300, max_value=1e-300),
    st.integers(),
    st.integers(min_value=-(10**500), max_value=10**500),
)
junk = st.one_of(
    numbers,
    st.text(max_size=4),
    st.lists(numbers, max_size=3),
    st.dictionaries(st.text(max_size=3), numbers, max_size=2),
)


@st.composite
def runs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A run's records: step records from arbitrary series, recurrent and analysis records of
    right and wrong shapes, and records with missing or mistyped keys, in any order."""
    n = draw(st.one_of(st.integers(0, 4), st.integers(18, 60)))  # detectors want >= 20 steps
    order = draw(st.sampled_from(["sequential", "reversed", "repeated", "shuffled", "junk"]))
    if order == "sequential":
        steps: list[Any] = list(range(n))
    elif order == "reversed":
        steps = list(range(n))[::-1]
    elif order == "repeated":
        steps = [i // 3 for i in range(n)]
    elif order == "shuffled":
        steps = draw(st.permutations(range(n)))
    else:
        steps = draw(st.lists(junk, min_size=n, max_size=n))
    columns: dict[str, list[Any]] = {}
    names = draw(st.lists(st.sampled_from(NAMES), unique=True))
    if draw(st.booleans()):
        names += [k for k in (schema.LOSS, schema.GRAD_NORM) if k not in names]
    for name in names:
        kind = draw(st.sampled_from(["decay", "constant", "ramp", "spike", "decay", "arbitrary"]))
        if kind == "arbitrary":
            columns[name] = draw(st.lists(junk, min_size=n, max_size=n))
            continue
        v = draw(numbers)
        if kind == "constant":
            columns[name] = [v] * n
        elif kind == "ramp":
            scale = draw(st.sampled_from([1.0, 1e-308, 1e308, -1.0, 0.0]))
            columns[name] = [scale * (i + 1) for i in range(n)]
        elif kind == "decay":
            rate = draw(st.sampled_from([0.5, 0.9, 0.999, 1.0, 1.1]))
            columns[name] = [(v if finite(v) else 1.0) * rate**i for i in range(n)]
        else:
            columns[name] = [1.0] * n
            if n:
                columns[name][draw(st.integers(0, n - 1))] = v
    holes = draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=3)) if draw(st.booleans()) else ()
    records: list[dict[str, Any]] = []
    for i in range(n):
        values = {k: col[i] for k, col in columns.items() if i not in holes}
        record: dict[str, Any] = {
            schema.TYPE: schema.STEP_RECORD,
            schema.STEP: steps[i],
            schema.VALUES: values,
        }
        if i in holes:
            del record[draw(st.sampled_from([schema.STEP, schema.VALUES, schema.TYPE]))]
        records.append(record)
    records += draw(st.lists(extra_records, max_size=4))
    records += draw(st.lists(st.one_of(hidden_norms, interpolation), max_size=3))
    if draw(st.booleans()):
        records = draw(st.permutations(records))
    return records


norms = st.one_of(
    st.builds(
        lambda rate, n, spoil: [rate**t for t in range(n)] + spoil,
        st.sampled_from([1e-3, 0.5, 0.9, 1.0, 1.5, 10.0]),
        st.integers(0, 30),
        st.lists(numbers, max_size=2),
    ),
    st.lists(numbers, max_size=12),
    st.lists(st.just(math.nan), max_size=5),
    st.lists(st.floats(min_value=1e-320, max_value=1e-300), min_size=3, max_size=6),
    junk,
)
hidden = st.fixed_dictionaries(
    {schema.TYPE: st.just(schema.HIDDEN_GRADIENTS)},
    optional={
        schema.STEP: junk,
        schema.MODULE: junk,
        schema.NORMS: norms,
    },
)
analysis = st.fixed_dictionaries(
    {
        schema.TYPE: st.just(schema.ANALYSIS),
        schema.NAME: st.sampled_from([schema.INTERPOLATION, schema.TRAJECTORY, "x"]),
    },
    optional={
        schema.BARRIER: junk,
        schema.PATH_LENGTH: junk,
        schema.DISTANCE: junk,
        schema.LOSSES: st.one_of(junk, st.lists(junk, max_size=4)),
        schema.EXPLAINED: st.one_of(junk, st.lists(st.one_of(junk, st.lists(junk)), max_size=4)),
        schema.RATIO: junk,
    },
)
hidden_norms = st.fixed_dictionaries(
    {
        schema.TYPE: st.just(schema.HIDDEN_GRADIENTS),
        schema.STEP: st.integers(0, 9),
        schema.NORMS: norms,
    }
)
interpolation = st.fixed_dictionaries(
    {
        schema.TYPE: st.just(schema.ANALYSIS),
        schema.NAME: st.just(schema.INTERPOLATION),
        schema.BARRIER: numbers,
        schema.PATH_LENGTH: numbers,
        schema.DISTANCE: numbers,
        schema.LOSSES: st.lists(numbers, max_size=5),
    }
)
extra_records = st.one_of(
    hidden,
    analysis,
    st.dictionaries(
        st.sampled_from([schema.TYPE, schema.STEP, schema.VALUES, schema.NORMS, schema.NAME]), junk
    ),
    st.fixed_dictionaries(
        {schema.TYPE: st.just(schema.STEP_RECORD), schema.STEP: junk, schema.VALUES: junk}
    ),
)


def check(finding: Any, challenge: str) -> None:
    assert isinstance(finding, Finding)
    assert finding.challenge == challenge
    assert isinstance(finding.severity, Severity) and finding.severity != Severity.ERROR
    assert isinstance(finding.summary, str) and finding.summary.strip()
    assert isinstance(finding.remedy, str)
    assert isinstance(finding.evidence, dict)
    json.dumps(encode(finding.evidence), allow_nan=False)
    json.dumps(encode(finding.to_dict()), allow_nan=False)


def nasty_steps(**columns: list[Any]) -> list[dict[str, Any]]:
    n = max(len(c) for c in columns.values())
    return [
        {
            schema.TYPE: schema.STEP_RECORD,
            schema.STEP: i,
            schema.VALUES: {k: c[i] for k, c in columns.items() if i < len(c)},
        }
        for i in range(n)
    ]


def hidden_record(**fields: Any) -> dict[str, Any]:
    return {schema.TYPE: schema.HIDDEN_GRADIENTS, **fields}


def analysis_record(name: str, **fields: Any) -> dict[str, Any]:
    return {schema.TYPE: schema.ANALYSIS, schema.NAME: name, **fields}


@FUZZ_RUNS
@given(runs())
@example([])
@example(nasty_steps(**{schema.LOSS: [1.0], schema.GRAD_NORM: [1.0]}))
@example(
    nasty_steps(
        **{
            schema.TRACE_COV: [1e308] * 4,
            schema.GRAD_NORM_SQ_UNBIASED: [1.0] * 4,
            schema.BATCH_SIZE: [8] * 4,
        }
    )
)
@example(
    nasty_steps(
        **{schema.CURVATURE_ALONG_GRADIENT: [1.0] * 4, schema.GRADIENT_THRESHOLD: [0.0] * 4}
    )
)
@example(nasty_steps(**{schema.LOSS: [10**400] * 30, schema.GRAD_NORM: [10**400] * 30}))
@example([hidden_record(**{schema.NORMS: [10**400, 1.0, 1e-308, 5e-324]})])
@example([hidden_record(**{schema.NORMS: []}), hidden_record()])
@example([analysis_record(schema.INTERPOLATION, **{schema.BARRIER: 10**400, schema.LOSSES: 3})])
@example([analysis_record(schema.INTERPOLATION, **{schema.LOSSES: {"a": 1}, schema.DISTANCE: 0})])
@example([analysis_record(schema.TRAJECTORY, **{schema.EXPLAINED: [[1.0], 0.5]})])
def test_every_detector_answers_in_its_vocabulary_on_any_run(records):
    for challenge, detector in DETECTORS.items():
        check(detector(records), challenge)
    findings = diagnose(records)
    assert [f.challenge for f in findings] == list(CHALLENGES)
    for f in findings:
        check(f, f.challenge)
        assert not f.summary.startswith("the detector failed"), f.summary


reals = st.one_of(
    st.sampled_from([v for v in NASTY if finite(v) or isinstance(v, float)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.5, max_value=2.0),
)


@FUZZ
@given(st.lists(st.tuples(reals, reals, reals, reals), max_size=60))
@example([(1.0, 1.0, -1.0, 1.0)] * 30)
@example([(1e308, 1e-308, -5e-324, 1e308)] * 30)
@example([(1.0, 1.0 + i % 3, 0.0, 0.0) for i in range(30)] + [(1e308, 1e308, 1.0, 1.0)])
def test_the_step_detectors_on_numeric_series_of_any_size(rows):
    """Loss, gradient norm and curvature as numbers only, so the verdicts past "not measured"
    (flat, stalled, saddle, spike) meet NaN, infinity, overflow and subnormals."""
    records = [
        {
            schema.TYPE: schema.STEP_RECORD,
            schema.STEP: i,
            schema.VALUES: {
                schema.LOSS: a,
                schema.GRAD_NORM: b,
                schema.LAMBDA_MIN: c,
                schema.SHARPNESS: d,
            },
        }
        for i, (a, b, c, d) in enumerate(rows)
    ]
    for f in diagnose(records):
        check(f, f.challenge)
        assert not f.summary.startswith("the detector failed"), f.summary


@settings(FUZZ, max_examples=50)
@given(st.lists(st.one_of(junk, st.none(), extra_records), max_size=6), runs())
def test_diagnose_skips_what_is_not_a_record(noise, records):
    findings = diagnose(noise + records)
    assert [f.challenge for f in findings] == list(CHALLENGES)
    for f in findings:
        check(f, f.challenge)


def test_the_public_detectors_are_all_fuzzed():
    public = {
        name
        for name in dir(_diagnosis)
        if name.startswith("detect_") and callable(getattr(_diagnosis, name))
    }
    assert public == {d.__name__ for d in DETECTORS.values()}


# --- the record reader --------------------------------------------------------------------------

HEADER = {schema.TYPE: schema.HEADER, schema.SCHEMA: schema.VERSION, "seed": 0}
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
records_st = st.lists(
    st.fixed_dictionaries(
        {schema.TYPE: st.just(schema.STEP_RECORD), schema.STEP: st.integers(0, 10**6)},
        optional={schema.VALUES: st.dictionaries(st.sampled_from(NAMES), json_values, max_size=3)},
    ),
    max_size=5,
)


def line(record: Any) -> bytes:
    return json.dumps(encode(record), separators=(",", ":"), allow_nan=False).encode() + b"\n"


def canonical(records: list[dict[str, Any]]) -> str:
    return json.dumps(encode(records), allow_nan=False)


def parse_or_error(data: bytes) -> Records | None:
    try:
        result = parse_records(data)
    except RecordsError:
        return None
    assert isinstance(result, Records)
    assert isinstance(result.header, dict) and result.header.get(schema.TYPE) == schema.HEADER
    assert all(isinstance(r, dict) for r in result.records)
    for name in NAMES:  # what the report reads from a parsed run
        steps, values = result.series(name)
        assert len(steps) == len(values)
    for f in diagnose(result.records):  # and what it returns, the detectors take
        check(f, f.challenge)
        assert not f.summary.startswith("the detector failed"), f.summary
    return result


@FUZZ
@given(st.binary(max_size=300))
@example(b"")
@example(b"\n")
@example(b"\xff\xfe\n")
@example(b'{"type":"header","schema":1}')
@example(b'{"type":"header","schema":1}\n\xff')
@example(b'{"type":"header","schema":1}\n[1,2]\n{}\n')
@example(b'{"type":"header","schema":1}\n' + b"[" * 100_000 + b"\n")
@example(b'{"type":"header","schema":1}\n' + b'{"a":' * 50_000 + b"\n")
@example(b'{"type":"header","schema":1}\n{"type":"step","step":1' + b"0" * 5000 + b"}\n")
@example(b'{"type":"header","schema":1}\n{"type":"step","step":1e999,"values":[]}\n')
@example(b'{"type":"header","schema":1}\n{"type":"step","step":"1","values":{"loss":"inf"}}\n')
def test_any_bytes_give_records_or_a_records_error(data):
    parse_or_error(data)


@FUZZ
@given(st.integers(1, 3000), st.sampled_from(["[", '{"a":']), st.booleans())
@example(990, "[", True)
@example(2000, '{"a":', True)
@example(100_000, "[", False)
def test_deep_nesting_is_a_records_error_or_records(depth, opener, close):
    closer = {"[": "]", '{"a":': "}"}[opener]
    body = opener * depth + "0" + (closer * depth if close else "")
    data = line(HEADER) + ('{"deep":' + body + "}\n").encode()
    result = parse_or_error(data)
    if not close:
        assert result is None


@FUZZ
@given(records_st, st.data())
def test_any_prefix_of_a_valid_file_is_read_up_to_its_last_whole_line(records, data):
    lines = [line(HEADER)] + [line(r) for r in records]
    whole = b"".join(lines)
    cut = data.draw(st.integers(0, len(whole)))
    prefix = whole[:cut]
    # Lines wholly inside the prefix, and what is left of the next one.
    k, at = 0, 0
    while k < len(lines) and at + len(lines[k]) <= cut:
        at += len(lines[k])
        k += 1
    rest = prefix[at:]
    # A line cut just before its newline is a whole record still.
    if k < len(lines) and rest == lines[k][:-1]:
        k, rest = k + 1, b""
    if k == 0:
        try:
            parse_records(prefix)
        except RecordsError:
            return
        raise AssertionError("a cut header must be a RecordsError")
    result = parse_records(prefix)
    assert result.truncated == bool(rest)
    assert canonical(result.records) == canonical(records[: k - 1])


@FUZZ
@given(records_st, st.data())
def test_a_valid_file_with_a_byte_flipped_or_inserted_gives_records_or_an_error(records, data):
    whole = bytearray(line(HEADER) + b"".join(line(r) for r in records))
    at = data.draw(st.integers(0, len(whole) - 1))
    byte = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        whole[at] = byte
    else:
        whole.insert(at, byte)
    parse_or_error(bytes(whole))


@FUZZ
@given(json_values.filter(lambda v: not isinstance(v, dict)), st.booleans())
def test_a_line_of_json_that_is_not_an_object_is_a_records_error(value, last):
    bad = json.dumps(encode(value), allow_nan=False).encode()
    after = line({schema.TYPE: schema.STEP_RECORD, schema.STEP: 1})
    data = line(HEADER) + bad + (b"\n" if last else b"\n" + after)
    assert parse_or_error(data) is None


@FUZZ
@given(records_st)
def test_what_the_reader_returns_the_detectors_take(records):
    data = line(HEADER) + b"".join(line(r) for r in records)
    result = parse_records(data)
    assert canonical(result.records) == canonical(records) and not result.truncated
    for f in diagnose(result.records):
        check(f, f.challenge)
