"""A training run under the Monitor for the run-folder tests, in a process of its own.

    python run_folder_writer.py OUT STEPS LR (close|pause) [overwrite]

Trains a small MLP for STEPS steps at learning rate LR with records in OUT; then closes the
Monitor (``close``), or prints READY and waits to be killed with the Monitor open (``pause``).
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

import optiscope


def main(out: str, steps: int, lr: float, end: str, overwrite: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    extra = {"overwrite": True} if overwrite else {}
    monitor = optiscope.Monitor(model, opt, out=out, **extra)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        monitor.step(loss)
        opt.step()
    if end == "pause":
        print("READY", flush=True)
        time.sleep(600)
    monitor.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], "overwrite" in sys.argv)
