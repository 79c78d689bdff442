"""A long run: the Monitor's memory stays flat over the steps, the records grow by a bounded
number of bytes per step, and the report of the run stays small.

    .venv/bin/python benchmarks/long_run.py [--steps 20000] [--json results.json]

A tiny model (8-16-3 tanh MLP, SGD, batches of 32) trains for ``--steps`` cheap steps under the
Monitor's default preset, writing records.jsonl. The Python heap traced by ``tracemalloc`` is read
at 10% of the run and at its end (after a ``gc.collect``), and the process's peak resident set
size at the end; the records' size per step over the whole run and its largest line; then the
findings and the HTML report are made from the records (long series decimated). No timing is
asserted anywhere: the run's wall time is printed for the record only.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch
from torch import nn

import optiscope


def run(steps: int, out: Path) -> dict[str, float]:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(1024, 8, generator=gen), torch.randint(0, 3, (1024,), generator=gen)
    early = max(steps // 10, 1)
    tracemalloc.start()
    t0 = time.perf_counter()
    heap_early = 0
    with optiscope.Monitor(model, opt, out=out) as monitor:
        for step in range(steps):
            rows = slice((step * 32) % 992, (step * 32) % 992 + 32)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            monitor.step(loss)
            opt.step()
            if step + 1 == early:
                gc.collect()
                heap_early = tracemalloc.get_traced_memory()[0]
        gc.collect()
        heap_end = tracemalloc.get_traced_memory()[0]
        history = len(monitor.history)
    seconds = time.perf_counter() - t0
    tracemalloc.stop()
    records = out / "records.jsonl"
    lines = records.read_bytes().splitlines()
    t1 = time.perf_counter()
    report = optiscope.write_report(out)
    report_seconds = time.perf_counter() - t1
    return {
        "steps": steps,
        "seconds": seconds,
        "heap_at_10pct_bytes": heap_early,
        "heap_at_end_bytes": heap_end,
        "heap_growth_bytes": heap_end - heap_early,
        "heap_growth_per_step_bytes": (heap_end - heap_early) / max(steps - early, 1),
        "history_records_in_memory": history,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "records_bytes": records.stat().st_size,
        "records_bytes_per_step": records.stat().st_size / steps,
        "largest_record_line_bytes": max(len(line) for line in lines[1:]),
        "report_bytes": report.stat().st_size,
        "report_seconds": report_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.steps, Path(tmp))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(
            f"{key:<{width}}  {value:,.1f}"
            if isinstance(value, float)
            else f"{key:<{width}}  {value}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
