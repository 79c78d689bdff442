"""The eleventh held-out zoo split (``"final10"``): inexact gradients, and small-batch controls.

Written after final9 had been seen, on the inexact-gradients challenge again, with new data
and tasks. The inexact-gradients cases train on batches of 1 to 8 where the noise of the
small batch holds the run clearly above what the same model, optimizer and schedule reach on
batches of 64 in the same number of steps; the noise comes from random labels, regression
targets with Student-t noise, many classes seen a few samples at a time, a large vocabulary,
a rare class, or a learning rate high for the batch. Several of them end on a noise floor that
looks converged (the full-data loss flat over the last third), some under a schedule that
ends low (a cosine to zero, warmup then a cosine, a step cut to a tenth, a linear decay to
zero). The controls train on clean data with batches of 1 to 16 (one accumulating four
micro-batches), where the small batch is fine: some still falling slowly at a small learning
rate, some trained to convergence under a schedule, two whose minibatch losses stay
heavy-tailed near the end (a rare class, a few faint images).

Data: checkerboards, quadratic teachers, Gaussian prototypes, dot-pair images, keyed token
maps and scalar sequences (a share of positive steps, a bump in one third), each from a fixed
seed of its own (160000 and up), and scikit-learn's bundled digits as images labelled by their
parity. Every model is built inside ``build(seed)`` after ``torch.manual_seed(seed)``. Each
builder takes ``batch`` so that the large-batch reference of a hand check is the same run with
``batch=64``. ``why`` gives the numbers of the hand check: plain training, the full-data loss
along the way (batch norm on the full data's statistics), and for the inexact cases the
per-sample gradients by a loop over samples at the start and at the end (eval mode); never the
detectors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from optiscope import Experiment

from . import Case
from .data import digit_images, flip_labels
from .final2 import _exp, _mlp
from .final5 import _warm
from .final6 import _accumulated, _clipped
from .final7 import _cut, _linear
from .mlp_cnn import _ResNet
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer

FINAL10 = "final10"
IG = "inexact-gradients"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _gen(base: int, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(160000 + base + seed)


def _student(shape: tuple[int, ...], df: int, gen: torch.Generator) -> torch.Tensor:
    """Student-t draws with ``df`` degrees of freedom: a Gaussian over the root of a
    chi-square / df (heavy-tailed for small ``df``)."""
    chi2 = torch.randn(*shape, df, generator=gen).pow(2).sum(-1)
    return torch.randn(*shape, generator=gen) / (chi2 / df).sqrt()


def checkerboard(n: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points uniform in [-1.5, 1.5]^2 labelled by the colour of their cell in a 3x3
    checkerboard, with two Gaussian distractor coordinates (4 inputs), a fraction ``noise`` of
    the labels redrawn at random."""
    gen = _gen(0, seed)
    xy = 3.0 * torch.rand(n, 2, generator=gen) - 1.5
    cell = (xy + 1.5).floor().clamp(0, 2).long()
    y = (cell[:, 0] + cell[:, 1]) % 2
    x = torch.cat([xy, 0.5 * torch.randn(n, 2, generator=gen)], 1)
    return x, flip_labels(y, noise, 2, 160500 + seed) if noise else y


