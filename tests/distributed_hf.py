"""The Hugging Face callback under the Trainer's own DDP, run by tests/test_distributed.py as

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_hf.py OUT

The Trainer sees torchrun's environment and trains with DDP over gloo on CPU. Each rank notes the
losses of its own batches; rank 0's callback writes ``OUT/run``. Each rank saves its final
parameters with and without the callback, and its local losses (``OUT/rank<r>.pt``).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import torch

from optiscope.core import shard
from test_integrations import _HFNet, _Regression  # tests/ is this script's folder


def train(out: Path, callback: bool) -> _HFNet:
    import transformers

    from optiscope.integrations.huggingface import OptiscopeTrainerCallback

    torch.manual_seed(0)
    model = _HFNet()
    args = transformers.TrainingArguments(
        output_dir=str(out / "hf"),
        max_steps=10,
        per_device_train_batch_size=8,
        learning_rate=0.05,
        max_grad_norm=0.0,
        report_to=[],
        use_cpu=True,
        ddp_backend="gloo",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    callbacks = [OptiscopeTrainerCallback(out / "run")] if callback else []
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=_Regression(), callbacks=callbacks
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return model


def main(out: str) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    rank = int(os.environ["RANK"])
    watched = train(Path(out), callback=True)
    plain = train(Path(out) / "plain", callback=False)
    torch.save(
        {
            "watched": [p.detach() for p in watched.parameters()],
            "plain": [p.detach() for p in plain.parameters()],
            "losses": watched.losses,
        },
        Path(out) / f"rank{rank}.pt",
    )
    # Leave the process group the library made: a gloo group left to the interpreter's exit can
    # abort a rank ("terminate called without an active exception").
    shard.finish()


if __name__ == "__main__":
    main(sys.argv[1])
