"""The Monitor under FSDP2 (``torch.distributed.fsdp.fully_shard``) on the CPU: two gloo processes
under torchrun (tests/distributed_fsdp.py) against the same training unsharded in one process.

FSDP2 runs on the CPU with gloo in torch 2.13 (all-gather and reduce-scatter of the shards),
so these tests need no GPU. Each rank holds a shard of every parameter and gradient (DTensors,
17 and 16 rows of a 33-row layer); the norms the Monitor records must be the whole model's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from optiscope import read_records
from optiscope.problem import distributed
from optiscope.records import schema

from . import distributed_fsdp as script
from .test_distributed import run_distributed

HERE = Path(__file__).parent

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

# The same training sharded on two ranks and whole in one process: their gradients differ by
# the rounding of two half-batch means against one mean (and of FSDP's reduce-scatter), grown
# over 20 steps of momentum. Measured at most 2e-15 (float64) and 2e-6 (float32).
RTOL = {"float64": 1e-12, "float32": 1e-5}
CURVATURE_RTOL = {"float64": 1e-7, "float32": 1e-2}
NORMS = (schema.LOSS, schema.GRAD_NORM, schema.PARAM_NORM, schema.UPDATE_NORM, schema.UPDATE_RATIO)


@pytest.fixture(scope="module")
def fsdp_runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsdp")
    run_distributed(HERE / "distributed_fsdp.py", out, timeout=300)
    return out


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory) -> tuple[Path, dict[str, list[torch.Tensor]]]:
    out = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        params = {
            dtype: script.train(
                out / dtype, dtype, {"update": 1, "layer_gradients": 1, "curvature": 5}
            )
            for dtype in script.DTYPES
        }
    finally:
        torch.set_num_threads(threads)
    return out, params


def _of_type(path: Path, kind: str) -> dict[int, dict]:
    return {r[schema.STEP]: r for r in read_records(path).of_type(kind)}


@pytest.mark.parametrize("dtype", script.DTYPES)
def test_the_monitor_under_fsdp2_records_the_norms_of_the_unsharded_model(
    fsdp_runs, single_runs, dtype
):
    sharded_run, single_run = fsdp_runs / dtype / "run", single_runs[0] / dtype
    rtol = RTOL[dtype]
    steps = {
        n: _of_type(d, schema.STEP_RECORD) for n, d in (("fsdp", sharded_run), ("one", single_run))
    }
    assert sorted(steps["fsdp"]) == sorted(steps["one"]) == list(range(script.STEPS))
    for step in range(script.STEPS):
        a, b = steps["fsdp"][step][schema.VALUES], steps["one"][step][schema.VALUES]
        for name in NORMS:
            assert a[name] == pytest.approx(b[name], rel=rtol), (step, name)
        if step % 5:
            assert schema.GTHG not in a
            continue
        # g^T H g by central differences of the sharded model's gradients against the single
        # process's exact product: about eps^(2/3) relative on this smooth model; measured at
        # most 1.1e-9 (float64) and 7.6e-4 (float32) over the four measurements.
        assert a[schema.HVP_METHOD] == "finite-difference" and schema.HVP_METHOD not in b
        assert a[schema.GTG] == pytest.approx(b[schema.GTG], rel=rtol), step
        for name in (schema.GTHG, schema.CURVATURE_ALONG_GRADIENT):
            assert a[name] == pytest.approx(b[name], rel=CURVATURE_RTOL[dtype]), (step, name)
        assert a[schema.GRADIENT_THRESHOLD] == b[schema.GRADIENT_THRESHOLD]
    for kind in (schema.LAYER_GRADIENTS, schema.LAYER_UPDATES):
        fsdp, one = _of_type(sharded_run, kind), _of_type(single_run, kind)
        assert sorted(fsdp) == sorted(one) == list(range(script.STEPS))
        # The layers' own classes, not fully_shard's FSDPLinear: the detectors read the kinds.
        assert fsdp[0][schema.NAMES] == one[0][schema.NAMES] == ["0", "1", "3"]
        assert fsdp[0][schema.KINDS] == one[0][schema.KINDS] == ["Linear", "LayerNorm", "Linear"]
        for step in range(script.STEPS):
            a, b = fsdp[step][schema.NORMS], one[step][schema.NORMS]
            assert a == pytest.approx(b, rel=rtol), (kind, step)
            assert min(a) > 0


@pytest.mark.parametrize("dtype", script.DTYPES)
def test_under_fsdp2_training_is_unchanged_and_only_rank_0_writes(fsdp_runs, single_runs, dtype):
    run = fsdp_runs / dtype / "run"
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(schema.LOCK_FILE)) == [
        "findings.json",
        "records.jsonl",
    ]
    saved = [torch.load(fsdp_runs / dtype / f"params{r}.pt", weights_only=True) for r in (0, 1)]
    for s in saved:
        # Bit for bit: the Monitor's reads of the shards and its collectives change nothing.
        assert all(torch.equal(a, b) for a, b in zip(s["watched"], s["plain"], strict=True))
    # Both ranks gathered the same whole, which is the unsharded training's end point.
    assert all(torch.equal(a, b) for a, b in zip(saved[0]["watched"], saved[1]["watched"]))
    one = single_runs[1][dtype]
    assert all(
        torch.allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype])
        for a, b in zip(saved[0]["watched"], one, strict=True)
    )


def test_the_tiers_that_cannot_measure_a_sharded_model_record_why(fsdp_runs):
    run = fsdp_runs / "float64" / "run"
    errors = list(read_records(run).of_type(schema.PROBE_ERROR))
    for tier in script.REFUSED:
        due = list(range(0, script.STEPS, script.EVERY[tier]))
        mine = [r for r in errors if r[schema.PROBE] == tier]
        assert [r[schema.STEP] for r in mine] == due, tier
        with pytest.raises(distributed.ShardingError) as refused:
            distributed.refuse_sharded(tier)
        assert {r[schema.ERROR] for r in mine} == {f"ShardingError: {refused.value}"}
    assert {r[schema.PROBE] for r in errors} == set(script.REFUSED)  # the norms tiers ran
    values = [r[schema.VALUES] for r in read_records(run).of_type(schema.STEP_RECORD)]
    assert not any(schema.SHARPNESS in v or schema.B_SIMPLE in v for v in values)
    findings = json.loads((run / schema.FINDINGS_FILE).read_text())["findings"]
    assert len(findings) == 8


def test_a_tier_refused_on_a_sharded_model_says_why_and_what_to_do():
    distributed.refuse_sharded("update")  # the norms tiers measure it
    distributed.refuse_sharded("layer_gradients")
    distributed.refuse_sharded("curvature")  # along the gradient, by finite differences
    with pytest.raises(
        distributed.ShardingError,
        match=r"the sharpness tier does not run on a sharded model \(FSDP2's fully_shard: "
        r"parameters and gradients are DTensors, each rank holding a shard\) yet: .* turn this "
        r"one off with every=\{'sharpness': 0\}, or measure it under DistributedDataParallel",
    ):
        distributed.refuse_sharded("sharpness")


def test_norms_of_dtensors_of_each_placement_equal_their_gathered_whole(fsdp_runs):
    for rank in (0, 1):
        found = json.loads((fsdp_runs / f"rank{rank}.json").read_text())["placements"]
        assert sorted(found) == ["partial", "replicate", "shard0-empty", "shard0-uneven", "shard1"]
        for name, (norm, whole) in found.items():
            assert norm == pytest.approx(whole, rel=1e-14), (rank, name)
            assert whole > 0.5


def test_parameters_sharded_over_a_mesh_of_some_ranks_are_refused(fsdp_runs):
    for rank in (0, 1):
        message = json.loads((fsdp_runs / f"rank{rank}.json").read_text())["refused_mesh"]
        assert message == (
            "parameter 0 is a DTensor sharded over 1 of the process group's 2 ranks; the Monitor "
            "sums its norms over the whole group, so it expects a device mesh of all ranks. Shard "
            "over all of them (fully_shard's default mesh, or a 2-D mesh for HSDP), or give each "
            "group its own process group"
        )


def test_a_plain_model_is_not_sharded():
    net = torch.nn.Linear(3, 2)
    assert not distributed.sharded(net.parameters())
    assert distributed.local(net.weight) is net.weight
    assert distributed.class_name(net) == "Linear"
