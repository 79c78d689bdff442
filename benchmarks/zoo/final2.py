"""The third held-out zoo split (``"final2"``): inexact gradients and small-batch controls.

Written after the final split had been seen, on the challenge it missed. The inexact-gradients
cases train on batches of 1 to 8 where per-sample gradient noise is planted (random labels or
noisy regression targets) and the learning rate is moderate: the small-batch run's full-data
loss stays well above what the same model and optimizer reach on the full batch in the same
number of steps, with per-sample gradient variance many times ``batch x |mean gradient|^2``.
The controls train on clean data with batches of 2 to 16, where the small batch is fine.

Data: scikit-learn's bundled wine, breast-cancer and digits tables, generated shape images
(:func:`.final_mlp_cnn.patterns`) and generated teachers and sequences, each from a fixed seed
of its own. Every model is built inside ``build(seed)`` after ``torch.manual_seed(seed)``.
Each builder takes ``batch`` so that the full-batch reference of a hand check is the same run
with ``batch=len(data)``. ``why`` gives the numbers of the hand check: plain training
(``optiscope.training.loop.train_experiment``), the full-data loss along the way, per-sample
gradients by a loop at the end of training; never the detectors.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from optiscope import Experiment

from . import Case
from .data import batches, digit_images
from .final_mlp_cnn import SHAPES, breast_cancer, patterns, wine
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer

FINAL2 = "final2"
IG = "inexact-gradients"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _flip(y: torch.Tensor, frac: float, classes: int, seed: int) -> torch.Tensor:
    """``y`` with a fraction ``frac`` of its labels replaced by uniformly random classes."""
    gen = torch.Generator().manual_seed(31000 + seed)
    flip = torch.rand(y.shape, generator=gen) < frac
    return torch.where(flip, torch.randint(0, classes, y.shape, generator=gen), y)


def sine_teacher(n: int, d: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs in ``d`` dimensions and a smooth teacher, sum_k a_k sin(w_k . x), of
    variance about 1, plus Gaussian target noise of std ``noise``."""
    gen = torch.Generator().manual_seed(32000 + seed)
    x = torch.randn(n, d, generator=gen)
    w = torch.randn(6, d, generator=gen) / math.sqrt(d)
    a = torch.randn(6, 1, generator=gen) / math.sqrt(3)
    y = torch.sin(x @ w.T) @ a
    return x, y + noise * torch.randn(n, 1, generator=gen)


