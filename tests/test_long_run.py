"""A long run keeps the Monitor's memory flat and its records bounded per step (the benchmark
benchmarks/long_run.py runs 20,000 steps; this test the same code at 3,000)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "long_run.py"


def test_memory_stays_flat_and_records_grow_by_a_bounded_size(tmp_path):
    spec = importlib.util.spec_from_file_location("long_run", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.run(3000, tmp_path)
    # Nothing kept per step in memory: the traced heap grows by less than 64 KB from 10% of the
    # run to its end (20,000 steps measured 5.8 KB in all), and no history is held.
    assert r["history_records_in_memory"] == 0
    assert r["heap_growth_bytes"] < 64 * 1024
    # One line per step of bounded size (121 bytes measured; the default preset's quantities).
    assert r["records_bytes_per_step"] < 300 and r["largest_record_line_bytes"] < 400
    assert r["report_bytes"] < 1_000_000  # long series decimated
