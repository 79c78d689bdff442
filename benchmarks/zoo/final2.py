"""The third held-out zoo split (``"final2"``): inexact gradients and small-batch controls.

Written after the final split had been seen, on the challenge it missed. The inexact-gradients
cases train on batches of 1 to 8 where per-sample gradient noise is planted (random labels or
noisy regression targets) and the learning rate is moderate: the small-batch run's full-data
loss stays well above what the same model and optimizer reach on the full batch in the same
number of steps, with per-sample gradient variance many times ``batch x |mean gradient|^2``.
The controls train on clean data with batches of 4 to 16, where the small batch is fine.

Data: scikit-learn's bundled wine, breast-cancer and digits tables
and generated teachers and sequences, each from a fixed seed
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
from .data import batches, digit_images, flip_labels
from .final_mlp_cnn import breast_cancer, wine
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer

FINAL2 = "final2"
IG = "inexact-gradients"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _flip(y: torch.Tensor, frac: float, classes: int, seed: int) -> torch.Tensor:
    return flip_labels(y, frac, classes, 31000 + seed)


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


def ig_mlp_sgd_b1(seed: int, batch: int = 1, lr: float = 0.01, steps: int = 300) -> Experiment:
    """A tanh MLP regressing a sine teacher with target noise std 0.8, SGD on single samples."""
    x, y = sine_teacher(384, 8, 0.8, 0)
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
        description="tanh MLP 8-32-32-1 on a sine teacher, target noise std 0.8, SGD batch 1",
        config={"family": "mlp", "target_noise": 0.8},
    )


def ig_cnn_adam_b2(seed: int, batch: int = 2, lr: float = 1e-3, steps: int = 300) -> Experiment:
    """A small pooled CNN on 512 digit images with 30% random labels, Adam on pairs."""
    x, y = _digit_subset(512, 0)
    y = _flip(y, 0.3, 10, 1)
    torch.manual_seed(seed)
    model = _PoolCNN(12, 10)
    return _exp(
        seed,
        "final2-inexact-gradients-cnn-adam-batch2-digits-label-noise",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="pooled CNN on 512 digit images with 30% random labels, Adam batch 2",
        config={"family": "cnn", "label_noise": 0.3},
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


def ig_rnn_momentum_b1(
    seed: int, batch: int = 1, lr: float = 0.005, steps: int = 300
) -> Experiment:
    """A GRU regressing a decaying weighted sum of its inputs, target noise 0.7, heavy ball on 1."""
    x, y = weighted_sum_seq(384, 10, 0.7, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 16, 1)
    return _exp(
        seed,
        "final2-inexact-gradients-rnn-gru-momentum-batch1-weighted-sum",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="GRU (16) regressing a weighted sum of 10 inputs, target noise 0.7, "
        "momentum 0.9 batch 1",
        config={"family": "rnn", "target_noise": 0.7},
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


def ctl_mlp_adamw_b4(seed: int, batch: int = 4, lr: float = 1e-3, steps: int = 300) -> Experiment:
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


CASES: list[Case] = [
    # ---- inexact gradients
    Case(
        "final2-inexact-gradients-mlp-sgd-batch1-sine-teacher",
        IG,
        "mlp",
        "sgd",
        FINAL2,
        ig_mlp_sgd_b1,
        0,
        "Target noise std 0.8 (floor 0.64) on a sine teacher, one sample per step, SGD lr 0.01: "
        "full-data loss 1.77 -> 0.76 after 300 steps, bouncing 0.74-0.92 over the last half, "
        "while full-batch SGD (384, same lr and steps) reaches 0.694 (excess over the floor "
        "0.12 against 0.05); per-sample gradient variance 181 x |mean gradient|^2 at the end "
        "(16 x at the start), against batch 1.",
    ),
    Case(
        "final2-inexact-gradients-cnn-adam-batch2-digits-label-noise",
        IG,
        "cnn",
        "adam",
        FINAL2,
        ig_cnn_adam_b2,
        0,
        "30% random labels on 512 digit images, pairs, Adam lr 1e-3: full-data loss crawls 2.31 "
        "-> 1.80 in 300 steps (minibatch loss 1.1-2.9 in the last fifth), while full-batch Adam "
        "(same lr and steps) reaches 0.83 (batches of 64: 1.36); per-sample gradient variance "
        "70 x |mean gradient|^2 at the end (152 x at the start), against batch 2.",
    ),
    Case(
        "final2-inexact-gradients-transformer-adam-batch4-reverse-label-noise",
        IG,
        "transformer",
        "adam",
        FINAL2,
        ig_tfm_adam_b4,
        0,
        "Reversing length-6 sequences with 35% random labels, batches of 4, Adam lr 3e-3: "
        "full-data loss 2.10 -> 1.31 by step 100, then stalls at 1.23 by step 300, while "
        "full-batch Adam (384, same lr and steps) reaches 0.55 (batches of 64: 0.91); "
        "per-sample gradient variance 173 x |mean gradient|^2 at the end (33 x at the start), "
        "against batch 4; minibatch loss never above 2.2 (start 2.1).",
    ),
    Case(
        "final2-inexact-gradients-rnn-gru-momentum-batch1-weighted-sum",
        IG,
        "rnn",
        "momentum",
        FINAL2,
        ig_rnn_momentum_b1,
        0,
        "A GRU regressing a weighted sum of 10 inputs with target noise 0.7 (floor 0.49), one "
        "sequence per step, heavy ball 0.9 lr 0.005: full-data loss 1.48 -> 0.62 by step 125, "
        "then wanders 0.55-0.80 to the end (0.715), while full-batch momentum (same lr and "
        "steps) settles at 0.524; per-sample gradient variance 9-14 x |mean gradient|^2, "
        "against batch 1.",
    ),
    Case(
        "final2-inexact-gradients-mlp-adam-batch8-cancer-label-noise",
        IG,
        "mlp",
        "adam",
        FINAL2,
        ig_mlp_adam_b8,
        0,
        "Breast cancer with 35% random labels, batches of 8, Adam lr 1e-2: full-data loss 0.70 "
        "-> 0.48 by step 50, then crawls to 0.42 at step 250, while full-batch Adam (569, same "
        "lr and steps) reaches 0.005 (batches of 64: 0.21); per-sample gradient variance 127 x "
        "|mean gradient|^2 at the end (48 x at the start), against batch 8.",
    ),
    # ---- healthy controls on small batches
    Case(
        "final2-control-mlp-sgd-batch8-wine",
        None,
        "mlp",
        "sgd",
        FINAL2,
        ctl_mlp_sgd_b8,
        0,
        "Healthy: clean wine, batches of 8, SGD lr 0.05: full-data loss 1.08 -> 0.038 steadily "
        "(falling at every check), the same as full-batch SGD at the same lr and steps (0.039); "
        "minibatch loss at most 0.19 in the last fifth, no spike.",
    ),
    Case(
        "final2-control-mlp-adamw-cosine-batch4-cancer-converged",
        None,
        "mlp",
        "adamw+cosine",
        FINAL2,
        ctl_mlp_adamw_b4,
        1,
        "Healthy, converged: clean breast cancer, batches of 4, AdamW 1e-3 (wd 1e-2) with cosine "
        "to 0: full-data loss 0.66 -> 0.160 steadily, flat over the last 75 steps (0.161, 0.160, "
        "0.160); full-batch AdamW at the same lr and steps reaches 0.097 (batches of 64: 0.107); "
        "no spike.",
    ),
    Case(
        "final2-control-cnn-momentum-batch16-digits",
        None,
        "cnn",
        "momentum",
        FINAL2,
        ctl_cnn_momentum_b16,
        2,
        "Healthy: clean digit images, batches of 16, heavy ball 0.9 lr 0.01: full-data loss 2.31 "
        "-> 0.121 (1.94 at step 75, 0.39 at 150), tracking full-batch momentum at the same lr "
        "and steps (1.90 at 75, 0.093 at the end); no spike.",
    ),
    Case(
        "final2-control-transformer-adam-batch8-reverse",
        None,
        "transformer",
        "adam",
        FINAL2,
        ctl_tfm_adam_b8,
        4,
        "Healthy, converged: reversing clean length-6 sequences, batches of 8, Adam 3e-3: "
        "full-data loss 2.11 -> 0.39 by step 50 -> 0.006 at step 300, falling at every check; "
        "full-batch Adam reaches 0.003; per-sample gradient variance 3.6 x |mean gradient|^2 at "
        "the end (the noise of convergence), minibatch loss below 0.01 in the last fifth.",
    ),
    Case(
        "final2-control-rnn-gru-adam-batch4-weighted-sum",
        None,
        "rnn",
        "adam",
        FINAL2,
        ctl_rnn_adam_b4,
        5,
        "Healthy, converged: a GRU regressing a clean weighted sum of 10 inputs, batches of 4, "
        "Adam 5e-3: full-data loss 1.15 -> 0.114 by step 50 -> 0.010 at step 300 (wobbling "
        "0.009-0.017 at the end); full-batch Adam reaches 0.002; minibatch loss at most 0.07 in "
        "the last fifth, no spike.",
    ),
]
