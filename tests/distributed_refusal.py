"""Under torchrun: every rank builds a Monitor on a run folder that already holds a run.

Rank 0 is refused (one run per folder); every rank must stop with it, none left waiting in a
collective. Each rank writes what it raised to OUT/rankN.txt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import optiscope
from optiscope.core import shard


def main(out: str) -> None:
    assert shard.init_from_env(), "run under torchrun with several ranks"
    rank = dist.get_rank()
    model = nn.parallel.DistributedDataParallel(nn.Linear(4, 2))
    try:
        optiscope.Monitor(model, out=Path(out) / "run")
        said = "built"
    except optiscope.OptiscopeError as err:
        said = str(err)
    (Path(out) / f"rank{rank}.txt").write_text(said)
    del model  # a DDP wrapper alive at the interpreter's exit can abort the rank
    shard.finish()


if __name__ == "__main__":
    torch.manual_seed(0)
    main(sys.argv[1])
