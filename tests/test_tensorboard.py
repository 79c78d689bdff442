"""The TensorBoard sink: records written, then read back from the event files."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from optiscope.core.errors import OptiscopeError
from optiscope.core.stats import log_slope
from optiscope.monitor.tensorboard import (
    TensorBoardError,
    TensorBoardSink,
    TensorBoardUnavailable,
    header_markdown,
)
from optiscope.records import schema
from optiscope.records.log import series

pytest.importorskip("tensorboard")

NORMS = [1e-4, 1e-3, 1e-2, 1e-1]  # x10 per time step forward: x0.1 per step back in time


def f32(x: float) -> float:
    return float(np.float32(x))


def load(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    kinds = ("scalars", "histograms", "tensors", "compressedHistograms", "images", "audio")
    acc = EventAccumulator(str(logdir), size_guidance=dict.fromkeys(kinds, 0))
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


RECORDS = [
    {
        schema.TYPE: schema.HEADER,
        schema.SCHEMA: schema.VERSION,
        schema.OPTISCOPE_VERSION: "0.1.0",
        schema.CONFIG: {"lr": 0.1},
        "note": "a|b_c <i>&amp;",
    },
    {
        schema.TYPE: schema.HEADER,
        schema.SCHEMA: schema.VERSION,
        "note": "a second header is ignored",
    },
    {
        schema.TYPE: schema.STEP_RECORD,
        schema.STEP: 0,
        schema.VALUES: {
            schema.LOSS: 2.5,
            schema.GRAD_NORM: 0.125,
            "batches": 3,
            schema.NONFINITE: [],
        },
    },
    {
        schema.TYPE: schema.STEP_RECORD,
        schema.STEP: 1,
        schema.VALUES: {
            schema.LOSS: math.nan,
            schema.GRAD_NORM: math.inf,
            "flag": True,
            "name": "adam",
            "eig": [1.0, 2.0],
            "lr": torch.tensor(0.01),
            schema.NONFINITE: [schema.LOSS, schema.GRAD_NORM],
        },
    },
    {
        schema.TYPE: schema.HIDDEN_GRADIENTS,
        schema.STEP: 1,
        schema.MODULE: "rnn",
        schema.NORMS: NORMS,
    },
    {
        schema.TYPE: schema.LAYER_GRADIENTS,
        schema.STEP: 0,
        schema.NAMES: ["0", "2"],
        schema.NORMS: [0.5, 0.25],
    },
    {schema.TYPE: schema.LAYER_GRADIENTS, schema.STEP: 1, schema.NORMS: [0.75, math.inf]},
    {schema.TYPE: schema.LAYER_GRADIENTS, schema.STEP: 1, schema.NORMS: [1.0]},  # no match
    {
        schema.TYPE: schema.LAYER_UPDATES,
        schema.STEP: 0,
        schema.NAMES: ["0", "2", "4"],
        schema.NORMS: [0.1, 0.2, 0.3],
    },
    {schema.TYPE: schema.LAYER_UPDATES, schema.STEP: 1, schema.NORMS: [0.4, 0.5, 0.6]},
    {schema.TYPE: schema.EVENT, schema.STEP: 1, "what": "ignored"},
    {
        schema.TYPE: schema.ANALYSIS,
        schema.NAME: schema.INTERPOLATION,
        schema.ALPHAS: [0.0, 0.5, 1.0],
        schema.LOSSES: [2.0, 3.0, None],
        schema.BARRIER: 1.0,
        schema.DISTANCE: 4,
        schema.PATH_LENGTH: 7.5,
    },
    {
        schema.TYPE: schema.ANALYSIS,
        schema.NAME: schema.FINAL_POINT,
        schema.KIND: "minimum",
        schema.INDEX: 0,
        schema.LOSS: 0.25,
    },
    {
        schema.TYPE: schema.ANALYSIS,
        schema.NAME: schema.SURFACE,
        schema.XS: [0.0, 1.0],
        schema.LOSSES: [[1.0, 2.0], [3.0, 4.0]],
    },
]


def hidden(step, module, norms):
    return {
        schema.TYPE: schema.HIDDEN_GRADIENTS,
        schema.STEP: step,
        schema.MODULE: module,
        schema.NORMS: norms,
    }


@pytest.fixture(scope="module")
def acc(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("tb") / "run"  # created by the sink
    with TensorBoardSink(logdir) as sink:
        for r in RECORDS:
            sink.write(r)
    assert sink.skipped == 0
    return load(logdir)


def test_step_values_are_scalars_at_their_step(acc):
    assert scalars(acc, "optiscope/loss")[0] == (0, 2.5)
    step, value = scalars(acc, "optiscope/loss")[1]
    assert step == 1 and math.isnan(value)
    assert scalars(acc, "optiscope/grad_norm") == [(0, 0.125), (1, math.inf)]
    assert scalars(acc, "optiscope/batches") == [(0, 3.0)]
    assert scalars(acc, "optiscope/lr") == [(1, f32(0.01))]
    assert scalars(acc, "optiscope/nonfinite") == [(0, 0.0), (1, 2.0)]


def test_layer_gradients_are_one_scalar_per_layer_named_by_the_first_record(acc):
    assert scalars(acc, "optiscope/layer_gradients/0") == [(0, 0.5), (1, 0.75)]
    assert scalars(acc, "optiscope/layer_gradients/2")[0] == (0, 0.25)
    step, value = scalars(acc, "optiscope/layer_gradients/2")[1]
    assert step == 1 and math.isinf(value)
    # Per-layer updates keep their own layer names.
    assert scalars(acc, "optiscope/layer_updates/4") == [
        (0, pytest.approx(0.3)),
        (1, pytest.approx(0.6)),
    ]


def test_bools_strings_and_lists_are_not_scalars(acc):
    tags = set(acc.Tags()["scalars"])
    assert not {"optiscope/flag", "optiscope/name", "optiscope/eig"} & tags


def test_header_is_one_escaped_markdown_table(acc):
    events = acc.Tensors("optiscope/header/text_summary")
    assert len(events) == 1
    text = events[0].tensor_proto.string_val[0].decode()
    lines = text.splitlines()
    assert lines[:2] == ["| fact | value |", "| --- | --- |"]
    assert r"| note | a\|b\_c \<i\>\&amp; |" in lines
    assert '| config | {"lr": 0.1} |' in lines
    assert not any("second header" in line for line in lines)
    assert not any(line.startswith("| type ") for line in lines)


def test_hidden_gradients_histogram_has_time_on_x_and_norm_as_height(acc):
    (event,) = acc.Histograms("optiscope/hidden_gradients/rnn")
    h = event.histogram_value
    assert event.step == 1
    assert list(h.bucket_limit) == [1.0, 2.0, 3.0, 4.0]
    assert list(h.bucket) == pytest.approx(NORMS, rel=1e-12)
    assert (h.min, h.max) == (0.0, 4.0)
    assert h.num == pytest.approx(sum(NORMS))
    tag = "optiscope/hidden_gradients/rnn"
    assert scalars(acc, f"{tag}/first") == [(1, f32(1e-4))]
    assert scalars(acc, f"{tag}/last") == [(1, f32(1e-1))]
    ((step, slope),) = scalars(acc, f"{tag}/log_slope_per_step")
    assert step == 1 and slope == pytest.approx(math.log(0.1), rel=1e-6)


def test_analysis_fields_at_last_step_and_interpolation_along_the_path(acc):
    assert scalars(acc, "optiscope/analysis/interpolation/barrier") == [(1, 1.0)]
    assert scalars(acc, "optiscope/analysis/interpolation/distance") == [(1, 4.0)]
    assert scalars(acc, "optiscope/analysis/interpolation/path_length") == [(1, 7.5)]
    assert scalars(acc, "optiscope/analysis/interpolation/alphas") == [
        (0, 0.0),
        (1, 0.5),
        (2, 1.0),
    ]
    losses = scalars(acc, "optiscope/analysis/interpolation/losses")
    assert losses[:2] == [(0, 2.0), (1, 3.0)]
    assert losses[2][0] == 2 and math.isnan(losses[2][1])
    assert scalars(acc, "optiscope/analysis/final_point/index") == [(1, 0.0)]
    assert scalars(acc, "optiscope/analysis/final_point/loss") == [(1, 0.25)]
    tags = set(acc.Tags()["scalars"])
    assert "optiscope/analysis/final_point/kind" not in tags
    assert not any(t.startswith("optiscope/analysis/surface") for t in tags)
    assert not any("event" in t or "what" in t for t in tags)


def test_nonfinite_norm_is_written_as_zero_and_counted(tmp_path):
    with TensorBoardSink(tmp_path) as sink:
        sink.write(hidden(3, "gru", [1.0, "nan"]))
        sink.write(hidden(4, "gru", [math.inf]))
    assert sink.skipped == 2
    acc = load(tmp_path)
    buckets = [
        list(e.histogram_value.bucket) for e in acc.Histograms("optiscope/hidden_gradients/gru")
    ]
    assert buckets == [[1.0, 0.0], [0.0]]
    tags = set(acc.Tags()["scalars"])
    assert "optiscope/hidden_gradients/gru/log_slope_per_step" not in tags


def test_the_sink_charts_the_series_the_report_reads(tmp_path):
    records = [
        {schema.TYPE: schema.STEP_RECORD, schema.STEP: 0, schema.VALUES: {schema.LOSS: 10**400}},
        {schema.TYPE: schema.STEP_RECORD, schema.STEP: True, schema.VALUES: {schema.LOSS: 1.0}},
        {schema.TYPE: schema.STEP_RECORD, schema.STEP: 2.0, schema.VALUES: {schema.LOSS: 1.0}},
        {schema.TYPE: schema.STEP_RECORD, schema.STEP: 3, schema.VALUES: [1.0]},
        {schema.TYPE: schema.STEP_RECORD, schema.STEP: 4, schema.VALUES: {schema.LOSS: 0.5}},
    ]
    with TensorBoardSink(tmp_path) as sink:
        for r in records:
            sink.write(r)
    expected = list(zip(*series(records, schema.LOSS)))
    assert expected == [(0, math.inf), (4, 0.5)]
    assert scalars(load(tmp_path), "optiscope/loss") == expected


def test_log_slope_and_header_helpers():
    assert log_slope([8.0, 4.0, 2.0]) == pytest.approx(math.log(2.0))
    assert log_slope([1.0, math.nan, 0.0]) is None
    header = {schema.TYPE: schema.HEADER, "a": "x\ny"}
    assert header_markdown(header).splitlines()[-1] == "| a | x y |"


def test_write_after_close_says_so(tmp_path):
    sink = TensorBoardSink(tmp_path)
    sink.close()
    sink.close()
    with pytest.raises(TensorBoardError, match="already closed; create a new one"):
        sink.write(
            {schema.TYPE: schema.STEP_RECORD, schema.STEP: 0, schema.VALUES: {schema.LOSS: 1.0}}
        )


def test_logdir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text("not a folder")
    with pytest.raises(TensorBoardError, match=r"it is a file\. Expected a writable folder"):
        TensorBoardSink(path)
    with pytest.raises(TensorBoardError, match="Expected a writable folder"):
        TensorBoardSink(path / "below")


def test_missing_tensorboard_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(TensorBoardUnavailable, match=r"pip install \"optiscope\[tensorboard\]\"$"):
        TensorBoardSink(tmp_path)
    assert issubclass(TensorBoardUnavailable, OptiscopeError)
    assert not list(tmp_path.iterdir())


def test_import_does_not_load_tensorboard():
    code = (
        "import sys, optiscope, optiscope.monitor.tensorboard\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'tensorboard'"
        " or m.startswith('torch.utils.tensorboard')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
