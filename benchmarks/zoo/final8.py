"""The ninth held-out zoo split (``"final8"``): cliffs, ill-conditioning, and small-batch
healthy controls.

Written after final7 had been seen. The cliffs cases (Deep Learning sec. 8.2.4) are planted
by a learning-rate spike for a few steps, a few records with targets in the wrong units, a
vanilla RNN whose recurrent matrix has spectral radius well above 1 with no clipping, and a
warmup to a learning rate so high that the run explodes mid-run; two of them train on
batches of 2 and 4, the rest on 32 or more. The ill-conditioning cases (sec. 8.2.1) take
steps too long for the curvature: heavy ball or plain SGD at a learning rate past the
stability threshold of the top Hessian eigenvalue (2/lr, (2 + 2 beta)/lr with momentum
beta), on features of very different scales, so that a step along the sharp direction raises
the loss while the run still crawls down the flat ones; batches of 32 to the full data. The
controls train on clean data with batches of 1 to 16 (one by accumulating micro-batches),
where the small batch is fine: each reaches, within a small margin, what the same model,
optimizer and schedule reach on batches of 64 in the same number of steps. Near convergence
their minibatch losses are heavy-tailed: a few hard but correctly labelled samples, a rare
class or rare tokens stay above the rest.

Data: generated clusters, shape images, token and scalar sequences, teachers with scaled
features, each from a fixed seed of its own (120000 and up). Every model is built inside
``build(seed)`` after ``torch.manual_seed(seed)``. Each builder takes ``batch`` so that the
large-batch reference of a control's hand check is the same run with ``batch=64``. ``why``
gives the numbers of the hand check with plain training: the full-data loss along the way
(batch norm on the full data's statistics); for cliffs the raw gradient norm against its
running median and the loss around the spike; for ill-conditioning the top Hessian
eigenvalue (power iteration on Hessian-vector products by double backward on the full data)
against the optimizer's threshold and the share of updates that raised the loss of a fixed
batch; never the detectors.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from optiscope import Experiment

from . import Case
from .final2 import _exp, _mlp, _PoolCNN
from .final5 import _warm
from .final6 import _accumulated, _clipped, _stepped
from .mlp_cnn import _ResNet, _spikes
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer, _set_radius_

FINAL8 = "final8"
CLIFFS = "cliffs"
ILL = "ill-conditioning"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _gen(base: int, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(120000 + base + seed)


def clusters(
    n: int, d: int, weights: tuple[float, ...], hard: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters (std 1) around ``len(weights)`` centres at distance 4 from the
    origin in ``d`` dimensions, class shares ``weights``; a fraction ``hard`` of the samples
    sits half way between two centres. Every label is the nearest centre's: clean, the hard
    ones near the boundary."""
    gen = _gen(0, seed)
    k = len(weights)
    centres = torch.randn(k, d, generator=gen)
    centres = 4.0 * centres / centres.norm(dim=1, keepdim=True)
    owner = torch.multinomial(torch.tensor(weights), n, replacement=True, generator=gen)
    x = centres[owner] + torch.randn(n, d, generator=gen)
    few = torch.rand(n, generator=gen) < hard
    other = (owner + torch.randint(1, k, (n,), generator=gen)) % k
    mid = 0.5 * (centres[owner] + centres[other]) + 0.3 * torch.randn(n, d, generator=gen)
    x = torch.where(few[:, None], mid, x)
    return x, torch.cdist(x, centres).argmin(1)