def quadratic_teacher(
    n: int, d: int, noise: float, df: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs and a random quadratic form x^T A x (standardized to variance 1), plus
    Student-t target noise (``df`` degrees of freedom) scaled by ``noise`` (0: clean)."""
    gen = _gen(1000, seed)
    x = torch.randn(n, d, generator=gen)
    a = torch.randn(d, d, generator=gen)
    y = ((x @ (a + a.T)) * x).sum(1, keepdim=True)
    y = (y - y.mean()) / y.std()
    return x, y + noise * _student((n, 1), df, gen)


def prototypes(
    n: int, d: int, k: int, spread: float, shares: tuple[float, ...] | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` random unit-norm-ish prototypes in ``d`` dimensions, each sample its class's
    prototype plus Gaussian noise of std ``spread``; classes uniform, or drawn with ``shares``."""
    gen = _gen(2000, seed)
    protos = torch.randn(k, d, generator=gen)
    if shares is None:
        y = torch.randint(0, k, (n,), generator=gen)
    else:
        y = torch.multinomial(torch.tensor(shares), n, replacement=True, generator=gen)
    return protos[y] + spread * torch.randn(n, d, generator=gen), y


def dot_pairs(n: int, pixel: float, faint: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 images of two bright dots two pixels apart at a random place, their alignment the
    class (0 a row, 1 a column, 2 a diagonal, 3 an antidiagonal), on Gaussian pixel noise of
    std ``pixel``; a fraction ``faint`` of the images have their dots at a third of the
    brightness (hard, but correctly labelled). Every class has the same mean brightness."""
    gen = _gen(3000, seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    step = torch.tensor([[0, 2], [2, 0], [2, 2], [2, -2]])[y]
    r = torch.randint(0, 6, (n,), generator=gen)
    c = torch.randint(0, 6, (n,), generator=gen) + 2 * (y == 3)  # room for the -2 column step
    img = pixel * torch.randn(n, 8, 8, generator=gen)
    bright = torch.where(torch.rand(n, generator=gen) < faint, 1.0 / 3, 1.0)
    rows = torch.arange(n)
    img[rows, r, c] += bright
    img[rows, r + step[:, 0], c + step[:, 1]] += bright
    return img.unsqueeze(1), y


def digit_parity(n: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` of scikit-learn's digits as 1x8x8 images in [0, 1], labelled by the parity of the
    digit (0 even, 1 odd), a fraction ``noise`` of the labels redrawn at random."""
    x, y = digit_images()
    idx = torch.randperm(len(x), generator=_gen(4000, seed))[:n]
    y = y[idx] % 2
    return x[idx], flip_labels(y, noise, 2, 164500 + seed) if noise else y


def keyed_tokens(
    n: int, length: int, vocab: int, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences; the label at every position is one of two fixed random maps of the
    token there, chosen by the parity of the first token (a key read by attention), a fraction
    ``noise`` of the labels replaced by random tokens."""
    gen = _gen(5000, seed)
    maps = torch.randint(0, vocab, (2, vocab), generator=gen)
    x = torch.randint(0, vocab, (n, length), generator=gen)
    y = maps[x[:, :1] % 2, x]
    if noise:
        flip = torch.rand(y.shape, generator=gen) < noise
        y = torch.where(flip, torch.randint(0, vocab, y.shape, generator=gen), y)
    return x, y


def positive_share_seq(
    n: int, length: int, noise: float, df: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences; the target is the share of their positive steps (centred,
    variance 1), plus Student-t noise (``df`` degrees of freedom) scaled by ``noise``."""
    gen = _gen(6000, seed)
    x = torch.randn(n, length, 1, generator=gen)
    y = (x[:, :, 0] > 0).float().mean(1, keepdim=True)
    y = (y - 0.5) / math.sqrt(0.25 / length)
    return x, y + noise * _student((n, 1), df, gen)


def bump_seq(
    n: int, length: int, shares: tuple[float, float, float], noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar sequences of Gaussian noise (std 0.5) with one bump of +2 at a random step of one
    of their three thirds (the class, drawn with ``shares``), a fraction ``noise`` of the
    labels redrawn at random."""
    gen = _gen(7000, seed)
    y = torch.multinomial(torch.tensor(shares), n, replacement=True, generator=gen)
    third = length // 3
    at = y * third + torch.randint(0, third, (n,), generator=gen)
    x = 0.5 * torch.randn(n, length, generator=gen)
    x[torch.arange(n), at] += 2.0
    return x.unsqueeze(-1), flip_labels(y, noise, 3, 167500 + seed) if noise else y


# --------------------------------------------------------------------------------------------
# Inexact gradients
# --------------------------------------------------------------------------------------------


def ig_mlp_sgd_b1(seed: int, batch: int = 1, lr: float = 0.5, steps: int = 500) -> Experiment:
    """A ReLU MLP colouring a 3x3 checkerboard under 25% random labels, plain SGD on single
    samples at a constant rate: it settles on a floor the large batch goes through."""
    x, y = checkerboard(256, 0.25, 0)
    torch.manual_seed(seed)
    model = _mlp([4, 64, 64, 2])
    return _exp(
        seed,
        "final10-inexact-gradients-mlp-sgd-batch1-checkerboard-label-noise-floor",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="ReLU MLP 4-64-64-2 colouring a 3x3 checkerboard (2 distractor inputs), 256 "
        f"points, 25% random labels, SGD lr {lr} batch {batch}",
        config={"family": "mlp", "label_noise": 0.25},
    )


def ig_mlp_momentum_b4(seed: int, batch: int = 4, lr: float = 0.01, steps: int = 400) -> Experiment:
    """A tanh MLP regressing a quadratic teacher whose targets carry Student-t noise (3 degrees
    of freedom: heavy tails), heavy ball on batches of 4 with a linear decay to zero."""
    x, y = quadratic_teacher(256, 6, 0.3, 3, 0)
    torch.manual_seed(seed)
    model = _mlp([6, 64, 64, 1], nn.Tanh)
    exp = _exp(
        seed,
        "final10-inexact-gradients-mlp-momentum-batch4-heavy-tailed-targets-linear-decay",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="tanh MLP 6-64-64-1 regressing a quadratic form of 6 Gaussian inputs, 256 "
        f"points, Student-t (df 3) target noise x0.3, momentum 0.9 lr {lr} batch {batch}, "
        "linear decay to 0",
        config={"family": "mlp", "target_noise": 0.3, "noise_df": 3},
    )
    return _linear(exp)


def ig_mlp_adamw_b8(seed: int, batch: int = 8, lr: float = 1e-2, steps: int = 300) -> Experiment:
    """A ReLU MLP naming which of 48 overlapping Gaussian prototypes a point came from, AdamW
    on batches of 8 at a constant rate: each step sees 8 of the 48 classes."""
    x, y = prototypes(384, 16, 48, 3.0, None, 0)
    torch.manual_seed(seed)
    model = _mlp([16, 128, 48])
    return _exp(
        seed,
        "final10-inexact-gradients-mlp-adamw-batch8-many-overlapping-classes",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="ReLU MLP 16-128-48 naming the prototype (of 48, noise std 3.0) of 384 "
        f"points, AdamW (wd 1e-2) lr {lr} batch {batch}",
        config={"family": "mlp", "classes": 48},
    )


def ig_cnn_sgd_b1(seed: int, batch: int = 1, lr: float = 0.2, steps: int = 400) -> Experiment:
    """A batch-norm ResNet naming the alignment of two dots in noisy images, plain SGD on
    single images at a rate high for one image, cut to a tenth for the last quarter."""
    x, y = dot_pairs(384, 0.5, 0.0, 0)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 4)
    exp = _exp(
        seed,
        "final10-inexact-gradients-cnn-sgd-batch1-bn-dot-pairs-high-lr-step-lr-floor",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the alignment of two dots "
        f"in 384 images under pixel noise of std 0.5, SGD lr {lr} batch {batch}, x0.1 from step "
        f"{3 * steps // 4}",
        config={"family": "cnn", "pixel_noise": 0.5},
    )
    return _cut(exp, 3 * steps // 4)


def ig_cnn_adam_b4(seed: int, batch: int = 4, lr: float = 1e-2, steps: int = 400) -> Experiment:
    """A batch-norm ResNet telling the parity of digit images under 30% random labels, Adam
    on batches of 4 with a cosine decay to zero."""
    x, y = digit_parity(384, 0.3, 0)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 2)
    return _exp(
        seed,
        "final10-inexact-gradients-cnn-adam-batch4-bn-digit-parity-label-noise-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) telling odd from even in 384 digit "
        f"images, 30% random labels, Adam lr {lr} batch {batch}, cosine to 0",
        config={"family": "cnn", "label_noise": 0.3},
        cosine=True,
    )


def ig_tfm_adam_b2(seed: int, batch: int = 2, lr: float = 3e-3, steps: int = 400) -> Experiment:
    """A transformer mapping each token through one of two random maps of a vocabulary of 160
    keyed by the first token, Adam on pairs with a warmup then a cosine to zero: each step sees
    16 of the 320 pairs of key and token."""
    x, y = keyed_tokens(512, 8, 160, 0.0, 0)
    torch.manual_seed(seed)
    model = TinyTransformer(160, 8, 32, 2, 1)
    exp = _exp(
        seed,
        "final10-inexact-gradients-transformer-adam-batch2-large-vocab-keyed-map-warmup-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 32) mapping each of 8 tokens through one of two "
        f"random maps of 160 keyed by the first token's parity, Adam lr {lr} batch {batch}, "
        "warmup 40 then cosine to 0",
        config={"family": "transformer", "vocab": 160},
    )
    return _warm(exp, 40)


def ig_tfm_adamw_b4(seed: int, batch: int = 4, lr: float = 1e-2, steps: int = 400) -> Experiment:
    """A transformer on the keyed map of a vocabulary of 16 under 30% random labels, AdamW on
    batches of 4 at a constant rate high for the batch."""
    x, y = keyed_tokens(256, 8, 16, 0.3, 1)
    torch.manual_seed(seed)
    model = TinyTransformer(16, 8, 32, 2, 1)
    return _exp(
        seed,
        "final10-inexact-gradients-transformer-adamw-batch4-keyed-map-label-noise-floor",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 32) mapping each of 8 tokens through one of two "
        "random maps of 16 keyed by the first token's parity, 30% random labels, AdamW (wd "
        f"1e-2) lr {lr} batch {batch}",
        config={"family": "transformer", "vocab": 16, "label_noise": 0.3},
    )


def ig_rnn_sgd_b1(seed: int, batch: int = 1, lr: float = 1.0, steps: int = 500) -> Experiment:
    """A GRU naming the third of a sequence that holds a bump under 25% random labels, plain
    SGD on single sequences at a constant rate high for one sequence."""
    x, y = bump_seq(256, 12, (1 / 3, 1 / 3, 1 / 3), 0.25, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 24, 3)
    return _exp(
        seed,
        "final10-inexact-gradients-rnn-gru-sgd-batch1-bump-label-noise-high-lr",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="GRU (24) naming which third of 12 noisy steps holds a bump of +2, 256 "
        f"sequences, 25% random labels, SGD lr {lr} batch {batch}",
        config={"family": "rnn", "cell": "gru", "label_noise": 0.25},
    )


def ig_rnn_adam_b2(seed: int, batch: int = 2, lr: float = 1e-2, steps: int = 400) -> Experiment:
    """An LSTM regressing the share of positive steps under Student-t target noise (2 degrees
    of freedom), Adam on pairs, the learning rate cut to a tenth for the last quarter."""
    x, y = positive_share_seq(256, 10, 0.5, 2, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("lstm", 1, 24, 1)
    exp = _exp(
        seed,
        "final10-inexact-gradients-rnn-lstm-adam-batch2-heavy-tailed-targets-step-lr",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="LSTM (24) regressing the share of positive steps of 10 Gaussian steps "
        f"(variance 1), Student-t (df 2) target noise x0.5, Adam lr {lr} batch {batch}, x0.1 "
        f"from step {3 * steps // 4}",
        config={"family": "rnn", "cell": "lstm", "target_noise": 0.5, "noise_df": 2},
    )
    return _cut(exp, 3 * steps // 4)


def ig_rnn_momentum_b8(seed: int, batch: int = 8, lr: float = 0.3, steps: int = 400) -> Experiment:
    """A GRU naming the bump's third when the last third is rare (6%) and 20% of the labels
    are random, heavy ball on batches of 8 at a rate high for the batch."""
    x, y = bump_seq(256, 12, (0.62, 0.32, 0.06), 0.2, 1)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 24, 3)
    return _exp(
        seed,
        "final10-inexact-gradients-rnn-gru-momentum-batch8-bump-imbalance-label-noise-high-lr",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="GRU (24) naming which third of 12 noisy steps holds a bump of +2 (shares "
        f"62/32/6%), 256 sequences, 20% random labels, momentum 0.9 lr {lr} batch {batch}",
        config={"family": "rnn", "cell": "gru", "label_noise": 0.2},
    )


# --------------------------------------------------------------------------------------------
# Healthy controls on small batches
# --------------------------------------------------------------------------------------------


def ctl_mlp_sgd_b1(seed: int, batch: int = 1, lr: float = 0.01, steps: int = 500) -> Experiment:
    """Control: a ReLU MLP naming which of four separated Gaussian prototypes a point came
    from, plain SGD on single samples at a small learning rate: still falling at the end, as
    the large batch is."""
    x, y = prototypes(384, 8, 4, 0.5, None, 2)
    torch.manual_seed(seed)
    model = _mlp([8, 64, 64, 4])
    return _exp(
        seed,
        "final10-control-mlp-sgd-batch1-prototypes-lr-limited",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="ReLU MLP 8-64-64-4 naming the prototype (of 4, noise std 0.5) of 384 "
        f"points, clean, SGD lr {lr} batch {batch}",
        config={"family": "mlp"},
    )


def ctl_mlp_adamw_b16(seed: int, batch: int = 16, lr: float = 3e-3, steps: int = 400) -> Experiment:
    """Control: a ReLU MLP naming which of six Gaussian prototypes a point came from, AdamW
    on batches of 16 with the gradient clipped to norm 1, warmup then a cosine to zero."""
    x, y = prototypes(384, 12, 6, 0.4, None, 3)
    torch.manual_seed(seed)
    model = _mlp([12, 64, 64, 6])
    exp = _exp(
        seed,
        "final10-control-mlp-adamw-batch16-clipped-prototypes-warmup-cosine-converged",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="ReLU MLP 12-64-64-6 naming the prototype (of 6, noise std 0.4) of 384 "
        f"points, clean, AdamW (wd 1e-2) lr {lr} batch {batch}, gradient norm clipped to 1, "
        "warmup 40 then cosine to 0",
        config={"family": "mlp"},
    )
    return _clipped(_warm(exp, 40), 1.0)


def ctl_mlp_momentum_b4(
    seed: int, batch: int = 4, lr: float = 0.02, steps: int = 400
) -> Experiment:
    """Control: a ReLU MLP on three Gaussian prototypes, one rare (5%), clean labels, heavy
    ball on batches of 4, the learning rate cut to a tenth for the last quarter."""
    x, y = prototypes(384, 8, 3, 0.6, (0.6, 0.35, 0.05), 1)
    torch.manual_seed(seed)
    model = _mlp([8, 32, 32, 3])
    exp = _exp(
        seed,
        "final10-control-mlp-momentum-batch4-rare-class-step-lr-converged",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="ReLU MLP 8-32-32-3 naming the prototype (of 3, shares 60/35/5%, noise std "
        f"0.6) of 384 points, clean, momentum 0.9 lr {lr} batch {batch}, x0.1 from step "
        f"{3 * steps // 4}",
        config={"family": "mlp", "shares": [0.6, 0.35, 0.05]},
    )
    return _cut(exp, 3 * steps // 4)


def ctl_cnn_momentum_b16(
    seed: int, batch: int = 16, lr: float = 0.05, steps: int = 400
) -> Experiment:
    """Control: a batch-norm ResNet naming the alignment of two dots, 8% of the images faint
    (hard, correctly labelled), heavy ball on batches of 16 with a cosine decay to zero."""
    x, y = dot_pairs(384, 0.1, 0.08, 1)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 4)
    return _exp(
        seed,
        "final10-control-cnn-momentum-batch16-bn-dot-pairs-faint-cosine-converged",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the alignment of two dots "
        f"in 384 images (pixel noise 0.1, 8% faint), clean, momentum 0.9 lr {lr} batch {batch}, "
        "cosine to 0",
        config={"family": "cnn", "pixel_noise": 0.1, "faint": 0.08},
        cosine=True,
    )


def ctl_cnn_sgd_b2(seed: int, batch: int = 2, lr: float = 0.003, steps: int = 500) -> Experiment:
    """Control: a batch-norm ResNet telling the parity of clean digit images, plain SGD on
    pairs at a small learning rate."""
    x, y = digit_parity(384, 0.0, 1)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 2)
    return _exp(
        seed,
        "final10-control-cnn-sgd-batch2-bn-digit-parity-lr-limited",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) telling odd from even in 384 clean "
        f"digit images, SGD lr {lr} batch {batch}",
        config={"family": "cnn"},
    )


def ctl_cnn_adamw_b16(seed: int, batch: int = 16, lr: float = 3e-4, steps: int = 300) -> Experiment:
    """Control: a batch-norm ResNet naming the alignment of two clean dots, AdamW on batches
    of 16 at a small constant learning rate."""
    x, y = dot_pairs(384, 0.1, 0.0, 2)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 4)
    return _exp(
        seed,
        "final10-control-cnn-adamw-batch16-bn-dot-pairs-lr-limited",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the alignment of two dots "
        f"in 384 images (pixel noise 0.1), clean, AdamW (wd 1e-2) lr {lr} batch {batch}",
        config={"family": "cnn", "pixel_noise": 0.1},
    )


def ctl_tfm_adam_b8(seed: int, batch: int = 8, lr: float = 3e-3, steps: int = 400) -> Experiment:
    """Control: a transformer on the clean keyed map of a vocabulary of 12, Adam on batches of
    8 with a cosine decay to zero."""
    x, y = keyed_tokens(384, 8, 12, 0.0, 2)
    torch.manual_seed(seed)
    model = TinyTransformer(12, 8, 32, 2, 1)
    return _exp(
        seed,
        "final10-control-transformer-adam-batch8-keyed-map-cosine-converged",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 32) mapping each of 8 tokens through one of two "
        f"random maps of 12 keyed by the first token's parity, clean, Adam lr {lr} batch "
        f"{batch}, cosine to 0",
        config={"family": "transformer", "vocab": 12},
        cosine=True,
    )


def ctl_tfm_sgd_b4(seed: int, batch: int = 4, lr: float = 0.1, steps: int = 400) -> Experiment:
    """Control: a transformer on the clean keyed map of a vocabulary of 8, plain SGD on
    batches of 4 at a small learning rate."""
    x, y = keyed_tokens(384, 8, 8, 0.0, 3)
    torch.manual_seed(seed)
    model = TinyTransformer(8, 8, 32, 2, 1)
    return _exp(
        seed,
        "final10-control-transformer-sgd-batch4-keyed-map-lr-limited",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 32) mapping each of 8 tokens through one of two "
        f"random maps of 8 keyed by the first token's parity, clean, SGD lr {lr} batch {batch}",
        config={"family": "transformer", "vocab": 8},
    )


def ctl_rnn_adam_b4x4(seed: int, batch: int = 4, lr: float = 1e-3, steps: int = 300) -> Experiment:
    """Control: a GRU regressing the clean share of positive steps, Adam at a small rate on
    micro-batches of 4 accumulated 4 per update (updates on 16)."""
    x, y = positive_share_seq(384, 10, 0.0, 2, 1)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 24, 1)
    exp = _exp(
        seed,
        "final10-control-rnn-gru-adam-batch4x4-accumulated-positive-share-lr-limited",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="GRU (24) regressing the share of positive steps of 10 Gaussian steps "
        f"(variance 1), clean, Adam lr {lr} on micro-batches of {batch} accumulated 4 per update",
        config={"family": "rnn", "cell": "gru"},
    )
    return _accumulated(exp, 4)


def ctl_rnn_momentum_b16(
    seed: int, batch: int = 16, lr: float = 0.1, steps: int = 400
) -> Experiment:
    """Control: an LSTM naming the bump's third when the last third is rare (5%), clean labels,
    heavy ball on batches of 16 with the gradient clipped to norm 1 and a linear decay to zero."""
    x, y = bump_seq(384, 12, (0.6, 0.35, 0.05), 0.0, 2)
    torch.manual_seed(seed)
    model = RecurrentNet("lstm", 1, 24, 3)
    exp = _exp(
        seed,
        "final10-control-rnn-lstm-momentum-batch16-clipped-bump-rare-class-linear-decay-converged",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="LSTM (24) naming which third of 12 noisy steps holds a bump of +2 (shares "
        f"60/35/5%), clean, momentum 0.9 lr {lr} batch {batch}, gradient norm clipped to 1, "
        "linear decay to 0",
        config={"family": "rnn", "cell": "lstm", "shares": [0.6, 0.35, 0.05]},
    )
    return _clipped(_linear(exp), 1.0)


CASES: list[Case] = [
    # ---- inexact gradients
    Case(
        "final10-inexact-gradients-mlp-sgd-batch1-checkerboard-label-noise-floor",
        IG,
        "mlp",
        "sgd",
        FINAL10,
        ig_mlp_sgd_b1,
        0,
        "A 3x3 checkerboard with 25% of the labels redrawn, single samples, plain SGD lr 0.5 "
        "(constant): full-data loss 0.682 -> 0.722 (step 125) -> 0.695 (333) -> 0.719 (375) -> "
        "0.694 at step 500, flat at chance (ln 2) over the last third, while batches of 64 "
        "(same lr and steps) reach 0.231 (3.0x lower; 0.374 by step 333); per-sample gradient "
        "variance 274 x |mean gradient|^2 at the start, 38 x at the end, against batch 1.",
    ),
    Case(
        "final10-inexact-gradients-mlp-momentum-batch4-heavy-tailed-targets-linear-decay",
        IG,
        "mlp",
        "momentum+linear",
        FINAL10,
        ig_mlp_momentum_b4,
        0,
        "A quadratic teacher (variance 1) under Student-t (df 3) target noise x0.3, batches of "
        "4, heavy ball 0.9 lr 0.01 with a linear decay to 0: full-data loss 1.42 -> 1.60 (step "
        "100) -> 1.43 (200) -> 1.30 (300) -> 1.23 at step 400, while batches of 64 (same "
        "schedule and steps) reach 0.230 (5.4x lower; 0.270 by step 200). The run's own "
        "minibatch losses: median 0.97 over the last fifth, max 7.1; per-sample gradient "
        "variance 347 x |mean gradient|^2 at the start, 556 x at the end, against batch 4.",
    ),
    Case(
        "final10-inexact-gradients-mlp-adamw-batch8-many-overlapping-classes",
        IG,
        "mlp",
        "adamw",
        FINAL10,
        ig_mlp_adamw_b8,
        0,
        "48 Gaussian prototypes in 16-D under noise of std 3 (8 samples a class), batches of 8, "
        "AdamW 1e-2 (constant): full-data loss 4.09 -> 1.46 (step 100) -> 0.627 (200) -> 0.250 "
        "at step 300, while batches of 64 (same lr and steps) reach 0.0055 (45x lower; 0.042 "
        "by step 100); per-sample gradient variance 175 x |mean gradient|^2 at the start, "
        "138 x at the end, against batch 8.",
    ),
    Case(
        "final10-inexact-gradients-cnn-sgd-batch1-bn-dot-pairs-high-lr-step-lr-floor",
        IG,
        "cnn",
        "sgd+step",
        FINAL10,
        ig_cnn_sgd_b1,
        0,
        "The alignment of two dots in 384 images under pixel noise 0.5, clean labels, batch-norm "
        "ResNet, single images, plain SGD lr 0.2 cut to 0.02 at step 300: full-data loss (batch "
        "norm on the full data's statistics) 1.67 -> 1.41 (step 100) -> 1.42 (200) -> 1.39 "
        "(266) -> 1.45 (300) -> 1.39 at step 400, flat at chance (ln 4) over the last third, "
        "while batches of 64 (same schedule and steps) reach 0.469 (3.0x lower; 0.77 by step "
        "266); per-sample gradient variance (eval mode) 22 x |mean gradient|^2 at the start, "
        "175 x at the end, against batch 1.",
    ),
    Case(
        "final10-inexact-gradients-cnn-adam-batch4-bn-digit-parity-label-noise-cosine",
        IG,
        "cnn",
        "adam+cosine",
        FINAL10,
        ig_cnn_adam_b4,
        0,
        "Odd against even in 384 digit images with 30% of the labels redrawn (15% changed), "
        "batch-norm ResNet, batches of 4, Adam 1e-2 with a cosine to 0: full-data loss 0.704 "
        "-> 0.582 (step 100) -> 0.521 (200) -> 0.471 (300) -> 0.464 at step 400, while batches "
        "of 64 (same schedule and steps) reach 0.036 (13x lower; 0.092 by step 200); "
        "per-sample gradient variance (eval mode) 20 x |mean gradient|^2 at the start, 369 x "
        "at the end, against batch 4.",
    ),
    Case(
        "final10-inexact-gradients-transformer-adam-batch2-large-vocab-keyed-map-warmup-cosine",
        IG,
        "transformer",
        "adam+warmup-cosine",
        FINAL10,
        ig_tfm_adam_b2,
        0,
        "Each of 8 tokens mapped by one of two random maps of a vocabulary of 160 keyed by the "
        "first token, clean, pairs (16 of the 320 key-token pairs a step), Adam 3e-3, warmup 40 "
        "then a cosine to 0: full-data loss 5.17 -> 4.66 (step 100) -> 3.83 (200) -> 3.18 (300) "
        "-> 3.05 at step 400, while batches of 64 (same schedule and steps) reach 0.446 (6.8x "
        "lower; 1.64 by step 100); per-sample gradient variance 37 x |mean gradient|^2 at the "
        "start, 80 x at the end, against batch 2.",
    ),
    Case(
        "final10-inexact-gradients-transformer-adamw-batch4-keyed-map-label-noise-floor",
        IG,
        "transformer",
        "adamw",
        FINAL10,
        ig_tfm_adamw_b4,
        0,
        "The keyed map of a vocabulary of 16 with 30% of the labels redrawn, batches of 4, "
        "AdamW 1e-2 (wd 1e-2, constant, high for the batch): full-data loss 2.76 -> 2.15 (step "
        "100) -> 1.78 (200) -> 1.69 (266) -> 1.63 (300) -> 1.65 at step 400, flat over the last "
        "third, while batches of 64 (same lr and steps) reach 0.0088 (190x lower: they fit the "
        "random labels; 0.33 by step 200). The run's own minibatch losses: median 1.74 over the "
        "last fifth, max 2.4; per-sample gradient variance 24 x |mean gradient|^2 at the start, "
        "51 x at the end, against batch 4.",
    ),
    Case(
        "final10-inexact-gradients-rnn-gru-sgd-batch1-bump-label-noise-high-lr",
        IG,
        "rnn",
        "sgd",
        FINAL10,
        ig_rnn_sgd_b1,
        0,
        "Which third of 12 noisy steps holds a bump, 25% of the labels redrawn, GRU, single "
        "sequences, plain SGD lr 1.0 (constant, high for one sequence): full-data loss 1.12 -> "
        "1.15 (step 125) -> 1.19 (250) -> 1.47 (333) -> 1.07 at step 500, while batches of 64 "
        "(same lr and steps) reach 0.248 (4.3x lower; 0.567 by step 250); per-sample gradient "
        "variance 60 x |mean gradient|^2 at the start, 53 x at the end, against batch 1.",
    ),
    Case(
        "final10-inexact-gradients-rnn-lstm-adam-batch2-heavy-tailed-targets-step-lr",
        IG,
        "rnn",
        "adam+step",
        FINAL10,
        ig_rnn_adam_b2,
        0,
        "The share of positive steps (variance 1) under Student-t (df 2) target noise x0.5, "
        "LSTM, pairs, Adam 1e-2 cut to 1e-3 at step 300: full-data loss 2.02 -> 1.53 (step 100) "
        "-> 1.63 (200) -> 1.48 (300) -> 1.44 at step 400, while batches of 64 (same schedule "
        "and steps) reach 0.266 (5.4x lower; 0.90 by step 200). The run's own minibatch losses "
        "look fine: median 0.51 over the last fifth, max 28 (a far outlier target); per-sample "
        "gradient variance 162 x |mean gradient|^2 at the start, 942 x at the end, against "
        "batch 2.",
    ),
    Case(
        "final10-inexact-gradients-rnn-gru-momentum-batch8-bump-imbalance-label-noise-high-lr",
        IG,
        "rnn",
        "momentum",
        FINAL10,
        ig_rnn_momentum_b8,
        0,
        "Which third of 12 noisy steps holds a bump, shares 62/32/6%, 20% of the labels "
        "redrawn, GRU, batches of 8, heavy ball 0.9 lr 0.3 (constant, high for the batch): "
        "full-data loss 1.10 -> 1.08 (step 100) -> 0.870 (200) -> 1.18 (300) -> 1.05 at step "
        "400, while batches of 64 (same lr and steps) reach 0.244 (4.3x lower; 0.544 by step "
        "200); per-sample gradient variance 8.7 x |mean gradient|^2 at the start, 16 x at the "
        "end, against batch 8.",
    ),
    # ---- healthy controls on small batches
    Case(
        "final10-control-mlp-sgd-batch1-prototypes-lr-limited",
        None,
        "mlp",
        "sgd",
        FINAL10,
        ctl_mlp_sgd_b1,
        0,
        "Healthy, lr-limited: 4 separated Gaussian prototypes in 8-D (noise std 0.5), clean, "
        "single samples, plain SGD lr 0.01: full-data loss 1.34 -> 0.861 (step 125) -> 0.449 "
        "(250) -> 0.194 (375) -> 0.102 at step 500, still falling; batches of 64 (same lr and "
        "steps) follow the same path: 0.842, 0.422, 0.188, 0.097 (within 7% at every check, "
        "5% at the end).",
    ),
    Case(
        "final10-control-mlp-adamw-batch16-clipped-prototypes-warmup-cosine-converged",
        None,
        "mlp",
        "adamw+warmup-cosine+clip",
        FINAL10,
        ctl_mlp_adamw_b16,
        0,
        "Healthy, converged: 6 Gaussian prototypes in 12-D (noise std 0.4), clean, batches of "
        "16, AdamW 3e-3 (wd 1e-2), clipped to norm 1, warmup 40 then a cosine to 0: full-data "
        "loss 1.84 -> 0.0023 (step 100) -> 0.0011 (200) -> 0.00083 (300) -> 0.00080 at step "
        "400; batches of 64 reach 0.00050 (both at zero).",
    ),
    Case(
        "final10-control-mlp-momentum-batch4-rare-class-step-lr-converged",
        None,
        "mlp",
        "momentum+step",
        FINAL10,
        ctl_mlp_momentum_b4,
        0,
        "Healthy, converged: 3 Gaussian prototypes in 8-D, shares 60/35/5% (noise std 0.6), "
        "clean, batches of 4, heavy ball 0.9 lr 0.02 cut to 0.002 at step 300: full-data loss "
        "1.01 -> 0.049 (step 100) -> 0.024 (200) -> 0.0079 (300) -> 0.0070 at step 400; batches "
        "of 64 (same schedule and steps) reach 0.0067 (within 5%). Near the end the minibatch "
        "losses are heavy-tailed: median 0.00019 over the last fifth, max 0.15 (a point near a "
        "boundary).",
    ),
    Case(
        "final10-control-cnn-momentum-batch16-bn-dot-pairs-faint-cosine-converged",
        None,
        "cnn",
        "momentum+cosine",
        FINAL10,
        ctl_cnn_momentum_b16,
        0,
        "Healthy, converged: the alignment of two dots in 384 images (pixel noise 0.1, 8% at a "
        "third of the brightness), clean, batch-norm ResNet, batches of 16, heavy ball 0.9 lr "
        "0.05 with a cosine to 0: full-data loss (batch norm on the full data's statistics) "
        "1.54 -> 0.137 (step 100) -> 0.065 (200) -> 0.035 (300) -> 0.030 at step 400 (2% of the "
        "start); batches of 64 reach 0.011 (both near zero).",
    ),
    Case(
        "final10-control-cnn-sgd-batch2-bn-digit-parity-lr-limited",
        None,
        "cnn",
        "sgd",
        FINAL10,
        ctl_cnn_sgd_b2,
        0,
        "Healthy, lr-limited: odd against even in 384 clean digit images, batch-norm ResNet, "
        "pairs, plain SGD lr 0.003: full-data loss 0.713 -> 0.704 (step 125) -> 0.696 (250) -> "
        "0.689 (375) -> 0.682 at step 500, still falling slowly; batches of 64 (same lr and "
        "steps) 0.699, 0.687, 0.676, 0.663 (within 3% at the end).",
    ),
    Case(
        "final10-control-cnn-adamw-batch16-bn-dot-pairs-lr-limited",
        None,
        "cnn",
        "adamw",
        FINAL10,
        ctl_cnn_adamw_b16,
        0,
        "Healthy, lr-limited: the alignment of two clean dots in 384 images (pixel noise 0.1), "
        "batch-norm ResNet, batches of 16, AdamW 3e-4 (wd 1e-2): full-data loss 1.58 -> 1.38 "
        "(step 100) -> 1.18 (200) -> 1.03 at step 300, still falling; batches of 64 (same lr "
        "and steps) 1.32, 1.08, 0.933 (within 11% at the end).",
    ),
    Case(
        "final10-control-transformer-adam-batch8-keyed-map-cosine-converged",
        None,
        "transformer",
        "adam+cosine",
        FINAL10,
        ctl_tfm_adam_b8,
        0,
        "Healthy, converged: the keyed map of a vocabulary of 12, clean, batches of 8, Adam "
        "3e-3 with a cosine to 0: full-data loss 2.56 -> 0.308 (step 100) -> 0.029 (200) -> "
        "0.017 (300) -> 0.016 at step 400 (0.6% of the start); batches of 64 reach 0.0063 "
        "(both near zero).",
    ),
    Case(
        "final10-control-transformer-sgd-batch4-keyed-map-lr-limited",
        None,
        "transformer",
        "sgd",
        FINAL10,
        ctl_tfm_sgd_b4,
        0,
        "Healthy, lr-limited: the keyed map of a vocabulary of 8, clean, batches of 4, plain "
        "SGD lr 0.1: full-data loss 2.02 -> 0.282 (step 100) -> 0.019 (200) -> 0.0090 (300) -> "
        "0.0058 at step 400, still falling; batches of 64 (same lr and steps) 0.067, 0.015, "
        "0.0078, 0.0052 (within 12% at the end).",
    ),
    Case(
        "final10-control-rnn-gru-adam-batch4x4-accumulated-positive-share-lr-limited",
        None,
        "rnn",
        "adam",
        FINAL10,
        ctl_rnn_adam_b4x4,
        0,
        "Healthy, lr-limited: the share of positive steps (variance 1), clean, GRU, Adam 1e-3 on "
        "micro-batches of 4 accumulated 4 per update: full-data loss 0.849 -> 0.350 (step 100) "
        "-> 0.327 (200) -> 0.324 at step 300, still falling slowly; batches of 64 (accumulated "
        "4 the same way, same lr and steps) 0.328, 0.319, 0.311 (within 4% at the end).",
    ),
    Case(
        "final10-control-rnn-lstm-momentum-batch16-clipped-bump-rare-class-linear-decay-converged",
        None,
        "rnn",
        "momentum+linear+clip",
        FINAL10,
        ctl_rnn_momentum_b16,
        0,
        "Healthy, converged: which third of 12 noisy steps holds a bump, shares 60/35/5%, clean, "
        "LSTM, batches of 16, heavy ball 0.9 lr 0.1 clipped to norm 1 with a linear decay to 0: "
        "full-data loss 1.12 -> 0.785 (step 100) -> 0.648 (200) -> 0.119 (300) -> 0.088 at step "
        "400; batches of 64 (same schedule and steps) reach 0.065. Near the end the minibatch "
        "losses are heavy-tailed: median 0.064 over the last fifth, max 0.31 (the rare class).",
    ),
]
