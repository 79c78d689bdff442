"""The thirteenth held-out zoo split (``"final12"``): healthy controls only, the runs people train.

Written after final11 had been seen, to measure false alarms on a fresh set: 20 healthy runs,
five of each family, that look like ordinary training rather than edge cases. Every optimizer
four times or more (SGD, heavy ball or Nesterov, Adam, AdamW), under the schedules people use
(warmup then a cosine, a cosine, a step cut to a tenth, a linear decay to zero, a constant
rate), some with the gradient norm clipped, weight decay, dropout, or accumulated
micro-batches; ten on batches of 1 to 16 and ten on 32 to 128. Each learns well (the
full-data loss ends below half of where it starts), falls without spikes that throw the run,
and its small batch is fine: the same builder on batches of 64 (or on the full data, for a run
already at 64), with the same schedule and steps, ends no more than about 10% below it. Some
are trained to the data's own floor (label noise, overlapping classes, noisy targets), some
are still falling at the end of a shorter budget. A run already at batches of 96 or 128 has a
reference that ends at or above it.

Data: noisy spirals, the Friedman #1 regression, four-pixel line segments in noisy images,
digits rotated by a quarter turn (the rotation is the label, as in self-supervised
pretraining), a second-order Markov "language" (next-token prediction, and denoising of
corrupted sequences), noisy sums of two sine waves (next-value forecasting) and AR(2)
processes named by their coefficients, each from a fixed seed of its own (200000 and up), and
scikit-learn's bundled iris table regressing the petal width on the other three measurements.
Every model is built inside ``build(seed)`` after ``torch.manual_seed(seed)``. Each builder
takes ``batch`` so that the large-batch reference of a hand check is the same run with
``batch=64``. ``why`` gives the numbers of the hand check: plain training, the full-data loss
at the start and the end (batch norm on the full data's statistics, dropout off), the
reference's end loss, and the largest gradient norm of the run (before clipping) against its
median; never the detectors.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from optiscope import Experiment

from . import Case
from .data import batches, digit_images, flip_labels
from .final2 import _mlp
from .final3 import iris
from .final5 import _warm
from .final6 import _accumulated, _clipped, _dropout_mlp
from .final7 import _cut, _linear
from .mlp_cnn import _ResNet
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer

FINAL12 = "final12"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _gen(base: int, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(200000 + base + seed)


def spirals(
    n: int, arms: int, turns: float, spread: float, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points along ``arms`` interleaved spirals (``turns`` turns each, radius 0 to 1; the arm
    is the class) with Gaussian jitter of std ``spread``, a fraction ``noise`` of the labels
    redrawn at random. The arms overlap near the centre: the classes have a floor."""
    gen = _gen(0, seed)
    y = torch.randint(0, arms, (n,), generator=gen)
    t = torch.rand(n, generator=gen)
    a = 2 * math.pi * turns * t + 2 * math.pi * y / arms
    x = torch.stack([t * a.cos(), t * a.sin()], 1) + spread * torch.randn(n, 2, generator=gen)
    return 2 * x, flip_labels(y, noise, arms, 200500 + seed) if noise else y


