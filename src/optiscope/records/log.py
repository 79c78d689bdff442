"""Records: an append-only JSONL log per run (layer 5 of the design), and its findings file.

The first line is a header (versions, device, experiment, seed, config); every later line is one
record, written and flushed as the run goes, so a crash or a kill loses nothing already written.
JSON has no NaN or infinity: such floats are written as the strings ``"nan"``, ``"inf"`` and
``"-inf"`` and read back as floats. The reader tolerates a truncated last line (a run killed while
writing it) and raises only :class:`RecordsError` on anything else it cannot read. The names of
record types, fields and quantities are those of :mod:`optiscope.records.schema`.

``findings.json`` holds the verdicts on a run as plain dicts, with the same encoding;
:func:`write_findings` and :func:`read_findings` know nothing of the class that made them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from optiscope.core.errors import OptiscopeError
from optiscope.core.files import OutputError, refuse_link, write_atomic
from optiscope.core.stats import number
from optiscope.records import schema

SCHEMA = schema.VERSION
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class RecordsError(OptiscopeError):
    """A records file that cannot be read as optiscope records."""


def encode(value: Any) -> Any:
    """``value`` as JSON takes it: NaN and infinities as strings, tensors and numpy values as
    numbers and lists."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return encode(value.item())  # a 0-d tensor or numpy scalar
    if hasattr(value, "tolist"):
        return encode(value.tolist())
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` on what JSON gives back."""
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class RecordWriter:
    """Write a run's records to ``path`` (created with its parent folders; an earlier run's file
    there is replaced: keeping one run per folder is :mod:`optiscope.records.folder`'s job), one
    flushed line per record, appended as the run goes.

    The header gets the fields the writer owns (:data:`schema.RESERVED_HEADER`: the type, the
    schema's version, the time and a new :attr:`run_id`); a header that sets one is refused.
    ``path`` may not be a symbolic link. A failed write raises :class:`RecordsError` naming the
    file.
    """

    def __init__(self, path: str | os.PathLike[str], header: Mapping[str, Any]) -> None:
        self.path = Path(path)
        reserved = [k for k in header if k in schema.RESERVED_HEADER]
        if reserved:
            raise RecordsError(
                f"the header sets {reserved}, which the records writer owns "
                f"({', '.join(schema.RESERVED_HEADER)}): rename those keys (e.g. "
                f"{reserved[0]!r} -> 'user_{reserved[0]}')"
            )
        try:
            refuse_link(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = open(self.path, "w", encoding="utf-8")
        except OutputError as err:
            raise RecordsError(str(err)) from None
        except OSError as err:
            raise RecordsError(
                f"cannot write records to {str(self.path)!r}: {err.strerror or err}. Expected a "
                "writable folder; pass another --out"
            ) from err
        self.run_id = uuid.uuid4().hex[:16]
        record = {
            schema.TYPE: schema.HEADER,
            schema.SCHEMA: SCHEMA,
            schema.TIME: time.time(),
            schema.RUN_ID: self.run_id,
            **header,
        }
        self.write(record)

    def write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            raise RecordsError(f"the records file {str(self.path)!r} is already closed")
        try:  # the C encoder takes plain records; NaN, infinity and tensors need encode
            line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        except (ValueError, TypeError):
            line = json.dumps(encode(record), separators=(",", ":"), allow_nan=False)
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as err:
            raise RecordsError(
                f"cannot write records to {str(self.path)!r}: {err.strerror or err}. Expected a "
                "writable folder with room for them; free some space, or write elsewhere"
            ) from err

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):  # a full disk: what was written is on it
                file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def step_of(record: Any) -> int | None:
    """The step of a ``step`` record, or None where ``record`` is no step record that
    :func:`series` reads: not a mapping, another type, ``values`` no mapping, or a step that is
    no int (a bool is none)."""
    if not isinstance(record, Mapping) or record.get(schema.TYPE) != schema.STEP_RECORD:
        return None
    step = record.get(schema.STEP)
    if isinstance(step, bool) or not isinstance(step, int):
        return None
    return step if isinstance(record.get(schema.VALUES), Mapping) else None


def series(records: Iterable[Any], name: str) -> tuple[list[int], list[float]]:
    """Steps and values of the quantity ``name`` over the ``step`` records that hold a number
    for it (:func:`optiscope.core.stats.number`), in the order of ``records``.

    A file read back may hold anything: a record that is no step record by :func:`step_of`, or
    whose value is no number (a string, a list, a bool, None), is skipped, never raised on.

    >>> series([{"type": "step", "step": 0, "values": {"loss": 2}},
    ...         {"type": "step", "step": 1, "values": {"loss": "x"}}], "loss")
    ([0], [2.0])
    """
    steps, values = [], []
    for r in records:
        step = step_of(r)
        if step is None:
            continue
        v = number(r[schema.VALUES].get(name))
        if v is not None:
            steps.append(step)
            values.append(v)
    return steps, values


@dataclass
class Records:
    """What a records file holds: its header, its records in order, and whether it was cut."""

    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def of_type(self, kind: str) -> Iterator[dict[str, Any]]:
        return (r for r in self.records if r.get(schema.TYPE) == kind)

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """Steps and values of one quantity, as :func:`series` reads them."""
        return series(self.records, name)


def parse_records(data: bytes, source: str = "<bytes>") -> Records:
    """Parse the bytes of a records file; a last line cut short is dropped and flagged."""
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    if complete:
        lines = lines[:-1]
    parsed: list[dict[str, Any]] = []
    truncated = False
    for lineno, raw in enumerate(lines, start=1):
        last = lineno == len(lines)
        try:
            item = json.loads(raw.decode("utf-8"))
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            item = decode(item)
        # JSON nested deeper than the interpreter's recursion limit raises RecursionError in
        # json.loads (or in decode, a level or two shallower): a line no writer of ours made.
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            if last and not complete:
                truncated = True
                break
            raise RecordsError(
                f"{source}, line {lineno}: expected one JSON object per line, got "
                f"{raw[:60]!r}{'...' if len(raw) > 60 else ''} ({err}). The file is not an "
                "optiscope records file or was edited"
            ) from None
        parsed.append(item)
    if not parsed or parsed[0].get(schema.TYPE) != schema.HEADER:
        raise RecordsError(
            f"{source}: expected a header record on the first line, got "
            f"{'nothing' if not parsed else repr(parsed[0].get(schema.TYPE))}. Is this a "
            "records.jsonl written by optiscope?"
        )
    header = parsed[0]
    if header.get(schema.SCHEMA) != SCHEMA:
        raise RecordsError(
            f"{source}: records schema {header.get(schema.SCHEMA)!r}, expected {SCHEMA}; it was "
            "written by another optiscope version"
        )
    return Records(header, parsed[1:], truncated)


def read_records(path: str | os.PathLike[str]) -> Records:
    """Read a records file written by :class:`RecordWriter` (or a run killed mid-line)."""
    p = Path(path)
    if p.is_dir():
        p = p / schema.RECORDS_FILE
    try:
        data = p.read_bytes()
    except OSError as err:
        raise RecordsError(
            f"cannot read records from {str(p)!r}: {err.strerror or err}. Expected the "
            "records.jsonl of a run (or its folder)"
        ) from err
    return parse_records(data, str(p))


def write_findings(
    folder: str | os.PathLike[str],
    findings: Sequence[Mapping[str, Any]],
    experiment: str | None = None,
    *,
    run_id: str | None = None,
    last_step: int | None = None,
) -> Path:
    """Write ``folder/findings.json``: the ``findings``, the ``experiment``'s name, and the
    ``run_id`` and ``last_step`` of the records they were built from (so a reader can tell stale
    findings), NaN and infinity encoded as in the records; its path. The file is replaced whole
    (:func:`optiscope.core.files.write_atomic`), so a reader never sees half of it."""
    path = Path(folder) / schema.FINDINGS_FILE
    payload = {
        schema.EXPERIMENT: experiment,
        schema.RUN_ID: run_id,
        schema.LAST_STEP: last_step,
        schema.FINDINGS: [dict(f) for f in findings],
    }
    text = json.dumps(encode(payload), indent=2, allow_nan=False) + "\n"
    try:
        return write_atomic(path, text)
    except OutputError as err:
        cause = err.__cause__
        why = (cause.strerror if isinstance(cause, OSError) else None) or cause or err
        raise RecordsError(
            f"cannot write the findings to {str(path)!r}: {why}. Expected a writable run "
            "folder with room for them; make it writable, free some space, or write the run "
            "elsewhere"
        ) from cause


@dataclass
class FindingsFile:
    """What ``findings.json`` holds: the findings and the run (id, last step) they describe."""

    findings: list[dict[str, Any]]
    run_id: str | None = None
    last_step: int | None = None


def last_step(records: Iterable[Any]) -> int | None:
    """The largest step of the ``step`` records, None without any."""
    return max((s for s in map(step_of, records) if s is not None), default=None)


def _read_findings(folder: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], dict]:
    """The findings file's findings and its whole payload; raises as :func:`read_findings`."""
    path = Path(folder) / schema.FINDINGS_FILE
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RecordsError(
            f"cannot read the findings from {str(path)!r}: {err.strerror or err}. Expected the "
            "findings.json a Monitor writes when it closes; `optiscope report` recomputes it "
            "from the records"
        ) from err
    try:
        payload = decode(json.loads(data.decode("utf-8")))
        items = payload.get(schema.FINDINGS) if isinstance(payload, dict) else None
        if not isinstance(items, list) or not all(
            isinstance(f, dict) and isinstance(f.get(schema.CHALLENGE), str) for f in items
        ):
            raise ValueError(
                'not an object whose "findings" is a list of objects with a "challenge"'
            )
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise RecordsError(
            f'{str(path)!r}: expected {{"experiment": ..., "findings": [{{"challenge": '
            f"..., ...}}, ...]}}, got {data[:60]!r}{'...' if len(data) > 60 else ''} ({err}). "
            "The file was edited or cut short; delete it and run `optiscope report` to recompute it"
        ) from err
    return items, payload


def read_findings(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The findings in ``folder/findings.json``, as the dicts :func:`write_findings` wrote
    (:func:`load_findings` also says which run they describe).

    Raises :class:`RecordsError` on a file missing, unreadable or not of that shape; where it
    is missing, the error's ``__cause__`` is the :class:`FileNotFoundError` (a run whose Monitor
    never closed has none).
    """
    return _read_findings(folder)[0]


def load_findings(folder: str | os.PathLike[str]) -> FindingsFile:
    """``folder/findings.json`` with the identity of the run it was built from (None where a
    file of an older version does not say); raises as :func:`read_findings` does."""
    items, payload = _read_findings(folder)
    run = payload.get(schema.RUN_ID)
    last = payload.get(schema.LAST_STEP)
    return FindingsFile(
        items,
        run if isinstance(run, str) else None,
        last if isinstance(last, int) and not isinstance(last, bool) else None,
    )
