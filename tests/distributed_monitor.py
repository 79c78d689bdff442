"""The Monitor under DistributedDataParallel, run by tests/test_distributed.py as

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_monitor.py OUT

For an MLP and a recurrent model (KIND), each rank trains its share of every global batch; rank
0's Monitor writes ``OUT/KIND/run``. Both ranks also train once without the Monitor and save the
final parameters of both runs (``OUT/KIND/params<rank>.pt``). :func:`train` with no process
group is the single-process reference on the same global batches.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import optiscope
from optiscope.core import shard as _shard

STEPS = 40
GLOBAL_BATCH = 64
EVERY = {"update": 1, "curvature": 5, "sharpness": 10, "noise": 5, "recurrent": 10}


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(8, 16, batch_first=True)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.reshape(len(x), 8, 8))
        return self.head(out[:, -1])


def _model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    return _Recurrent()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)


def train(out: Path | None, kind: str) -> list[torch.Tensor]:
    """Train ``kind`` for STEPS steps on fixed global batches; under a process group each rank
    takes its contiguous share of every batch. ``out``: where the Monitor writes (None: no
    Monitor). Returns copies of the final parameters: the DDP wrapper dies here, before the
    process group, as one alive at the interpreter's exit can abort it."""
    rank, world = _shard.world()
    x, y = _data()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    model: nn.Module = _model(kind)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    monitor = None
    if out is not None:
        monitor = optiscope.Monitor(
            model, opt, out=out, loss_fn=loss_fn, every=EVERY, header={"experiment": kind}
        )
    share = GLOBAL_BATCH // world
    for step in range(STEPS):
        start = (step * GLOBAL_BATCH) % (len(x) - GLOBAL_BATCH)
        rows = order[start : start + GLOBAL_BATCH]
        rows = rows[rank * share : (rank + 1) * share]
        inputs, targets = x[rows], y[rows]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        if monitor is not None:
            monitor.step(loss, batch=(inputs, targets))
        opt.step()
    if monitor is not None:
        monitor.close()
    return [p.detach().clone() for p in model.parameters()]


KINDS = ("mlp", "rnn")


def main(out: str) -> None:
    assert _shard.init_from_env(), "run under torchrun with several ranks"
    rank = dist.get_rank()
    for kind in KINDS:
        watched = train(Path(out) / kind / "run", kind)
        plain = train(None, kind)
        torch.save(
            {
                "watched": watched,
                "plain": plain,
            },
            Path(out) / kind / f"params{rank}.pt",
        )
    _shard.finish()


if __name__ == "__main__":
    main(sys.argv[1])
