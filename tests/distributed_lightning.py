"""The Lightning callback under Lightning's own DDP strategy, run by tests/test_distributed.py as

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_lightning.py OUT

Lightning sees torchrun's environment and joins its process group (gloo on CPU). Each rank's
DistributedSampler (ours, without shuffling) takes every second sample, so global batch k is samples
``[k * 64, (k + 1) * 64)``, as for one process with batches of 64 (:func:`fit` with
``devices=1``). Rank 0 writes ``OUT/run``; every rank saves its final parameters.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from optiscope.core import shard

GLOBAL_BATCH = 64
STEPS = 12


def fit(out: Path, devices: int, callback: bool = True) -> list[torch.Tensor]:
    import lightning.pytorch as pl

    from optiscope.integrations.lightning import OptiscopeCallback

    class Regression(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.mse_loss(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(GLOBAL_BATCH * STEPS, 4, generator=gen)
    y = torch.sin(x.sum(1, keepdim=True))
    torch.manual_seed(0)
    module = Regression()
    data = torch.utils.data.TensorDataset(x, y)
    # Lightning's own DistributedSampler would shuffle; this one keeps the order.
    sampler = None
    if devices > 1:
        rank = int(os.environ["RANK"])  # the group does not exist before fit
        sampler = torch.utils.data.distributed.DistributedSampler(
            data, num_replicas=devices, rank=rank, shuffle=False
        )
    loader = torch.utils.data.DataLoader(data, batch_size=GLOBAL_BATCH // devices, sampler=sampler)
    callbacks = []
    if callback:
        callbacks.append(
            OptiscopeCallback(
                out,
                loss_fn=nn.functional.mse_loss,
                every={"update": 1, "curvature": 3, "sharpness": 4, "noise": 3},
            )
        )
    trainer = pl.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and sampler settings
        trainer.fit(module, loader)
    return [p.detach().clone() for p in module.parameters()]


def main(out: str) -> None:
    rank = int(os.environ["RANK"])
    watched = fit(Path(out) / "run", devices=2)
    plain = fit(Path(out) / "plain", devices=2, callback=False)
    torch.save({"watched": watched, "plain": plain}, Path(out) / f"params{rank}.pt")
    # Leave the process group the library made: a gloo group left to the interpreter's exit can
    # abort a rank ("terminate called without an active exception").
    shard.finish()


if __name__ == "__main__":
    main(sys.argv[1])