def friedman(n: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Friedman's #1 regression: 10 uniform inputs of which 5 matter, y = 10 sin(pi x1 x2) +
    20 (x3 - 1/2)^2 + 10 x4 + 5 x5, standardized, plus Gaussian noise of std ``noise``; the
    inputs are centred and scaled to variance 1."""
    gen = _gen(1000, seed)
    u = torch.rand(n, 10, generator=gen)
    y = 10 * torch.sin(math.pi * u[:, 0] * u[:, 1]) + 20 * (u[:, 2] - 0.5) ** 2
    y = y + 10 * u[:, 3] + 5 * u[:, 4]
    y = (y - y.mean()) / y.std()
    x = (u - 0.5) * math.sqrt(12)
    return x, (y + noise * torch.randn(n, generator=gen)).unsqueeze(1)


def iris_petal_width() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's iris (standardized): sepal length, sepal width and petal length as the
    inputs, the petal width as the target."""
    x, _ = iris()
    return x[:, :3], x[:, 3:]


def segments(n: int, pixel: float, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 images of one four-pixel line segment (horizontal, vertical, diagonal,
    anti-diagonal: the class) at a random place, on Gaussian pixel noise of std ``pixel``; a
    fraction ``noise`` of the labels redrawn at random."""
    gen = _gen(2000, seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    r, c = torch.randint(0, 5, (2, n), generator=gen)
    img = pixel * torch.randn(n, 8, 8, generator=gen)
    k = torch.arange(4)
    for i in range(n):
        rows = [r[i] + 0 * k, r[i] + k, r[i] + k, r[i] + k][int(y[i])]
        cols = [c[i] + k, c[i] + 0 * k, c[i] + k, c[i] + 3 - k][int(y[i])]
        img[i, rows, cols] += 1.0
    return img.unsqueeze(1), flip_labels(y, noise, 4, 202500 + seed) if noise else y


def digit_rotations(n: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` of scikit-learn's digits as 1x8x8 images, each turned by 0, 1, 2 or 3 quarter
    turns, labelled by the number of turns (a self-supervised pretext task), a fraction
    ``noise`` of the labels redrawn at random."""
    x, _ = digit_images()
    gen = _gen(3000, seed)
    idx = torch.randperm(len(x), generator=gen)[:n]
    y = torch.randint(0, 4, (n,), generator=gen)
    img = torch.stack([torch.rot90(x[i], int(k), (1, 2)) for i, k in zip(idx, y, strict=True)])
    return img, flip_labels(y, noise, 4, 203500 + seed) if noise else y


def _trigram_language(vocab: int, branch: int, gen: torch.Generator) -> torch.Tensor:
    """A (vocab, vocab, vocab) table: after the pair (a, b), one of ``branch`` tokens of its
    own, at random probabilities (a second-order Markov chain)."""
    probs = torch.zeros(vocab, vocab, vocab)
    for a in range(vocab):
        for b in range(vocab):
            nxt = torch.randperm(vocab, generator=gen)[:branch]
            probs[a, b, nxt] = torch.rand(branch, generator=gen) + 0.2
    return probs / probs.sum(-1, keepdim=True)


def _trigram_text(
    n: int, length: int, vocab: int, branch: int, seed: int, order: int = 2
) -> torch.Tensor:
    gen = _gen(4000, seed)
    probs = _trigram_language(vocab, branch, gen)
    if order == 1:  # the next token depends on the last one only (a first-order chain)
        probs = probs[:1].expand(vocab, -1, -1)
    seq = torch.zeros(n, length, dtype=torch.long)
    seq[:, :2] = torch.randint(0, vocab, (n, 2), generator=gen)
    for t in range(2, length):
        seq[:, t] = torch.multinomial(probs[seq[:, t - 2], seq[:, t - 1]], 1, generator=gen)[:, 0]
    return seq


def trigram_next(
    n: int, length: int, vocab: int, branch: int, seed: int, order: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Language modelling: sequences of ``length + 1`` tokens of a Markov chain of ``order``
    1 or 2, the inputs all but the last, the labels the next token at every position
    (causal)."""
    seq = _trigram_text(n, length + 1, vocab, branch, seed, order)
    return seq[:, :-1], seq[:, 1:]


def trigram_denoise(
    n: int, length: int, vocab: int, branch: int, corrupt: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Denoising: sequences of the Markov chain with a fraction ``corrupt`` of their tokens
    replaced by random ones as the inputs, the clean sequences as the labels (non-causal)."""
    clean = _trigram_text(n, length, vocab, branch, 500 + seed)
    gen = _gen(4500, seed)
    hit = torch.rand(clean.shape, generator=gen) < corrupt
    return torch.where(hit, torch.randint(0, vocab, clean.shape, generator=gen), clean), clean


def two_sines(n: int, length: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Forecasting: the sum of two sine waves (periods 6 to 30 steps, random phases and
    amplitudes 0.5 to 1) plus Gaussian noise of std ``noise``; the inputs are the first
    ``length`` values, the targets the next value at every step."""
    gen = _gen(5000, seed)
    t = torch.arange(length + 1).float()
    w = 2 * math.pi / (6 + 24 * torch.rand(n, 2, 1, generator=gen))
    amp = 0.5 + 0.5 * torch.rand(n, 2, 1, generator=gen)
    phase = 2 * math.pi * torch.rand(n, 2, 1, generator=gen)
    s = (amp * torch.sin(w * t + phase)).sum(1)
    s = s + noise * torch.randn(s.shape, generator=gen)
    return s[:, :-1, None], s[:, 1:, None]


_AR2 = torch.tensor([[1.2, -0.5], [0.4, 0.3], [-0.3, 0.4], [0.8, -0.8]])


def ar2_seq(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar sequences of one of four AR(2) processes x_t = a x_{t-1} + b x_{t-2} + e_t
    (smooth, slow, alternating, oscillating: the class), each sequence scaled to variance 1
    so that only its correlations tell; short enough that the classes overlap a little."""
    gen = _gen(6000, seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    a, b = _AR2[y].T
    e = torch.randn(n, length + 20, generator=gen)
    x = torch.zeros_like(e)
    for t in range(2, e.shape[1]):
        x[:, t] = a * x[:, t - 1] + b * x[:, t - 2] + e[:, t]
    x = x[:, 20:]  # past the start-up transient
    x = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    return x.unsqueeze(-1), y


# --------------------------------------------------------------------------------------------
# The Experiment builder
# --------------------------------------------------------------------------------------------


def _optim(model: nn.Module, kind: str, lr: float, wd: float) -> torch.optim.Optimizer:
    p = model.parameters()
    if kind in ("sgd", "momentum", "nesterov"):
        mom = 0.0 if kind == "sgd" else 0.9
        return torch.optim.SGD(p, lr=lr, momentum=mom, nesterov=kind == "nesterov", weight_decay=wd)
    if kind == "adam":
        return torch.optim.Adam(p, lr=lr, weight_decay=wd)
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
    wd: float = 0.0,
    cosine: bool = False,
) -> Experiment:
    """final2's builder, with Nesterov and weight decay on any optimizer (AdamW's own
    default, 1e-2, unless ``wd`` says otherwise)."""
    wd = 1e-2 if opt == "adamw" and not wd else wd
    optimizer = _optim(model, opt, lr, wd)
    scheduler = None
    if cosine:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
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
            "weight_decay": wd,
            "batch_size": min(batch, len(y)),
            "steps": steps,
            "cosine": cosine,
        },
        scheduler=scheduler,
    )


# --------------------------------------------------------------------------------------------
# MLPs
# --------------------------------------------------------------------------------------------


def mlp_adam_b16(seed: int, batch: int = 16, lr: float = 3e-3, steps: int = 400) -> Experiment:
    """A ReLU MLP naming the arm of three noisy spirals, Adam on batches of 16, warmup then a
    cosine to zero."""
    x, y = spirals(1024, 3, 0.5, 0.04, 0.1, 0)
    torch.manual_seed(seed)
    model = _mlp([2, 64, 64, 3])
    exp = _exp(
        seed,
        "final12-control-mlp-adam-batch16-spirals-warmup-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="ReLU MLP 2-64-64-3 naming which of 3 interleaved spirals (jitter 0.04) "
        f"holds a point, 1024 points, Adam lr {lr} batch {batch}, warmup 40 then cosine to 0",
        config={"family": "mlp", "arms": 3},
    )
    return _warm(exp, 40)


def mlp_nesterov_b64(seed: int, batch: int = 64, lr: float = 0.2, steps: int = 500) -> Experiment:
    """A dropout MLP naming the arm of two noisy spirals with 10% random labels, Nesterov
    momentum on batches of 64 with a cosine to zero."""
    x, y = spirals(1024, 2, 1.5, 0.05, 0.1, 1)
    torch.manual_seed(seed)
    model = _dropout_mlp([2, 128, 128, 2], 0.1)
    return _exp(
        seed,
        "final12-control-mlp-nesterov-batch64-dropout-spirals-label-noise-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="nesterov",
        lr=lr,
        steps=steps,
        description="ReLU MLP 2-128-128-2 with dropout 0.1 naming which of 2 spirals (jitter "
        f"0.05) holds a point, 1024 points, 10% random labels, Nesterov 0.9 lr {lr} batch "
        f"{batch}, cosine to 0",
        config={"family": "mlp", "arms": 2, "label_noise": 0.1, "dropout": 0.1},
        cosine=True,
    )


def mlp_sgd_b32(seed: int, batch: int = 32, lr: float = 0.02, steps: int = 400) -> Experiment:
    """A ReLU MLP on the Friedman #1 regression, plain SGD on batches of 32 with the gradient
    clipped to norm 1, the rate cut to a tenth for the last quarter."""
    x, y = friedman(1024, 0.3, 0)
    torch.manual_seed(seed)
    model = _mlp([10, 64, 64, 1])
    exp = _exp(
        seed,
        "final12-control-mlp-sgd-batch32-clipped-friedman-step-lr",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="ReLU MLP 10-64-64-1 regressing Friedman #1 (standardized, noise std 0.3), "
        f"1024 points, SGD lr {lr} batch {batch}, gradient norm clipped to 1, x0.1 from step "
        f"{3 * steps // 4}",
        config={"family": "mlp", "target_noise": 0.3},
    )
    return _clipped(_cut(exp, 3 * steps // 4), 1.0)


def mlp_adamw_b8(seed: int, batch: int = 8, lr: float = 1e-3, steps: int = 400) -> Experiment:
    """A dropout MLP on the Friedman #1 regression, AdamW on batches of 8 with a linear decay
    to zero."""
    x, y = spirals(1024, 2, 0.5, 0.1, 0.1, 2)
    torch.manual_seed(seed)
    model = _dropout_mlp([2, 64, 64, 2], 0.1)
    exp = _exp(
        seed,
        "final12-control-mlp-adamw-batch8-dropout-spirals-label-noise-linear-decay",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="ReLU MLP 10-64-64-1 with dropout 0.1 regressing Friedman #1 "
        f"(standardized, noise std 0.5), 1024 points, AdamW (wd 1e-2) lr {lr} batch {batch}, "
        "linear decay to 0",
        config={"family": "mlp", "target_noise": 0.5, "dropout": 0.1},
    )
    return _linear(exp)


def mlp_momentum_b128(
    seed: int, batch: int = 128, lr: float = 0.02, steps: int = 300
) -> Experiment:
    """A tanh MLP regressing iris's petal width on its other measurements, heavy ball on
    batches of 128 of the 150 flowers at a constant rate."""
    x, y = iris_petal_width()
    torch.manual_seed(seed)
    model = _mlp([3, 32, 1], nn.Tanh)
    return _exp(
        seed,
        "final12-control-mlp-momentum-batch128-iris-petal-width",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="tanh MLP 3-32-1 regressing iris's petal width on sepal length, sepal "
        f"width and petal length (standardized), 150 flowers, momentum 0.9 lr {lr} batch {batch}",
        config={"family": "mlp", "table": "iris"},
    )


# --------------------------------------------------------------------------------------------
# Batch-norm ResNets
# --------------------------------------------------------------------------------------------


def cnn_momentum_b32(seed: int, batch: int = 32, lr: float = 0.01, steps: int = 400) -> Experiment:
    """A batch-norm ResNet naming how far a digit was turned, heavy ball with weight decay on
    batches of 32, a cosine to zero."""
    x, y = digit_rotations(768, 0.0, 3)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 4)
    return _exp(
        seed,
        "final12-control-cnn-momentum-batch32-bn-digit-rotations-weight-decay-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the quarter turns of 768 "
        f"turned digit images, momentum 0.9 lr {lr} (wd 5e-4) batch {batch}, cosine to 0",
        config={"family": "cnn", "task": "rotation"},
        wd=5e-4,
        cosine=True,
    )


def cnn_momentum_b8(seed: int, batch: int = 8, lr: float = 0.005, steps: int = 400) -> Experiment:
    """A batch-norm ResNet naming how far a digit was turned, heavy ball on batches of 8 at a
    constant rate with the gradient clipped to norm 1."""
    x, y = digit_rotations(768, 0.0, 2)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 4)
    exp = _exp(
        seed,
        "final12-control-cnn-momentum-batch8-bn-clipped-digit-rotations",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the quarter turns of 768 "
        f"turned digit images, momentum 0.9 lr {lr} batch {batch}, gradient norm clipped to 1",
        config={"family": "cnn", "task": "rotation"},
    )
    return _clipped(exp, 1.0)


def cnn_adamw_b96(seed: int, batch: int = 96, lr: float = 3e-3, steps: int = 300) -> Experiment:
    """A batch-norm ResNet naming how far a digit was turned, AdamW on batches of 96, warmup
    then a cosine to zero."""
    x, y = digit_rotations(1024, 0.1, 0)
    torch.manual_seed(seed)
    model = _ResNet(16, 2, 4)
    exp = _exp(
        seed,
        "final12-control-cnn-adamw-batch96-bn-digit-rotations-label-noise-warmup-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (16 channels, 2 blocks) naming the quarter turns (0 to "
        f"3) of 1024 turned digit images, 10% random labels, AdamW (wd 1e-2) lr {lr} batch "
        f"{batch}, warmup 30 then cosine to 0",
        config={"family": "cnn", "task": "rotation", "label_noise": 0.1},
    )
    return _warm(exp, 30)


def cnn_sgd_b4x4(seed: int, batch: int = 4, lr: float = 0.05, steps: int = 300) -> Experiment:
    """A batch-norm ResNet naming how far a digit was turned, plain SGD at a constant rate on
    micro-batches of 4 accumulated 4 per update (updates on 16)."""
    x, y = digit_rotations(768, 0.0, 1)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 4)
    exp = _exp(
        seed,
        "final12-control-cnn-sgd-batch4x4-bn-accumulated-digit-rotations",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the quarter turns of 768 "
        f"turned digit images, SGD lr {lr} on micro-batches of {batch} accumulated 4 per update",
        config={"family": "cnn", "task": "rotation"},
    )
    return _accumulated(exp, 4)


def cnn_sgd_b128(seed: int, batch: int = 128, lr: float = 0.1, steps: int = 250) -> Experiment:
    """A batch-norm ResNet naming the direction of a line segment, plain SGD on batches of
    128, the rate cut to a tenth for the last quarter."""
    x, y = segments(1024, 0.4, 0.1, 2)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 4)
    exp = _exp(
        seed,
        "final12-control-cnn-sgd-batch128-bn-segments-step-lr",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the direction of a "
        f"4-pixel segment in 1024 images (pixel noise 0.4), SGD lr {lr} batch {batch}, x0.1 "
        f"from step {3 * steps // 4}",
        config={"family": "cnn", "pixel_noise": 0.4},
    )
    return _cut(exp, 3 * steps // 4)


# --------------------------------------------------------------------------------------------
# Transformers (tied output weights; sequence.py's)
# --------------------------------------------------------------------------------------------


def tfm_adamw_b32(seed: int, batch: int = 32, lr: float = 3e-3, steps: int = 300) -> Experiment:
    """A causal transformer modelling a first-order Markov language (next token), AdamW on
    batches of 32 with the gradient clipped to norm 1, warmup then a cosine to zero."""
    x, y = trigram_next(1024, 16, 16, 3, 0, order=1)
    torch.manual_seed(seed)
    model = TinyTransformer(16, 16, 32, 2, 2, causal=True)
    exp = _exp(
        seed,
        "final12-control-transformer-adamw-batch32-clipped-markov-lm-warmup-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="2-layer causal transformer (d 32) predicting the next of 16 tokens of a "
        f"first-order Markov chain over 16 tokens (3 successors per token), 1024 sequences, "
        f"AdamW (wd 1e-2) lr {lr} batch {batch}, gradient norm clipped to 1, warmup 30 then "
        "cosine to 0",
        config={"family": "transformer", "vocab": 16, "causal": True},
    )
    return _clipped(_warm(exp, 30), 1.0)


def tfm_adam_b8(seed: int, batch: int = 8, lr: float = 1e-3, steps: int = 400) -> Experiment:
    """A causal transformer modelling a first-order Markov language, Adam on batches of 8
    with the gradient clipped to norm 1, warmup then a cosine to zero."""
    x, y = trigram_next(1024, 16, 12, 2, 1, order=1)
    torch.manual_seed(seed)
    model = TinyTransformer(12, 16, 32, 2, 2, causal=True)
    exp = _exp(
        seed,
        "final12-control-transformer-adam-batch8-clipped-markov-lm-warmup-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="2-layer causal transformer (d 32) predicting the next of 16 tokens of a "
        f"first-order Markov chain over 12 tokens (2 successors per token), 1024 sequences, "
        f"Adam lr {lr} batch {batch}, gradient norm clipped to 1, warmup 40 then cosine to 0",
        config={"family": "transformer", "vocab": 12, "causal": True},
    )
    return _clipped(_warm(exp, 40), 1.0)


def tfm_sgd_b4(seed: int, batch: int = 4, lr: float = 0.1, steps: int = 400) -> Experiment:
    """A transformer restoring corrupted sequences of a Markov language (denoising), plain SGD
    on batches of 4 at a constant rate."""
    x, y = trigram_denoise(768, 12, 10, 2, 0.15, 0)
    torch.manual_seed(seed)
    model = TinyTransformer(10, 12, 32, 2, 2)
    return _exp(
        seed,
        "final12-control-transformer-sgd-batch4-trigram-denoise",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="2-layer transformer (d 32) restoring 12-token sequences of a second-order "
        "Markov chain over 10 tokens with 15% of the tokens replaced at random, 768 sequences, "
        f"SGD lr {lr} batch {batch}",
        config={"family": "transformer", "vocab": 10, "corrupt": 0.15},
    )


def tfm_nesterov_b64(seed: int, batch: int = 64, lr: float = 0.1, steps: int = 300) -> Experiment:
    """A transformer restoring corrupted sequences of a Markov language, Nesterov momentum on
    batches of 64 with a linear decay to zero."""
    x, y = trigram_denoise(1024, 12, 12, 2, 0.2, 1)
    torch.manual_seed(seed)
    model = TinyTransformer(12, 12, 32, 2, 2)
    exp = _exp(
        seed,
        "final12-control-transformer-nesterov-batch64-trigram-denoise-linear-decay",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="nesterov",
        lr=lr,
        steps=steps,
        description="2-layer transformer (d 32) restoring 12-token sequences of a second-order "
        "Markov chain over 12 tokens with 20% of the tokens replaced at random, 1024 sequences, "
        f"Nesterov 0.9 lr {lr} batch {batch}, linear decay to 0",
        config={"family": "transformer", "vocab": 12, "corrupt": 0.2},
    )
    return _linear(exp)


def tfm_adamw_b4x4(seed: int, batch: int = 4, lr: float = 1e-3, steps: int = 300) -> Experiment:
    """A causal transformer modelling a first-order Markov language, AdamW at a constant rate
    on micro-batches of 4 accumulated 4 per update (updates on 16)."""
    x, y = trigram_next(768, 12, 10, 2, 2, order=1)
    torch.manual_seed(seed)
    model = TinyTransformer(10, 12, 32, 2, 1, causal=True)
    exp = _exp(
        seed,
        "final12-control-transformer-adamw-batch4x4-accumulated-markov-lm",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="1-layer causal transformer (d 32) predicting the next of 12 tokens of a "
        "first-order Markov chain over 10 tokens (2 successors per token), 768 sequences, "
        f"AdamW (wd 1e-2) lr {lr} on micro-batches of {batch} accumulated 4 per update",
        config={"family": "transformer", "vocab": 10, "causal": True},
    )
    return _accumulated(exp, 4)


# --------------------------------------------------------------------------------------------
# LSTMs and GRUs
# --------------------------------------------------------------------------------------------


def rnn_adam_b32(seed: int, batch: int = 32, lr: float = 1e-2, steps: int = 300) -> Experiment:
    """An LSTM forecasting the next value of a noisy sum of two sines, Adam on batches of 32
    with the gradient clipped to norm 1, a cosine to zero."""
    x, y = two_sines(1024, 24, 0.2, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("lstm", 1, 32, 1, every_step=True)
    exp = _exp(
        seed,
        "final12-control-rnn-lstm-adam-batch32-clipped-two-sines-forecast-cosine",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="LSTM (32) forecasting the next value at every step of 24 of a sum of two "
        f"sines (noise std 0.2), 1024 series, Adam lr {lr} batch {batch}, gradient norm clipped"
        " to 1, cosine to 0",
        config={"family": "rnn", "cell": "lstm", "noise": 0.2},
        cosine=True,
    )
    return _clipped(exp, 1.0)


def rnn_momentum_b4(seed: int, batch: int = 4, lr: float = 0.02, steps: int = 400) -> Experiment:
    """A GRU forecasting the next value of a noisy sum of two sines, heavy ball on batches of
    4 at a constant rate."""
    x, y = two_sines(768, 24, 0.3, 1)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 32, 1, every_step=True)
    return _exp(
        seed,
        "final12-control-rnn-gru-momentum-batch4-two-sines-forecast",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="GRU (32) forecasting the next value at every step of 24 of a sum of two "
        f"sines (noise std 0.3), 768 series, momentum 0.9 lr {lr} batch {batch}",
        config={"family": "rnn", "cell": "gru", "noise": 0.3},
    )


def rnn_adamw_b16(seed: int, batch: int = 16, lr: float = 3e-3, steps: int = 300) -> Experiment:
    """An LSTM naming which of four AR(2) processes made a short sequence, AdamW on batches
    of 16, the rate cut to a tenth for the last quarter."""
    x, y = two_sines(1024, 24, 0.3, 3)
    torch.manual_seed(seed)
    model = RecurrentNet("lstm", 1, 32, 1, every_step=True)
    exp = _exp(
        seed,
        "final12-control-rnn-lstm-adamw-batch16-two-sines-forecast-step-lr",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="LSTM (32) naming which of 4 AR(2) processes made a 24-step sequence "
        f"(scaled to variance 1), 1024 sequences, AdamW (wd 1e-2) lr {lr} batch {batch}, x0.1 "
        f"from step {3 * steps // 4}",
        config={"family": "rnn", "cell": "lstm"},
    )
    return _cut(exp, 3 * steps // 4)


def rnn_sgd_b128(seed: int, batch: int = 128, lr: float = 3.0, steps: int = 300) -> Experiment:
    """A GRU naming which of four AR(2) processes made a short sequence, plain SGD on batches
    of 128 with the gradient clipped to norm 1 and a linear decay to zero."""
    x, y = ar2_seq(1024, 24, 1)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 32, 4)
    exp = _exp(
        seed,
        "final12-control-rnn-gru-sgd-batch128-clipped-ar2-processes-linear-decay",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="GRU (32) naming which of 4 AR(2) processes made a 24-step sequence "
        f"(scaled to variance 1), 1024 sequences, SGD lr {lr} batch {batch}, gradient norm "
        "clipped to 1, linear decay to 0",
        config={"family": "rnn", "cell": "gru"},
    )
    return _clipped(_linear(exp), 1.0)


def rnn_adam_b2(seed: int, batch: int = 2, lr: float = 1e-3, steps: int = 400) -> Experiment:
    """A GRU forecasting the next value of a noisy sum of two sines, Adam on pairs with a
    linear decay to zero."""
    x, y = two_sines(512, 24, 0.3, 2)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 24, 1, every_step=True)
    exp = _exp(
        seed,
        "final12-control-rnn-gru-adam-batch2-two-sines-forecast-linear-decay",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="GRU (24) forecasting the next value at every step of 24 of a sum of two "
        f"sines (noise std 0.3), 512 series, Adam lr {lr} batch {batch}, linear decay to 0",
        config={"family": "rnn", "cell": "gru", "noise": 0.3},
    )
    return _linear(exp)


