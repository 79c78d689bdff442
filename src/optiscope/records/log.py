"""Records: an append-only JSONL log per run (layer 5 of the design).

The first line is a header (versions, device, experiment, seed, config); every later line is one
record, written and flushed as the run goes, so a crash or a kill loses nothing already written.
JSON has no NaN or infinity: such floats are written as the strings ``"nan"``, ``"inf"`` and
``"-inf"`` and read back as floats. The reader tolerates a truncated last line (a run killed while
writing it) and raises only :class:`RecordsError` on anything else it cannot read.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from optiscope.core.errors import OptiscopeError

SCHEMA = 1
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class RecordsError(OptiscopeError):
    """A records file that cannot be read as optiscope records."""


def _encode(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _encode(value.item())  # a 0-d tensor or numpy scalar
    if hasattr(value, "tolist"):
        return _encode(value.tolist())
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def environment() -> dict[str, Any]:
    """Versions and machine facts for the header."""
    import torch

    from optiscope.core.version import __version__

    return {
        "optiscope": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


class RecordWriter:
    """Write a run's records to ``path`` (created with its parent folders; an earlier run's file
    there is replaced), one flushed line per record, appended as the run goes."""

    def __init__(self, path: str | os.PathLike[str], header: Mapping[str, Any]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = open(self.path, "w", encoding="utf-8")
        except OSError as err:
            raise RecordsError(
                f"cannot write records to {str(self.path)!r}: {err.strerror or err}. Expected a "
                "writable folder; pass another --out"
            ) from err
        record = {"type": "header", "schema": SCHEMA, "time": time.time(), **header}
        self.write(record)

    def write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            raise RecordsError(f"the records file {str(self.path)!r} is already closed")
        try:  # the C encoder takes plain records; NaN, infinity and tensors need _encode
            line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        except (ValueError, TypeError):
            line = json.dumps(_encode(record), separators=(",", ":"), allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Records:
    """What a records file holds: its header, its records in order, and whether it was cut."""

    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def of_type(self, kind: str) -> Iterator[dict[str, Any]]:
        return (r for r in self.records if r.get("type") == kind)

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """Steps and values of one quantity over the ``step`` records that hold it."""
        steps, values = [], []
        for r in self.of_type("step"):
            # A file read back may hold anything: skip a record whose values are no object or
            # whose step is no number rather than raise.
            vals = r.get("values")
            v = vals.get(name) if isinstance(vals, dict) else None
            if v is None:
                continue
            try:
                step = int(r["step"])
            except (KeyError, TypeError, ValueError, OverflowError):
                continue
            steps.append(step)
            values.append(v)
        return steps, values


def parse_records(data: bytes, source: str = "<bytes>") -> Records:
    """Parse the bytes of a records file; a last line cut short is dropped and flagged."""
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    if complete:
        lines = lines[:-1]
    parsed: list[dict[str, Any]] = []
    truncated = False
    for number, raw in enumerate(lines, start=1):
        last = number == len(lines)
        try:
            item = json.loads(raw.decode("utf-8"))
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            item = _decode(item)
        # JSON nested deeper than the interpreter's recursion limit raises RecursionError in
        # json.loads (or in _decode, a level or two shallower): a line no writer of ours made.
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            if last and not complete:
                truncated = True
                break
            raise RecordsError(
                f"{source}, line {number}: expected one JSON object per line, got "
                f"{raw[:60]!r}{'...' if len(raw) > 60 else ''} ({err}). The file is not an "
                "optiscope records file or was edited"
            ) from None
        parsed.append(item)
    if not parsed or parsed[0].get("type") != "header":
        raise RecordsError(
            f"{source}: expected a header record on the first line, got "
            f"{'nothing' if not parsed else repr(parsed[0].get('type'))}. Is this a records.jsonl "
            "written by optiscope?"
        )
    header = parsed[0]
    if header.get("schema") != SCHEMA:
        raise RecordsError(
            f"{source}: records schema {header.get('schema')!r}, expected {SCHEMA}; it was written "
            "by another optiscope version"
        )
    return Records(header, parsed[1:], truncated)


def read_records(path: str | os.PathLike[str]) -> Records:
    """Read a records file written by :class:`RecordWriter` (or a run killed mid-line)."""
    p = Path(path)
    if p.is_dir():
        p = p / "records.jsonl"
    try:
        data = p.read_bytes()
    except OSError as err:
        raise RecordsError(
            f"cannot read records from {str(p)!r}: {err.strerror or err}. Expected the "
            "records.jsonl of a run (or its folder)"
        ) from err
    return parse_records(data, str(p))
