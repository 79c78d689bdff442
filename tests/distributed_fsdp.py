"""The Monitor under FSDP2 (``fully_shard``), run by tests/test_fsdp.py as

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_fsdp.py OUT

For a float64 and a float32 MLP (DTYPE), each rank trains its share of every global batch with
each Linear and then the root sharded; rank 0's Monitor writes ``OUT/DTYPE/run``. Both ranks
also train once without the Monitor and save the final (gathered) parameters of both runs
(``OUT/DTYPE/params<rank>.pt``). :func:`train` with no process group is the unsharded
single-process reference on the same global batches. ``OUT/rank<rank>.json`` holds the norms
of DTensors of each placement against their gathered whole, and the refusal of a mesh that
does not span the ranks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import optiscope
from optiscope.core import shard as _shard
from optiscope.problem import distributed

STEPS = 20
GLOBAL_BATCH = 64
DTYPES = ("float64", "float32")
# The norms tiers every step, the curvature along the gradient (by finite differences) every
# fifth; the others are due too, to show they are refused, not run.
EVERY = {"update": 1, "layer_gradients": 1, "curvature": 5, "sharpness": 10, "noise": 5}
REFUSED = ("sharpness", "noise")


def model(dtype: str) -> nn.Module:
    """33 hidden units: the first layer's rows and the LayerNorm split 17/16 over two ranks."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 33), nn.LayerNorm(33), nn.Tanh(), nn.Linear(33, 10))
    return net.to(getattr(torch, dtype))


def _data(dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=getattr(torch, dtype)), torch.tensor(y)


def _whole(t: torch.Tensor) -> torch.Tensor:
    """A parameter gathered from the ranks (a collective under FSDP2), or a copy of it."""
    full = getattr(t, "full_tensor", None)
    return (full() if full is not None else t).detach().clone()


def train(out: Path | None, dtype: str, every: dict[str, int] = EVERY) -> list[torch.Tensor]:
    """Train for STEPS steps on fixed global batches with SGD and momentum; under a process
    group the model is sharded (each Linear, then the root) and each rank takes its contiguous
    share of every batch. ``out``: where the Monitor writes (None: no Monitor). Returns the
    final parameters, whole."""
    rank, world = _shard.world()
    x, y = _data(dtype)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    net = model(dtype)
    if world > 1:
        from torch.distributed.fsdp import fully_shard

        for layer in net:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    monitor = None
    if out is not None:
        monitor = optiscope.Monitor(
            net, opt, out=out, loss_fn=loss_fn, every=every, header={"experiment": dtype}
        )
    share = GLOBAL_BATCH // world
    for step in range(STEPS):
        start = (step * GLOBAL_BATCH) % (len(x) - GLOBAL_BATCH)
        rows = order[start : start + GLOBAL_BATCH]
        rows = rows[rank * share : (rank + 1) * share]
        inputs, targets = x[rows], y[rows]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(inputs), targets)
        loss.backward()
        if monitor is not None:
            monitor.step(loss, batch=(inputs, targets))
        opt.step()
    if monitor is not None:
        monitor.close()
    return [_whole(p) for p in net.parameters()]


def placements() -> dict[str, list[float]]:
    """``[norm from this rank's part, norm of the gathered whole]`` of a DTensor of each
    placement: shards uneven and empty (a row of one over two ranks), along a second dimension,
    a replica, and pending sums (Partial) whose ranks hold different values."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    gen = torch.Generator().manual_seed(3)
    whole = {
        "shard0-uneven": (torch.randn(5, 3, generator=gen, dtype=torch.float64), Shard(0)),
        "shard0-empty": (torch.randn(1, 3, generator=gen, dtype=torch.float64), Shard(0)),
        "shard1": (torch.randn(3, 5, generator=gen, dtype=torch.float64), Shard(1)),
        "replicate": (torch.randn(4, generator=gen, dtype=torch.float64), Replicate()),
    }
    tensors = {name: distribute_tensor(t, mesh, [pl]) for name, (t, pl) in whole.items()}
    mine = torch.randn(4, generator=torch.Generator().manual_seed(10 + dist.get_rank()))
    tensors["partial"] = DTensor.from_local(mine.double(), mesh, [Partial()])
    parts, weights = distributed.shard_parts(list(tensors.values()))
    local = [float(p.norm()) for p in parts]
    norms = distributed.global_norms(local, weights, parts[0])
    return {
        name: [norm, float(t.full_tensor().norm())]
        for (name, t), norm in zip(tensors.items(), norms)
    }


def refused_mesh() -> str:
    """The Monitor's refusal of parameters sharded over a mesh of one rank of the two."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (dist.get_world_size(), 1), mesh_dim_names=("dp", "one"))
    net = nn.Linear(4, 2)
    net.weight = nn.Parameter(distribute_tensor(net.weight.detach(), mesh["one"], [Shard(0)]))
    try:
        optiscope.Monitor(net)
    except optiscope.OptiscopeError as err:
        return str(err)
    return "not refused"


def main(out: str) -> None:
    assert _shard.init_from_env(), "run under torchrun with several ranks"
    rank = dist.get_rank()
    for dtype in DTYPES:
        watched = train(Path(out) / dtype / "run", dtype)
        plain = train(None, dtype)
        torch.save({"watched": watched, "plain": plain}, Path(out) / dtype / f"params{rank}.pt")
    found = {"placements": placements(), "refused_mesh": refused_mesh()}
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(found))
    _shard.finish()


if __name__ == "__main__":
    main(sys.argv[1])