CASES: list[Case] = [
    Case(
        "final12-control-mlp-adam-batch16-spirals-warmup-cosine",
        None,
        "mlp",
        "adam+warmup-cosine",
        FINAL12,
        mlp_adam_b16,
        0,
        "Healthy, settled by the end: three noisy spirals (half a turn, 10% random labels), "
        "batches of 16, Adam 3e-3, warmup 40 then a cosine to 0: full-data loss 1.14 -> 0.47 "
        "(step 100) -> 0.356 (200) -> 0.339 (300) -> 0.336 at step 400, 0.29 of the start; "
        "batches of 64 (same schedule and steps) reach 0.311 (7% lower). Largest gradient norm "
        "1.54 (step 64) against a median of 0.573 (2.7x).",
    ),
    Case(
        "final12-control-mlp-nesterov-batch64-dropout-spirals-label-noise-cosine",
        None,
        "mlp",
        "momentum(nesterov)+cosine",
        FINAL12,
        mlp_nesterov_b64,
        0,
        "Healthy, settled by the end: two spirals (1.5 turns, 10% random labels), dropout 0.1, "
        "batches of 64, Nesterov 0.9 lr 0.2 with a cosine to 0: full-data loss 0.696 -> 0.383 "
        "(step 125) -> 0.272 (250) -> 0.248 (375) -> 0.243 at step 500, 0.35 of the start; "
        "full-batch training (same schedule and steps) reaches 0.235 (3% lower). Largest "
        "gradient norm 1.55 (step 128) against a median of 0.467 (3.3x).",
    ),
    Case(
        "final12-control-mlp-sgd-batch32-clipped-friedman-step-lr",
        None,
        "mlp",
        "sgd+step+clip",
        FINAL12,
        mlp_sgd_b32,
        0,
        "Healthy, settled by the end: Friedman #1 (noise std 0.3), batches of 32, SGD 0.02 "
        "clipped to norm 1, cut to a tenth at step 300: full-data loss 1.12 -> 0.387 (step 100)"
        " -> 0.311 (200) -> 0.275 (300) -> 0.27 at step 400, 0.24 of the start; batches of 64 "
        "(same schedule and steps) reach 0.258 (5% lower). Largest gradient norm 2.45 (step 50)"
        " against a median of 1.01 (2.4x).",
    ),
    Case(
        "final12-control-mlp-adamw-batch8-dropout-spirals-label-noise-linear-decay",
        None,
        "mlp",
        "adamw+linear",
        FINAL12,
        mlp_adamw_b8,
        0,
        "Healthy, settled by the end: two spirals (half a turn, 10% random labels), dropout "
        "0.1, batches of 8, AdamW 1e-3 with a linear decay to 0: full-data loss 0.758 -> 0.338 "
        "(step 100) -> 0.323 (200) -> 0.318 (300) -> 0.314 at step 400, 0.41 of the start; "
        "batches of 64 (same schedule and steps) reach 0.285 (9% lower). Largest gradient norm "
        "2.7 (step 111) against a median of 0.515 (5.2x).",
    ),
    Case(
        "final12-control-mlp-momentum-batch128-iris-petal-width",
        None,
        "mlp",
        "momentum",
        FINAL12,
        mlp_momentum_b128,
        0,
        "Healthy, settled by the end: iris's petal width from its other measurements, batches "
        "of 128 of 150, heavy ball 0.9 lr 0.02 (constant): full-data loss 1.21 -> 0.0549 (step "
        "75) -> 0.0541 (150) -> 0.0534 (225) -> 0.0529 at step 300, 0.04 of the start; batches "
        "of 64 (same schedule and steps) reach 0.0529 (the same). Largest gradient norm 4.09 "
        "(step 1) against a median of 0.0079 (518.2x).",
    ),
    Case(
        "final12-control-cnn-momentum-batch32-bn-digit-rotations-weight-decay-cosine",
        None,
        "cnn",
        "momentum+cosine",
        FINAL12,
        cnn_momentum_b32,
        0,
        "Healthy, settled by the end: quarter turns of digit images, batch-norm ResNet, batches"
        " of 32, heavy ball 0.9 lr 0.01 (wd 5e-4) with a cosine to 0: full-data loss 1.6 -> "
        "0.773 (step 100) -> 0.707 (200) -> 0.696 (300) -> 0.694 at step 400, 0.43 of the "
        "start; batches of 64 (same schedule and steps) reach 0.693 (the same). Largest "
        "gradient norm 1.02 (step 2) against a median of 0.397 (2.6x).",
    ),
    Case(
        "final12-control-cnn-momentum-batch8-bn-clipped-digit-rotations",
        None,
        "cnn",
        "momentum+clip",
        FINAL12,
        cnn_momentum_b8,
        0,
        "Healthy, settled by the end: quarter turns of digit images, batch-norm ResNet, batches"
        " of 8, heavy ball 0.9 lr 0.005 (constant) clipped to norm 1: full-data loss 1.64 -> "
        "1.04 (step 100) -> 0.768 (200) -> 0.716 (300) -> 0.703 at step 400, 0.43 of the start;"
        " batches of 64 (same schedule and steps) reach 0.679 (3% lower). Largest gradient norm"
        " 4.43 (step 357) against a median of 0.885 (5.0x).",
    ),
    Case(
        "final12-control-cnn-adamw-batch96-bn-digit-rotations-label-noise-warmup-cosine",
        None,
        "cnn",
        "adamw+warmup-cosine",
        FINAL12,
        cnn_adamw_b96,
        0,
        "Healthy, still falling at the end: quarter turns of digit images (10% random labels), "
        "batch-norm ResNet 16x2, batches of 96, AdamW 3e-3, warmup 30 then a cosine to 0: full-"
        "data loss 1.67 -> 0.735 (step 75) -> 0.461 (150) -> 0.325 (225) -> 0.306 at step 300, "
        "0.18 of the start; batches of 64 (same schedule and steps) reach 0.368 (20% higher). "
        "Largest gradient norm 2.7 (step 166) against a median of 1.45 (1.9x).",
    ),
    Case(
        "final12-control-cnn-sgd-batch4x4-bn-accumulated-digit-rotations",
        None,
        "cnn",
        "sgd",
        FINAL12,
        cnn_sgd_b4x4,
        0,
        "Healthy, still falling at the end: quarter turns of digit images, batch-norm ResNet, "
        "micro-batches of 4 accumulated 4 per update, SGD 0.05 (constant): full-data loss 1.59 "
        "-> 1.06 (step 75) -> 0.81 (150) -> 0.737 (225) -> 0.711 at step 300, 0.45 of the "
        "start; batches of 64 (accumulated 4, same schedule and steps) reach 0.697 (2% lower). "
        "Largest gradient norm 1.57 (step 292) against a median of 0.651 (2.4x).",
    ),
    Case(
        "final12-control-cnn-sgd-batch128-bn-segments-step-lr",
        None,
        "cnn",
        "sgd+step",
        FINAL12,
        cnn_sgd_b128,
        0,
        "Healthy, still falling at the end: the direction of a 4-pixel segment (pixel noise "
        "0.4, 10% random labels), batch-norm ResNet, batches of 128, SGD 0.1 cut to a tenth at "
        "step 187: full-data loss 1.57 -> 1.14 (step 62) -> 0.776 (125) -> 0.546 (187) -> 0.528"
        " at step 250, 0.34 of the start; batches of 64 (same schedule and steps) reach 0.539 "
        "(2% higher). Largest gradient norm 0.799 (step 1) against a median of 0.503 (1.6x).",
    ),
    Case(
        "final12-control-transformer-adamw-batch32-clipped-markov-lm-warmup-cosine",
        None,
        "transformer",
        "adamw+warmup-cosine+clip",
        FINAL12,
        tfm_adamw_b32,
        0,
        "Healthy, settled by the end: next token of a first-order Markov chain over 16 tokens, "
        "2-layer causal transformer, batches of 32, AdamW 3e-3 clipped to norm 1, warmup 30 "
        "then a cosine to 0: full-data loss 2.77 -> 1.33 (step 75) -> 1.19 (150) -> 1.16 (225) "
        "-> 1.16 at step 300, 0.42 of the start; batches of 64 (same schedule and steps) reach "
        "1.14 (1% lower). Largest gradient norm 1.27 (step 2) against a median of 0.625 (2.0x).",
    ),
    Case(
        "final12-control-transformer-adam-batch8-clipped-markov-lm-warmup-cosine",
        None,
        "transformer",
        "adam+warmup-cosine+clip",
        FINAL12,
        tfm_adam_b8,
        0,
        "Healthy, settled by the end: next token of a first-order Markov chain over 12 tokens, "
        "2-layer causal transformer, batches of 8, Adam 1e-3 clipped to norm 1, warmup 40 then "
        "a cosine to 0: full-data loss 2.52 -> 1.09 (step 100) -> 0.844 (200) -> 0.808 (300) ->"
        " 0.801 at step 400, 0.32 of the start; batches of 64 (same schedule and steps) reach "
        "0.769 (4% lower). Largest gradient norm 1.9 (step 50) against a median of 1.05 (1.8x).",
    ),
    Case(
        "final12-control-transformer-sgd-batch4-trigram-denoise",
        None,
        "transformer",
        "sgd",
        FINAL12,
        tfm_sgd_b4,
        0,
        "Healthy, settled by the end: restoring sequences of a second-order Markov chain with "
        "15% of the tokens corrupted, 2-layer transformer, batches of 4, SGD 0.1 (constant): "
        "full-data loss 2.2 -> 0.721 (step 100) -> 0.716 (200) -> 0.687 (300) -> 0.679 at step "
        "400, 0.31 of the start; batches of 64 (same schedule and steps) reach 0.64 (6% lower)."
        " Largest gradient norm 3.67 (step 12) against a median of 1.1 (3.3x).",
    ),
    Case(
        "final12-control-transformer-nesterov-batch64-trigram-denoise-linear-decay",
        None,
        "transformer",
        "momentum(nesterov)+linear",
        FINAL12,
        tfm_nesterov_b64,
        0,
        "Healthy, settled by the end: restoring sequences of a second-order Markov chain with "
        "20% of the tokens corrupted, 2-layer transformer, batches of 64, Nesterov 0.9 lr 0.1 "
        "with a linear decay to 0: full-data loss 2.37 -> 0.883 (step 75) -> 0.864 (150) -> "
        "0.854 (225) -> 0.85 at step 300, 0.36 of the start; full-batch training (same schedule"
        " and steps) reaches 0.843 (1% lower). Largest gradient norm 2.88 (step 5) against a "
        "median of 0.27 (10.7x).",
    ),
    Case(
        "final12-control-transformer-adamw-batch4x4-accumulated-markov-lm",
        None,
        "transformer",
        "adamw",
        FINAL12,
        tfm_adamw_b4x4,
        0,
        "Healthy, settled by the end: next token of a first-order Markov chain over 10 tokens, "
        "1-layer causal transformer, micro-batches of 4 accumulated 4 per update, AdamW 1e-3 "
        "(constant): full-data loss 2.29 -> 1.06 (step 75) -> 0.891 (150) -> 0.85 (225) -> 0.83"
        " at step 300, 0.36 of the start; batches of 64 (accumulated 4, same schedule and "
        "steps) reach 0.798 (4% lower). Largest gradient norm 1.43 (step 173) against a median "
        "of 0.941 (1.5x).",
    ),
    Case(
        "final12-control-rnn-lstm-adam-batch32-clipped-two-sines-forecast-cosine",
        None,
        "rnn",
        "adam+cosine+clip",
        FINAL12,
        rnn_adam_b32,
        0,
        "Healthy, settled by the end: next value of a sum of two sines (noise std 0.2), LSTM, "
        "batches of 32, Adam 1e-2 clipped to norm 1 with a cosine to 0: full-data loss 0.611 ->"
        " 0.14 (step 75) -> 0.135 (150) -> 0.129 (225) -> 0.127 at step 300, 0.21 of the start;"
        " batches of 64 (same schedule and steps) reach 0.121 (4% lower). Largest gradient norm"
        " 0.677 (step 21) against a median of 0.105 (6.4x).",
    ),
    Case(
        "final12-control-rnn-gru-momentum-batch4-two-sines-forecast",
        None,
        "rnn",
        "momentum",
        FINAL12,
        rnn_momentum_b4,
        0,
        "Healthy, settled by the end: next value of a sum of two sines (noise std 0.3), GRU, "
        "batches of 4, heavy ball 0.9 lr 0.02 (constant): full-data loss 0.649 -> 0.238 (step "
        "100) -> 0.237 (200) -> 0.237 (300) -> 0.237 at step 400, 0.37 of the start; batches of"
        " 64 (same schedule and steps) reach 0.235 (1% lower). Largest gradient norm 0.999 "
        "(step 5) against a median of 0.194 (5.2x).",
    ),
    Case(
        "final12-control-rnn-lstm-adamw-batch16-two-sines-forecast-step-lr",
        None,
        "rnn",
        "adamw+step",
        FINAL12,
        rnn_adamw_b16,
        0,
        "Healthy, settled by the end: next value of a sum of two sines (noise std 0.3), LSTM, "
        "batches of 16, AdamW 3e-3 cut to a tenth at step 225: full-data loss 0.646 -> 0.235 "
        "(step 75) -> 0.232 (150) -> 0.232 (225) -> 0.229 at step 300, 0.35 of the start; "
        "batches of 64 (same schedule and steps) reach 0.226 (1% lower). Largest gradient norm "
        "0.636 (step 124) against a median of 0.178 (3.6x).",
    ),
    Case(
        "final12-control-rnn-gru-sgd-batch128-clipped-ar2-processes-linear-decay",
        None,
        "rnn",
        "sgd+linear+clip",
        FINAL12,
        rnn_sgd_b128,
        0,
        "Healthy, still falling at the end: which of four AR(2) processes made a 24-step "
        "sequence, GRU, batches of 128, SGD 3.0 clipped to norm 1 with a linear decay to 0: "
        "full-data loss 1.39 -> 0.957 (step 75) -> 0.415 (150) -> 0.163 (225) -> 0.141 at step "
        "300, 0.10 of the start; batches of 64 (same schedule and steps) reach 0.19 (35% "
        "higher). Largest gradient norm 2.75 (step 79) against a median of 0.228 (12.1x).",
    ),
    Case(
        "final12-control-rnn-gru-adam-batch2-two-sines-forecast-linear-decay",
        None,
        "rnn",
        "adam+linear",
        FINAL12,
        rnn_adam_b2,
        0,
        "Healthy, settled by the end: next value of a sum of two sines (noise std 0.3), GRU, "
        "pairs, Adam 1e-3 with a linear decay to 0: full-data loss 0.625 -> 0.362 (step 100) ->"
        " 0.265 (200) -> 0.251 (300) -> 0.249 at step 400, 0.40 of the start; batches of 64 "
        "(same schedule and steps) reach 0.234 (6% lower). Largest gradient norm 1.16 (step 4) "
        "against a median of 0.342 (3.4x).",
    ),
]
