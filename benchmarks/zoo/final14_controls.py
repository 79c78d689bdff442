"""The fifteenth held-out zoo split (``"final14"``), its healthy controls: the runs people train.

Written after final13 had been seen, by an engineer who read no detector, monitor or runner
code and ran none: healthy runs on new data (scikit-learn's wine and iris tables, flat digits,
a soft XOR, plane waves with noisy targets, noisy moons, texture grain and its direction, patch
polarity, running-maximum, first- and smallest-token tasks, a Markov-chain language, sequence
reversal), every generator seeded from 285000 up. Fourteen runs were checked by hand in the
time the split had; the five recurrent controls, a CNN regression and a momentum transformer
were written but not checked, and are left out of ``CASES``.

How each was checked (plain training with one thread, never the detectors; the numbers are in
each ``why``): the full-data loss at 21 points of the run, its largest rise over its running
minimum, the largest gradient norm against its median, the top Hessian eigenvalue at five
points times the learning rate then in force, the largest over the smallest per-layer
gradient norm at the start, the middle and the end, the same run at batch 64 (and on the full
data for some), and the end loss at seeds +1 to +3.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from optiscope import Experiment

from . import Case
from .data import flip_labels
from .final2 import _mlp
from .final5 import _warm
from .final6 import _accumulated, _clipped, _dropout_mlp, _stepped
from .final7 import _linear
from .final12 import _exp
from .mlp_cnn import _ResNet
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer

FINAL14 = "final14"

# --------------------------------------------------------------------------------------------
# Data (every generator seeded from 285000 up; scikit-learn's tables as they ship)
# --------------------------------------------------------------------------------------------


def _gen(base: int) -> torch.Generator:
    assert 285000 <= base < 290000
    return torch.Generator().manual_seed(base)


def _standard(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / x.std(0)


def wine(noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled wine table (178 wines, 13 chemical measurements, standardized),
    named by their cultivar, a fraction ``noise`` of the labels redrawn at random."""
    from sklearn.datasets import load_wine

    bunch = load_wine()
    x = _standard(torch.as_tensor(bunch.data, dtype=torch.float32))
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    return x, flip_labels(y, noise, 3, 285001) if noise else y


def iris() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled iris table (150 flowers, 4 measurements, standardized), named by
    their species."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    x = _standard(torch.as_tensor(bunch.data, dtype=torch.float32))
    return x, torch.as_tensor(bunch.target, dtype=torch.long)


