"""The tenth held-out zoo split (``"final9"``): cliffs, ill-conditioning, and small-batch
healthy controls.

Written after final8 had been seen, with new constructions. The cliffs cases (Deep Learning
sec. 8.2.4) are planted by a few records with extreme input values, a tanh RNN with recurrent
spectral radius 2 on sequences of 40 steps, heavy ball 0.99 at a borderline rate, a warmup
that overshoots to a high rate for a handful of steps, and a Gaussian likelihood whose
learned variance collapses so that its log-density turns steep; two of them train on
batches of 4 and 8, the rest on 32 or more, none clipped. The ill-conditioning cases (sec.
8.2.1) take steps too long for the curvature: a deep linear chain under full-batch heavy
ball on badly scaled inputs, a CNN without normalization under full-batch heavy ball on
inputs 4x too bright, a transformer with an embedding (and its tied output) 6x too large,
and a GRU whose read-out is 10x too large, each at or past the stability threshold of the
top Hessian eigenvalue (2/lr, (2 + 2 beta)/lr with momentum beta), so that a step along the
sharp direction raises the loss while the run still crawls down the flat ones; batches of 16
to the full data. The controls train on clean data with batches of 1 to 16
(one by accumulating micro-batches), where the small batch is fine: each reaches, within a
small margin, what the same model, optimizer and schedule reach on batches of 64 in the same
number of steps. Near convergence their minibatch losses are heavy-tailed: points near a
shell's boundary, hard records, faint bars, rare tokens, a rare class or loud sequences stay
above the rest.

Data: scikit-learn's bundled breast-cancer table (one control, at batch 1), and points on
radial shells, bar images, geometric-law tokens, teachers and Gaussian scalar sequences, each
from a fixed seed of its own (140000 and up). Every model is built inside
``build(seed)`` after ``torch.manual_seed(seed)``. Each builder takes ``batch`` so that the
large-batch reference of a control's hand check is the same run with ``batch=64``. ``why``
gives the numbers of the hand check with plain training: the full-data loss along the way
(batch norm on the full data's statistics); for cliffs the raw gradient norm against its
running median (of the 50 steps before) and the loss around the spike; for ill-conditioning
the top Hessian eigenvalue (power iteration on Hessian-vector products by double backward on
the full data or a fixed batch of 256) against the optimizer's threshold and the share of
updates that raised the loss of that batch; never the detectors.
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
from .final8 import _with
from .final_mlp_cnn import breast_cancer
from .mlp_cnn import _ResNet
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer, _set_radius_

FINAL9 = "final9"
CLIFFS = "cliffs"
ILL = "ill-conditioning"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _gen(base: int, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(140000 + base + seed)


def shells(
    n: int, d: int, shares: tuple[float, ...], hard: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in ``d`` dimensions in uniform directions at a radius near 1, 2, 3, ... (one
    shell per class, class shares ``shares``, radius std 0.12, kept inside the class's band
    0.5 wide either side); a fraction ``hard`` sits 0.05 to 0.15 inside a band's edge. The
    label is the band of the radius: clean, the hard ones near a boundary."""
    gen = _gen(0, seed)
    owner = torch.multinomial(torch.tensor(shares), n, replacement=True, generator=gen)
    centre = owner.float() + 1.0
    r = centre + (0.12 * torch.randn(n, generator=gen)).clamp(-0.35, 0.35)
    side = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    side = torch.where(owner == 0, 1.0, side)  # the inner shell has no edge below
    edge = centre + side * (0.5 - 0.05 - 0.1 * torch.rand(n, generator=gen))
    r = torch.where(torch.rand(n, generator=gen) < hard, edge, r)
    u = torch.randn(n, d, generator=gen)
    x = u / u.norm(dim=1, keepdim=True) * r[:, None]
    return x, owner


