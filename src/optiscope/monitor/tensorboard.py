"""A records sink that writes every quantity of a run to TensorBoard.

:class:`TensorBoardSink` takes the same records the Monitor writes to ``records.jsonl`` (see
:mod:`optiscope.records.log`) and turns them into TensorBoard summaries under the ``optiscope/``
prefix:

- ``header``: its facts as one markdown table (text ``optiscope/header``), written once.
- ``step``: each number in ``values`` as the scalar ``optiscope/{name}`` at that step; the
  ``nonfinite`` list as the scalar ``optiscope/nonfinite`` = its length. Booleans, strings and
  other lists are not scalars and are skipped. NaN and infinity are written as they are
  (TensorBoard stores them), so a divergence shows on the chart.
- ``hidden_gradients``: the norms ``||dL/dh_t||`` over the time steps ``t`` as one histogram
  ``optiscope/hidden_gradients/{module}`` whose x axis is the time step (bucket ``t`` spans
  ``[t, t + 1)``) and whose height is the norm, so the histogram view shows the decay back in
  time at each training step; and the scalars ``.../first`` and ``.../last`` (the norms at the
  first and last time steps) and ``.../log_slope_per_step``: the least-squares slope of
  ``ln ||dL/dh_t||`` against the distance back in time ``T - 1 - t``, as in the long-term
  dependencies diagnosis (negative: the gradient vanishes back in time, ``exp(slope)`` per step).
- ``layer_gradients`` and ``layer_updates``: each layer's gradient (update) norm as the scalar
  ``optiscope/layer_gradients/{layer}`` (``optiscope/layer_updates/{layer}``) at that step (the
  layers named by the run's first such record; a record whose norms do not match is skipped).
- ``analysis``: each number of the record as the scalar ``optiscope/analysis/{name}/{field}``
  at the last step seen; an interpolation (``alphas`` and ``losses`` of one length) as the
  scalars ``optiscope/analysis/{name}/losses`` and ``.../alphas`` with the index along the path
  as their step. Other fields and other record types are ignored.

TensorBoard is imported only when a sink is created, so ``import optiscope`` stays light.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from optiscope.core.errors import OptiscopeError
from optiscope.core.stats import log_slope, number
from optiscope.records import schema
from optiscope.records.log import step_of

PREFIX = "optiscope"
_INSTALL = 'pip install "optiscope[tensorboard]"'
# Characters that markdown reads as inline formatting, a link, HTML or an entity, and the cell
# separator; block markers (#, -, 1.) mean nothing inside a table cell.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~&])")


class TensorBoardError(OptiscopeError):
    """The TensorBoard sink cannot write where or what it was asked to."""


class TensorBoardUnavailable(TensorBoardError):
    """The tensorboard package, which the TensorBoard sink needs, is not installed."""


def _escape(value: Any) -> str:
    if not isinstance(value, str):
        try:
            value = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            value = str(value)
    return _MARKDOWN.sub(r"\\\1", " ".join(value.splitlines()))


def header_markdown(facts: Mapping[str, Any]) -> str:
    """The facts of a header record as a two-column markdown table, every cell escaped."""
    rows = [
        f"| {_escape(str(key))} | {_escape(value)} |"
        for key, value in facts.items()
        if key != schema.TYPE
    ]
    return "\n".join(["| fact | value |", "| --- | --- |", *rows])


def _path(alphas: Any, losses: Any) -> list[tuple[float, float]]:
    """The ``(alpha, loss)`` pairs of an interpolation; empty unless both are flat lists of
    numbers of one length (a loss recorded as ``None`` is NaN)."""
    if not isinstance(alphas, (list, tuple)) or not isinstance(losses, (list, tuple)):
        return []
    if len(alphas) != len(losses):
        return []
    pairs = []
    for x, y in zip(alphas, losses):
        alpha, loss = number(x), math.nan if y is None else number(y)
        if alpha is None or loss is None:
            return []  # a nested grid (a surface) is not a path
        pairs.append((alpha, loss))
    return pairs


class TensorBoardSink:
    """Write optiscope records to TensorBoard event files in ``logdir``.

    ``sink.write(record)`` takes each record the Monitor emits; :meth:`close` (or leaving the
    ``with`` block) flushes and closes the event file. ``skipped`` counts the values that could
    not be written as they were (a non-finite norm in a hidden-state gradient histogram, written
    as 0).
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = Path(logdir)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise TensorBoardUnavailable(
                "the TensorBoard sink needs the tensorboard package, which is not installed: "
                + _INSTALL
            ) from err
        if self.logdir.exists() and not self.logdir.is_dir():
            raise TensorBoardError(
                f"cannot write TensorBoard logs to {str(self.logdir)!r}: it is a file. Expected "
                "a writable folder (created if missing); pass another log directory"
            )
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self._writer: Any = SummaryWriter(log_dir=str(self.logdir))
        except OSError as err:
            raise TensorBoardError(
                f"cannot write TensorBoard logs to {str(self.logdir)!r}: "
                f"{err.strerror or err}. Expected a writable folder (created if missing); pass "
                "another log directory"
            ) from err
        self.skipped = 0
        self._header_written = False
        self._step = 0
        self._layers: dict[str, list[str]] = {}  # each per-layer record kind's layer names

    def write(self, record: Mapping[str, Any]) -> None:
        """Write one record; records of a type the sink does not know are ignored."""
        if self._writer is None:
            raise TensorBoardError(
                f"the TensorBoard sink for {str(self.logdir)!r} is already closed; create a new "
                "one to write more records"
            )
        kind = record.get(schema.TYPE)
        if kind == schema.HEADER:
            self._header(record)
        elif kind == schema.STEP_RECORD:
            self._values(record)
        elif kind == schema.HIDDEN_GRADIENTS:
            self._hidden_gradients(record)
        elif kind in (schema.LAYER_GRADIENTS, schema.LAYER_UPDATES):
            self._layer_norms(kind, record)
        elif kind == schema.ANALYSIS:
            self._analysis(record)

    def _header(self, record: Mapping[str, Any]) -> None:
        if self._header_written:
            return
        self._writer.add_text(f"{PREFIX}/header", header_markdown(record), 0)
        self._header_written = True

    def _seen(self, record: Mapping[str, Any]) -> int | None:
        step = record.get(schema.STEP)
        if isinstance(step, bool) or not isinstance(step, int):
            return None
        self._step = step
        return step

    def _values(self, record: Mapping[str, Any]) -> None:
        # The rule of records.log.series, so that TensorBoard charts what the report draws.
        step = step_of(record)
        if step is None:
            self._seen(record)  # a step that is an int still dates the analyses that follow
            return
        self._step = step
        for name, value in record[schema.VALUES].items():
            if name == schema.NONFINITE and isinstance(value, (list, tuple)):
                self._writer.add_scalar(f"{PREFIX}/{schema.NONFINITE}", float(len(value)), step)
                continue
            v = number(value)
            if v is not None:
                self._writer.add_scalar(f"{PREFIX}/{name}", v, step)

    def _layer_norms(self, kind: str, record: Mapping[str, Any]) -> None:
        names = record.get(schema.NAMES)
        if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
            self._layers[kind] = list(names)  # written once, on the run's first such record
        step = self._seen(record)
        norms = record.get(schema.NORMS)
        layers = self._layers.get(kind, [])
        if step is None or not isinstance(norms, (list, tuple)) or len(norms) != len(layers):
            return
        for name, value in zip(layers, norms):
            v = number(value)
            if v is not None:
                self._writer.add_scalar(f"{PREFIX}/{kind}/{name}", v, step)

    def _hidden_gradients(self, record: Mapping[str, Any]) -> None:
        step = self._seen(record)
        raw = record.get(schema.NORMS)
        if step is None or not isinstance(raw, (list, tuple)) or not raw:
            return
        norms = [number(n) for n in raw]
        norms_f = [math.nan if n is None else n for n in norms]
        counts = [n if math.isfinite(n) else 0.0 for n in norms_f]
        self.skipped += sum(1 for n in norms_f if not math.isfinite(n))
        T = len(counts)
        tag = f"{PREFIX}/{schema.HIDDEN_GRADIENTS}/{record.get(schema.MODULE, 'rnn')}"
        self._writer.add_histogram_raw(
            tag,
            min=0.0,
            max=float(T),
            num=sum(counts),
            sum=sum(t * c for t, c in enumerate(counts)),
            sum_squares=sum(t * t * c for t, c in enumerate(counts)),
            bucket_limits=[float(t + 1) for t in range(T)],
            bucket_counts=counts,
            global_step=step,
        )
        self._writer.add_scalar(f"{tag}/first", norms_f[0], step)
        self._writer.add_scalar(f"{tag}/last", norms_f[-1], step)
        slope = log_slope(norms_f)
        if slope is not None:
            self._writer.add_scalar(f"{tag}/log_slope_per_step", slope, step)

    def _analysis(self, record: Mapping[str, Any]) -> None:
        name = record.get(schema.NAME)
        if not isinstance(name, str):
            return
        tag = f"{PREFIX}/{schema.ANALYSIS}/{name}"
        for field, value in record.items():
            if field in (schema.TYPE, schema.NAME):
                continue
            v = number(value)
            if v is not None:
                self._writer.add_scalar(f"{tag}/{field}", v, self._step)
        path = _path(record.get(schema.ALPHAS), record.get(schema.LOSSES))
        for i, (a, loss) in enumerate(path):
            self._writer.add_scalar(f"{tag}/{schema.ALPHAS}", a, i)
            self._writer.add_scalar(f"{tag}/{schema.LOSSES}", loss, i)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file; closing twice is harmless."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
