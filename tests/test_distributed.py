"""torch.distributed on CPU: work split across gloo processes under torchrun gives what one
process gives, and each rank computes only its share.

Each case is a script under tests/ launched by :func:`run_distributed`; the script calls
``optiscope._shard.init_from_env()`` first and writes what the test compares into a folder.
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

from optiscope._restarts import restarts

from .distributed_restarts import XOR_LOSS_TOL, xor

HERE = Path(__file__).parent

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)


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
    from optiscope._surface import _Grid

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