def bar_images(
    n: int, shares: tuple[float, ...], pixel: float, faint: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 images of one bar of 4 pixels (0: horizontal, 1: vertical, 2: diagonal, 3:
    anti-diagonal) at a random place, class shares ``shares``, on Gaussian pixel noise of std
    ``pixel``; a fraction ``faint`` of the bars at 0.4 contrast (hard but clean)."""
    gen = _gen(1000, seed)
    steps = ((0, 1), (1, 0), (1, 1), (1, -1))
    y = torch.multinomial(torch.tensor(shares), n, replacement=True, generator=gen)
    rows = torch.randint(0, 5, (n,), generator=gen)
    cols = torch.randint(0, 5, (n,), generator=gen)
    amp = torch.where(torch.rand(n, generator=gen) < faint, 0.4, 1.0)
    img = pixel * torch.randn(n, 1, 8, 8, generator=gen)
    for i in range(n):
        dr, dc = steps[int(y[i])]
        r, c = int(rows[i]), int(cols[i]) + (3 if dc < 0 else 0)
        for k in range(4):
            img[i, 0, r + k * dr, c + k * dc] += amp[i]
    return img, y


def geometric_tokens(
    n: int, length: int, vocab: int, task: str, seed: int, noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences drawn from a geometric law (token r has weight 0.8**r: the last ones
    are rare). ``task``: ``"shift"``, each label the token plus its position, mod ``vocab``;
    ``"max2"``, each label the larger of the token and the one before it (the first labels
    itself). A fraction ``noise`` of the labels is redrawn at random."""
    gen = _gen(2000, seed)
    weights = 0.8 ** torch.arange(vocab).float()
    x = torch.multinomial(weights, n * length, replacement=True, generator=gen).view(n, length)
    if task == "shift":
        y = (x + torch.arange(length)) % vocab
    else:
        y = torch.maximum(x, x.roll(1, 1))
        y[:, 0] = x[:, 0]
    if noise:
        flip = torch.rand(y.shape, generator=gen) < noise
        y = torch.where(flip, torch.randint(0, vocab, y.shape, generator=gen), y)
    return x, y


def positive_part_seq(
    n: int, length: int, loud: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences, a fraction ``loud`` of them at twice the amplitude (hard but
    clean); the target is the sum of their positive parts over sqrt(length), centred."""
    gen = _gen(3000, seed)
    x = torch.randn(n, length, 1, generator=gen)
    amp = torch.where(torch.rand(n, generator=gen) < loud, 2.0, 1.0)
    x = x * amp[:, None, None]
    y = x.clamp(min=0).sum(1) / math.sqrt(length)
    return x, y - y.mean()


def peak_alarm_seq(
    n: int, length: int, threshold: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences labelled 1 when their largest step passes ``threshold``, kept
    only outside a margin of 0.15 around it: clean, the positives rare for a high threshold."""
    gen = _gen(4000, seed)
    x = torch.randn(3 * n, length, 1, generator=gen)
    peak = x.amax((1, 2))
    keep = (peak - threshold).abs() > 0.15
    return x[keep][:n], (peak[keep][:n] > threshold).long()


def peak_seq(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences; the target is their largest step, standardized."""
    gen = _gen(5000, seed)
    x = torch.randn(n, length, 1, generator=gen)
    peak = x.amax((1, 2))[:, None]
    return x, (peak - peak.mean()) / peak.std()


def early_sign_seq(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scalar sequences labelled by the sign of the sum of their first 4 steps, which
    must be carried to the end."""
    gen = _gen(6000, seed)
    x = torch.randn(n, length, 1, generator=gen)
    return x, (x[:, :4, 0].sum(1) > 0).long()


def sine_teacher(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs in ``d`` dimensions and a noiseless teacher sum_k a_k sin(w_k . x)
    of variance about 1."""
    gen = _gen(7000, seed)
    x = torch.randn(n, d, generator=gen)
    w = torch.randn(6, d, generator=gen) / math.sqrt(d)
    a = torch.randn(6, 1, generator=gen) / math.sqrt(3)
    return x, torch.sin(x @ w.T) @ a


def linear_teacher(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs with feature scales from 20 down to 0.1 (badly scaled) and a random
    linear map to ``d`` outputs, plus noise of std 0.1."""
    gen = _gen(8000, seed)
    x = torch.randn(n, d, generator=gen) * torch.logspace(math.log10(20.0), -1.0, d)
    a = torch.randn(d, d, generator=gen) / math.sqrt(d)
    return x, x @ a + 0.1 * torch.randn(n, d, generator=gen)


def loud_records(
    x: torch.Tensor, k: int, factor: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` with ``k`` of its records (drawn by ``seed``) times ``factor`` (a sensor at the
    wrong gain), and the mask of the clean ones."""
    bad = torch.randperm(len(x), generator=_gen(9000, seed))[:k]
    out = x.clone()
    out[bad] = out[bad] * factor
    clean = torch.ones(len(x), dtype=torch.bool)
    clean[bad] = False
    return out, clean


# --------------------------------------------------------------------------------------------
# Models, losses and schedules
# --------------------------------------------------------------------------------------------


class _Gain(nn.Module):
    """A fixed multiplier: a layer whose output is ``gain`` times too large (bad scaling)."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * x


class GaussianNLL(nn.Module):
    """The negative log-likelihood of a Gaussian whose mean and log-variance the model outputs
    (columns 0 and 1), up to a constant: 0.5 (s + (y - mu)^2 exp(-s)). Where the variance
    collapses on fitted points, a residual of any other point makes the loss steep."""

    reduction = "mean"

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu, s = out[:, :1], out[:, 1:2]
        return (0.5 * (s + (y - mu) ** 2 * torch.exp(-s))).mean()


def _overshoot(exp: Experiment, over: int, peak: float, hold: int) -> Experiment:
    """``exp`` with its learning rate rising linearly to ``peak`` x lr over ``over`` steps,
    held there ``hold`` steps, then at lr (a warmup that overshoots its target)."""

    def mult(step: int) -> float:
        if step < over:
            return peak * (step + 1) / over
        return peak if step < over + hold else 1.0

    sched = torch.optim.lr_scheduler.LambdaLR(exp.optimizer, mult)
    return _with(exp, sched, {"overshoot_peak": peak, "overshoot_steps": [over, over + hold]})


def _momentum(exp: Experiment, beta: float) -> Experiment:
    """``exp`` with its heavy ball's momentum set to ``beta``."""
    for group in exp.optimizer.param_groups:
        group["momentum"] = beta
    return dataclasses.replace(exp, config={**exp.config, "momentum": beta})


# --------------------------------------------------------------------------------------------
# Healthy controls on small batches
# --------------------------------------------------------------------------------------------


def ctl_mlp_sgd_b1(seed: int, batch: int = 1, lr: float = 0.05, steps: int = 600) -> Experiment:
    """Control: a tanh MLP on scikit-learn's breast-cancer table (a few hard records), plain
    SGD on single records with a cosine decay to zero."""
    x, y = breast_cancer()
    torch.manual_seed(seed)
    model = _mlp([30, 16, 2], nn.Tanh)
    return _exp(
        seed,
        "final9-control-mlp-sgd-batch1-breast-cancer-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="tanh MLP 30-16-2 on scikit-learn's breast-cancer table (569 records, "
        f"standardized), SGD lr {lr} batch {batch}, cosine to 0",
        config={"family": "mlp"},
        cosine=True,
    )


def ctl_mlp_adamw_b4x4(seed: int, batch: int = 4, lr: float = 5e-3, steps: int = 500) -> Experiment:
    """Control: a ReLU MLP naming the shell of a point with a rare outer shell, AdamW on
    micro-batches of 4 accumulated 4 per update, cosine to zero."""
    x, y = shells(512, 3, (0.5, 0.4, 0.1), 0.04, 1)
    torch.manual_seed(seed)
    model = _mlp([3, 64, 64, 3])
    exp = _exp(
        seed,
        "final9-control-mlp-adamw-batch4x4-accumulated-rare-shell-cosine",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="ReLU MLP 6-64-64-3 naming the shell (shares 50/40/10, 4% near a boundary) "
        f"of 512 points in 3-D, clean, AdamW (wd 1e-2) lr {lr} on micro-batches of {batch} "
        "accumulated 4 per update, cosine to 0",
        config={"family": "mlp", "hard": 0.04},
        cosine=True,
    )
    return _accumulated(exp, 4)


def ctl_mlp_momentum_b8(
    seed: int, batch: int = 8, lr: float = 0.02, steps: int = 400
) -> Experiment:
    """Control: a ReLU MLP on radial shells, heavy ball on batches of 8, clipped at norm 2,
    the learning rate cut to a tenth for the last quarter."""
    x, y = shells(512, 3, (0.3, 0.3, 0.4), 0.05, 2)
    torch.manual_seed(seed)
    model = _mlp([3, 64, 64, 3])
    exp = _exp(
        seed,
        "final9-control-mlp-momentum-batch8-shells-clipped-step-lr",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="ReLU MLP 3-64-64-3 naming the shell (shares 30/30/40, 5% near a boundary) "
        f"of 512 points in 3-D, clean, momentum 0.9 lr {lr} batch {batch}, clipped at norm 2, "
        f"x0.1 from step {3 * steps // 4}",
        config={"family": "mlp", "hard": 0.05},
    )
    return _clipped(_stepped(exp, 3 * steps // 4, 0.1), 2.0)


def ctl_cnn_momentum_b8(
    seed: int, batch: int = 8, lr: float = 0.03, steps: int = 500
) -> Experiment:
    """Control: a batch-norm ResNet naming the orientation of a bar (some faint), heavy ball on
    batches of 8, the learning rate cut to a tenth for the last quarter."""
    x, y = bar_images(384, (0.25, 0.25, 0.25, 0.25), 0.15, 0.05, 0)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 4)
    exp = _exp(
        seed,
        "final9-control-cnn-momentum-batch8-bn-faint-bars-step-lr",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming the orientation of a bar of "
        f"4 pixels in 384 images (5% at 0.4 contrast, pixel noise 0.15), momentum 0.9 lr {lr} "
        f"batch {batch}, x0.1 from step {3 * steps // 4}",
        config={"family": "cnn", "pixel_noise": 0.15, "faint": 0.05},
    )
    return _stepped(exp, 3 * steps // 4, 0.1)


def ctl_cnn_adam_b16(seed: int, batch: int = 16, lr: float = 5e-3, steps: int = 400) -> Experiment:
    """Control: a batch-norm ResNet naming the orientation of a bar with a rare class, Adam on
    batches of 16, warmup then a cosine, clipped at norm 1."""
    x, y = bar_images(384, (0.3, 0.3, 0.3, 0.1), 0.2, 0.0, 1)
    torch.manual_seed(seed)
    model = _ResNet(8, 2, 4)
    exp = _exp(
        seed,
        "final9-control-cnn-adam-batch16-bn-rare-bar-warmup-cosine-clipped",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 2 blocks) naming the orientation of a bar in "
        f"384 images (shares 30/30/30/10, pixel noise 0.2), Adam lr {lr} batch {batch}, warmup "
        "20 then cosine to 0, clipped at norm 1",
        config={"family": "cnn", "pixel_noise": 0.2},
    )
    return _clipped(_warm(exp, 20), 1.0)


def ctl_tfm_adam_b8(seed: int, batch: int = 8, lr: float = 3e-3, steps: int = 500) -> Experiment:
    """Control: a transformer adding each token's position to it (rare tokens), Adam on
    batches of 8, warmup then a cosine."""
    x, y = geometric_tokens(384, 8, 12, "shift", 0)
    torch.manual_seed(seed)
    model = TinyTransformer(12, 8, 32, 2, 1)
    exp = _exp(
        seed,
        "final9-control-transformer-adam-batch8-geometric-shift-warmup-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 32) mapping each of 8 geometric-law tokens of 12 to "
        f"itself plus its position mod 12, clean, Adam lr {lr} batch {batch}, warmup 30 then "
        "cosine to 0",
        config={"family": "transformer", "vocab": 12},
    )
    return _warm(exp, 30)


def ctl_tfm_momentum_b4(
    seed: int, batch: int = 4, lr: float = 0.05, steps: int = 400
) -> Experiment:
    """Control: a causal transformer naming the larger of each token and the one before it
    (rare tokens), heavy ball on batches of 4, clipped at norm 1, cosine to zero."""
    x, y = geometric_tokens(384, 8, 10, "max2", 1)
    torch.manual_seed(seed)
    model = TinyTransformer(10, 8, 24, 2, 1, causal=True)
    exp = _exp(
        seed,
        "final9-control-transformer-momentum-batch4-geometric-max-of-two-clipped-cosine",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="causal 1-layer transformer (d 24) naming the larger of each of 8 geometric-"
        f"law tokens of 10 and the one before it, clean, momentum 0.9 lr {lr} batch {batch}, "
        "clipped at norm 1, cosine to 0",
        config={"family": "transformer", "vocab": 10},
        cosine=True,
    )
    return _clipped(exp, 1.0)


def ctl_tfm_adamw_b16(seed: int, batch: int = 16, lr: float = 2e-3, steps: int = 300) -> Experiment:
    """Control: a two-layer transformer adding each token's position to it, AdamW on batches
    of 16 at a constant rate."""
    x, y = geometric_tokens(512, 6, 8, "shift", 2)
    torch.manual_seed(seed)
    model = TinyTransformer(8, 6, 24, 2, 2)
    return _exp(
        seed,
        "final9-control-transformer-adamw-batch16-geometric-shift-2-layers",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="2-layer transformer (d 24) mapping each of 6 geometric-law tokens of 8 to "
        f"itself plus its position mod 8, clean, AdamW (wd 1e-2) lr {lr} batch {batch}",
        config={"family": "transformer", "vocab": 8},
    )


def ctl_rnn_gru_momentum_b4(
    seed: int, batch: int = 4, lr: float = 0.02, steps: int = 400
) -> Experiment:
    """Control: a GRU summing the positive parts of a sequence, a few sequences twice as loud,
    heavy ball on batches of 4 with a cosine decay to zero."""
    x, y = positive_part_seq(384, 8, 0.05, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 24, 1)
    return _exp(
        seed,
        "final9-control-rnn-gru-momentum-batch4-positive-part-loud-cosine",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="GRU (24) regressing the sum of the positive parts of 8 Gaussian steps over "
        f"sqrt(8) (5% of the sequences twice as loud), clean, momentum 0.9 lr {lr} batch "
        f"{batch}, cosine to 0",
        config={"family": "rnn", "cell": "gru", "loud": 0.05},
        cosine=True,
    )


def ctl_rnn_lstm_momentum_b8(
    seed: int, batch: int = 8, lr: float = 0.1, steps: int = 500
) -> Experiment:
    """Control: an LSTM telling whether a sequence's peak passes 1.8 (a rare class), heavy ball
    on batches of 8, clipped at norm 1, the learning rate cut to a tenth for the last
    quarter."""
    x, y = peak_alarm_seq(384, 6, 1.8, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("lstm", 1, 24, 2)
    exp = _exp(
        seed,
        "final9-control-rnn-lstm-momentum-batch8-rare-peak-alarm-clipped-step-lr",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="LSTM (24) telling whether the largest of 6 Gaussian steps passes 1.8 (none "
        f"within 0.15 of it), clean, momentum 0.9 lr {lr} batch {batch}, clipped at norm 1, "
        f"x0.1 from step {3 * steps // 4}",
        config={"family": "rnn", "cell": "lstm"},
    )
    return _clipped(_stepped(exp, 3 * steps // 4, 0.1), 1.0)


def ctl_rnn_gru_sgd_b8(seed: int, batch: int = 8, lr: float = 0.1, steps: int = 400) -> Experiment:
    """Control: a GRU regressing the largest step of a sequence, plain SGD on batches of 8."""
    x, y = peak_seq(384, 6, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 16, 1)
    return _exp(
        seed,
        "final9-control-rnn-gru-sgd-batch8-peak-value",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="GRU (16) regressing the largest of 6 Gaussian steps (standardized), clean, "
        f"SGD lr {lr} batch {batch}",
        config={"family": "rnn", "cell": "gru"},
    )


# --------------------------------------------------------------------------------------------
# Cliffs
# --------------------------------------------------------------------------------------------


def cliffs_mlp_momentum_b4_loud_inputs(
    seed: int, batch: int = 4, lr: float = 0.01, steps: int = 400
) -> Experiment:
    """Cliffs from data at a small batch: 3 of 512 records have their inputs 60x too large (a
    sensor at the wrong gain); heavy ball on batches of 4 with no clipping takes the full
    step each time a batch holds one."""
    x, y = shells(512, 5, (0.34, 0.33, 0.33), 0.0, 10)
    loud, clean = loud_records(x, 3, 60.0, 0)
    torch.manual_seed(seed)
    model = _mlp([5, 64, 64, 3])
    exp = _exp(
        seed,
        "final9-cliffs-mlp-momentum-batch4-loud-input-records",
        model,
        nn.CrossEntropyLoss(),
        loud,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="ReLU MLP 5-64-64-3 naming the shell of 512 points in 5-D, 3 records' "
        f"inputs x60, momentum 0.9 lr {lr} batch {batch}, no clipping (evaluated on the clean "
        "records)",
        config={"family": "mlp", "loud_records": 3, "factor": 60.0},
    )
    return dataclasses.replace(exp, eval_data=(x[clean], y[clean]))


def cliffs_mlp_momentum_b8_collapsing_variance(
    seed: int, batch: int = 8, lr: float = 0.008, steps: int = 400
) -> Experiment:
    """Cliffs from a steep loss: a Gaussian likelihood with a learned variance on a noiseless
    teacher; as the fit improves the variance collapses, and the log-density of a point the
    fit misses turns steep (exp(-s) r^2)."""
    x, y = sine_teacher(256, 4, 0)
    torch.manual_seed(seed)
    model = _mlp([4, 64, 64, 2], nn.Tanh)
    return _exp(
        seed,
        "final9-cliffs-mlp-momentum-batch8-gaussian-nll-collapsing-variance",
        model,
        GaussianNLL(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="tanh MLP 4-64-64-2 giving the mean and log-variance of a noiseless sine "
        f"teacher, Gaussian negative log-likelihood, momentum 0.9 lr {lr} batch {batch}, no "
        "clipping",
        config={"family": "mlp", "loss": "gaussian-nll"},
    )


def cliffs_rnn_momentum_radius2(
    seed: int, batch: int = 64, lr: float = 0.2, steps: int = 300
) -> Experiment:
    """Cliffs in a recurrent net: a vanilla tanh RNN whose recurrent matrix is 2 x an
    orthogonal one, carrying the sign of its first steps to the end of 40, heavy ball on
    batches of 64, no clipping."""
    x, y = early_sign_seq(1024, 40, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("rnn", 1, 32, 2)
    _set_radius_(model.rnn, 2.0, torch.Generator().manual_seed(140000 + seed))
    return _exp(
        seed,
        "final9-cliffs-rnn-momentum-batch64-spectral-radius-2-length-40",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="tanh RNN (32, recurrent spectral radius 2) telling the sign of the sum of "
        f"the first 4 of 40 Gaussian steps, momentum 0.9 lr {lr} batch {batch}, no clipping",
        config={"family": "rnn", "cell": "rnn", "radius": 2.0},
    )


def cliffs_cnn_momentum099(
    seed: int, batch: int = 32, lr: float = 0.04, steps: int = 300
) -> Experiment:
    """Cliffs: a plain CNN under heavy ball 0.99 at a borderline rate: sound for a while, then
    the momentum's slow oscillation grows and the run explodes mid-run."""
    x, y = bar_images(768, (0.25, 0.25, 0.25, 0.25), 0.2, 0.0, 10)
    torch.manual_seed(seed)
    model = _PoolCNN(8, 4)
    exp = _exp(
        seed,
        "final9-cliffs-cnn-momentum099-batch32-borderline-rate",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="conv-pool-conv CNN (8 channels, no normalization) naming the orientation of "
        f"a bar in 768 images, momentum 0.99 lr {lr} batch {batch}, no clipping",
        config={"family": "cnn"},
    )
    return _momentum(exp, 0.99)


def cliffs_tfm_momentum_overshoot(
    seed: int, batch: int = 32, lr: float = 0.035, steps: int = 300
) -> Experiment:
    """Cliffs: a transformer under heavy ball whose warmup overshoots to 40x its rate for 6 steps:
    the parameters are thrown, the loss jumps and has to re-descend."""
    x, y = geometric_tokens(768, 8, 12, "max2", 10, noise=0.05)
    torch.manual_seed(seed)
    model = TinyTransformer(12, 8, 32, 2, 1, causal=True)
    exp = _exp(
        seed,
        "final9-cliffs-transformer-momentum-batch32-warmup-overshoot",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="causal 1-layer transformer (d 32) naming the larger of each of 8 geometric-"
        f"law tokens of 12 and the one before it (5% of the labels redrawn), momentum 0.9 lr "
        f"{lr} batch {batch}, warmed up to 40x lr over 100 steps, held 6 steps, then at lr",
        config={"family": "transformer", "vocab": 12, "label_noise": 0.05},
    )
    return _overshoot(exp, 100, 40.0, 6)


# --------------------------------------------------------------------------------------------
# Ill-conditioning
# --------------------------------------------------------------------------------------------


def ill_mlp_momentum_deep_linear(
    seed: int, batch: int = 256, lr: float = 0.03, steps: int = 300
) -> Experiment:
    """Ill-conditioning: a deep linear chain (4 layers, no activation) regressing a linear map
    of anisotropic inputs, full-batch heavy ball past its stability threshold, clipped at norm
    1 so the sharp direction bounces instead of diverging."""
    x, y = linear_teacher(256, 8, 0)
    torch.manual_seed(seed)
    model = _mlp([8, 16, 16, 16, 8], nn.Identity)
    exp = _exp(
        seed,
        "final9-ill-conditioning-mlp-momentum-full-batch-deep-linear-chain-clipped",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="deep linear chain 8-16-16-16-8 regressing a linear map of 256 Gaussian "
        f"inputs (feature scales 20 to 0.1), momentum 0.9 lr {lr} batch {batch} (the full data), "
        "clipped at norm 1",
        config={"family": "mlp", "depth": 4},
    )
    return _clipped(exp, 1.0)


def ill_cnn_momentum_no_norm(
    seed: int, batch: int = 512, lr: float = 0.3, steps: int = 300
) -> Experiment:
    """Ill-conditioning in a CNN: a plain conv net (no normalization) naming the orientation of
    a bar (MSE on +-1) from inputs 4x too bright, full-batch heavy ball at and past
    (2 + 2 beta)/lambda_max, clipped at norm 1 so the sharp direction bounces instead of
    diverging."""
    x, labels = bar_images(512, (0.25, 0.25, 0.25, 0.25), 0.2, 0.1, 20)
    x = 4.0 * x  # unnormalized inputs: the curvature scales with their square
    y = 2 * nn.functional.one_hot(labels, 4).float() - 1
    torch.manual_seed(seed)
    model = _PoolCNN(8, 4)
    exp = _exp(
        seed,
        "final9-ill-conditioning-cnn-momentum-full-batch-no-norm-bright-inputs-clipped",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="conv-pool-conv CNN (8 channels, no normalization) naming the orientation of "
        f"a bar in 512 images (10% faint) at 4x the brightness, MSE on +-1, momentum 0.9 lr {lr} "
        f"batch {batch} (the full data), clipped at norm 1",
        config={"family": "cnn"},
    )
    return _clipped(exp, 1.0)


def ill_tfm_sgd_scaled_embedding(
    seed: int, batch: int = 32, lr: float = 0.5, steps: int = 300
) -> Experiment:
    """Ill-conditioning in a transformer: token embeddings (and so the tied output weights) 6x
    too large, plain SGD on batches of 32 past 2/lambda_max."""
    x, y = geometric_tokens(512, 8, 12, "shift", 20, noise=0.1)
    torch.manual_seed(seed)
    model = TinyTransformer(12, 8, 24, 2, 1)
    with torch.no_grad():
        model.embed.weight.mul_(6.0)
    return _exp(
        seed,
        "final9-ill-conditioning-transformer-sgd-batch32-scaled-embedding",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="1-layer transformer (d 24, token embedding and tied output 6x too large) "
        f"mapping 8 geometric-law tokens of 12 to themselves plus their position (10% of the "
        f"labels redrawn), SGD lr {lr} batch {batch}",
        config={"family": "transformer", "vocab": 12, "embedding_scale": 6.0},
    )


def ill_rnn_sgd_scaled_readout(
    seed: int, batch: int = 16, lr: float = 0.05, steps: int = 300
) -> Experiment:
    """Ill-conditioning in a GRU: its read-out 10x too large (a fixed gain), plain SGD on
    batches of 16 past 2/lambda_max, clipped at norm 1 so the sharp direction bounces
    instead of diverging."""
    x, y = positive_part_seq(512, 8, 0.0, 20)
    torch.manual_seed(seed)
    model = nn.Sequential(RecurrentNet("gru", 1, 16, 1), _Gain(10.0))
    exp = _exp(
        seed,
        "final9-ill-conditioning-rnn-gru-sgd-batch16-scaled-readout-clipped",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="GRU (16) with its read-out times 10 regressing the sum of the positive "
        f"parts of 8 Gaussian steps over sqrt(8), SGD lr {lr} batch {batch}, clipped at norm 1",
        config={"family": "rnn", "cell": "gru", "readout_gain": 10.0},
    )
    return _clipped(exp, 1.0)


CASES: list[Case] = [
    # ---- healthy controls on small batches
    Case(
        "final9-control-mlp-sgd-batch1-breast-cancer-cosine",
        None,
        "mlp",
        "sgd+cosine",
        FINAL9,
        ctl_mlp_sgd_b1,
        0,
        "Healthy, converged: scikit-learn's breast-cancer table (standardized, a few records "
        "hard), tanh MLP 30-16-2, single records, SGD lr 0.05 with a cosine to 0: full-data "
        "loss 0.558 -> 0.090 (step 150) -> 0.080 (300) -> 0.070 (450) -> 0.0670 at step 600; "
        "batches of 64 (same schedule and steps) 0.086, 0.071, 0.067, 0.0664 (within 1% at "
        "the end). The run's own losses over the last fifth: median 0.0034, max 2.9 (a hard "
        "record).",
    ),
    Case(
        "final9-control-mlp-adamw-batch4x4-accumulated-rare-shell-cosine",
        None,
        "mlp",
        "adamw+cosine",
        FINAL9,
        ctl_mlp_adamw_b4x4,
        0,
        "Healthy, converged: the radial shell of 512 clean points in 3-D (shares 50/40/10, 4% "
        "near a boundary), ReLU MLP, micro-batches of 4 accumulated 4 per update (16), AdamW "
        "5e-3 (wd 1e-2) with a cosine to 0: full-data loss 1.06 -> 0.096 (step 125) -> 0.017 "
        "(250) -> 0.0089 (375) -> 0.0084 at step 500 (0.8% of the start); batches of 64 "
        "(accumulated 4, same schedule and steps) reach 0.00095 (both near zero). Minibatch "
        "losses over the last fifth: median 0.0075, max 0.023.",
    ),
    Case(
        "final9-control-mlp-momentum-batch8-shells-clipped-step-lr",
        None,
        "mlp",
        "momentum+step+clip",
        FINAL9,
        ctl_mlp_momentum_b8,
        0,
        "Healthy, converged: the radial shell of 512 clean points in 3-D (5% near a boundary), "
        "ReLU MLP 3-64-64-3, batches of 8, heavy ball 0.9 lr 0.02 cut to 0.002 at step 300, "
        "clipped at norm 2: full-data loss 1.16 -> 0.376 (step 100) -> 0.067 (200) -> 0.047 "
        "(300) -> 0.0212 at step 400; batches of 64 (same schedule and steps) 0.240, 0.043, "
        "0.020, 0.0192. Minibatch losses over the last fifth: median 0.015, max 0.15 (points "
        "near a boundary).",
    ),
    Case(
        "final9-control-cnn-momentum-batch8-bn-faint-bars-step-lr",
        None,
        "cnn",
        "momentum+step",
        FINAL9,
        ctl_cnn_momentum_b8,
        0,
        "Healthy, converged: the orientation of a bar of 4 pixels in 384 images (5% at 0.4 "
        "contrast, pixel noise 0.15), batch-norm ResNet, batches of 8, heavy ball 0.9 lr 0.03 "
        "cut to 0.003 at step 375: full-data loss (batch norm on the full data's statistics) "
        "1.54 -> 0.059 (step 125) -> 0.042 (250) -> 0.019 (375) -> 0.0164 at step 500 (1% of "
        "the start); batches of 64 (same schedule and steps) reach 0.0067 (both near zero). "
        "Minibatch losses over the last fifth: median 0.0078, max 0.11 (a faint bar).",
    ),
    Case(
        "final9-control-cnn-adam-batch16-bn-rare-bar-warmup-cosine-clipped",
        None,
        "cnn",
        "adam+warmup-cosine+clip",
        FINAL9,
        ctl_cnn_adam_b16,
        0,
        "Healthy, converged: the orientation of a bar in 384 images (shares 30/30/30/10: a rare "
        "orientation, pixel noise 0.2), batch-norm ResNet (2 blocks), batches of 16, Adam 5e-3, "
        "warmup 20 then a cosine to 0, clipped at norm 1: full-data loss 1.55 -> 0.109 (step "
        "100) -> 0.0155 (200) -> 0.0093 (300) -> 0.0087 at step 400; batches of 64 (same "
        "schedule and steps) 0.060, 0.0098, 0.0063, 0.0059. Minibatch losses over the last "
        "fifth: median 0.013, max 0.036.",
    ),
    Case(
        "final9-control-transformer-adam-batch8-geometric-shift-warmup-cosine",
        None,
        "transformer",
        "adam+warmup-cosine",
        FINAL9,
        ctl_tfm_adam_b8,
        0,
        "Healthy, converged: each of 8 geometric-law tokens of 12 (the last ones rare) plus "
        "its position mod 12, clean, transformer, batches of 8, Adam 3e-3, warmup 30 then a "
        "cosine to 0: full-data loss 2.50 -> 0.297 (step 125) -> 0.030 (250) -> 0.0156 (375) "
        "-> 0.0143 at step 500 (0.6% of the start); batches of 64 reach 0.0045 (both near "
        "zero). Minibatch losses over the last fifth: median 0.015, max 0.021.",
    ),
    Case(
        "final9-control-transformer-momentum-batch4-geometric-max-of-two-clipped-cosine",
        None,
        "transformer",
        "momentum+cosine+clip",
        FINAL9,
        ctl_tfm_momentum_b4,
        0,
        "Healthy, converged: the larger of each of 8 geometric-law tokens of 10 and the one "
        "before it (clean; rare tokens seen seldom), causal transformer, batches of 4, heavy "
        "ball 0.9 lr 0.05 with a cosine to 0, clipped at norm 1: full-data loss 2.24 -> 0.078 "
        "(step 100) -> 0.0049 (200) -> 0.0031 (300) -> 0.0029 at step 400; batches of 64 (same "
        "schedule and steps) 0.0085, 0.0038, 0.0030, 0.0029 (the same at the end).",
    ),
    Case(
        "final9-control-transformer-adamw-batch16-geometric-shift-2-layers",
        None,
        "transformer",
        "adamw",
        FINAL9,
        ctl_tfm_adamw_b16,
        0,
        "Healthy, converged: each of 6 geometric-law tokens of 8 plus its position mod 8, "
        "clean, 2-layer transformer, batches of 16, AdamW 2e-3 (wd 1e-2) at a constant rate: "
        "full-data loss 2.11 -> 0.856 (step 75) -> 0.065 (150) -> 0.020 (225) -> 0.0110 at "
        "step 300 (0.5% of the start); batches of 64 (same rate and steps) 0.254, 0.024, "
        "0.0107, 0.0064 (both near zero).",
    ),
    Case(
        "final9-control-rnn-gru-momentum-batch4-positive-part-loud-cosine",
        None,
        "rnn",
        "momentum+cosine",
        FINAL9,
        ctl_rnn_gru_momentum_b4,
        0,
        "Healthy, converged: the sum of the positive parts of 8 Gaussian steps over sqrt(8) "
        "(clean; 5% of the sequences twice as loud), GRU, batches of 4, heavy ball 0.9 lr 0.02 "
        "with a cosine to 0: full-data loss 0.375 -> 0.044 (step 100) -> 0.022 (200) -> 0.0124 "
        "(300) -> 0.0111 at step 400; batches of 64 (same schedule and steps) 0.032, 0.0096, "
        "0.0071, 0.0068. Minibatch losses over the last fifth: median 0.0069, max 0.26 (a loud "
        "sequence).",
    ),
    Case(
        "final9-control-rnn-lstm-momentum-batch8-rare-peak-alarm-clipped-step-lr",
        None,
        "rnn",
        "momentum+step+clip",
        FINAL9,
        ctl_rnn_lstm_momentum_b8,
        0,
        "Healthy, converged: whether the largest of 6 Gaussian steps passes 1.8 (clean; a rare "
        "positive class, none within 0.15 of the threshold), LSTM, batches of 8, heavy ball "
        "0.9 lr 0.1 cut to 0.01 at step 375, clipped at norm 1: full-data loss 0.739 -> 0.313 "
        "(step 125) -> 0.117 (250) -> 0.0087 (375) -> 0.0077 at step 500; batches of 64 (same "
        "schedule and steps) 0.162, 0.014, 0.0058, 0.0055. Minibatch losses over the last "
        "fifth: median 0.0042, max 0.045.",
    ),
    Case(
        "final9-control-rnn-gru-sgd-batch8-peak-value",
        None,
        "rnn",
        "sgd",
        FINAL9,
        ctl_rnn_gru_sgd_b8,
        0,
        "Healthy, converged: the largest of 6 Gaussian steps (standardized, clean), GRU (16), "
        "batches of 8, SGD lr 0.1: full-data loss 1.11 -> 0.223 (step 100) -> 0.096 (200) -> "
        "0.053 (300) -> 0.0448 at step 400; batches of 64 (same lr and steps) 0.174, 0.075, "
        "0.091, 0.0569 (the small batch ends lower). Minibatch losses over the last fifth: "
        "median 0.041, max 0.22.",
    ),
    # ---- cliffs
    Case(
        "final9-cliffs-mlp-momentum-batch4-loud-input-records",
        CLIFFS,
        "mlp",
        "momentum",
        FINAL9,
        cliffs_mlp_momentum_b4_loud_inputs,
        0,
        "Radial shells in 5-D with 3 of 512 records' inputs x60, batches of 4, heavy ball 0.9 "
        "lr 0.01, no clipping; hand check: raw gradient norm median 1.22, 45x its running "
        "median (of the 50 steps before) at step 43, 76x (99) at 230, 99x (114) at 299, 30x at "
        "358; loss on the clean records 0.417 at step 230 -> 0.85 -> 1.32 -> 1.68 -> 2.12 "
        "(step 235), 1.86 at step 240; 0.489 at step 299 -> 1.09 -> 2.13 -> 3.07 -> 3.86 "
        "(step 304); 0.38 at the end against 0.52 at step 200.",
    ),
    Case(
        "final9-cliffs-mlp-momentum-batch8-gaussian-nll-collapsing-variance",
        CLIFFS,
        "mlp",
        "momentum",
        FINAL9,
        cliffs_mlp_momentum_b8_collapsing_variance,
        0,
        "A Gaussian likelihood with a learned variance on a noiseless sine teacher in 4-D, "
        "batches of 8, heavy ball 0.9 lr 0.008, no clipping; hand check: raw gradient norm "
        "median 2.8, 12.7x its running median at step 41, 19x at 43, 11.8x at 139, 13x (43.9, "
        "the largest) at 239, 10.6x at 302; full-data NLL -0.395 at step 139 -> 0.28 four "
        "steps on; -0.551 at step 200, 0.645 at 239 -> 1.25 (step 241); -0.576 at step 302 "
        "-> 0.399; it ends at -0.571, no lower than at step 200.",
    ),
    Case(
        "final9-cliffs-rnn-momentum-batch64-spectral-radius-2-length-40",
        CLIFFS,
        "rnn",
        "momentum",
        FINAL9,
        cliffs_rnn_momentum_radius2,
        0,
        "A tanh RNN with recurrent spectral radius 2 telling the sign of the sum of its first 4 "
        "of 40 steps, batches of 64, heavy ball 0.9 lr 0.2, no clipping; hand check: raw "
        "gradient norm median 2.65, 798x its running median (1.8e3) at step 89; full-data "
        "loss 0.98 at step 89 -> 1.09; 0.729 at the start, 1.98 at step 150, 4.03 at 240, 5.12 "
        "at 270 and 1.78 at the end, above the start (chance ln 2 = 0.69).",
    ),
    Case(
        "final9-cliffs-cnn-momentum099-batch32-borderline-rate",
        CLIFFS,
        "cnn",
        "momentum",
        FINAL9,
        cliffs_cnn_momentum099,
        0,
        "A plain conv-pool-conv CNN naming the orientation of a bar, batches of 32, heavy "
        "ball 0.99 lr 0.04, no clipping; hand check: full-data loss 1.39 -> 0.017 at step 120 "
        "while it holds, then the raw gradient norm 15x its running median (4.8) at step 145, "
        "30x (8.8) at 156, 36x at 262, 23 steps over 10x in all (max 18.4 at 253); loss 0.034 "
        "at step 146 -> 1.49 at 153, 5.2 at 253, 2.7 at 270 and 1.19 at the end.",
    ),
    Case(
        "final9-cliffs-transformer-momentum-batch32-warmup-overshoot",
        CLIFFS,
        "transformer",
        "momentum+overshoot",
        FINAL9,
        cliffs_tfm_momentum_overshoot,
        0,
        "A causal transformer naming the larger of a geometric-law token and the one before "
        "it (5% of the labels redrawn), batches of 32, heavy ball 0.9 lr 0.035 with a warmup "
        "that overshoots to 40x (1.4) at step 100 for 6 steps; hand check: full-data loss "
        "2.36 -> 0.47 (step 30) -> 0.51 (60), then the raw gradient norm 12.9x its running "
        "median at step 97, 68x at 100, 243x at 102, 2.2e3x at 104, 2.4e4x (2.8e4) at 106 (32 "
        "steps over 10x); loss 15.6 (step 97) -> 368 (100) -> 2.8e5 (104) -> 2.8e7 (106), "
        "re-descending to 3.6e6 (120), 3.5e5 (180) and 5.3e4 at step 300, no NaN.",
    ),
    # ---- ill-conditioning
    Case(
        "final9-ill-conditioning-mlp-momentum-full-batch-deep-linear-chain-clipped",
        ILL,
        "mlp",
        "momentum+clip",
        FINAL9,
        ill_mlp_momentum_deep_linear,
        0,
        "A deep linear chain 8-16-16-16-8 regressing a linear map of inputs with feature "
        "scales 20 to 0.1, the full 256 records a step, heavy ball 0.9 lr 0.03 (threshold "
        "(2+2beta)/lr = 127), clipped at 1; hand check (power iteration on full-data "
        "Hessian-vector products): lambda_max 111 at the start (0.87x), 429 at step 100 "
        "(3.4x), 364 at 200 (2.9x), 344 at 300 (2.7x); 39% of the updates raise the loss of "
        "the full data; loss 42 -> 0.255 (step 75) -> 0.112 (150) -> 0.082 (225) -> 0.064 at "
        "step 300, no NaN.",
    ),
    Case(
        "final9-ill-conditioning-cnn-momentum-full-batch-no-norm-bright-inputs-clipped",
        ILL,
        "cnn",
        "momentum+clip",
        FINAL9,
        ill_cnn_momentum_no_norm,
        0,
        "Bar images at 4x the brightness, a plain conv-pool-conv CNN (no normalization), MSE "
        "on +-1, the full 512 images a step, heavy ball 0.9 lr 0.3 (threshold (2+2beta)/lr = "
        "12.7), clipped at 1; hand check (on a fixed batch of the first 256 images): "
        "lambda_max 14.0 at the start (1.11x), 12.1 at step 100 (0.96x), 13.6 at 200 (1.07x), "
        "10.8 at 300 (0.85x): at and past the threshold; 44% of the updates raise the loss of "
        "that batch; full-data loss 1.01 -> 0.155 (step 75) -> 0.054 (150) -> 0.042 (225) -> "
        "0.040 at step 300, no NaN.",
    ),
    Case(
        "final9-ill-conditioning-transformer-sgd-batch32-scaled-embedding",
        ILL,
        "transformer",
        "sgd",
        FINAL9,
        ill_tfm_sgd_scaled_embedding,
        0,
        "Each of 8 geometric-law tokens of 12 plus its position (10% of the labels redrawn), "
        "a transformer whose token embedding (and tied output) is 6x too large, batches of 32, "
        "SGD lr 0.5 (threshold 2/lr = 4); hand check (on a fixed batch of 256 sequences): the "
        "largest-magnitude Hessian eigenvalue is negative at the start (-18.6), then "
        "lambda_max 6.05 at step 100 (1.5x), 6.62 at 200 (1.66x), 2.72 at 300 (0.68x); 40% of "
        "the updates raise the loss of that batch; full-data loss 6.31 -> 2.30 (step 75) -> "
        "1.16 (150) -> 0.58 (225) -> 0.49 at step 300, no NaN.",
    ),
    Case(
        "final9-ill-conditioning-rnn-gru-sgd-batch16-scaled-readout-clipped",
        ILL,
        "rnn",
        "sgd+clip",
        FINAL9,
        ill_rnn_sgd_scaled_readout,
        0,
        "A GRU whose read-out is 10x too large regressing the positive parts of 8 Gaussian "
        "steps, batches of 16, SGD lr 0.05 (threshold 2/lr = 40), clipped at 1; hand check (on "
        "a fixed batch of 256 sequences): lambda_max 378 at the start (9.5x), 358 at step 100 "
        "(9.0x), 349 at 200 (8.7x), 338 at 300 (8.4x); 49% of the updates raise the loss of "
        "that batch; full-data loss 4.61 -> 0.25 (step 75) -> 0.30 (150) -> 0.16 (225) -> 0.26 "
        "at step 300, no NaN.",
    ),
]