def moons(n: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half-moons in the plane (the moon is the class) under Gaussian noise of
    std ``noise`` (they overlap), centred."""
    gen = _gen(285100)
    y = torch.randint(0, 2, (n,), generator=gen)
    a = math.pi * torch.rand(n, generator=gen)
    x = torch.stack([a.cos(), a.sin()], 1)
    x = torch.where(y[:, None] == 1, torch.stack([1 - a.cos(), 0.5 - a.sin()], 1), x)
    x = x + noise * torch.randn(n, 2, generator=gen)
    return x - torch.tensor([0.5, 0.25]), y


def soft_xor(n: int, dim: int, sharp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian points in ``dim`` dimensions labelled 1 with probability sigmoid(``sharp`` x1
    x2), else 0: a noisy XOR of the first two inputs (the rest are distractors)."""
    gen = _gen(285150)
    x = torch.randn(n, dim, generator=gen)
    p = torch.sigmoid(sharp * x[:, 0] * x[:, 1])
    return x, (torch.rand(n, generator=gen) < p).long()


def plane_waves(n: int, dim: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression on two plane waves, sin(u.x) + 0.5 cos(v.x) for random directions u, v of
    norm 1.5 over Gaussian inputs, standardized, plus Gaussian noise of std ``noise``."""
    gen = _gen(285200)
    u = torch.randn(dim, generator=gen)
    v = torch.randn(dim, generator=gen)
    u, v = 1.5 * u / u.norm(), 1.5 * v / v.norm()
    x = torch.randn(n, dim, generator=gen)
    y = torch.sin(x @ u) + 0.5 * torch.cos(x @ v)
    y = (y - y.mean()) / y.std()
    return x, (y + noise * torch.randn(n, generator=gen)).unsqueeze(1)


def _token_noise(y: torch.Tensor, noise: float, vocab: int, gen: torch.Generator) -> torch.Tensor:
    hit = torch.rand(y.shape, generator=gen) < noise
    return torch.where(hit, torch.randint(0, vocab, y.shape, generator=gen), y)


def running_max(n: int, length: int, vocab: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random tokens; the label at position t is the largest token up to t (causal), a
    fraction ``noise`` of the labels redrawn at random."""
    gen = _gen(286000)
    x = torch.randint(0, vocab, (n, length), generator=gen)
    return x, _token_noise(x.cummax(1).values, noise, vocab, gen)


def first_token(n: int, length: int, vocab: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random tokens; the label at every position is the sequence's first token (a
    causal model must attend back to the start), a fraction ``noise`` redrawn at random."""
    gen = _gen(286100)
    x = torch.randint(0, vocab, (n, length), generator=gen)
    return x, _token_noise(x[:, :1].expand(n, length), noise, vocab, gen)


def smallest_token(
    n: int, length: int, vocab: int, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random token sequences named by their smallest token, a fraction ``noise`` of
    the labels redrawn at random."""
    gen = _gen(286200)
    x = torch.randint(0, vocab, (n, length), generator=gen)
    return x, _token_noise(x.min(1).values, noise, vocab, gen)


def bigram_text(n: int, length: int, vocab: int, branch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token prediction on one first-order Markov chain (each token has ``branch``
    successors at random probabilities): inputs all tokens but the last, labels the next token
    at every position. Also returns nothing else: the floor is the chain's entropy rate."""
    gen = _gen(286300)
    probs = torch.zeros(vocab, vocab)
    for a in range(vocab):
        nxt = torch.randperm(vocab, generator=gen)[:branch]
        probs[a, nxt] = torch.rand(branch, generator=gen) + 0.2
    probs = probs / probs.sum(-1, keepdim=True)
    seq = torch.zeros(n, length + 1, dtype=torch.long)
    seq[:, 0] = torch.randint(0, vocab, (n,), generator=gen)
    for t in range(1, length + 1):
        seq[:, t] = torch.multinomial(probs[seq[:, t - 1]], 1, generator=gen)[:, 0]
    return seq[:, :-1], seq[:, 1:]


def mirrored(n: int, length: int, vocab: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random tokens; the label at position t is the token at the mirror position
    ``length - 1 - t`` (the sequence reversed: a bidirectional model must attend by position),
    a fraction ``noise`` redrawn at random."""
    gen = _gen(286400)
    x = torch.randint(0, vocab, (n, length), generator=gen)
    return x, _token_noise(x.flip(1), noise, vocab, gen)


def smoothed(n: int, length: int, alpha: float, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian input sequences; the target at every step is twice their exponential moving
    average s_t = alpha s_(t-1) + (1 - alpha) x_t, plus Gaussian noise of std ``noise``."""
    gen = _gen(287000)
    x = torch.randn(n, length, generator=gen)
    s = torch.zeros(n)
    out = []
    for t in range(length):
        s = alpha * s + (1 - alpha) * x[:, t]
        out.append(2 * s)
    y = torch.stack(out, 1) + noise * torch.randn(n, length, generator=gen)
    return x.unsqueeze(-1), y.unsqueeze(-1)


def running_sum(n: int, length: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian input sequences; the target at every step t is the sum of the inputs so far
    over sqrt(t + 1) (unit variance), plus Gaussian noise of std ``noise``."""
    gen = _gen(287100)
    x = torch.randn(n, length, generator=gen)
    y = x.cumsum(1) / torch.arange(1, length + 1).sqrt()
    y = y + noise * torch.randn(n, length, generator=gen)
    return x.unsqueeze(-1), y.unsqueeze(-1)


def bit_changes(n: int, length: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Random bit sequences; the label at every step is whether the bit differs from the one
    before (the XOR of the two; the first bit against 0), a fraction ``noise`` flipped."""
    gen = _gen(287200)
    b = torch.randint(0, 2, (n, length), generator=gen)
    prev = torch.cat([torch.zeros(n, 1, dtype=torch.long), b[:, :-1]], 1)
    y = b ^ prev
    y = torch.where(torch.rand(y.shape, generator=gen) < noise, 1 - y, y)
    return b.float().unsqueeze(-1), y


def waveforms(n: int, length: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy periodic signals named by their shape: a sine, a square, a triangle or a sawtooth
    wave (the class) of period 6 to 12 steps at a random phase and unit amplitude, under
    Gaussian noise of std ``noise``."""
    gen = _gen(287300)
    y = torch.randint(0, 4, (n,), generator=gen)
    period = 6 + 6 * torch.rand(n, 1, generator=gen)
    phase = torch.rand(n, 1, generator=gen)
    u = (torch.arange(length).float() / period + phase) % 1.0  # position in the cycle
    waves = torch.stack(
        [torch.sin(2 * math.pi * u), torch.sign(0.5 - u), 4 * (u - 0.5).abs() - 1, 2 * u - 1]
    )
    x = waves[y, torch.arange(n)] + noise * torch.randn(n, length, generator=gen)
    return x.unsqueeze(-1), y


def frequencies(n: int, length: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy sine waves of a random frequency (0.04 to 0.25 cycles a step) and phase, under
    Gaussian noise of std ``noise``; the target is the frequency, standardized (regression)."""
    gen = _gen(287400)
    f = 0.04 + 0.21 * torch.rand(n, 1, generator=gen)
    phase = 2 * math.pi * torch.rand(n, 1, generator=gen)
    x = torch.sin(2 * math.pi * f * torch.arange(length).float() + phase)
    x = x + noise * torch.randn(n, length, generator=gen)
    return x.unsqueeze(-1), (f - f.mean()) / f.std()


# --------------------------------------------------------------------------------------------
# MLPs
# --------------------------------------------------------------------------------------------


def mlp_sgd_b8(seed: int, batch: int = 8, lr: float = 0.05, steps: int = 600) -> Experiment:
    """A small ReLU MLP naming the cultivar of a wine, plain SGD with weight decay on batches
    of 8 at a constant rate."""
    x, y = wine(0.0)
    torch.manual_seed(seed)
    model = _mlp([13, 16, 3])
    return _exp(
        seed,
        "final14-control-mlp-sgd-batch8-wine-weight-decay",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="ReLU MLP 13-16-3 naming the cultivar of scikit-learn's wine table (178 "
        f"wines, 13 standardized measurements), SGD lr {lr} (wd 5e-3) batch {batch}",
        config={"family": "mlp", "table": "wine"},
        wd=5e-3,
    )


def mlp_adam_b64(seed: int, batch: int = 64, lr: float = 3e-3, steps: int = 300) -> Experiment:
    """A ReLU MLP on a noisy XOR of two of four inputs, Adam on batches of 64 with a cosine to
    zero."""
    x, y = soft_xor(4096, 4, 3.0)
    torch.manual_seed(seed)
    model = _mlp([4, 32, 32, 2])
    return _exp(
        seed,
        "final14-control-mlp-adam-batch64-soft-xor-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="ReLU MLP 4-32-32-2 on 4096 Gaussian points in 4-d labelled 1 with "
        "probability sigmoid(3 x1 x2) (a noisy XOR of two inputs; the other two are "
        f"distractors), Adam lr {lr} batch {batch}, cosine to 0",
        config={"family": "mlp", "task": "soft_xor"},
        cosine=True,
    )


def mlp_momentum_b16x4(
    seed: int, batch: int = 16, lr: float = 0.02, steps: int = 400
) -> Experiment:
    """A ReLU MLP regressing two plane waves with noisy targets, heavy ball on micro-batches
    of 16 accumulated 4 per update, clipped to norm 2, a linear decay to zero."""
    x, y = plane_waves(4096, 4, 0.2)
    torch.manual_seed(seed)
    model = _mlp([4, 32, 32, 1])
    exp = _exp(
        seed,
        "final14-control-mlp-momentum-batch16x4-clipped-accumulated-plane-waves-linear-decay",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="ReLU MLP 4-32-32-1 regressing sin(u.x) + 0.5 cos(v.x) (|u| = |v| = 1.5, "
        "standardized, noise std 0.2) on 4096 Gaussian inputs, momentum 0.9 lr "
        f"{lr} on micro-batches of {batch} accumulated 4 per update, gradient norm clipped to "
        "2, linear decay to 0",
        config={"family": "mlp", "target_noise": 0.2},
    )
    return _clipped(_linear(_accumulated(exp, 4)), 2.0)


def mlp_adamw_b32(seed: int, batch: int = 32, lr: float = 3e-3, steps: int = 300) -> Experiment:
    """A dropout MLP naming the species of an iris, AdamW on batches of 32 with a cosine to
    zero."""
    x, y = iris()
    torch.manual_seed(seed)
    model = _dropout_mlp([4, 32, 32, 3], 0.2)
    return _exp(
        seed,
        "final14-control-mlp-adamw-batch32-dropout-iris-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="ReLU MLP 4-32-32-3 with dropout 0.2 naming the species of scikit-learn's "
        f"150 irises (4 standardized measurements), AdamW (wd 1e-2) lr {lr} batch {batch}, "
        "cosine to 0",
        config={"family": "mlp", "table": "iris", "dropout": 0.2},
        cosine=True,
    )


def mlp_nesterov_b128(seed: int, batch: int = 128, lr: float = 0.1, steps: int = 450) -> Experiment:
    """A tanh MLP naming the moon of a point on two noisy interleaved half-moons, Nesterov
    momentum on batches of 128, the rate cut to a third every 150 steps."""
    x, y = moons(1024, 0.25)
    torch.manual_seed(seed)
    model = _mlp([2, 32, 32, 2], nn.Tanh)
    exp = _exp(
        seed,
        "final14-control-mlp-nesterov-batch128-noisy-moons-step-lr",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="nesterov",
        lr=lr,
        steps=steps,
        description="tanh MLP 2-32-32-2 naming which of two interleaved half-moons (noise std "
        f"0.25, they overlap) a point lies on, 1024 points, Nesterov 0.9 lr {lr} batch "
        f"{batch}, x1/3 every 150 steps",
        config={"family": "mlp", "moons_noise": 0.25},
    )
    return _stepped(exp, 150, 1 / 3)


def textures(n: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 textures: white Gaussian noise (on a 12x12 canvas) averaged over a square window
    of side 1, 2 or 3 pixels (the class: the texture's grain), cropped to 8x8 and scaled to
    unit variance per image, a fraction ``noise`` of the labels redrawn at random."""
    gen = _gen(285500)
    y = torch.randint(0, 3, (n,), generator=gen)
    raw = torch.randn(n, 1, 12, 12, generator=gen)
    out = torch.zeros(n, 1, 8, 8)
    for k in range(3):
        blur = nn.functional.avg_pool2d(raw, k + 1, stride=1)[..., :8, :8]
        out = torch.where((y == k)[:, None, None, None], blur, out)
    out = out - out.mean((2, 3), keepdim=True)
    out = out / out.std((2, 3), keepdim=True)
    return out, flip_labels(y, noise, 3, 285501) if noise else y


def grain_direction(n: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 textures: white Gaussian noise (on a 12x12 canvas) averaged along rows over 3
    pixels (a horizontal grain), along columns (vertical), or over 2x2 squares (no direction:
    the class), cropped to 8x8 and scaled to unit variance per image, a fraction ``noise`` of
    the labels redrawn at random."""
    gen = _gen(285700)
    y = torch.randint(0, 3, (n,), generator=gen)
    raw = torch.randn(n, 1, 12, 12, generator=gen)
    kinds = [(1, 3), (3, 1), (2, 2)]
    out = torch.zeros(n, 1, 8, 8)
    for k, size in enumerate(kinds):
        blur = nn.functional.avg_pool2d(raw, size, stride=1)[..., :8, :8]
        out = torch.where((y == k)[:, None, None, None], blur, out)
    out = out - out.mean((2, 3), keepdim=True)
    out = out / out.std((2, 3), keepdim=True)
    return out, flip_labels(y, noise, 3, 285701) if noise else y


def polarity(n: int, pixel: float) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 images of Gaussian pixel noise of std ``pixel`` holding a bright 3x3 patch (+1), a
    dark one (-1), or none (the class), at a random place: the classes overlap."""
    gen = _gen(285800)
    y = torch.randint(0, 3, (n,), generator=gen)
    img = pixel * torch.randn(n, 8, 8, generator=gen)
    rc = torch.randint(0, 6, (n, 2), generator=gen)
    sign = torch.tensor([1.0, -1.0, 0.0])[y]
    for i in range(n):
        r, c = int(rc[i, 0]), int(rc[i, 1])
        img[i, r : r + 3, c : c + 3] += sign[i]
    return img.unsqueeze(1), y


def dot_counts(n: int, pixel: float) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 images with 1 to 6 bright pixels (distinct places) on Gaussian pixel noise of std
    ``pixel``; the target is the number of dots, standardized (regression)."""
    gen = _gen(285600)
    count = torch.randint(1, 7, (n,), generator=gen)
    img = pixel * torch.randn(n, 64, generator=gen)
    for i in range(n):
        img[i, torch.randperm(64, generator=gen)[: int(count[i])]] += 1.0
    y = (count.float() - 3.5) / 1.708
    return img.reshape(n, 1, 8, 8), y.unsqueeze(1)


# --------------------------------------------------------------------------------------------
# Batch-norm ResNets
# --------------------------------------------------------------------------------------------


def cnn_sgd_b16(seed: int, batch: int = 16, lr: float = 0.02, steps: int = 600) -> Experiment:
    """A batch-norm ResNet naming the grain of a noise texture, with 10% random labels, plain
    SGD on batches of 16 at a constant rate."""
    x, y = textures(2048, 0.1)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 3)
    return _exp(
        seed,
        "final14-control-cnn-sgd-batch16-bn-texture-grain-label-noise",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the grain (white noise "
        "averaged over windows of 1, 2 or 3 pixels) of 2048 8x8 textures at unit variance, 10% "
        f"random labels, SGD lr {lr} batch {batch}",
        config={"family": "cnn", "task": "texture", "label_noise": 0.1},
    )


def cnn_momentum_b8x4(seed: int, batch: int = 8, lr: float = 0.02, steps: int = 300) -> Experiment:
    """A batch-norm ResNet naming the direction of a texture's grain, with 10% random labels,
    heavy ball on micro-batches of 8 accumulated 4 per update, a cosine to zero."""
    x, y = grain_direction(2048, 0.1)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 3)
    exp = _exp(
        seed,
        "final14-control-cnn-momentum-batch8x4-bn-accumulated-grain-direction-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the grain of 2048 8x8 noise "
        "textures (white noise averaged over 1x3 pixels, 3x1 or 2x2), 10% random labels, "
        f"momentum 0.9 lr {lr} on micro-batches of {batch} accumulated 4 per update, cosine "
        "to 0",
        config={"family": "cnn", "task": "grain_direction", "label_noise": 0.1},
        cosine=True,
    )
    return _accumulated(exp, 4)


def cnn_adam_b128(seed: int, batch: int = 128, lr: float = 3e-3, steps: int = 250) -> Experiment:
    """A batch-norm ResNet naming the direction of a texture's grain, with 5% random labels,
    Adam on batches of 128, warmup then a cosine to zero."""
    x, y = grain_direction(4096, 0.05)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 3)
    exp = _exp(
        seed,
        "final14-control-cnn-adam-batch128-bn-grain-direction-warmup-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the grain of 4096 8x8 noise "
        "textures (white noise averaged over 1x3 pixels, 3x1 or 2x2), 5% random labels, Adam "
        f"lr {lr} batch {batch}, warmup 25 then cosine to 0",
        config={"family": "cnn", "task": "grain_direction", "label_noise": 0.05},
    )
    return _warm(exp, 25)


def cnn_adamw_b32(seed: int, batch: int = 32, lr: float = 3e-3, steps: int = 400) -> Experiment:
    """A batch-norm ResNet telling a bright patch from a dark one or none in a noisy image,
    AdamW on batches of 32 with a linear decay to zero."""
    x, y = polarity(2048, 0.8)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 3)
    exp = _exp(
        seed,
        "final14-control-cnn-adamw-batch32-bn-patch-polarity-linear-decay",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) telling whether 2048 8x8 images "
        "under pixel noise of std 0.8 hold a bright 3x3 patch (+1), a dark one (-1) or none, "
        f"AdamW (wd 1e-2) lr {lr} batch {batch}, linear decay to 0",
        config={"family": "cnn", "task": "polarity", "pixel_noise": 0.8},
    )
    return _linear(exp)


def cnn_sgd_b48(seed: int, batch: int = 48, lr: float = 0.1, steps: int = 300) -> Experiment:
    """A batch-norm ResNet counting the bright dots of a noisy image (regression), plain SGD on
    batches of 48 clipped to norm 1, the rate halved every 100 steps."""
    x, y = dot_counts(2048, 0.2)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 1)
    exp = _exp(
        seed,
        "final14-control-cnn-sgd-batch48-bn-clipped-dot-count-regression-step-lr",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) regressing the number (1 to 6, "
        "standardized) of bright pixels in 2048 8x8 images under pixel noise of std 0.2, SGD "
        f"lr {lr} batch {batch}, gradient norm clipped to 1, x0.5 every 100 steps",
        config={"family": "cnn", "task": "count", "pixel_noise": 0.2},
    )
    return _clipped(_stepped(exp, 100, 0.5), 1.0)


# --------------------------------------------------------------------------------------------
# Transformers (tied output weights; sequence.py's)
# --------------------------------------------------------------------------------------------


def tfm_sgd_b32(seed: int, batch: int = 32, lr: float = 0.3, steps: int = 400) -> Experiment:
    """A causal transformer giving the largest token so far, with 5% random labels, plain SGD
    on batches of 32 with a cosine to zero."""
    x, y = running_max(2048, 12, 8, 0.05)
    torch.manual_seed(seed)
    model = TinyTransformer(8, 12, 32, 2, 1, causal=True)
    return _exp(
        seed,
        "final14-control-transformer-sgd-batch32-running-max-token-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="1-layer causal transformer (d 32) giving, at every position of 12 random "
        "tokens of 8, the largest token so far, 5% random labels, 2048 sequences, SGD lr "
        f"{lr} batch {batch}, cosine to 0",
        config={"family": "transformer", "vocab": 8, "label_noise": 0.05, "causal": True},
        cosine=True,
    )


def tfm_momentum_b8(seed: int, batch: int = 8, lr: float = 0.03, steps: int = 400) -> Experiment:
    """A causal transformer repeating the sequence's first token, with 10% random labels,
    heavy ball on batches of 8 clipped to norm 1, warmup then a cosine to zero."""
    x, y = first_token(2048, 10, 8, 0.1)
    torch.manual_seed(seed)
    model = TinyTransformer(8, 10, 32, 2, 1, causal=True)
    exp = _exp(
        seed,
        "final14-control-transformer-momentum-batch8-clipped-first-token-warmup-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="1-layer causal transformer (d 32) giving, at every position of 10 random "
        "tokens of 8, the sequence's first token, 10% random labels, 2048 sequences, momentum "
        f"0.9 lr {lr} batch {batch}, gradient norm clipped to 1, warmup 40 then cosine to 0",
        config={"family": "transformer", "vocab": 8, "label_noise": 0.1, "causal": True},
    )
    return _clipped(_warm(exp, 40), 1.0)


def tfm_adamw_b16(seed: int, batch: int = 16, lr: float = 3e-3, steps: int = 400) -> Experiment:
    """A pooled transformer naming a sequence's smallest token, with 10% random labels, AdamW
    on batches of 16, warmup then a cosine to zero."""
    x, y = smallest_token(4096, 6, 10, 0.1)
    torch.manual_seed(seed)
    model = TinyTransformer(10, 6, 32, 2, 1, pool=True)
    exp = _exp(
        seed,
        "final14-control-transformer-adamw-batch16-smallest-token-label-noise-warmup-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 32, mean-pooled, tied read-out) naming the smallest "
        "of 6 random tokens of 10, 10% random labels, 4096 sequences, AdamW (wd 1e-2) lr "
        f"{lr} batch {batch}, warmup 40 then cosine to 0",
        config={"family": "transformer", "vocab": 10, "pool": True, "label_noise": 0.1},
    )
    return _warm(exp, 40)


def tfm_adam_b64(seed: int, batch: int = 64, lr: float = 3e-3, steps: int = 300) -> Experiment:
    """A causal transformer modelling one sparse Markov language (next token), Adam on batches
    of 64 with a cosine to zero."""
    x, y = bigram_text(1024, 16, 12, 3)
    torch.manual_seed(seed)
    model = TinyTransformer(12, 16, 32, 2, 1, causal=True)
    return _exp(
        seed,
        "final14-control-transformer-adam-batch64-markov-chain-lm-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="1-layer causal transformer (d 32) predicting the next of 16 tokens of a "
        "first-order Markov chain over 12 tokens (3 successors per token at random "
        f"probabilities), 1024 sequences, Adam lr {lr} batch {batch}, cosine to 0",
        config={"family": "transformer", "vocab": 12, "causal": True},
        cosine=True,
    )


def tfm_adamw_b12(seed: int, batch: int = 12, lr: float = 2e-3, steps: int = 500) -> Experiment:
    """A bidirectional transformer reversing a sequence, with 5% random labels, AdamW on
    batches of 12 clipped to norm 1, the rate halved every 125 steps."""
    x, y = mirrored(2048, 10, 8, 0.05)
    torch.manual_seed(seed)
    model = TinyTransformer(8, 10, 32, 2, 1)
    exp = _exp(
        seed,
        "final14-control-transformer-adamw-batch12-clipped-reversal-step-lr",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="1-layer bidirectional transformer (d 32) giving, at every position of 10 "
        "random tokens of 8, the token at the mirror position (the sequence reversed), 5% "
        f"random labels, 2048 sequences, AdamW (wd 1e-2) lr {lr} batch {batch}, gradient norm "
        "clipped to 1, x0.5 every 125 steps",
        config={"family": "transformer", "vocab": 8, "label_noise": 0.05},
    )
    return _clipped(_stepped(exp, 125, 0.5), 1.0)


# --------------------------------------------------------------------------------------------
# RNNs, LSTMs and GRUs
# --------------------------------------------------------------------------------------------


def rnn_sgd_b4(seed: int, batch: int = 4, lr: float = 0.02, steps: int = 500) -> Experiment:
    """A tanh RNN giving an exponential moving average of its inputs, plain SGD on batches of
    4 at a constant rate."""
    x, y = smoothed(1024, 20, 0.7, 0.2)
    torch.manual_seed(seed)
    model = RecurrentNet("rnn", 1, 16, 1, every_step=True)
    return _exp(
        seed,
        "final14-control-rnn-tanh-sgd-batch4-moving-average",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="tanh RNN (16) giving at every step of 20 Gaussian inputs twice their "
        f"exponential moving average (alpha 0.7, noise std 0.2), 1024 sequences, SGD lr {lr} "
        f"batch {batch}",
        config={"family": "rnn", "cell": "rnn", "alpha": 0.7, "noise": 0.2},
    )


def rnn_adam_b16(seed: int, batch: int = 16, lr: float = 3e-3, steps: int = 400) -> Experiment:
    """A GRU keeping a scaled running sum of its inputs, Adam on batches of 16 with the
    gradient clipped to norm 1, a cosine to zero."""
    x, y = running_sum(1024, 20, 0.2)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 24, 1, every_step=True)
    exp = _exp(
        seed,
        "final14-control-rnn-gru-adam-batch16-clipped-running-sum-cosine",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="GRU (24) giving at every step t of 20 Gaussian inputs their sum so far over"
        f" sqrt(t + 1) (noise std 0.2), 1024 sequences, Adam lr {lr} batch {batch}, gradient "
        "norm clipped to 1, cosine to 0",
        config={"family": "rnn", "cell": "gru", "noise": 0.2},
        cosine=True,
    )
    return _clipped(exp, 1.0)


def rnn_momentum_b64(seed: int, batch: int = 64, lr: float = 0.1, steps: int = 400) -> Experiment:
    """An LSTM telling at every step whether a bit changed, with 5% flipped labels, heavy ball
    on batches of 64, the rate cut to a tenth for the last quarter."""
    x, y = bit_changes(2048, 16, 0.05)
    torch.manual_seed(seed)
    model = RecurrentNet("lstm", 1, 16, 2, every_step=True)
    exp = _exp(
        seed,
        "final14-control-rnn-lstm-momentum-batch64-bit-change-step-lr",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="LSTM (16) telling at every step of 16 random bits whether the bit differs "
        f"from the one before, 5% flipped labels, 2048 sequences, momentum 0.9 lr {lr} batch "
        f"{batch}, x0.1 from step {3 * steps // 4}",
        config={"family": "rnn", "cell": "lstm", "label_noise": 0.05},
    )
    return _stepped(exp, 3 * steps // 4, 0.1)


def rnn_adamw_b12(seed: int, batch: int = 12, lr: float = 3e-3, steps: int = 500) -> Experiment:
    """A GRU naming the shape of a noisy periodic wave, AdamW on batches of 12, warmup then a
    cosine to zero."""
    x, y = waveforms(2048, 24, 0.5)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 24, 4)
    exp = _exp(
        seed,
        "final14-control-rnn-gru-adamw-batch12-waveform-shape-warmup-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="GRU (24) naming the shape (sine, square, triangle, sawtooth) of 2048 waves "
        "of 24 steps (period 6 to 12 steps, random phase) under noise of std 0.5, AdamW (wd "
        f"1e-2) lr {lr} batch {batch}, warmup 50 then cosine to 0",
        config={"family": "rnn", "cell": "gru", "noise": 0.5},
    )
    return _warm(exp, 50)


def rnn_adam_full(seed: int, batch: int = 512, lr: float = 1e-2, steps: int = 300) -> Experiment:
    """An LSTM reading the frequency of a noisy sine wave (regression), Adam on the full data
    with a linear decay to zero."""
    x, y = frequencies(512, 24, 0.3)
    torch.manual_seed(seed)
    model = RecurrentNet("lstm", 1, 24, 1)
    exp = _exp(
        seed,
        "final14-control-rnn-lstm-adam-full-batch-sine-frequency-linear-decay",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="LSTM (24) reading the frequency (0.04 to 0.25 cycles a step, standardized) "
        "of 512 sine waves of 24 steps at random phases under noise of std 0.3, Adam lr "
        f"{lr} batch {batch}, linear decay to 0",
        config={"family": "rnn", "cell": "lstm", "noise": 0.3},
    )
    return _linear(exp)


# --------------------------------------------------------------------------------------------
# The cases, each at the seed its hand check ran
# --------------------------------------------------------------------------------------------

CASES = [
    Case(
        "final14-control-mlp-sgd-batch8-wine-weight-decay",
        None,
        "mlp",
        "sgd",
        FINAL14,
        mlp_sgd_b8,
        seed=280000,
        why=(
            "A small ReLU MLP naming the cultivar of a wine, plain SGD with weight decay on "
            "batches of 8 at a constant rate. Hand check: 275 parameters, plain training 0.14s on"
            " one thread; full-data loss 1.108 at the start, 300: 0.04912 mid-run, 0.02645 at the"
            " end; end/start 0.024  max rise over running min x1.000  gradnorm max 1.28 (step 32)"
            " median 0.23 ratio 5.58; max after step 10 1.28; top eigenvalue at step 1 0.9285 "
            "(times lr 0.0464); top eigenvalue at step 150 0.7028 (times lr 0.0351); top "
            "eigenvalue at step 300 0.5612 (times lr 0.0281); top eigenvalue at step 450 0.4893 "
            "(times lr 0.0245); top eigenvalue at step 600 0.4854 (times lr 0.0243); "
            "largest/smallest per-layer gradient norm at step 1: 1.03; largest/smallest per-layer"
            " gradient norm at step 300: 1.65; largest/smallest per-layer gradient norm at step "
            "600: 2.98; the same run at batch 64: 0.02618 (-1.0% vs run); seeds +1 to +3 end at "
            "0.0233 0.02497 0.02281."
        ),
    ),
    Case(
        "final14-control-mlp-adam-batch64-soft-xor-cosine",
        None,
        "mlp",
        "adam",
        FINAL14,
        mlp_adam_b64,
        seed=280100,
        why=(
            "A ReLU MLP on a noisy XOR of two of four inputs, Adam on batches of 64 with a cosine"
            " to zero. Hand check: 1282 parameters, plain training 0.10s on one thread; full-data"
            " loss 0.7004 at the start, 150: 0.4642 mid-run, 0.4519 at the end; end/start 0.645  "
            "max rise over running min x1.016  gradnorm max 0.606 (step 168) median 0.342 ratio "
            "1.77; max after step 10 0.606; top eigenvalue at step 10 149.5 (times lr 0.447); top"
            " eigenvalue at step 75 301.1 (times lr 0.771); top eigenvalue at step 150 274.1 "
            "(times lr 0.411); top eigenvalue at step 225 256.6 (times lr 0.113); top eigenvalue "
            "at step 300 254.6 (times lr 0); largest/smallest per-layer gradient norm at step 1: "
            "2.62; largest/smallest per-layer gradient norm at step 150: 1.96; largest/smallest "
            "per-layer gradient norm at step 300: 1.72; the same run at batch 64: 0.4519 (+0.0% "
            "vs run); the same run at batch 4096: 0.4386 (-2.9% vs run); seeds +1 to +3 end at "
            "0.4541 0.4548 0.4556."
        ),
    ),
    Case(
        "final14-control-mlp-momentum-batch16x4-clipped-accumulated-plane-waves-linear-decay",
        None,
        "mlp",
        "momentum",
        FINAL14,
        mlp_momentum_b16x4,
        seed=280200,
        why=(
            "A ReLU MLP regressing two plane waves with noisy targets, heavy ball on "
            "micro-batches of 16 accumulated 4 per update, clipped to norm 2, a linear decay to "
            "zero. Hand check: 1249 parameters, plain training 0.50s on one thread; full-data "
            "loss 1.04 at the start, 200: 0.09134 mid-run, 0.0645 at the end; end/start 0.062  "
            "max rise over running min x1.000  gradnorm max 2.09 (step 78) median 0.596 ratio "
            "3.50; max after step 10 2.09; top eigenvalue at step 1 4.762 (times lr 0.095); top "
            "eigenvalue at step 100 16 (times lr 0.24); top eigenvalue at step 200 27.74 (times "
            "lr 0.277); top eigenvalue at step 300 30.7 (times lr 0.153); top eigenvalue at step "
            "400 32.66 (times lr 0); largest/smallest per-layer gradient norm at step 1: 3.17; "
            "largest/smallest per-layer gradient norm at step 200: 2.05; largest/smallest "
            "per-layer gradient norm at step 400: 3.25; the same run at batch 64: 0.06256 (-3.0% "
            "vs run); the same run at batch 16: 0.0645 (+0.0% vs run); seeds +1 to +3 end at "
            "0.06518 0.05668 0.06334."
        ),
    ),
    Case(
        "final14-control-mlp-adamw-batch32-dropout-iris-cosine",
        None,
        "mlp",
        "adamw",
        FINAL14,
        mlp_adamw_b32,
        seed=280300,
        why=(
            "A dropout MLP naming the species of an iris, AdamW on batches of 32 with a cosine to"
            " zero. Hand check: 1315 parameters, plain training 0.12s on one thread; full-data "
            "loss 1.009 at the start, 150: 0.07074 mid-run, 0.05989 at the end; end/start 0.059  "
            "max rise over running min x1.005  gradnorm max 0.85 (step 137) median 0.348 ratio "
            "2.44; max after step 10 0.85; top eigenvalue at step 10 494.4 (times lr 1.48); top "
            "eigenvalue at step 75 201.3 (times lr 0.515); top eigenvalue at step 150 154.6 "
            "(times lr 0.232); top eigenvalue at step 225 155 (times lr 0.0681); top eigenvalue "
            "at step 300 155.6 (times lr 0); largest/smallest per-layer gradient norm at step 1: "
            "3.50; largest/smallest per-layer gradient norm at step 150: 1.90; largest/smallest "
            "per-layer gradient norm at step 300: 1.04; the same run at batch 64: 0.05532 (-7.6% "
            "vs run); the same run at batch 150: 0.04393 (-26.6% vs run); seeds +1 to +3 end at "
            "0.06359 0.07199 0.07331."
        ),
    ),
    Case(
        "final14-control-mlp-nesterov-batch128-noisy-moons-step-lr",
        None,
        "mlp",
        "nesterov",
        FINAL14,
        mlp_nesterov_b128,
        seed=280200,
        why=(
            "A tanh MLP naming the moon of a point on two noisy interleaved half-moons, Nesterov "
            "momentum on batches of 128, the rate cut to a third every 150 steps. Hand check: "
            "1218 parameters, plain training 0.17s on one thread; full-data loss 0.7981 at the "
            "start, 220: 0.1399 mid-run, 0.1382 at the end; end/start 0.173  max rise over "
            "running min x1.004  gradnorm max 0.648 (step 3) median 0.171 ratio 3.79; max after "
            "step 10 0.522; top eigenvalue at step 1 1.89 (times lr 0.189); top eigenvalue at "
            "step 112 7.533 (times lr 0.753); top eigenvalue at step 225 7.352 (times lr 0.245); "
            "top eigenvalue at step 337 7.599 (times lr 0.0844); top eigenvalue at step 450 7.757"
            " (times lr 0.0287); largest/smallest per-layer gradient norm at step 1: 3.52; "
            "largest/smallest per-layer gradient norm at step 225: 4.44; largest/smallest "
            "per-layer gradient norm at step 450: 4.08; the same run at batch 64: 0.1392 (+0.7% "
            "vs run); the same run at batch 1024: 0.1378 (-0.3% vs run); seeds +1 to +3 end at "
            "0.1384 0.138 0.14."
        ),
    ),
    Case(
        "final14-control-cnn-sgd-batch16-bn-texture-grain-label-noise",
        None,
        "cnn",
        "sgd",
        FINAL14,
        cnn_sgd_b16,
        seed=280500,
        why=(
            "A batch-norm ResNet naming the grain of a noise texture, with 10% random labels, "
            "plain SGD on batches of 16 at a constant rate. Hand check: 1299 parameters, plain "
            "training 0.70s on one thread; full-data loss 1.123 at the start, 300: 0.6152 "
            "mid-run, 0.4725 at the end; end/start 0.421  max rise over running min x1.000  "
            "gradnorm max 2.36 (step 537) median 0.718 ratio 3.28; max after step 10 2.36; top "
            "eigenvalue at step 1 2.041 (times lr 0.0408); top eigenvalue at step 150 2.471 "
            "(times lr 0.0494); top eigenvalue at step 300 2.13 (times lr 0.0426); top eigenvalue"
            " at step 450 2.697 (times lr 0.0539); top eigenvalue at step 600 5.175 (times lr "
            "0.104); largest/smallest per-layer gradient norm at step 1: 2.06; largest/smallest "
            "per-layer gradient norm at step 300: 1.89; largest/smallest per-layer gradient norm "
            "at step 600: 2.66; the same run at batch 64: 0.4502 (-4.7% vs run); seeds +1 to +3 "
            "end at 0.4977 0.463 0.4546."
        ),
    ),
    Case(
        "final14-control-cnn-momentum-batch8x4-bn-accumulated-grain-direction-cosine",
        None,
        "cnn",
        "momentum",
        FINAL14,
        cnn_momentum_b8x4,
        seed=280600,
        why=(
            "A batch-norm ResNet naming the direction of a texture's grain, with 10% random "
            "labels, heavy ball on micro-batches of 8 accumulated 4 per update, a cosine to zero."
            " Hand check: 1299 parameters, plain training 1.16s on one thread; full-data loss "
            "1.145 at the start, 150: 0.4158 mid-run, 0.3802 at the end; end/start 0.332  max "
            "rise over running min x1.000  gradnorm max 1.29 (step 262) median 0.656 ratio 1.96; "
            "max after step 10 1.29; top eigenvalue at step 1 -2.27 (times lr -0.0454); top "
            "eigenvalue at step 75 2.095 (times lr 0.0358); top eigenvalue at step 150 2.71 "
            "(times lr 0.0271); top eigenvalue at step 225 3.349 (times lr 0.00981); top "
            "eigenvalue at step 300 3.799 (times lr 0); largest/smallest per-layer gradient norm "
            "at step 1: 2.31; largest/smallest per-layer gradient norm at step 150: 2.60; "
            "largest/smallest per-layer gradient norm at step 300: 3.05; the same run at batch "
            "64: 0.3611 (-5.0% vs run); the same run at batch 8: 0.3802 (+0.0% vs run); seeds +1 "
            "to +3 end at 0.3854 0.3382 0.3879."
        ),
    ),
    Case(
        "final14-control-cnn-adam-batch128-bn-grain-direction-warmup-cosine",
        None,
        "cnn",
        "adam",
        FINAL14,
        cnn_adam_b128,
        seed=280700,
        why=(
            "A batch-norm ResNet naming the direction of a texture's grain, with 5% random "
            "labels, Adam on batches of 128, warmup then a cosine to zero. Hand check: 1299 "
            "parameters, plain training 0.75s on one thread; full-data loss 1.127 at the start, "
            "120: 0.2753 mid-run, 0.2247 at the end; end/start 0.199  max rise over running min "
            "x1.000  gradnorm max 0.813 (step 1) median 0.35 ratio 2.32; max after step 10 0.607;"
            " top eigenvalue at step 10 46.99 (times lr 0.062); top eigenvalue at step 62 385 "
            "(times lr 1.08); top eigenvalue at step 125 559.8 (times lr 0.986); top eigenvalue "
            "at step 187 444.1 (times lr 0.242); top eigenvalue at step 250 440.6 (times lr 0); "
            "largest/smallest per-layer gradient norm at step 1: 3.40; largest/smallest per-layer"
            " gradient norm at step 125: 5.02; largest/smallest per-layer gradient norm at step "
            "250: 5.29; the same run at batch 4096: 0.208 (-7.4% vs run); seeds +1 to +3 end at "
            "0.2266 0.2496 0.2756."
        ),
    ),
    Case(
        "final14-control-cnn-adamw-batch32-bn-patch-polarity-linear-decay",
        None,
        "cnn",
        "adamw",
        FINAL14,
        cnn_adamw_b32,
        seed=280800,
        why=(
            "A batch-norm ResNet telling a bright patch from a dark one or none in a noisy image,"
            " AdamW on batches of 32 with a linear decay to zero. Hand check: 1299 parameters, "
            "plain training 0.70s on one thread; full-data loss 1.187 at the start, 200: 0.4946 "
            "mid-run, 0.4562 at the end; end/start 0.384  max rise over running min x1.010  "
            "gradnorm max 1.71 (step 390) median 0.503 ratio 3.39; max after step 10 1.71; top "
            "eigenvalue at step 10 263.9 (times lr 0.772); top eigenvalue at step 100 262.8 "
            "(times lr 0.591); top eigenvalue at step 200 251 (times lr 0.376); top eigenvalue at"
            " step 300 381.4 (times lr 0.286); top eigenvalue at step 400 291.8 (times lr 0); "
            "largest/smallest per-layer gradient norm at step 1: 5.66; largest/smallest per-layer"
            " gradient norm at step 200: 1.44; largest/smallest per-layer gradient norm at step "
            "400: 1.88; the same run at batch 64: 0.4244 (-7.0% vs run); seeds +1 to +3 end at "
            "0.4566 0.4683 0.4288."
        ),
    ),
    Case(
        "final14-control-transformer-sgd-batch32-running-max-token-cosine",
        None,
        "transformer",
        "sgd",
        FINAL14,
        tfm_sgd_b32,
        seed=280000,
        why=(
            "A causal transformer giving the largest token so far, with 5% random labels, plain "
            "SGD on batches of 32 with a cosine to zero. Hand check: 9248 parameters, plain "
            "training 0.66s on one thread; full-data loss 2.182 at the start, 200: 0.2678 "
            "mid-run, 0.2659 at the end; end/start 0.122  max rise over running min x1.002  "
            "gradnorm max 4.38 (step 22) median 0.175 ratio 25.05; max after step 10 4.38; top "
            "eigenvalue at step 1 10.14 (times lr 3.04); top eigenvalue at step 100 2.053 (times "
            "lr 0.526); top eigenvalue at step 200 1.566 (times lr 0.235); top eigenvalue at step"
            " 300 1.101 (times lr 0.0484); top eigenvalue at step 400 1.263 (times lr 0); "
            "largest/smallest per-layer gradient norm at step 1: 4.08; largest/smallest per-layer"
            " gradient norm at step 200: 4.76; largest/smallest per-layer gradient norm at step "
            "400: 4.67; the same run at batch 64: 0.2655 (-0.1% vs run); seeds +1 to +3 end at "
            "0.2653 0.2655 0.2653."
        ),
    ),
    Case(
        "final14-control-transformer-adamw-batch16-smallest-token-label-noise-warmup-cosine",
        None,
        "transformer",
        "adamw",
        FINAL14,
        tfm_adamw_b16,
        seed=280000,
        why=(
            "A pooled transformer naming a sequence's smallest token, with 10% random labels, "
            "AdamW on batches of 16, warmup then a cosine to zero. Hand check: 9120 parameters, "
            "plain training 0.55s on one thread; full-data loss 2.372 at the start, 200: 0.5594 "
            "mid-run, 0.5407 at the end; end/start 0.228  max rise over running min x1.000  "
            "gradnorm max 3.65 (step 7) median 0.928 ratio 3.93; max after step 10 3.28; top "
            "eigenvalue at step 10 462.2 (times lr 0.381); top eigenvalue at step 100 409.3 "
            "(times lr 1.15); top eigenvalue at step 200 88.72 (times lr 0.156); top eigenvalue "
            "at step 300 -184.6 (times lr -0.0989); top eigenvalue at step 400 246 (times lr 0); "
            "largest/smallest per-layer gradient norm at step 1: 3.62; largest/smallest per-layer"
            " gradient norm at step 200: 10.32; largest/smallest per-layer gradient norm at step "
            "400: 6.82; the same run at batch 64: 0.5268 (-2.6% vs run); seeds +1 to +3 end at "
            "0.5458 0.5419 0.5384."
        ),
    ),
    Case(
        "final14-control-transformer-adam-batch64-markov-chain-lm-cosine",
        None,
        "transformer",
        "adam",
        FINAL14,
        tfm_adam_b64,
        seed=280000,
        why=(
            "A causal transformer modelling one sparse Markov language (next token), Adam on "
            "batches of 64 with a cosine to zero. Hand check: 9504 parameters, plain training "
            "0.84s on one thread; full-data loss 2.426 at the start, 150: 1.014 mid-run, 1.001 at"
            " the end; end/start 0.413  max rise over running min x1.000  gradnorm max 1.29 (step"
            " 1) median 0.473 ratio 2.72; max after step 10 0.856; top eigenvalue at step 10 2058"
            " (times lr 6.16); top eigenvalue at step 75 1755 (times lr 4.49); top eigenvalue at "
            "step 150 2282 (times lr 3.42); top eigenvalue at step 225 2404 (times lr 1.06); top "
            "eigenvalue at step 300 2666 (times lr 0); largest/smallest per-layer gradient norm "
            "at step 1: 4.07; largest/smallest per-layer gradient norm at step 150: 2.53; "
            "largest/smallest per-layer gradient norm at step 300: 2.54; the same run at batch "
            "64: 1.001 (+0.0% vs run); the same run at batch 1024: 0.97 (-3.1% vs run); seeds +1 "
            "to +3 end at 0.9993 0.9994 0.9976."
        ),
    ),
    Case(
        "final14-control-transformer-adamw-batch12-clipped-reversal-step-lr",
        None,
        "transformer",
        "adamw",
        FINAL14,
        tfm_adamw_b12,
        seed=280000,
        why=(
            "A bidirectional transformer reversing a sequence, with 5% random labels, AdamW on "
            "batches of 12 clipped to norm 1, the rate halved every 125 steps. Hand check: 9184 "
            "parameters, plain training 0.78s on one thread; full-data loss 2.1 at the start, "
            "250: 0.265 mid-run, 0.2613 at the end; end/start 0.124  max rise over running min "
            "x1.000  gradnorm max 1.56 (step 35) median 0.294 ratio 5.30; max after step 10 1.56;"
            " top eigenvalue at step 10 549.6 (times lr 1.1); top eigenvalue at step 125 -366 "
            "(times lr -0.366); top eigenvalue at step 250 130.5 (times lr 0.0652); top "
            "eigenvalue at step 375 59.24 (times lr 0.0148); top eigenvalue at step 500 82.34 "
            "(times lr 0.0103); largest/smallest per-layer gradient norm at step 1: 4.25; "
            "largest/smallest per-layer gradient norm at step 250: 4.63; largest/smallest "
            "per-layer gradient norm at step 500: 4.31; the same run at batch 64: 0.2574 (-1.5% "
            "vs run); seeds +1 to +3 end at 0.2611 0.2624 0.2603."
        ),
    ),
]