def shape_images(
    n: int, shares: tuple[float, float, float], pixel: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1x8x8 images of one 3x3 shape (0: a plus, 1: an x, 2: a ring) at a random place, class
    shares ``shares``, on Gaussian pixel noise of std ``pixel``; also the shape's centre row
    scaled to [-1, 1] (a regression target)."""
    gen = _gen(1000, seed)
    kernels = torch.tensor(
        [
            [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
            [[1, 0, 1], [0, 1, 0], [1, 0, 1]],
            [[1, 1, 1], [1, 0, 1], [1, 1, 1]],
        ],
        dtype=torch.float32,
    )
    y = torch.multinomial(torch.tensor(shares), n, replacement=True, generator=gen)
    rows = torch.randint(0, 6, (n,), generator=gen)
    cols = torch.randint(0, 6, (n,), generator=gen)
    img = pixel * torch.randn(n, 1, 8, 8, generator=gen)
    for i in range(n):
        r, c = int(rows[i]), int(cols[i])
        img[i, 0, r : r + 3, c : c + 3] += kernels[y[i]]
    return img, y, (rows.float() - 2.5) / 2.5


def zipf_tokens(
    n: int, length: int, vocab: int, task: str, seed: int, noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences drawn from a Zipf law (token r has weight 1/(r + 1): the last ones are
    rare). ``task``: ``"perm"``, each label a fixed random permutation of the token there;
    ``"prev"``, each label the token before it (the first labels itself). A fraction ``noise``
    of the labels is redrawn at random."""
    gen = _gen(2000, seed)
    weights = 1.0 / torch.arange(1, vocab + 1).float()
    x = torch.multinomial(weights, n * length, replacement=True, generator=gen).view(n, length)
    if task == "perm":
        y = torch.randperm(vocab, generator=gen)[x]
    else:
        y = x.roll(1, 1)
        y[:, 0] = x[:, 0]
    if noise:
        flip = torch.rand(y.shape, generator=gen) < noise
        y = torch.where(flip, torch.randint(0, vocab, y.shape, generator=gen), y)
    return x, y


def loud_mean_seq(n: int, length: int, loud: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences, a fraction ``loud`` of them at twice the amplitude (hard but
    clean); the target is the mean of the steps times sqrt(length)."""
    gen = _gen(3000, seed)
    x = torch.randn(n, length, 1, generator=gen)
    amp = torch.where(torch.rand(n, generator=gen) < loud, 2.0, 1.0)
    x = x * amp[:, None, None]
    return x, x.mean(1) * math.sqrt(length)


def skewed_sign_seq(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences labelled 1 when their sum over sqrt(length) exceeds 0.67 (a
    quarter of them), else 0, kept only outside a margin of 0.2 around the threshold: clean,
    imbalanced, the hard ones near the margin."""
    gen = _gen(4000, seed)
    x = torch.randn(2 * n, length, 1, generator=gen)
    s = x.sum((1, 2)) / math.sqrt(length)
    x, s = x[(s - 0.67).abs() > 0.2][:n], s[(s - 0.67).abs() > 0.2][:n]
    return x, (s > 0.67).long()


def last_pair_seq(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences; the target is the sum of the last two steps over sqrt(2)."""
    gen = _gen(5000, seed)
    x = torch.randn(n, length, 1, generator=gen)
    return x, x[:, -2:, 0].sum(1, keepdim=True) / math.sqrt(2)


def first_three_seq(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences; the target is the sum of the first three steps over sqrt(3),
    which must be carried to the end."""
    gen = _gen(9000, seed)
    x = torch.randn(n, length, 1, generator=gen)
    return x, x[:, :3, 0].sum(1, keepdim=True) / math.sqrt(3)


def tanh_teacher(
    n: int, d: int, scales: tuple[float, float], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs in ``d`` dimensions, feature j scaled by a factor from 10**scales[0]
    down to 10**scales[1] (in a random order), and a random 8-unit tanh teacher of the
    unscaled inputs, targets standardized: the sharp directions are the large features."""
    gen = _gen(6000, seed)
    z = torch.randn(n, d, generator=gen)
    w = torch.randn(d, 8, generator=gen) / math.sqrt(d)
    a = torch.randn(8, 1, generator=gen)
    y = torch.tanh(2 * z @ w) @ a
    scale = torch.logspace(scales[0], scales[1], d)[torch.randperm(d, generator=gen)]
    return z * scale, (y - y.mean()) / y.std()


def with_outliers(
    y: torch.Tensor, k: int, factor: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``y`` with ``k`` of its targets (drawn by ``seed``) times ``factor`` plus ``factor``
    (records in the wrong units), and the mask of the clean ones."""
    bad = torch.randperm(len(y), generator=_gen(7000, seed))[:k]
    out = y.clone()
    out[bad] = out[bad] * factor + factor
    clean = torch.ones(len(y), dtype=torch.bool)
    clean[bad] = False
    return out, clean


def scaled_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The shape images with their right half 8x brighter (badly scaled inputs), and one-hot
    targets on +-1 for the MSE."""
    x, y, _ = shape_images(n, (0.34, 0.33, 0.33), 0.2, 100 + seed)
    x = x.clone()
    x[..., 4:] *= 8.0
    return x, 2 * nn.functional.one_hot(y, 3).float() - 1


def scaled_sign_seq(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-channel Gaussian sequences, the first channel 20x the second (badly scaled); the
    target is the mean of both channels' unscaled values, standardized."""
    gen = _gen(8000, seed)
    z = torch.randn(n, length, 2, generator=gen)
    y = z.mean(1).sum(1, keepdim=True)
    return z * torch.tensor([20.0, 1.0]), y / y.std()


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def _warmup_to(exp: Experiment, over: int) -> Experiment:
    """``exp`` with its learning rate rising linearly from lr/over to lr over ``over`` steps,
    then held."""
    sched = torch.optim.lr_scheduler.LambdaLR(exp.optimizer, lambda s: min(1.0, (s + 1) / over))
    return _with(exp, sched, {"warmup_to_peak": over})


def _spiked(exp: Experiment, at: tuple[int, ...], factor: float) -> Experiment:
    """``exp`` with its learning rate times ``factor`` on the steps ``at``."""
    sched = torch.optim.lr_scheduler.LambdaLR(exp.optimizer, _spikes(at, factor))
    return _with(exp, sched, {"spike_steps": list(at), "spike_factor": factor})


def _with(exp: Experiment, sched: object, config: dict) -> Experiment:
    return dataclasses.replace(exp, scheduler=sched, config={**exp.config, **config})


# --------------------------------------------------------------------------------------------
# Healthy controls on small batches
# --------------------------------------------------------------------------------------------


def ctl_mlp_momentum_b4(
    seed: int, batch: int = 4, lr: float = 0.02, steps: int = 400
) -> Experiment:
    """Control: a ReLU MLP on imbalanced Gaussian clusters with a few hard samples near the
    boundary, heavy ball on batches of 4 with a cosine decay to zero."""
    x, y = clusters(512, 10, (0.7, 0.2, 0.1), 0.04, 0)
    torch.manual_seed(seed)
    model = _mlp([10, 64, 64, 3])
    return _exp(
        seed,
        "final8-control-mlp-momentum-batch4-imbalanced-clusters-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="ReLU MLP 10-64-64-3 on 512 points of 3 Gaussian clusters (shares 70/20/10, "
        f"4% hard near a boundary), clean, momentum 0.9 lr {lr} batch {batch}, cosine to 0",
        config={"family": "mlp", "hard": 0.04},
        cosine=True,
    )


def ctl_mlp_sgd_b1(seed: int, batch: int = 1, lr: float = 0.03, steps: int = 600) -> Experiment:
    """Control: a tanh MLP on Gaussian clusters with hard samples near the boundaries, SGD on
    single samples at a small learning rate with a cosine decay to zero."""
    x, y = clusters(384, 6, (0.25, 0.25, 0.25, 0.25), 0.05, 1)
    torch.manual_seed(seed)
    model = _mlp([6, 32, 32, 4], nn.Tanh)
    return _exp(
        seed,
        "final8-control-mlp-sgd-batch1-hard-boundary-clusters-lr-limited-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="tanh MLP 6-32-32-4 on 384 points of 4 Gaussian clusters (5% hard near a "
        f"boundary), clean, SGD lr {lr} batch {batch}, cosine to 0",
        config={"family": "mlp", "hard": 0.05},
        cosine=True,
    )


def ctl_mlp_sgd_b16(seed: int, batch: int = 16, lr: float = 0.1, steps: int = 400) -> Experiment:
    """Control: a ReLU MLP on Gaussian clusters with a rare class, plain SGD on batches of 16,
    the learning rate cut to a tenth for the last quarter."""
    x, y = clusters(512, 8, (0.45, 0.45, 0.1), 0.03, 2)
    torch.manual_seed(seed)
    model = _mlp([8, 64, 3])
    exp = _exp(
        seed,
        "final8-control-mlp-sgd-batch16-rare-class-step-lr",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="ReLU MLP 8-64-3 on 512 points of 3 Gaussian clusters (shares 45/45/10, 3% "
        f"hard), clean, SGD lr {lr} batch {batch}, x0.1 from step {3 * steps // 4}",
        config={"family": "mlp", "hard": 0.03},
    )
    return _stepped(exp, 3 * steps // 4, 0.1)


def ctl_cnn_momentum_b8(
    seed: int, batch: int = 8, lr: float = 0.03, steps: int = 400
) -> Experiment:
    """Control: a batch-norm ResNet naming a 3x3 shape with one rare class, heavy ball on
    batches of 8, the learning rate cut to a tenth for the last quarter."""
    x, y, _ = shape_images(384, (0.45, 0.45, 0.1), 0.2, 0)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 3)
    exp = _exp(
        seed,
        "final8-control-cnn-momentum-batch8-bn-rare-shape-step-lr",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming a 3x3 shape (plus, x, ring; "
        f"shares 45/45/10) in 384 images (pixel noise 0.2), momentum 0.9 lr {lr} batch {batch}, "
        f"x0.1 from step {3 * steps // 4}",
        config={"family": "cnn", "pixel_noise": 0.2},
    )
    return _stepped(exp, 3 * steps // 4, 0.1)


def ctl_cnn_adamw_b16(seed: int, batch: int = 16, lr: float = 1e-2, steps: int = 400) -> Experiment:
    """Control: a batch-norm ResNet naming a 3x3 shape, AdamW on batches of 16, warmup then a
    cosine, gradients clipped at norm 1."""
    x, y, _ = shape_images(384, (0.34, 0.33, 0.33), 0.15, 1)
    torch.manual_seed(seed)
    model = _ResNet(8, 2, 3)
    exp = _exp(
        seed,
        "final8-control-cnn-adamw-batch16-bn-shapes-warmup-cosine-clipped",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 2 blocks) naming a 3x3 shape in 384 images "
        f"(pixel noise 0.15), AdamW (wd 1e-2) lr {lr} batch {batch}, warmup 30 then cosine to 0, "
        "clipped at norm 1",
        config={"family": "cnn", "pixel_noise": 0.15},
    )
    return _clipped(_warm(exp, 30), 1.0)


def ctl_tfm_adam_b8(seed: int, batch: int = 8, lr: float = 3e-3, steps: int = 400) -> Experiment:
    """Control: a causal transformer naming the previous token of Zipf-distributed sequences
    (rare tokens), Adam on batches of 8, warmup then a cosine."""
    x, y = zipf_tokens(384, 8, 12, "prev", 0)
    torch.manual_seed(seed)
    model = TinyTransformer(12, 8, 32, 2, 1, causal=True)
    exp = _exp(
        seed,
        "final8-control-transformer-adam-batch8-zipf-previous-token-warmup-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="causal 1-layer transformer (d 32) naming the previous token of 8 Zipf "
        f"tokens of 12, clean, Adam lr {lr} batch {batch}, warmup 30 then cosine to 0",
        config={"family": "transformer", "vocab": 12},
    )
    return _warm(exp, 30)


def ctl_tfm_momentum_b4(
    seed: int, batch: int = 4, lr: float = 0.05, steps: int = 400
) -> Experiment:
    """Control: a transformer mapping Zipf-distributed tokens through a permutation (rare
    tokens seen seldom), heavy ball on batches of 4, clipped at norm 1, cosine to zero."""
    x, y = zipf_tokens(384, 8, 16, "perm", 1)
    torch.manual_seed(seed)
    model = TinyTransformer(16, 8, 24, 2, 1)
    exp = _exp(
        seed,
        "final8-control-transformer-momentum-batch4-zipf-lookup-clipped-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 24) mapping each of 8 Zipf tokens through a "
        f"permutation of 16, clean, momentum 0.9 lr {lr} batch {batch}, clipped at norm 1, "
        "cosine to 0",
        config={"family": "transformer", "vocab": 16},
        cosine=True,
    )
    return _clipped(exp, 1.0)


def ctl_rnn_momentum_b4(
    seed: int, batch: int = 4, lr: float = 0.02, steps: int = 400
) -> Experiment:
    """Control: a GRU regressing the scaled mean of a sequence, a few sequences twice as loud,
    heavy ball on batches of 4 with a cosine decay to zero."""
    x, y = loud_mean_seq(384, 10, 0.05, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 24, 1)
    return _exp(
        seed,
        "final8-control-rnn-gru-momentum-batch4-loud-sequences-cosine",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="GRU (24) regressing sqrt(10) x the mean of 10 Gaussian steps (5% of the "
        f"sequences twice as loud), clean, momentum 0.9 lr {lr} batch {batch}, cosine to 0",
        config={"family": "rnn", "cell": "gru", "loud": 0.05},
        cosine=True,
    )


def ctl_rnn_adamw_b2x4(seed: int, batch: int = 2, lr: float = 1e-2, steps: int = 300) -> Experiment:
    """Control: an LSTM telling whether a sequence's sum passes a threshold (a quarter do),
    AdamW on micro-batches of 2 accumulated 4 per update, cosine to zero."""
    x, y = skewed_sign_seq(384, 8, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("lstm", 1, 24, 2)
    exp = _exp(
        seed,
        "final8-control-rnn-lstm-adamw-batch2x4-accumulated-skewed-sign-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="LSTM (24) telling whether the sum of 8 Gaussian steps over sqrt(8) passes "
        "0.67 (25% do; none within 0.2 of it), clean, AdamW (wd 1e-2) "
        f"lr {lr} on micro-batches of {batch} accumulated 4 per update, cosine to 0",
        config={"family": "rnn", "cell": "lstm"},
        cosine=True,
    )
    return _accumulated(exp, 4)


def ctl_rnn_sgd_b8(seed: int, batch: int = 8, lr: float = 0.1, steps: int = 400) -> Experiment:
    """Control: a GRU regressing the sum of its last two steps, plain SGD on batches of 8."""
    x, y = last_pair_seq(384, 8, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 16, 1)
    return _exp(
        seed,
        "final8-control-rnn-gru-sgd-batch8-last-pair-sum",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="GRU (16) regressing the sum of the last 2 of 8 Gaussian steps over "
        f"sqrt(2), clean, SGD lr {lr} batch {batch}",
        config={"family": "rnn", "cell": "gru"},
    )


# --------------------------------------------------------------------------------------------
# Cliffs
# --------------------------------------------------------------------------------------------


def cliffs_mlp_momentum_spike(
    seed: int, batch: int = 64, lr: float = 0.02, steps: int = 300
) -> Experiment:
    """Cliffs: heavy ball at a sound rate, except three consecutive steps at 80x it."""
    x, y = clusters(1024, 12, (0.25, 0.25, 0.25, 0.25), 0.05, 10)
    torch.manual_seed(seed)
    model = _mlp([12, 64, 64, 4])
    exp = _exp(
        seed,
        "final8-cliffs-mlp-momentum-batch64-lr-spike-3-steps",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="ReLU MLP 12-64-64-4 on 1024 points of 4 Gaussian clusters, momentum 0.9 "
        f"lr {lr} batch {batch}, x80 on steps 150-152",
        config={"family": "mlp"},
    )
    return _spiked(exp, (150, 151, 152), 80.0)


def cliffs_mlp_momentum_b2_outliers(
    seed: int, batch: int = 2, lr: float = 0.005, steps: int = 400
) -> Experiment:
    """Cliffs from data at a small batch: a teacher regression with 3 of 256 targets in the
    wrong units (x40 + 40); heavy ball on pairs with no clipping takes the full step each time
    a pair holds one."""
    x, y = tanh_teacher(256, 8, (0.0, 0.0), 1)
    bad, clean = with_outliers(y, 3, 40.0, 0)
    torch.manual_seed(seed)
    model = _mlp([8, 64, 64, 1])
    exp = _exp(
        seed,
        "final8-cliffs-mlp-momentum-batch2-outlier-targets",
        model,
        nn.MSELoss(),
        x,
        bad,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="ReLU MLP 8-64-64-1 regressing a tanh teacher, 3 of 256 targets x40 + 40, "
        f"momentum 0.9 lr {lr} batch {batch}, no clipping (evaluated on the clean records)",
        config={"family": "mlp", "outliers": 3, "factor": 40.0},
    )
    return dataclasses.replace(exp, eval_data=(x[clean], y[clean]))


def cliffs_cnn_sgd_outliers(
    seed: int, batch: int = 32, lr: float = 0.02, steps: int = 300
) -> Experiment:
    """Cliffs from data: a batch-norm ResNet regresses where a shape sits; 2 of 512 targets
    are in the wrong units (x50 + 50), and plain SGD takes the full step on their batches."""
    x, _, rows = shape_images(512, (0.34, 0.33, 0.33), 0.2, 2)
    y, clean = with_outliers(rows[:, None], 2, 50.0, 1)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 1)
    exp = _exp(
        seed,
        "final8-cliffs-cnn-sgd-batch32-bn-outlier-targets",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) regressing the row of a 3x3 shape "
        f"in 512 images, 2 targets x50 + 50, SGD lr {lr} batch {batch}, no clipping "
        "(evaluated on the clean records)",
        config={"family": "cnn", "outliers": 2, "factor": 50.0},
    )
    return dataclasses.replace(exp, eval_data=(x[clean], y[clean]))


def cliffs_rnn_sgd_b4_radius(
    seed: int, batch: int = 4, lr: float = 0.05, steps: int = 300
) -> Experiment:
    """Cliffs in a recurrent net: a vanilla tanh RNN whose recurrent matrix is 2.5 x an
    orthogonal one (spectral radius 2.5), carrying its first steps to the end of 20, plain SGD
    on batches of 4, no clipping."""
    x, y = first_three_seq(512, 20, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("rnn", 1, 32, 1)
    _set_radius_(model.rnn, 2.5, torch.Generator().manual_seed(120000 + seed))
    return _exp(
        seed,
        "final8-cliffs-rnn-sgd-batch4-spectral-radius-2.5",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="tanh RNN (32, recurrent spectral radius 2.5) regressing the sum of the "
        f"first 3 of 20 Gaussian steps, SGD lr {lr} batch {batch}, no clipping",
        config={"family": "rnn", "cell": "rnn", "radius": 2.5},
    )


def cliffs_tfm_adam_warmup_explodes(
    seed: int, batch: int = 64, lr: float = 0.3, steps: int = 300
) -> Experiment:
    """Cliffs: a transformer under Adam warmed up linearly to a peak rate far too high: the run
    learns while the rate is sound and explodes mid-run as it passes the stable range."""
    x, y = zipf_tokens(768, 8, 16, "prev", 2, noise=0.1)
    torch.manual_seed(seed)
    model = TinyTransformer(16, 8, 32, 2, 1, causal=True)
    exp = _exp(
        seed,
        "final8-cliffs-transformer-adam-batch64-warmup-to-explosion",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="causal 1-layer transformer (d 32) naming the previous token of 8 Zipf "
        f"tokens of 16 (10% of the labels redrawn), Adam warmed up linearly to lr {lr} over "
        f"200 steps, batch {batch}",
        config={"family": "transformer", "vocab": 16, "label_noise": 0.1},
    )
    return _warmup_to(exp, 200)


# --------------------------------------------------------------------------------------------
# Ill-conditioning
# --------------------------------------------------------------------------------------------


def ill_mlp_momentum_scaled(
    seed: int, batch: int = 128, lr: float = 0.08, steps: int = 300
) -> Experiment:
    """Ill-conditioning: a tanh MLP regressing a teacher on features scaled over 3 decades,
    heavy ball past its stability threshold 2(1 + beta)/lambda_max, clipped at norm 0.5 so the
    sharp direction bounces instead of diverging."""
    x, y = tanh_teacher(512, 16, (1.0, -2.0), 2)
    torch.manual_seed(seed)
    model = _mlp([16, 32, 1], nn.Tanh)
    exp = _exp(
        seed,
        "final8-ill-conditioning-mlp-momentum-batch128-scaled-features-clipped",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="tanh MLP 16-32-1 regressing a tanh teacher on 512 Gaussian inputs with "
        f"features scaled from 10 to 0.01, momentum 0.9 lr {lr} batch {batch}, clipped at norm "
        "0.5",
        config={"family": "mlp", "feature_decades": 3},
    )
    return _clipped(exp, 0.5)


def ill_cnn_sgd_scaled(
    seed: int, batch: int = 256, lr: float = 0.05, steps: int = 300
) -> Experiment:
    """Ill-conditioning in a CNN: a plain conv net (no normalization) on shape images whose
    right half is 8x brighter, MSE on +-1 targets, full-batch SGD past 2/lambda_max."""
    x, y = scaled_images(256, 0)
    torch.manual_seed(seed)
    model = _PoolCNN(8, 3)
    return _exp(
        seed,
        "final8-ill-conditioning-cnn-sgd-full-batch-scaled-half-image",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="conv-pool-conv CNN (8 channels, no normalization) naming a 3x3 shape in "
        f"256 images whose right half is 8x brighter, MSE on +-1, SGD lr {lr} batch {batch}",
        config={"family": "cnn", "half_scale": 8.0},
    )


def ill_tfm_momentum_full(
    seed: int, batch: int = 256, lr: float = 1.0, steps: int = 300
) -> Experiment:
    """Ill-conditioning in a transformer: full-batch heavy ball past its stability threshold
    2(1 + beta)/lambda_max on a permutation lookup of Zipf tokens with 20% of the labels
    redrawn, clipped at norm 1 so the sharp direction bounces instead of diverging."""
    x, y = zipf_tokens(256, 8, 16, "perm", 3, noise=0.2)
    torch.manual_seed(seed)
    model = TinyTransformer(16, 8, 24, 2, 1)
    exp = _exp(
        seed,
        "final8-ill-conditioning-transformer-momentum-full-batch-past-threshold-clipped",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 24) mapping each of 8 Zipf tokens through a "
        f"permutation of 16 (20% of the labels redrawn), momentum 0.9 lr {lr} batch {batch} (the "
        "full data), clipped at norm 1",
        config={"family": "transformer", "vocab": 16, "label_noise": 0.2},
    )
    return _clipped(exp, 1.0)


def ill_rnn_sgd_scaled(
    seed: int, batch: int = 32, lr: float = 0.03, steps: int = 300
) -> Experiment:
    """Ill-conditioning in a GRU: two input channels, one 20x the other, plain SGD past
    2/lambda_max on batches of 32, clipped at norm 1 so the sharp direction bounces instead of
    diverging."""
    x, y = scaled_sign_seq(512, 8, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 2, 16, 1)
    exp = _exp(
        seed,
        "final8-ill-conditioning-rnn-gru-sgd-batch32-scaled-channels-clipped",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="GRU (16) regressing the mean of 8 steps of two channels, one 20x the "
        f"other, SGD lr {lr} batch {batch}, clipped at norm 1",
        config={"family": "rnn", "cell": "gru", "channel_scale": 20.0},
    )
    return _clipped(exp, 1.0)


CASES: list[Case] = [
    # ---- healthy controls on small batches
    Case(
        "final8-control-mlp-momentum-batch4-imbalanced-clusters-cosine",
        None,
        "mlp",
        "momentum+cosine",
        FINAL8,
        ctl_mlp_momentum_b4,
        0,
        "Healthy, converged: 3 clean Gaussian clusters in 10-D (shares 70/20/10, 4% of the "
        "points hard near a boundary), ReLU MLP, batches of 4, heavy ball 0.9 lr 0.02 with a "
        "cosine to 0: full-data loss 1.23 -> 0.031 (step 100) -> 0.020 (200) -> 0.0136 (300) "
        "-> 0.0131 at step 400; batches of 64 (same schedule and steps) reach 0.0133. The "
        "run's own minibatch losses over the last fifth: median 0.0003, max 0.16 (the hard "
        "points).",
    ),
    Case(
        "final8-control-mlp-sgd-batch1-hard-boundary-clusters-lr-limited-cosine",
        None,
        "mlp",
        "sgd+cosine",
        FINAL8,
        ctl_mlp_sgd_b1,
        0,
        "Healthy, lr-limited: 4 clean Gaussian clusters in 6-D (5% of the points hard near a "
        "boundary), tanh MLP, single samples, SGD lr 0.03 with a cosine to 0: full-data loss "
        "1.38 -> 0.212 (step 150) -> 0.127 (300) -> 0.099 (450) -> 0.095 at step 600; batches "
        "of 64 (same schedule and steps) 0.191, 0.112, 0.096, 0.094 (within 2% at the end). "
        "The run's own losses over the last fifth: median 0.033, max 0.60.",
    ),
    Case(
        "final8-control-mlp-sgd-batch16-rare-class-step-lr",
        None,
        "mlp",
        "sgd+step",
        FINAL8,
        ctl_mlp_sgd_b16,
        0,
        "Healthy, converged: 3 clean Gaussian clusters in 8-D with a rare class (shares "
        "45/45/10, 3% hard), ReLU MLP 8-64-3, batches of 16, SGD lr 0.1 cut to 0.01 at step "
        "300: full-data loss 1.14 -> 0.042 (step 100) -> 0.028 (200) -> 0.023 (300) -> 0.022 "
        "at step 400; batches of 64 (same schedule and steps) reach 0.022 too. Minibatch "
        "losses over the last fifth: median 0.013, max 0.091.",
    ),
    Case(
        "final8-control-cnn-momentum-batch8-bn-rare-shape-step-lr",
        None,
        "cnn",
        "momentum+step",
        FINAL8,
        ctl_cnn_momentum_b8,
        0,
        "Healthy, converged: 384 images of a 3x3 plus, x or ring (shares 45/45/10: a rare "
        "shape), pixel noise 0.2, batch-norm ResNet, batches of 8, heavy ball 0.9 lr 0.03 cut "
        "to 0.003 at step 300: full-data loss (batch norm on the full data's statistics) 1.06 "
        "-> 0.166 (step 100) -> 0.017 (200) -> 0.010 (300) -> 0.0034 at step 400; batches of "
        "64 (same schedule and steps) reach 0.0035. Minibatch losses over the last fifth: "
        "median 0.007, max 0.091.",
    ),
    Case(
        "final8-control-cnn-adamw-batch16-bn-shapes-warmup-cosine-clipped",
        None,
        "cnn",
        "adamw+warmup-cosine+clip",
        FINAL8,
        ctl_cnn_adamw_b16,
        0,
        "Healthy, converged: 384 images of a 3x3 shape (3 balanced classes, pixel noise "
        "0.15), batch-norm ResNet (2 blocks), batches of 16, AdamW 1e-2 (wd 1e-2), warmup 30 "
        "then a cosine to 0, clipped at norm 1: full-data loss 1.35 -> 0.015 (step 100) -> "
        "0.0031 (200) -> 0.0020 (300) -> 0.0019 at step 400 (0.14% of the start); batches of "
        "64 reach 0.0013 (both near zero).",
    ),
    Case(
        "final8-control-transformer-adam-batch8-zipf-previous-token-warmup-cosine",
        None,
        "transformer",
        "adam+warmup-cosine",
        FINAL8,
        ctl_tfm_adam_b8,
        0,
        "Healthy, converged: the previous token of sequences of 8 Zipf-distributed tokens of "
        "12 (clean; the last tokens rare), causal transformer, batches of 8, Adam 3e-3, warmup "
        "30 then a cosine to 0: full-data loss 2.58 -> 0.066 (step 100) -> 0.018 (200) -> "
        "0.012 (300) -> 0.011 at step 400 (0.4% of the start); batches of 64 reach 0.0068 "
        "(both near zero).",
    ),
    Case(
        "final8-control-transformer-momentum-batch4-zipf-lookup-clipped-cosine",
        None,
        "transformer",
        "momentum+cosine+clip",
        FINAL8,
        ctl_tfm_momentum_b4,
        0,
        "Healthy, converged: each of 8 Zipf-distributed tokens mapped through a permutation "
        "of 16 (clean; rare tokens seen seldom), transformer, batches of 4, heavy ball 0.9 lr "
        "0.05 with a cosine to 0, clipped at norm 1: full-data loss 3.02 -> 0.012 (step 100) "
        "-> 0.0039 (200) -> 0.0031 (300) -> 0.0030 at step 400; batches of 64 (same schedule "
        "and steps) reach 0.0030 too.",
    ),
    Case(
        "final8-control-rnn-gru-momentum-batch4-loud-sequences-cosine",
        None,
        "rnn",
        "momentum+cosine",
        FINAL8,
        ctl_rnn_momentum_b4,
        0,
        "Healthy, converged: sqrt(10) x the mean of 10 Gaussian steps (clean; 5% of the "
        "sequences twice as loud), GRU, batches of 4, heavy ball 0.9 lr 0.02 with a cosine to "
        "0: full-data loss 1.12 -> 0.100 (step 100) -> 0.019 (200) -> 0.011 (300) -> 0.011 at "
        "step 400 (under 1% of the start); batches of 64 reach 0.0059 (both near zero). "
        "Minibatch losses over the last fifth: median 0.0028, max 0.51 (a loud sequence).",
    ),
    Case(
        "final8-control-rnn-lstm-adamw-batch2x4-accumulated-skewed-sign-cosine",
        None,
        "rnn",
        "adamw+cosine",
        FINAL8,
        ctl_rnn_adamw_b2x4,
        0,
        "Healthy, converged: whether the sum of 8 Gaussian steps over sqrt(8) passes 0.67 "
        "(clean; 25% positive, none within 0.2 of the threshold), LSTM, micro-batches of 2 "
        "accumulated 4 per update (8), AdamW 1e-2 (wd 1e-2) with a cosine to 0: full-data "
        "loss 0.733 -> 0.097 (step 75) -> 0.032 (150) -> 0.019 (225) -> 0.016 at step 300 (2% "
        "of the start); batches of 64 (accumulated 4, same schedule and steps) reach 0.0012 "
        "(both near zero). Minibatch losses over the last fifth: median 0.0098, max 0.066.",
    ),
    Case(
        "final8-control-rnn-gru-sgd-batch8-last-pair-sum",
        None,
        "rnn",
        "sgd",
        FINAL8,
        ctl_rnn_sgd_b8,
        0,
        "Healthy, converged: the sum of the last 2 of 8 Gaussian steps over sqrt(2) (clean), "
        "GRU (16), batches of 8, SGD lr 0.1: full-data loss 1.19 -> 0.184 (step 100) -> 0.146 "
        "(200) -> 0.049 (300) -> 0.0128 at step 400; batches of 64 (same lr and steps) 0.153, "
        "0.108, 0.036, 0.0108 (the same path, 0.002 apart at the end).",
    ),
    # ---- cliffs
    Case(
        "final8-cliffs-mlp-momentum-batch64-lr-spike-3-steps",
        CLIFFS,
        "mlp",
        "momentum+spike",
        FINAL8,
        cliffs_mlp_momentum_spike,
        0,
        "Heavy ball 0.9 lr 0.02 on 4 Gaussian clusters, x80 on the updates of steps 150-152 "
        "(steps from 0); hand check: raw gradient norm median 0.19, then 14.6x its running "
        "median (of the 50 steps before) at step 151, 32x (4.95) at 152 and 11-17x through "
        "step 157; full-data loss 0.023 at step 150 -> 0.44 -> 4.46 -> 2.0 -> 1.9, re-descending "
        "to 0.36 by step 180 and 0.023 at step 300.",
    ),
    Case(
        "final8-cliffs-mlp-momentum-batch2-outlier-targets",
        CLIFFS,
        "mlp",
        "momentum",
        FINAL8,
        cliffs_mlp_momentum_b2_outliers,
        0,
        "A tanh teacher in 8-D with 3 of 256 targets x40 + 40 (wrong units), pairs, heavy "
        "ball 0.9 lr 0.005, no clipping; hand check: raw gradient norm median 5.3, 88x its "
        "running median (180) at step 75, 74x at 101, 99x at 203, 40 steps over 10x in all "
        "(max 482 at 269); loss on the clean records 0.21 at step 75 -> 1.9 -> 5.7 -> 8.0 "
        "(step 78), still 1.1-2.7 thirty steps on, and 0.48 (step 200) -> 4.9 (240); 1.33 at "
        "the end against 0.27 by step 40.",
    ),
    Case(
        "final8-cliffs-cnn-sgd-batch32-bn-outlier-targets",
        CLIFFS,
        "cnn",
        "sgd",
        FINAL8,
        cliffs_cnn_sgd_outliers,
        0,
        "A batch-norm ResNet regressing the row of a 3x3 shape, 2 of 512 targets x50 + 50, "
        "batches of 32, SGD lr 0.02, no clipping; hand check: raw gradient norm 14-35x its "
        "running median once an epoch (steps 22, 38, 54, ..., 18 steps in all; max 78 at step "
        "214 against a median of 2.1); loss on the clean records 0.197 at step 70 -> 0.80 -> "
        "0.82, back to 0.23 ten steps on; it never settles: 0.21 (step 150) -> 0.90 at step "
        "300.",
    ),
    Case(
        "final8-cliffs-rnn-sgd-batch4-spectral-radius-2.5",
        CLIFFS,
        "rnn",
        "sgd",
        FINAL8,
        cliffs_rnn_sgd_b4_radius,
        0,
        "A tanh RNN with recurrent spectral radius 2.5 carrying the sum of its first 3 of 20 "
        "steps, batches of 4, SGD lr 0.05, no clipping; hand check: raw gradient norm 21x its "
        "running median at step 94, 50x (1.2e3) at 115, 1031x at 118, 464x at 171 (18 steps "
        "over 10x; max 7.4e4 at 275); full-data loss 1.39 at the start, 3.2 at step 110 -> 30 "
        "(115) -> 130 (120), back to 2.9 by step 180 and 2.5 at the end, above the start.",
    ),
    Case(
        "final8-cliffs-transformer-adam-batch64-warmup-to-explosion",
        CLIFFS,
        "transformer",
        "adam+warmup",
        FINAL8,
        cliffs_tfm_adam_warmup_explodes,
        0,
        "A causal transformer naming the previous Zipf token (10% of the labels redrawn), "
        "batches of 64, Adam warmed up linearly to lr 0.3 over 200 steps (then held); hand "
        "check: full-data loss 2.69 -> 0.58 (step 60, lr 0.09) while the rate is sound, then "
        "a raw gradient norm 49x its running median (13.1) at step 89 and 11x at 99 and 117; "
        "the loss climbs 0.96 (step 90) -> 1.77 (120) -> 2.62 (150, chance ln 16 = 2.77) -> "
        "7.6 (240) and 5.6 at step 300.",
    ),
    # ---- ill-conditioning
    Case(
        "final8-ill-conditioning-mlp-momentum-batch128-scaled-features-clipped",
        ILL,
        "mlp",
        "momentum+clip",
        FINAL8,
        ill_mlp_momentum_scaled,
        0,
        "A tanh teacher regressed on 16 features scaled from 10 to 0.01, tanh MLP, batches of "
        "128, heavy ball 0.9 lr 0.08 (threshold (2+2beta)/lr = 47.5), clipped at 0.5; hand "
        "check (power iteration on full-data Hessian-vector products): lambda_max 22.3 at the "
        "start (0.47x), 138 at steps 100 and 200 (2.9x), 84 at step 300 (1.8x); 49% of the "
        "updates raise the loss of a fixed batch of 256; full-data loss 1.17 -> 0.28 (step "
        "75) -> 0.18 (150) -> 0.22 (225) -> 0.26 at step 300, no NaN.",
    ),
    Case(
        "final8-ill-conditioning-cnn-sgd-full-batch-scaled-half-image",
        ILL,
        "cnn",
        "sgd",
        FINAL8,
        ill_cnn_sgd_scaled,
        0,
        "Shape images with their right half 8x brighter, a plain conv-pool-conv CNN (no "
        "normalization), MSE on +-1, full-batch SGD lr 0.05 (threshold 2/lr = 40); hand check: "
        "lambda_max 24.7 at the start (0.62x), 54 at step 100 (1.35x), 57 at 200 (1.43x), 55 "
        "at 300 (1.36x); 35% of the updates raise the loss (of the full data's first 256, the "
        "whole batch); loss 1.15 -> 0.63 (step 75) -> 0.45 (150) -> 0.47 (225) -> 0.31 at step "
        "300, no NaN.",
    ),
    Case(
        "final8-ill-conditioning-transformer-momentum-full-batch-past-threshold-clipped",
        ILL,
        "transformer",
        "momentum+clip",
        FINAL8,
        ill_tfm_momentum_full,
        0,
        "A permutation lookup of Zipf tokens (20% of the labels redrawn), transformer, the "
        "full 256 sequences a step, heavy ball 0.9 lr 1.0 (threshold (2+2beta)/lr = 3.8), "
        "clipped at 1; hand check: the largest-magnitude Hessian eigenvalue is negative at "
        "the start (-9.7), then lambda_max 4.0 at step 100 (1.06x), 3.9 at 200 (1.03x), 6.9 "
        "at 300 (1.8x): at and past the threshold; 29% of the updates raise the loss; loss "
        "2.87 -> 0.92 (step 75) -> 0.69 (150) -> 0.69 (225) -> 0.28 at step 300, no NaN.",
    ),
    Case(
        "final8-ill-conditioning-rnn-gru-sgd-batch32-scaled-channels-clipped",
        ILL,
        "rnn",
        "sgd+clip",
        FINAL8,
        ill_rnn_sgd_scaled,
        0,
        "A GRU regressing the mean of two input channels, one 20x the other, batches of 32, "
        "SGD lr 0.03 (threshold 2/lr = 66.7), clipped at 1; hand check: lambda_max 28.9 at "
        "the start (0.43x), 153 at step 100 (2.3x), 429 at 200 (6.4x), 398 at 300 (6.0x); 45% "
        "of the updates raise the loss of a fixed batch of 256; full-data loss 0.93 -> 0.62 "
        "(step 75) -> 0.45 (150) -> 0.46 (225) -> 0.26 at step 300, no NaN.",
    ),
]