def reverse_tokens(
    n: int, length: int, vocab: int, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences and their reversal as per-position labels, a fraction ``noise`` of the
    labels replaced by random tokens."""
    gen = torch.Generator().manual_seed(33000 + seed)
    x = torch.randint(0, vocab, (n, length), generator=gen)
    y = x.flip(1)
    if noise:
        flip = torch.rand(y.shape, generator=gen) < noise
        y = torch.where(flip, torch.randint(0, vocab, y.shape, generator=gen), y)
    return x, y


def weighted_sum_seq(
    n: int, length: int, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences; the target at the last step is a fixed weighted sum of the
    inputs (weights decaying from the end, variance about 1), plus noise of std ``noise``."""
    gen = torch.Generator().manual_seed(34000 + seed)
    x = torch.randn(n, length, 1, generator=gen)
    w = 0.8 ** torch.arange(length - 1, -1, -1).float()
    w = w / w.norm()
    y = (x[:, :, 0] * w).sum(1, keepdim=True)
    return x, y + noise * torch.randn(n, 1, generator=gen)


def _digit_subset(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digit_images()
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(35000 + seed))[:n]
    return x[idx], y[idx]


# --------------------------------------------------------------------------------------------
# Models and the Experiment builder
# --------------------------------------------------------------------------------------------


def _mlp(sizes: list[int], act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class _PoolCNN(nn.Module):
    """conv 3x3 (padded) - ReLU - 2x2 max pool - conv 3x3 - ReLU - linear head on the flat map;
    no normalization, so per-sample gradients are those of a plain function."""

    def __init__(self, ch: int, n_out: int, size: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.head = nn.Linear(ch * (size // 2) ** 2, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        return self.head(torch.relu(self.conv2(h)).flatten(1))


def _optim(model: nn.Module, kind: str, lr: float, wd: float = 1e-2) -> torch.optim.Optimizer:
    p = model.parameters()
    if kind == "sgd":
        return torch.optim.SGD(p, lr=lr)
    if kind == "momentum":
        return torch.optim.SGD(p, lr=lr, momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(p, lr=lr)
    return torch.optim.AdamW(p, lr=lr, weight_decay=wd)


def _exp(
    seed: int,
    name: str,
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch: int,
    opt: str,
    lr: float,
    steps: int,
    description: str,
    config: dict[str, Any],
    cosine: bool = False,
) -> Experiment:
    optimizer = _optim(model, opt, lr)
    scheduler = None
    if cosine:
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
        )
    data = [(x, y)] if batch >= len(y) else batches(x, y, batch, seed)
    return Experiment(
        model=model,
        loss_fn=loss_fn,
        data=data,
        optimizer=optimizer,
        steps=steps,
        seed=seed,
        name=name,
        eval_data=(x, y),
        description=description,
        config={
            **config,
            "optimizer": opt,
            "lr": lr,
            "batch_size": min(batch, len(y)),
            "steps": steps,
            "cosine": cosine,
        },
        scheduler=scheduler,
    )


# --------------------------------------------------------------------------------------------
# Inexact gradients
# --------------------------------------------------------------------------------------------


def ig_mlp_sgd_b1(seed: int, batch: int = 1, lr: float = 0.05, steps: int = 300) -> Experiment:
    """A tanh MLP regressing a sine teacher with target noise std 1.2, SGD on single samples."""
    x, y = sine_teacher(384, 8, 1.2, 0)
    torch.manual_seed(seed)
    model = _mlp([8, 32, 32, 1], nn.Tanh)
    return _exp(
        seed,
        "final2-inexact-gradients-mlp-sgd-batch1-sine-teacher",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="tanh MLP 8-32-32-1 on a sine teacher, target noise std 1.2, SGD batch 1",
        config={"family": "mlp", "target_noise": 1.2},
    )


def ig_cnn_momentum_b2(
    seed: int, batch: int = 2, lr: float = 0.01, steps: int = 300
) -> Experiment:
    """A small pooled CNN on 512 digit images with 40% random labels, heavy ball on pairs."""
    x, y = _digit_subset(512, 0)
    y = _flip(y, 0.4, 10, 1)
    torch.manual_seed(seed)
    model = _PoolCNN(12, 10)
    return _exp(
        seed,
        "final2-inexact-gradients-cnn-momentum-batch2-digits-label-noise",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="pooled CNN on 512 digit images with 40% random labels, momentum batch 2",
        config={"family": "cnn", "label_noise": 0.4},
    )


def ig_tfm_adam_b4(seed: int, batch: int = 4, lr: float = 3e-3, steps: int = 300) -> Experiment:
    """A one-layer transformer reversing token sequences, 35% random labels, Adam on 4."""
    x, y = reverse_tokens(384, 6, 8, 0.35, 0)
    torch.manual_seed(seed)
    model = TinyTransformer(8, 6, 24, 2, 1)
    return _exp(
        seed,
        "final2-inexact-gradients-transformer-adam-batch4-reverse-label-noise",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 24) reversing length-6 sequences, 35% random "
        "labels, Adam batch 4",
        config={"family": "transformer", "label_noise": 0.35},
    )


def ig_rnn_sgd_b1(seed: int, batch: int = 1, lr: float = 0.03, steps: int = 300) -> Experiment:
    """A GRU regressing a decaying weighted sum of its inputs, target noise 1.0, SGD on 1."""
    x, y = weighted_sum_seq(384, 10, 1.0, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 16, 1)
    return _exp(
        seed,
        "final2-inexact-gradients-rnn-gru-sgd-batch1-weighted-sum",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="GRU (16) regressing a weighted sum of 10 inputs, target noise 1.0, SGD "
        "batch 1",
        config={"family": "rnn", "target_noise": 1.0},
    )


def ig_mlp_adam_b8(seed: int, batch: int = 8, lr: float = 1e-2, steps: int = 250) -> Experiment:
    """A ReLU MLP on breast cancer with 35% random labels, Adam on batches of 8."""
    x, y = breast_cancer()
    y = _flip(y, 0.35, 2, 2)
    torch.manual_seed(seed)
    model = _mlp([30, 32, 32, 2])
    return _exp(
        seed,
        "final2-inexact-gradients-mlp-adam-batch8-cancer-label-noise",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="ReLU MLP 30-32-32-2 on breast cancer with 35% random labels, Adam batch 8",
        config={"family": "mlp", "label_noise": 0.35},
    )


def ig_cnn_adam_b1(seed: int, batch: int = 1, lr: float = 2e-3, steps: int = 300) -> Experiment:
    """A small pooled CNN on generated shape images with 40% random labels, Adam on 1."""
    x, y = patterns(7, n=384)
    y = _flip(y, 0.4, len(SHAPES), 3)
    torch.manual_seed(seed)
    model = _PoolCNN(8, len(SHAPES))
    return _exp(
        seed,
        "final2-inexact-gradients-cnn-adam-batch1-shapes-label-noise",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="pooled CNN on 384 shape images with 40% random labels, Adam batch 1",
        config={"family": "cnn", "label_noise": 0.4},
    )


# --------------------------------------------------------------------------------------------
# Healthy controls on small batches
# --------------------------------------------------------------------------------------------


def ctl_mlp_sgd_b8(seed: int, batch: int = 8, lr: float = 0.05, steps: int = 300) -> Experiment:
    """Control: a ReLU MLP on clean wine, SGD on batches of 8."""
    x, y = wine()
    torch.manual_seed(seed)
    model = _mlp([13, 32, 3])
    return _exp(
        seed,
        "final2-control-mlp-sgd-batch8-wine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="ReLU MLP 13-32-3 on wine, SGD batch 8",
        config={"family": "mlp"},
    )


def ctl_mlp_adamw_b4(
    seed: int, batch: int = 4, lr: float = 1e-3, steps: int = 300
) -> Experiment:
    """Control: a ReLU MLP on clean breast cancer, AdamW on batches of 4 with cosine decay."""
    x, y = breast_cancer()
    torch.manual_seed(seed)
    model = _mlp([30, 16, 2])
    return _exp(
        seed,
        "final2-control-mlp-adamw-cosine-batch4-cancer-converged",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="ReLU MLP 30-16-2 on breast cancer, AdamW (wd 1e-2) batch 4, cosine to 0",
        config={"family": "mlp", "weight_decay": 1e-2},
        cosine=True,
    )


def ctl_cnn_momentum_b16(
    seed: int, batch: int = 16, lr: float = 0.01, steps: int = 300
) -> Experiment:
    """Control: a small pooled CNN on clean digit images, heavy ball on batches of 16."""
    x, y = _digit_subset(512, 1)
    torch.manual_seed(seed)
    model = _PoolCNN(12, 10)
    return _exp(
        seed,
        "final2-control-cnn-momentum-batch16-digits",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="pooled CNN on 512 digit images, momentum 0.9 batch 16",
        config={"family": "cnn"},
    )


def ctl_cnn_sgd_b4(seed: int, batch: int = 4, lr: float = 0.05, steps: int = 300) -> Experiment:
    """Control: a small pooled CNN on clean generated shape images, SGD on batches of 4."""
    x, y = patterns(11, n=384, noise=0.15)
    torch.manual_seed(seed)
    model = _PoolCNN(8, len(SHAPES))
    return _exp(
        seed,
        "final2-control-cnn-sgd-batch4-shapes",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="pooled CNN on 384 shape images, SGD batch 4",
        config={"family": "cnn"},
    )


def ctl_tfm_adam_b8(seed: int, batch: int = 8, lr: float = 3e-3, steps: int = 300) -> Experiment:
    """Control: a one-layer transformer reversing clean token sequences, Adam on 8."""
    x, y = reverse_tokens(384, 6, 8, 0.0, 1)
    torch.manual_seed(seed)
    model = TinyTransformer(8, 6, 24, 2, 1)
    return _exp(
        seed,
        "final2-control-transformer-adam-batch8-reverse",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 24) reversing length-6 sequences, Adam batch 8",
        config={"family": "transformer"},
    )


def ctl_rnn_adam_b4(seed: int, batch: int = 4, lr: float = 5e-3, steps: int = 300) -> Experiment:
    """Control: a GRU regressing a clean weighted sum of its inputs, Adam on batches of 4."""
    x, y = weighted_sum_seq(384, 10, 0.0, 1)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 16, 1)
    return _exp(
        seed,
        "final2-control-rnn-gru-adam-batch4-weighted-sum",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="GRU (16) regressing a clean weighted sum of 10 inputs, Adam batch 4",
        config={"family": "rnn"},
    )


CASES: list[Case] = []
