"""torch.distributed on CPU: work split across gloo processes under torchrun gives what one
process gives, and each rank computes only its share.

Each case is a script under tests/ launched by :func:`run_distributed`; the script calls
``optiscope.core.shard.init_from_env()`` first and writes what the test compares into a folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from optiscope.landscape.restarts import restarts
from optiscope.records import schema

from .distributed_restarts import XOR_LOSS_TOL, xor

HERE = Path(__file__).parent

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)


def _run_files(entries) -> list[str]:
    """The run's files in a folder, without the writer's lock (schema.LOCK_FILE)."""
    return sorted(p.name for p in entries if not p.name.startswith(schema.LOCK_FILE))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_distributed(
    script: str | Path, *args: object, nproc: int = 2, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``script args...`` as ``nproc`` ranks under ``python -m torch.distributed.run`` (one
    thread each, gloo on CPU); fails the test with the output if any rank fails."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(script),
        *map(str, args),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited with {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc


def _ranks(out: Path, nproc: int) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)]


# -- restarts ----------------------------------------------------------------------------------

N_RESTARTS = 6


@pytest.fixture(scope="module")
def restart_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("restarts")
    run_distributed(HERE / "distributed_restarts.py", out, N_RESTARTS)
    return _ranks(out, 2)


def test_restarts_on_two_ranks_equal_one_process(restart_ranks):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = json.loads(json.dumps(restarts(xor, N_RESTARTS, loss_tol=XOR_LOSS_TOL).to_dict()))
    finally:
        torch.set_num_threads(threads)
    gathered = restart_ranks[0]["result"]
    assert gathered["losses"] == single["losses"]
    assert gathered["groups"] == single["groups"]
    assert gathered == single
    # Both kinds of end point are among them, so the grouping has something to separate.
    assert min(single["losses"]) < 0.05 and max(single["losses"]) > 0.3
    # The grouping after the exchange is computed on every rank, with the same result.
    assert restart_ranks[1]["result"] == gathered


def test_each_rank_trains_only_its_share_of_the_restarts(restart_ranks):
    assert [r["world"] for r in restart_ranks] == [2, 2]
    assert restart_ranks[0]["trained"] == [0, 2, 4]
    assert restart_ranks[1]["trained"] == [1, 3, 5]


# -- surfaces ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def surface_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("surface")
    run_distributed(HERE / "distributed_surface.py", out)
    return _ranks(out, 2)


def test_a_surface_on_two_ranks_equals_one_process(surface_ranks, monkeypatch):
    from optiscope.landscape.surface import _Grid

    from . import distributed_surface as script

    calls = {"points": 0}
    losses, means = _Grid.losses, _Grid.mean_losses

    def counted_losses(self, points, rows=None):
        calls["points"] += len(points)
        return losses(self, points, rows)

    def counted_means(self, points):
        calls["points"] += len(points)
        return means(self, points)

    monkeypatch.setattr(_Grid, "losses", counted_losses)
    monkeypatch.setattr(_Grid, "mean_losses", counted_means)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = script.surfaces(script.problem())
    finally:
        torch.set_num_threads(threads)
    for rank in surface_ranks:  # every rank holds the gathered whole, bit for bit
        assert rank["exact"] == single["exact"]
        assert rank["sampled"] == single["sampled"]
    # Each rank evaluated its share: together what one process did, plus the center of each
    # of the two surfaces, which every rank measures for itself.
    counts = [r["evaluated"] for r in surface_ranks]
    assert sum(counts) == calls["points"] + 2
    assert max(counts) < 0.6 * calls["points"]


# -- the Monitor under DDP ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("monitor")
    run_distributed(HERE / "distributed_monitor.py", out, timeout=300)
    return out


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory) -> Path:
    from . import distributed_monitor as script

    out = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for kind in script.KINDS:
            script.train(out / kind / "run", kind)
    finally:
        torch.set_num_threads(threads)
    return out


def _by_step(path: Path) -> dict[int, dict]:
    from optiscope import read_records

    return {r["step"]: r["values"] for r in read_records(path).of_type("step")}


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_the_monitor_under_ddp_measures_the_global_batch(ddp_runs, single_runs, kind):
    from optiscope import read_records

    from . import distributed_monitor as script

    ddp, single = _by_step(ddp_runs / kind / "run"), _by_step(single_runs / kind / "run")
    assert sorted(ddp) == sorted(single) == list(range(script.STEPS))
    # Exact quantities of the global batch: the ranks' halves averaged equal the whole batch up
    # to float32 rounding in the reduction order (grown over 40 steps).
    for step in ddp:
        a, b = ddp[step], single[step]
        for name in ("loss", "grad_norm", "param_norm", "update_norm"):
            assert a[name] == pytest.approx(b[name], rel=1e-4), (step, name)
        for name in ("gtg", "gthg", "predicted_change", "sharpness"):
            if name in b:
                assert a[name] == pytest.approx(b[name], rel=2e-3, abs=1e-7), (step, name)
        if "b_simple" in b:
            # The noise: two ranks' local gradients against their mean (McCandlish app. A)
            # against per-sample gradients of the whole batch; the same quantity from far fewer
            # degrees of freedom, so only its scale agrees.
            assert a["batch_size"] == b["batch_size"] == script.GLOBAL_BATCH
            assert 0.2 < a["trace_cov"] / b["trace_cov"] < 5, step
    assert sum("b_simple" in v for v in ddp.values()) == script.STEPS // script.EVERY["noise"]
    if kind == "rnn":
        rec = {
            n: [r for r in read_records(d / kind / "run").of_type("hidden_gradients")]
            for n, d in (("ddp", ddp_runs), ("single", single_runs))
        }
        assert len(rec["ddp"]) == len(rec["single"]) == script.STEPS // script.EVERY["recurrent"]
        for a, b in zip(rec["ddp"], rec["single"]):
            assert a["module"] == b["module"]
            assert a["norms"] == pytest.approx(b["norms"], rel=1e-3)
    # The same verdicts as one process on the same global batches.
    found = {
        n: json.loads((d / kind / "run" / "findings.json").read_text())["findings"]
        for n, d in (("ddp", ddp_runs), ("single", single_runs))
    }
    assert [(f["challenge"], f["severity"]) for f in found["ddp"]] == [
        (f["challenge"], f["severity"]) for f in found["single"]
    ]


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_under_ddp_only_rank_0_writes_and_training_is_unchanged(ddp_runs, kind):
    assert _run_files((ddp_runs / kind / "run").iterdir()) == [
        "findings.json",
        "records.jsonl",
    ]
    for rank in (0, 1):
        saved = torch.load(ddp_runs / kind / f"params{rank}.pt", weights_only=True)
        # Bit for bit: the Monitor's hooks and collectives change nothing DDP computes.
        assert all(torch.equal(a, b) for a, b in zip(saved["watched"], saved["plain"]))


# -- the Lightning callback under Lightning's DDP ----------------------------------------------


@pytest.fixture(scope="module")
def lightning_ddp(tmp_path_factory) -> Path:
    pytest.importorskip("lightning.pytorch")
    out = tmp_path_factory.mktemp("lightning")
    run_distributed(HERE / "distributed_lightning.py", out, timeout=300)
    return out


def test_the_lightning_callback_under_ddp_measures_the_global_batch(lightning_ddp, tmp_path):
    from . import distributed_lightning as script

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single_params = script.fit(tmp_path / "single", devices=1)
    finally:
        torch.set_num_threads(threads)
    ddp, single = _by_step(lightning_ddp / "run"), _by_step(tmp_path / "single")
    assert sorted(ddp) == sorted(single) == list(range(script.STEPS))
    for step in ddp:
        a, b = ddp[step], single[step]
        for name in ("loss", "grad_norm", "update_norm"):
            assert a[name] == pytest.approx(b[name], rel=1e-4), (step, name)
        for name in ("gtg", "gthg", "sharpness"):
            assert (name in a) == (name in b)
            if name in b:
                assert a[name] == pytest.approx(b[name], rel=2e-3), (step, name)
    found = [
        [
            (f["challenge"], f["severity"])
            for f in json.loads((d / "findings.json").read_text())["findings"]
        ]
        for d in (lightning_ddp / "run", tmp_path / "single")
    ]
    # The noise comes from two ranks' gradients under DDP (two batch sizes) and from per-sample
    # gradients in one process: two estimates of one quantity, each noisy, so the inexact-gradients
    # verdict may differ between ok and info; every other verdict, and every alarm, is the same.
    severe = ("warning", "critical")
    assert [f for f in found[0] if f[1] in severe] == [f for f in found[1] if f[1] in severe]
    same = [(a, b) for a, b in zip(*found) if a != b and a[0] != "inexact-gradients"]
    assert same == []
    # Only rank 0 wrote; both ranks trained as they would have without the callback, and the
    # two ranks' replicas agree, as DDP keeps them.
    assert _run_files((lightning_ddp / "run").iterdir()) == [
        "findings.json",
        "records.jsonl",
    ]
    saved = [torch.load(lightning_ddp / f"params{r}.pt", weights_only=True) for r in (0, 1)]
    for s in saved:
        assert all(torch.equal(a, b) for a, b in zip(s["watched"], s["plain"]))
    assert all(torch.equal(a, b) for a, b in zip(saved[0]["watched"], saved[1]["watched"]))
    assert all(
        torch.allclose(a, b, rtol=1e-4, atol=1e-6)
        for a, b in zip(saved[0]["watched"], single_params)
    )


# -- the Hugging Face callback under the Trainer's DDP -----------------------------------------


def test_the_hf_callback_under_ddp_records_the_mean_of_the_ranks(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    run_distributed(HERE / "distributed_hf.py", tmp_path, timeout=300)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    steps = _by_step(tmp_path / "run")
    assert sorted(steps) == list(range(10))
    assert all(len(r["losses"]) == 10 for r in ranks)
    # Each rank saw its own half of every global batch; the record holds their mean, the global
    # batch's loss.
    for k in range(10):
        mean = (ranks[0]["losses"][k] + ranks[1]["losses"][k]) / 2
        assert steps[k]["loss"] == pytest.approx(mean, rel=1e-6)
        assert ranks[0]["losses"][k] != ranks[1]["losses"][k]
    assert _run_files((tmp_path / "run").iterdir()) == [
        "findings.json",
        "records.jsonl",
    ]
    assert read_records_header(tmp_path / "run")["world_size"] == 2
    for r in ranks:
        assert all(torch.equal(a, b) for a, b in zip(r["watched"], r["plain"]))


def read_records_header(path: Path) -> dict:
    from optiscope import read_records

    return read_records(path).header


def test_a_run_folder_refused_on_rank_0_stops_every_rank(tmp_path):
    """Rank 0 alone writes, so rank 0 alone can find the folder taken; the ranks agree in one
    collective, and every rank raises instead of waiting for rank 0 in training's collectives."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "records.jsonl").write_text("an earlier run\n")
    run_distributed(HERE / "distributed_refusal.py", tmp_path, timeout=60)
    assert "already holds a run" in (tmp_path / "rank0.txt").read_text()
    assert "rank 0 could not take the run folder" in (tmp_path / "rank1.txt").read_text()
    assert (run / "records.jsonl").read_text() == "an earlier run\n"
