"""Restarts under torch.distributed, run by tests/test_distributed.py as

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_restarts.py OUT N

Each rank writes ``OUT/rank<r>.json``: the seeds it trained itself and the gathered result. The
XOR experiment here is also the one tests/test_restarts.py uses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from optiscope.core import shard as _shard
from optiscope.landscape.restarts import restarts
from optiscope.training.experiment import Experiment

XOR_LOSS_TOL = 0.05  # successes end within 0.01 of each other, failures ~0.33 above them
TRAINED: set[int] = set()  # the seeds whose training data this process read


class _Logged(list):
    """Training batches that note which seed's run read them."""

    def __init__(self, batches: list, seed: int) -> None:
        super().__init__(batches)
        self.seed = seed

    def __iter__(self):
        TRAINED.add(self.seed)
        return super().__iter__()


def xor(seed: int) -> Experiment:
    """XOR with a 2-2-1 tanh network, full batch, SGD: about half the seeds end in a local
    minimum that misclassifies one input (loss ~ln(2)/2), the others solve it."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))
    return Experiment(
        model=model,
        loss_fn=nn.BCEWithLogitsLoss(),
        data=_Logged([(x, y)], seed),
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        steps=300,
        seed=seed,
        name="xor",
        eval_data=(x, y),
    )


def main(out: str, n: int) -> None:
    _shard.init_from_env()
    rank, size = _shard.world()
    result = restarts(xor, n, loss_tol=XOR_LOSS_TOL)
    record = {"rank": rank, "world": size, "trained": sorted(TRAINED), "result": result.to_dict()}
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
