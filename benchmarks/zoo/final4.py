"""The fifth held-out zoo split (``"final4"``): inexact gradients and small-batch controls.

Written after final3 had been seen, on the same challenge, with new data, models and
optimizer combinations. The inexact-gradients cases train on batches of 1 to 4 where
per-sample gradient noise is planted (random labels) at a moderate learning rate: the
small-batch run's full-data loss stays clearly above what the same model and optimizer reach
on batches of 64 in the same number of steps, with per-sample gradient variance many times
``batch x |mean gradient|^2``. The controls train on clean data with batches of 2 to 8,
where the small batch is fine.

Data: generated Gaussian blobs, bar images, token and vector sequences, each from a fixed
seed of its own, and scikit-learn's bundled wine and breast-cancer tables. Every model is
built inside ``build(seed)`` after ``torch.manual_seed(seed)``. Each builder takes ``batch``
so that the large-batch reference of a hand check is the same run with ``batch=64``. ``why``
gives the numbers of the hand check: plain training, the full-data loss along the way,
per-sample gradients by a loop; never the detectors.
"""

from __future__ import annotations

import torch
from torch import nn

from . import Case
from .final3 import _exp, _flip, _mlp
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer

FINAL4 = "final4"
IG = "inexact-gradients"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def blobs(n: int, d: int, k: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points in ``d`` dimensions around ``k`` Gaussian centres (std ``spread``)."""
    gen = torch.Generator().manual_seed(51000 + seed)
    centres = torch.randn(k, d, generator=gen)
    y = torch.randint(0, k, (n,), generator=gen)
    return centres[y] + spread * torch.randn(n, d, generator=gen), y


def bar_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 images holding one bar (horizontal, vertical, diagonal, anti-diagonal: the
    class) at a random offset, on Gaussian pixel noise of std 0.3."""
    gen = torch.Generator().manual_seed(52000 + seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    off = torch.randint(0, 8, (n,), generator=gen)
    img = 0.3 * torch.randn(n, 1, 8, 8, generator=gen)
    r = torch.arange(8)
    for i in range(n):
        o, c = int(off[i]), int(y[i])
        if c == 0:
            img[i, 0, o, :] += 1.0
        elif c == 1:
            img[i, 0, :, o] += 1.0
        elif c == 2:
            img[i, 0, r, (r + o) % 8] += 1.0
        else:
            img[i, 0, r, (o - r) % 8] += 1.0
    return img, y


def running_max_tokens(
    n: int, length: int, vocab: int, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences; the label at position t is max(x_1..x_t), a fraction ``noise`` of
    the labels replaced by random tokens."""
    gen = torch.Generator().manual_seed(53000 + seed)
    x = torch.randint(0, vocab, (n, length), generator=gen)
    y = torch.cummax(x, dim=1).values
    if noise:
        flip = torch.rand(y.shape, generator=gen) < noise
        y = torch.where(flip, torch.randint(0, vocab, y.shape, generator=gen), y)
    return x, y


def loudest_channel_seq(
    n: int, length: int, channels: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian sequences of ``channels`` channels, one of them (the label) shifted by +0.8."""
    gen = torch.Generator().manual_seed(54000 + seed)
    y = torch.randint(0, channels, (n,), generator=gen)
    x = torch.randn(n, length, channels, generator=gen)
    x[torch.arange(n), :, y] += 0.8
    return x, y


def _table(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled ``wine`` or ``cancer`` table, standardized per feature."""
    from sklearn.datasets import load_breast_cancer, load_wine

    bunch = load_wine() if name == "wine" else load_breast_cancer()
    x = torch.as_tensor(bunch.data, dtype=torch.float32)
    return (x - x.mean(0)) / x.std(0), torch.as_tensor(bunch.target, dtype=torch.long)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class _PoolCNN(nn.Module):
    """conv 3x3 - ReLU - max pool 2 - conv 3x3 - ReLU - max pool 2 - linear head on 2x2."""

    def __init__(self, ch: int, n_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, 2 * ch, 3, padding=1)
        self.head = nn.Linear(2 * ch * 4, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = nn.functional.max_pool2d(torch.relu(self.conv2(h)), 2)
        return self.head(h.flatten(1))


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _blob_mlp(seed, name, opt, batch, lr, steps, noise, act=nn.Tanh):
    x, y = blobs(512, 10, 5, 1.0, 0)
    if noise:
        y = _flip(y, noise, 5, 4)
    torch.manual_seed(seed)
    model = _mlp([10, 32, 32, 5], act)
    return _exp(
        seed,
        name,
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt=opt,
        lr=lr,
        steps=steps,
        description=f"{act.__name__} MLP 10-32-32-5 on 512 Gaussian blobs, {noise:.0%} random "
        f"labels, {opt} batch {batch}",
        config={"family": "mlp", "label_noise": noise},
    )


def _bars_cnn(seed, name, opt, batch, lr, steps, noise):
    x, y = bar_images(384, 0)
    if noise:
        y = _flip(y, noise, 4, 5)
    torch.manual_seed(seed)
    model = _PoolCNN(8, 4)
    return _exp(
        seed,
        name,
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt=opt,
        lr=lr,
        steps=steps,
        description=f"max-pool CNN (8/16 channels) on 384 bar images, {noise:.0%} random "
        f"labels, {opt} batch {batch}",
        config={"family": "cnn", "label_noise": noise},
    )


def _max_tfm(seed, name, opt, batch, lr, steps, noise):
    x, y = running_max_tokens(384, 8, 8, noise, 0)
    torch.manual_seed(seed)
    model = TinyTransformer(8, 8, 24, 2, 1, causal=True)
    return _exp(
        seed,
        name,
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt=opt,
        lr=lr,
        steps=steps,
        description=f"causal 1-layer transformer (d 24) labelling the running max of 8 tokens, "
        f"{noise:.0%} random labels, {opt} batch {batch}",
        config={"family": "transformer", "label_noise": noise},
    )


def _loud_rnn(seed, name, opt, batch, lr, steps, noise, cell="rnn"):
    x, y = loudest_channel_seq(384, 10, 3, 0)
    if noise:
        y = _flip(y, noise, 3, 6)
    torch.manual_seed(seed)
    model = RecurrentNet(cell, 3, 24, 3)
    return _exp(
        seed,
        name,
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt=opt,
        lr=lr,
        steps=steps,
        description=f"{cell} (24) naming the shifted one of 3 channels over 10 steps, "
        f"{noise:.0%} random labels, {opt} batch {batch}",
        config={"family": "rnn", "label_noise": noise, "cell": cell},
    )


def _table_mlp(seed, name, table, opt, batch, lr, steps, noise, hidden=16):
    x, y = _table(table)
    k = int(y.max()) + 1
    if noise:
        y = _flip(y, noise, k, 7)
    torch.manual_seed(seed)
    model = _mlp([x.shape[1], hidden, k])
    return _exp(
        seed,
        name,
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt=opt,
        lr=lr,
        steps=steps,
        description=f"ReLU MLP {x.shape[1]}-{hidden}-{k} on {table}, {noise:.0%} random "
        f"labels, {opt} batch {batch}",
        config={"family": "mlp", "label_noise": noise},
    )


def ig_cnn_momentum_b2(seed, batch=2, lr=0.02, steps=300):
    return _bars_cnn(
        seed,
        "final4-inexact-gradients-cnn-momentum-batch2-bars-label-noise",
        "momentum",
        batch,
        lr,
        steps,
        0.3,
    )


def ig_rnn_adam_b1(seed, batch=1, lr=4e-4, steps=300):
    return _loud_rnn(
        seed,
        "final4-inexact-gradients-rnn-gru-adam-batch1-loudest-channel-label-noise",
        "adam",
        batch,
        lr,
        steps,
        0.25,
        cell="gru",
    )


def ctl_mlp_sgd_b4(seed, batch=4, lr=0.05, steps=300):
    return _blob_mlp(seed, "final4-control-mlp-sgd-batch4-blobs", "sgd", batch, lr, steps, 0.0)


def ctl_tfm_adamw_b4(seed, batch=4, lr=3e-3, steps=300):
    return _max_tfm(
        seed,
        "final4-control-transformer-adamw-batch4-running-max-converged",
        "adamw",
        batch,
        lr,
        steps,
        0.0,
    )


def ctl_mlp_adamw_b2(seed, batch=2, lr=2e-3, steps=300):
    return _table_mlp(
        seed,
        "final4-control-mlp-adamw-batch2-wine-converged",
        "wine",
        "adamw",
        batch,
        lr,
        steps,
        0.0,
    )


def ctl_mlp_momentum_b4(seed, batch=4, lr=0.01, steps=300):
    return _table_mlp(
        seed,
        "final4-control-mlp-momentum-batch4-cancer-converged",
        "cancer",
        "momentum",
        batch,
        lr,
        steps,
        0.0,
    )


def ctl_cnn_adam_b8(seed, batch=8, lr=2e-3, steps=400):
    return _bars_cnn(
        seed, "final4-control-cnn-adam-batch8-bars-converged", "adam", batch, lr, steps, 0.0
    )


CASES: list[Case] = [
    Case(
        "final4-inexact-gradients-cnn-momentum-batch2-bars-label-noise",
        IG,
        "cnn",
        "momentum",
        FINAL4,
        ig_cnn_momentum_b2,
        seed=0,
        why="30% random labels on 384 generated bar images (4 orientations), batches of 2, "
        "heavy ball 0.9 lr 0.02: full-data loss 1.39 -> 1.38 at step 150 -> 1.24 at step 300 "
        "(minibatch loss at most 2.25), while batches of 64 (same lr and steps) reach 0.42 "
        "(2.9x lower); per-sample gradient variance 243 x |mean gradient|^2 at the start, "
        "269 x at the end, against batch 2.",
    ),
    Case(
        "final4-inexact-gradients-rnn-gru-adam-batch1-loudest-channel-label-noise",
        IG,
        "rnn",
        "adam",
        FINAL4,
        ig_rnn_adam_b1,
        seed=0,
        why="GRU naming the shifted one of 3 Gaussian channels, 25% random labels, batch 1, "
        "Adam 4e-4: full-data loss crawls 1.10 -> 1.05 at step 150 -> 0.99 at step 300 "
        "(minibatch loss at most 1.46), while batches of 64 (same lr and steps) reach 0.63 "
        "(1.57x lower); per-sample gradient variance 32 x |mean gradient|^2 at the start, "
        "35 x at the end, against batch 1.",
    ),
    Case(
        "final4-control-mlp-sgd-batch4-blobs",
        None,
        "mlp",
        "sgd",
        FINAL4,
        ctl_mlp_sgd_b4,
        seed=0,
        why="Healthy: clean 5-class Gaussian blobs in 10-D, tanh MLP, batches of 4, SGD lr "
        "0.05: full-data loss 1.68 -> 0.44 (step 75) -> 0.26 (150) -> 0.186 at step 300, "
        "falling at every check; batches of 64 (same lr and steps) reach 0.171 (within 9%).",
    ),
    Case(
        "final4-control-transformer-adamw-batch4-running-max-converged",
        None,
        "transformer",
        "adamw",
        FINAL4,
        ctl_tfm_adamw_b4,
        seed=0,
        why="Healthy, converged: clean running max of 8 tokens (vocab 8), causal 1-layer "
        "transformer, batches of 4, AdamW 3e-3 (wd 1e-2): full-data loss 2.10 -> 0.26 (step "
        "75) -> 0.049 (150) -> 0.010 at step 300, falling at every check; batches of 64 reach "
        "0.004 (both at zero); minibatch loss at most 0.03 in the last fifth.",
    ),
    Case(
        "final4-control-mlp-adamw-batch2-wine-converged",
        None,
        "mlp",
        "adamw",
        FINAL4,
        ctl_mlp_adamw_b2,
        seed=0,
        why="Healthy, converged: clean wine, ReLU MLP 13-16-3, batches of 2, AdamW 2e-3 (wd "
        "1e-2): full-data loss 0.98 -> 0.53 (step 75) -> 0.24 (150) -> 0.082 at step 300, "
        "falling at every check; batches of 64 reach 0.038 (both near zero).",
    ),
    Case(
        "final4-control-mlp-momentum-batch4-cancer-converged",
        None,
        "mlp",
        "momentum",
        FINAL4,
        ctl_mlp_momentum_b4,
        seed=0,
        why="Healthy, converged: clean breast cancer, ReLU MLP 30-16-2, batches of 4, heavy "
        "ball 0.9 lr 0.01: full-data loss 0.64 -> 0.095 (step 75) -> 0.075 (150) -> 0.057 at "
        "step 300, falling at every check; batches of 64 reach 0.053 (within 8%).",
    ),
    Case(
        "final4-control-cnn-adam-batch8-bars-converged",
        None,
        "cnn",
        "adam",
        FINAL4,
        ctl_cnn_adam_b8,
        seed=0,
        why="Healthy, converged: clean bar images, max-pool CNN, batches of 8, Adam 2e-3: "
        "full-data loss 1.39 -> 1.18 (step 100) -> 0.36 (200) -> 0.11 (300) -> 0.046 at step "
        "400, falling at every check; batches of 64 reach 0.006 (both near zero); minibatch "
        "loss at most 0.30 in the last fifth.",
    ),
]
