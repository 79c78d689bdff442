"""The fourteenth held-out zoo split (``"final13"``): twelve planted cases, three for each of
ill-conditioning, local minima, saddle points and long-term dependencies.

Written after final12 had been seen, with new constructions and new data, and checked by hand
with nothing but plain training and Hessians (exact ones from ``n`` Hessian-vector products for
models under 1,500 parameters, Lanczos (ARPACK) on Hessian-vector products above that; for a
batch-norm net, in training mode on a fixed subset of 256 images). Families: MLP, residual CNN
with batch norm, transformer (TinyTransformer) and recurrent nets (nn.RNN); every challenge on
at least two of them. Optimizers: plain SGD, heavy ball, Nesterov, Adam (with a cosine decay,
with clipping) and AdamW with a warmup then a cosine; batches from the full data down to one
sample.

Data: a tanh teacher on Gaussian inputs whose columns are scaled from 0.1 to 10, scikit-learn's
breast-cancer table divided by one global constant (its columns keep their raw scales, 1e-5 to
40), digits (scikit-learn) as 1x8x8 images, two sine waves on [-3, 3] (no seed), a 2-D product
of sines on uniform inputs, a sine of a sum split into random parts over time, a tanh teacher
of 10 Gaussian inputs and 4 outputs, sequences whose target is a decaying sum (recurrent), the
sign of a value marked among the first four steps of 30 noisy ones, the token that fills a
third of a 12-token sequence, and scikit-learn's wine table, standardized. Every generated set
comes from a ``torch.Generator`` seeded in 220000-224999; every model is built inside
``build(seed)`` after ``torch.manual_seed(seed)``.

How each was checked (the numbers are in each ``why``; "full-data loss" is the loss on
``eval_data``):
- ill-conditioning: the largest Hessian eigenvalue along the run against the optimizer's
  stability limit (2/lr for SGD; 2(1+b)/((1+2b) lr) for Nesterov with momentum b), or the
  curvature along the gradient, the loss stalling or oscillating while the gradient norm stays
  high, and the same run on standardized inputs (or at a smaller rate) learning clearly better.
- local minima: the final loss at the case's seed and at seed+1..seed+3 (the same builder),
  the gradient norm and the extreme Hessian eigenvalues at the end.
- saddle points: the loss curve, the gradient norm and lambda_min / lambda_max of the full-data
  Hessian on the plateau, and the same builder from a normal initialization.
- long-term dependencies: per-layer (or per-block) gradient norms, or the norm of dL/dh_t at
  each time step of the recurrent net, at the start and the end, and a fixed variant (a gated
  cell, residual connections with LayerNorm, a 3-layer net) on the same data that learns.
Plain-training seconds are with ``torch.set_num_threads(1)`` on the 2-core machine.
"""

from __future__ import annotations

import math

import torch
from sklearn.datasets import load_breast_cancer, load_wine
from torch import nn

from optiscope import Experiment

from . import Case
from .data import digit_images
from .final5 import _warm
from .final6 import _clipped
from .final12 import _exp
from .mlp_cnn import _mlp, _ResNet
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer

FINAL13 = "final13"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _gen(seed: int) -> torch.Generator:
    assert 220000 <= seed < 225000
    return torch.Generator().manual_seed(seed)


def scaled_teacher(scaled: bool = True, n: int = 512, d: int = 8) -> tuple:
    """A 12-unit tanh teacher of ``d`` standard Gaussian inputs (targets of variance 1); with
    ``scaled`` the inputs' columns are multiplied by 0.1 ... 10 (log-spaced): badly scaled."""
    gen = _gen(220500)
    z = torch.randn(n, d, generator=gen)
    w = torch.randn(12, d, generator=gen) / math.sqrt(d)
    a = torch.randn(1, 12, generator=gen) / math.sqrt(12)
    y = torch.tanh(2 * z @ w.T) @ a.T
    y = y / y.std()
    return (z * torch.logspace(-1, 1, d) if scaled else z), y


def cancer(scaled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's breast-cancer table: ``scaled`` divides every column by one constant
    (100), leaving their raw spread of scales (1e-5 to 40); else each column standardized."""
    d = load_breast_cancer()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = x / 100.0 if scaled else (x - x.mean(0)) / x.std(0)
    return x, torch.tensor(d.target)


def wine() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's wine table, each column standardized, and its three classes."""
    d = load_wine()
    x = torch.tensor(d.data, dtype=torch.float32)
    return (x - x.mean(0)) / x.std(0), torch.tensor(d.target)


def two_sines() -> tuple[torch.Tensor, torch.Tensor]:
    """200 points on [-3, 3] and y = sin(2.5 x) + 0.6 sin(5 x + 1)."""
    x = torch.linspace(-3, 3, 200).unsqueeze(1)
    return x, torch.sin(2.5 * x) + 0.6 * torch.sin(5 * x + 1)


def sine_product(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform inputs on [-2, 2]^2 and y = sin(2 x1) cos(2 x2)."""
    x = torch.rand(n, 2, generator=_gen(223000)) * 4 - 2
    return x, (torch.sin(2 * x[:, 0]) * torch.cos(2 * x[:, 1])).unsqueeze(1)


def split_sum(n: int = 256, steps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """A value s uniform on [-3, 3] split into ``steps`` random positive parts fed one per time
    step; the target is sin(2.5 s) + 0.6 sin(5 s + 1) of their sum."""
    gen = _gen(222500)
    s = torch.rand(n, generator=gen) * 6 - 3
    parts = torch.rand(n, steps, generator=gen) + 0.1
    x = (s.unsqueeze(1) * parts / parts.sum(1, keepdim=True)).unsqueeze(2)
    return x, (torch.sin(2.5 * s) + 0.6 * torch.sin(5 * s + 1)).unsqueeze(1)


def tanh_map(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """10 Gaussian inputs, 4 targets from a 6-unit tanh teacher."""
    gen = _gen(220000)
    x = torch.randn(n, 10, generator=gen)
    w = torch.randn(6, 10, generator=gen) / math.sqrt(10)
    a = torch.randn(4, 6, generator=gen)
    return x, torch.tanh(1.5 * x @ w.T) @ a.T / math.sqrt(6)


def decaying_sums(n: int = 512, steps: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of 3 Gaussian channels; two targets: half the sum of channel 0 weighted by
    0.8^(steps-1-t), and the last step's channel 1 minus the one-before-last's channel 2."""
    x = torch.randn(n, steps, 3, generator=_gen(221000))
    wts = 0.8 ** torch.arange(steps - 1, -1, -1).float()
    y = torch.stack([(x[:, :, 0] * wts).sum(1) / 2, x[:, -1, 1] - x[:, -2, 2]], 1)
    return x, y


def marked_sign(n: int = 1024, steps: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Two channels over ``steps`` steps: channel 1 is Gaussian noise except at one step among
    the first four, marked by a 1 in channel 0, where it holds +-1; the label is that sign."""
    gen = _gen(224000)
    x = torch.zeros(n, steps, 2)
    x[:, :, 1] = torch.randn(n, steps, generator=gen)
    pos = torch.randint(0, 4, (n,), generator=gen)
    sign = torch.randint(0, 2, (n,), generator=gen)
    x[torch.arange(n), pos, 0] = 1.0
    x[torch.arange(n), pos, 1] = 2.0 * sign.float() - 1.0
    return x, sign


def majority(n: int = 1024, length: int = 12, vocab: int = 8) -> tuple:
    """Random tokens with the label's token written at a third of the positions (random ones):
    the label is the most frequent token."""
    gen = _gen(224500)
    y = torch.randint(0, vocab, (n,), generator=gen)
    tok = torch.randint(0, vocab, (n, length), generator=gen)
    pos = torch.rand(n, length, generator=gen).argsort(1)[:, : length // 3]
    tok[torch.arange(n).unsqueeze(1), pos] = y.unsqueeze(1)
    return tok, y


# --------------------------------------------------------------------------------------------
# Ill-conditioning
# --------------------------------------------------------------------------------------------


def ill_mlp_sgd(seed: int, scaled: bool = True, lr: float = 0.08) -> Experiment:
    """A tanh MLP 8-32-1 on the badly scaled teacher, full-batch SGD at lr 0.08 (2/lr = 25
    under the Hessian's lambda_max, 26-32)."""
    x, y = scaled_teacher(scaled)
    torch.manual_seed(seed)
    model = _mlp([8, 32, 1], nn.Tanh)
    return _exp(
        seed,
        "final13-ill-conditioning-mlp-sgd-scaled-teacher",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=512,
        opt="sgd",
        lr=lr,
        steps=400,
        description="tanh MLP 8-32-1 regressing a tanh teacher whose inputs' columns are scaled "
        f"0.1 ... 10, full-batch SGD at lr {lr}",
        config={"family": "mlp", "input_scales": "0.1..10" if scaled else "1"},
    )


class _HotResNet(nn.Module):
    """The small residual CNN with its logits multiplied by ``scale`` (a temperature of
    1/scale): the head's curvature grows by scale^2."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.net = _ResNet(ch=8, blocks=2)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.net(x)


def ill_cnn_nesterov(seed: int, scale: float = 12.0, lr: float = 0.07) -> Experiment:
    """Digits, a residual CNN with logits x12, Nesterov 0.9 at lr 0.07 on batches of 64."""
    x, y = digit_images()
    torch.manual_seed(seed)
    model = _HotResNet(scale)
    return _exp(
        seed,
        "final13-ill-conditioning-cnn-nesterov-hot-logits",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=64,
        opt="nesterov",
        lr=lr,
        steps=300,
        description=f"residual CNN (8 channels, 2 blocks, batch norm) on digits with its logits "
        f"multiplied by {scale}, Nesterov 0.9 lr {lr}, batches of 64",
        config={"family": "cnn", "logit_scale": scale},
    )


def ill_mlp_momentum(seed: int, scaled: bool = True, lr: float = 0.02) -> Experiment:
    """Breast cancer, raw column scales, a ReLU MLP 30-32-2, heavy ball 0.9 on batches of 32."""
    x, y = cancer(scaled)
    torch.manual_seed(seed)
    model = _mlp([30, 32, 2], nn.ReLU)
    return _exp(
        seed,
        "final13-ill-conditioning-mlp-momentum-raw-cancer",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=32,
        opt="momentum",
        lr=lr,
        steps=400,
        description="ReLU MLP 30-32-2 on breast cancer divided by 100 (raw column scales), "
        f"heavy ball 0.9 lr {lr}, batches of 32",
        config={"family": "mlp", "inputs": "raw/100" if scaled else "standardized"},
    )


# --------------------------------------------------------------------------------------------
# Local minima
# --------------------------------------------------------------------------------------------


def lm_mlp_adam(seed: int) -> Experiment:
    """A tanh MLP 1-5-1 fitting two sines, full-batch Adam 0.05 with a cosine to 0."""
    x, y = two_sines()
    torch.manual_seed(seed)
    model = _mlp([1, 5, 1], nn.Tanh)
    return _exp(
        seed,
        "final13-local-minima-mlp-adam-two-sines",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=200,
        opt="adam",
        lr=0.05,
        steps=600,
        cosine=True,
        description="tanh MLP 1-5-1 fitting sin(2.5x) + 0.6 sin(5x + 1) on [-3, 3], "
        "full-batch Adam 0.05 with a cosine to 0",
        config={"family": "mlp"},
    )


def lm_rnn_adam(seed: int) -> Experiment:
    """A tanh RNN (5 units) reading a value split over 4 steps, regressing two sines of it."""
    x, y = split_sum()
    torch.manual_seed(seed)
    model = RecurrentNet("rnn", 1, 5, 1)
    return _exp(
        seed,
        "final13-local-minima-rnn-adam-split-sum",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=256,
        opt="adam",
        lr=0.05,
        steps=600,
        cosine=True,
        description="tanh RNN (5 units) reading s in 4 random parts, regressing sin(2.5s) + "
        "0.6 sin(5s + 1), full-batch Adam 0.05 with a cosine to 0",
        config={"family": "rnn"},
    )


def lm_mlp_momentum(seed: int) -> Experiment:
    """A tanh MLP 2-4-1 fitting sin(2 x1) cos(2 x2), full-batch heavy ball with a cosine."""
    x, y = sine_product()
    torch.manual_seed(seed)
    model = _mlp([2, 4, 1], nn.Tanh)
    return _exp(
        seed,
        "final13-local-minima-mlp-momentum-sine-product",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=400,
        opt="momentum",
        lr=0.3,
        steps=800,
        cosine=True,
        description="tanh MLP 2-4-1 fitting sin(2 x1) cos(2 x2) on [-2, 2]^2, full-batch "
        "heavy ball 0.9 lr 0.3 with a cosine to 0",
        config={"family": "mlp"},
    )


# --------------------------------------------------------------------------------------------
# Saddle points
# --------------------------------------------------------------------------------------------


def _tiny_(model: nn.Module, std: float) -> nn.Module:
    """Weights from N(0, std^2), biases 0: the model starts next to the saddle at the origin."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std) if p.dim() > 1 else p.zero_()
    return model


def saddle_mlp_sgd(seed: int, init: float = 1e-5) -> Experiment:
    """A tanh MLP 10-16-4 from weights of std 1e-5, full-batch SGD 0.1."""
    x, y = tanh_map()
    torch.manual_seed(seed)
    model = _mlp([10, 16, 4], nn.Tanh)
    if init:
        _tiny_(model, init)
    return _exp(
        seed,
        "final13-saddle-points-mlp-sgd-tiny-init",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=256,
        opt="sgd",
        lr=0.1,
        steps=450,
        description=f"tanh MLP 10-16-4 from weights of std {init}, biases 0, regressing a "
        "tanh teacher, full-batch SGD 0.1",
        config={"family": "mlp", "init_std": init},
    )


def saddle_rnn_nesterov(seed: int, init: float = 1e-5) -> Experiment:
    """A tanh RNN (16 units) from weights of std 1e-5, Nesterov 0.9 lr 0.005, batches of 128."""
    x, y = decaying_sums()
    torch.manual_seed(seed)
    model = RecurrentNet("rnn", 3, 16, 2)
    if init:
        _tiny_(model, init)
    return _exp(
        seed,
        "final13-saddle-points-rnn-nesterov-tiny-init",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=128,
        opt="nesterov",
        lr=0.005,
        steps=500,
        description=f"tanh RNN (16 units) from weights of std {init}, biases 0, regressing a "
        "decaying sum and a last-step difference of 12-step sequences, Nesterov 0.9 lr 0.005, "
        "batches of 128",
        config={"family": "rnn", "init_std": init},
    )


def saddle_cnn_momentum(seed: int, gain: float = 1e-3) -> Experiment:
    """Digits, a residual CNN whose batch-norm gains and head weights start at 1e-3."""
    x, y = digit_images()
    torch.manual_seed(seed)
    model = _ResNet(ch=8, blocks=1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.fill_(gain)
        model.head.weight.normal_(0, gain)
        model.head.bias.zero_()
    return _exp(
        seed,
        "final13-saddle-points-cnn-momentum-zero-gains",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=64,
        opt="momentum",
        lr=0.2,
        steps=600,
        description=f"residual CNN (8 channels, 1 block) on digits with every batch-norm gain "
        f"{gain} and head weights of std {gain}, heavy ball 0.9 lr 0.2, batches of 64",
        config={"family": "cnn", "gain": gain},
    )


# --------------------------------------------------------------------------------------------
# Long-term dependencies
# --------------------------------------------------------------------------------------------


def ltd_rnn_adam_clip(seed: int, cell: str = "rnn") -> Experiment:
    """A tanh RNN (24 units) recalling a sign marked in the first 4 of 30 steps; Adam 1e-2,
    gradient norm clipped at 1, batches of 32."""
    x, y = marked_sign()
    torch.manual_seed(seed)
    model = RecurrentNet(cell, 2, 24, 2)
    exp = _exp(
        seed,
        "final13-long-term-dependencies-rnn-adam-clip-marked-sign",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=32,
        opt="adam",
        lr=1e-2,
        steps=500,
        description=f"{cell} (24 units) recalling the sign marked among the first 4 of 30 noisy "
        "steps, Adam 1e-2 clipped at norm 1, batches of 32",
        config={"family": "rnn", "cell": cell, "delay": 30},
    )
    return _clipped(exp, 1.0)


def ltd_mlp_sgd_b1(seed: int, depth: int = 18) -> Experiment:
    """Wine, a tanh MLP of 18 hidden layers of 24 (default init, no normalization, no skips),
    SGD 0.05 on single samples."""
    x, y = wine()
    torch.manual_seed(seed)
    model = _mlp([13] + [24] * depth + [3], nn.Tanh)
    return _exp(
        seed,
        "final13-long-term-dependencies-mlp-sgd-batch1-deep-tanh",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=1,
        opt="sgd",
        lr=0.05,
        steps=600,
        description=f"tanh MLP with {depth} hidden layers of 24 (PyTorch's default init, no "
        "normalization or skips) on wine, SGD 0.05 on batches of 1",
        config={"family": "mlp", "depth": depth},
    )


def ltd_transformer_adamw(seed: int, residual: bool = False) -> Experiment:
    """Majority token, a TinyTransformer of 8 blocks without skips or norms inside (tanh MLPs),
    AdamW 3e-3 with a warmup of 30 then a cosine, batches of 32."""
    x, y = majority()
    torch.manual_seed(seed)
    model = TinyTransformer(
        8, 12, d=16, heads=2, layers=8, residual=residual, pool=True, act="tanh"
    )
    exp = _exp(
        seed,
        "final13-long-term-dependencies-transformer-adamw-warmup-deep-no-skips",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=32,
        opt="adamw",
        lr=3e-3,
        steps=300,
        description="TinyTransformer (d 16, 8 blocks, "
        + ("pre-LayerNorm residual" if residual else "no skips, no norms inside, tanh MLPs")
        + ") classifying the majority token of 12, AdamW 3e-3, warmup 30 then a cosine, "
        "batches of 32",
        config={"family": "transformer", "layers": 8, "residual": residual},
    )
    return _warm(exp, 30)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

CASES: list[Case] = [
    Case(
        "final13-ill-conditioning-mlp-sgd-scaled-teacher",
        "ill-conditioning",
        "mlp",
        "sgd",
        FINAL13,
        ill_mlp_sgd,
        0,
        "Planted: the teacher's 8 inputs have their columns scaled 0.1 ... 10, and full-batch "
        "SGD runs at lr 0.08, 2/lr = 25 under the Hessian's lambda_max: 27.5 at the start, 31.8 "
        "at step 100, 26.0 at step 200, 27.4 at the end (exact Hessian, 321 parameters). The "
        "loss oscillates instead of falling: step losses (means of 11) 0.66, 0.57, 0.54, 0.49, "
        "0.49, 0.36, 0.46, 0.31 at steps 0, 57, 114, 171, 228, 285, 342, 399, between 0.27 and "
        "4.2 over the last 100 steps, with gradient norms 1.2, 1.7, 2.1, 2.2, 2.5, 0.32, 2.0, "
        "1.0 at the same steps; full-data loss 0.741 at the start, 0.940 at the end (gradient "
        "1.55 and 2.73). References: the same inputs standardized, same lr 0.08, fall "
        "smoothly to 0.073 (gradient norm ~0.05); the scaled inputs at lr 0.02 reach 0.415 and "
        "at 0.005 0.530 (the small columns barely move). "
        "Plain training 0.19 s.",
    ),
    Case(
        "final13-ill-conditioning-cnn-nesterov-hot-logits",
        "ill-conditioning",
        "cnn",
        "momentum(nesterov)",
        FINAL13,
        ill_cnn_nesterov,
        0,
        "Planted: the residual CNN's logits are multiplied by 12, so the head's curvature is "
        "144x, and Nesterov 0.9 runs at lr 0.07, whose stability limit on a quadratic is "
        "2(1+b)/((1+2b) lr) = 19.4. Hessian lambda_max on 256 fixed images (training-mode batch "
        "norm, Lanczos): 92.5 at the start, 45.5 at step 50, 39.6 at 150, 25.1 at the end, above "
        "19.4 throughout. The loss falls slowly with the gradient norm high: step losses (means "
        "of 11) 12.9 -> 3.6 (step 42) -> 3.3 (85) -> 2.9 (128) -> 2.5 (170) -> 2.3 (256) -> 1.8 "
        "(299), gradient norm 18 -> 5.1 -> 4.5 -> 4.3 -> 3.7 -> 3.4 -> 3.4; full-data loss "
        "7.56 -> 1.80 (2.73 with running statistics). References: logits x1 at the same lr reach "
        "0.004 (gradient norm 0.06); logits x12 at lr 0.007 reach 0.007. Plain training 1.4 s.",
    ),
    Case(
        "final13-ill-conditioning-mlp-momentum-raw-cancer",
        "ill-conditioning",
        "mlp",
        "momentum",
        FINAL13,
        ill_mlp_momentum,
        0,
        "Planted: breast cancer divided by one constant (100), so the columns keep their raw "
        "scales (1e-5 to 40); heavy ball 0.9 at lr 0.02 on batches of 32. The full-data gradient "
        "points along the sharpest direction: its curvature g'Hg/g'g is 41.2, 39.0 and 38.1 at "
        "steps 100, 200 and 399 against lambda_max 41.3, 39.0, 38.2 (exact Hessian, 1,058 "
        "parameters), so for the accumulated step lr/(1-b) = 0.2 the second-order term "
        "(0.2 x 38 / 2 = 3.8x the first-order one) cancels the decrease. The loss stalls while "
        "the gradient grows: step losses 0.72 -> 0.23 (step 57) -> 0.16 (114) -> 0.20 (171) -> "
        "0.17 (228) -> 0.18 (285) -> 0.17 (399), full-data gradient norm 0.93 (step 100) -> "
        "2.03 (200) -> 2.89 (399); full-data loss 0.838 -> 0.244. References: standardized "
        "columns at the same lr and batches reach 0.033 (0.0026 at lr 0.2); lr 0.002 on the raw "
        "scales reaches 0.250. Caveat: heavy ball's quadratic limit, 2(1+b)/lr = 190, is above "
        "lambda_max, and full-batch training at lr 0.02 also stalls (0.167) but with a small "
        "gradient (0.014): the batch noise keeps the sharp directions ringing (they damp by "
        "only sqrt(b) = 0.95 a step) while the flat ones barely move. Plain training 0.17 s.",
    ),
    Case(
        "final13-local-minima-mlp-adam-two-sines",
        "local-minima",
        "mlp",
        "adam+cosine",
        FINAL13,
        lm_mlp_adam,
        14,
        "Planted: a 5-unit tanh net has just enough units for the two sines, and some seeds "
        "settle with one oscillation missing. At seed 14 full-data loss 1.036 -> 0.371 (step "
        "99) -> 0.195 (299) -> 0.163 (399) -> 0.1615 at 600 (flat from step 450), gradient norm "
        "0.0042 at the end; exact Hessian (16 parameters) at the end: lambda_max 59.1, lambda_min "
        "-0.0053 (-9e-5 of lambda_max). The same builder at seeds 15, 16, 17 ends at 0.0294, "
        "0.0314, 0.0353 (all below 0.22x). Full batch of 200, plain training 0.29 s.",
        any_seed=False,
    ),
    Case(
        "final13-local-minima-rnn-adam-split-sum",
        "local-minima",
        "rnn",
        "adam+cosine",
        FINAL13,
        lm_rnn_adam,
        2,
        "Planted: a 5-unit tanh RNN must add up the 4 parts of s and fit two sines of the sum; "
        "some seeds settle with a poorer fit. At seed 2 full-data loss 0.760 -> 0.422 (step 99) "
        "-> 0.331 (199) -> 0.274 (299) -> 0.253 (399) -> 0.237 (499) -> 0.2349 at 600, gradient "
        "norm 0.017 at the end; exact Hessian (46 parameters) at the end: lambda_max 134.5, "
        "lambda_min -0.0047 (-3.5e-5 of lambda_max). The same builder at seeds 3, 4, 5 ends at "
        "0.0895, 0.135, 0.153 (0.38x, 0.58x, 0.65x). Full batch of 256, plain training 0.54 s.",
        any_seed=False,
    ),
    Case(
        "final13-local-minima-mlp-momentum-sine-product",
        "local-minima",
        "mlp",
        "momentum+cosine",
        FINAL13,
        lm_mlp_momentum,
        13,
        "Planted: a 4-unit tanh net fitting sin(2 x1) cos(2 x2); most seeds reach 0.045-0.064, "
        "some stop at a poorer minimum. At seed 13 full-data loss 0.254 -> 0.151 (step 133) -> "
        "0.147 (266) -> 0.141 (399) -> 0.129 (532) -> 0.127 (665) -> 0.1268 at 800, gradient "
        "norm 0.005 at the end; exact Hessian (17 parameters) at the end: lambda_max 18.2, "
        "lambda_min -8.5e-5 (-5e-6 of lambda_max). The same builder at seeds 14, 15, 16 ends at "
        "0.0624, 0.0453, 0.0637 (0.49x, 0.36x, 0.50x). Full batch of 400, plain training 0.25 s.",
        any_seed=False,
    ),
    Case(
        "final13-saddle-points-mlp-sgd-tiny-init",
        "saddle-points",
        "mlp",
        "sgd",
        FINAL13,
        saddle_mlp_sgd,
        220,
        "Planted: weights of std 1e-5 put the net next to the saddle at the origin (the product "
        "of the two layers is ~1e-10). Full-data loss (means of 11 steps) 0.268 (start) -> "
        "0.265 (step 37) -> 0.264 (74, 112, 149, 187) -> 0.259 (224), then the escape: 0.211 "
        "(261) -> 0.133 (299) -> 0.123 (336, a second, shorter plateau) -> 0.093 (411) -> 0.070 "
        "at 450. Gradient norm on the plateau 0.0094 (37), 0.0014 (74), 0.0010 (112), 0.0038 "
        "(149), against 0.16 during the escape. Exact Hessian (244 parameters) at step 60: "
        "lambda_max 0.500 (the output biases), lambda_min -0.381, gradient 0.0029; at step 150: "
        "0.500 and -0.381, gradient 0.0039. Reference: the default init (same SGD 0.1) reaches "
        "0.021. Full batch of 256, plain training 0.15 s.",
    ),
    Case(
        "final13-saddle-points-rnn-nesterov-tiny-init",
        "saddle-points",
        "rnn",
        "momentum(nesterov)",
        FINAL13,
        saddle_rnn_nesterov,
        220,
        "Planted: every RNN and read-out weight of std 1e-5, biases 0: the run starts next to "
        "the saddle at the origin. Step losses (means of 11) 1.48 (start) -> 1.46 (41) -> 1.44 "
        "(83) -> 1.46 (124) -> 1.45 (166) -> 1.43 (207), then 1.25 (249) -> 0.90 (291, 332: a "
        "second saddle) -> 0.84 (374) -> 0.46 (415) -> 0.30 (457) -> 0.19 at 500; batch "
        "gradient norm 0.084-0.089 on the plateau (batch noise of the output bias) against "
        "0.18-0.55 after it. Full-data Hessian (exact, 370 parameters) at step 60: lambda_max "
        "1.082, lambda_min -1.082, full-data gradient 0.0011; at step 150: 1.082, -1.082, "
        "gradient 0.014. Full-data loss 1.453 -> 0.189. Reference: PyTorch's default init "
        "(same optimizer) reaches 0.014. Seed 221: flat at 1.44-1.50 to step 207, ends at 0.183. "
        "Batches of 128, plain training 0.71 s.",
    ),
    Case(
        "final13-saddle-points-cnn-momentum-zero-gains",
        "saddle-points",
        "cnn",
        "momentum",
        FINAL13,
        saddle_cnn_momentum,
        220,
        "Planted: every batch-norm gain 1e-3 and the head's weights of std 1e-3: the output is "
        "a product of small factors (gains x head), a saddle at the uniform prediction. Step "
        "losses (means of 11) 2.30 at steps 0, 49, 99, 149, 199, 249 (ln 10 = 2.303), then 2.24 "
        "(299) -> 1.97 (349) -> 1.74 (449) -> 1.49 (499) -> 1.14 at 600; batch gradient norm "
        "0.12-0.13 on the plateau (noise of the head's bias) against 0.4-0.76 after it. Hessian "
        "on 256 fixed images (training-mode batch norm, exact: 1,362 parameters) at step 100: "
        "lambda_max 0.107, lambda_min -0.023, gradient 0.018; at step 200: 0.112 and -0.029, "
        "gradient 0.026. Full-data loss 2.303 -> 1.12. Reference: PyTorch's default init, same "
        "optimizer, reaches 0.0037. Batches of 64, plain training 1.7 s.",
    ),
    Case(
        "final13-long-term-dependencies-rnn-adam-clip-marked-sign",
        "long-term-dependencies",
        "rnn",
        "adam+clip",
        FINAL13,
        ltd_rnn_adam_clip,
        0,
        "Planted: the label is a sign written 26-29 steps before the read-out, through a tanh "
        "RNN. Norm of dL/dh_t (256 sequences, unrolled by hand) at the start: 2.7e-8 (t=0), "
        "1.0e-7 (3), 1.8e-6 (10), 1.6e-4 (20), 0.028 (29): h_0/h_29 = 9.6e-7; at the end "
        "4.0e-7 / 0.012 = 3.3e-5. The loss stays at chance: full-data 0.712 -> 0.691 (ln 2 = "
        "0.693), step losses 0.695 (99), 0.692 (199), 0.691 (299), 0.692 (399), 0.695 (499). "
        "The fix: a GRU in the same builder reaches 2.3e-5 (escaping at step ~250), an LSTM "
        "0.069. At seed 1 the RNN ends at 0.662 (h_0/h_29 = 9e-10 at the end), the GRU at "
        "4e-4. Batches of 32, plain training 1.1 s.",
    ),
    Case(
        "final13-long-term-dependencies-mlp-sgd-batch1-deep-tanh",
        "long-term-dependencies",
        "mlp",
        "sgd",
        FINAL13,
        ltd_mlp_sgd_b1,
        0,
        "Planted: 18 tanh hidden layers at PyTorch's default init (weights of variance "
        "1/(3 fan_in)), no normalization or skips: the signal and the gradient shrink layer by "
        "layer. Weight-gradient norms on the full data at the start: first layer 1.5e-5, tenth "
        "4.2e-4, last 0.086 (first/last 1.8e-4); at the end 7.8e-6 / 0.022 (3.6e-4). The loss "
        "stays at the class prior (entropy 1.086): full-data 1.104 -> 1.091, step losses "
        "(means of 11) 1.14, 1.12, 1.21, 1.10, 1.07, 1.05 at steps 0, 119, 239, 359, 479, 599. "
        "The fix: 3 hidden layers, same SGD, reach 0.020 (0.011 at seed 1); the deep net at "
        "seed 1 ends at 1.0866 (first/last 3.6e-3 at the start). Batches of 1, plain training "
        "0.74 s.",
    ),
    Case(
        "final13-long-term-dependencies-transformer-adamw-warmup-deep-no-skips",
        "long-term-dependencies",
        "transformer",
        "adamw+warmup-cosine",
        FINAL13,
        ltd_transformer_adamw,
        0,
        "Planted: 8 transformer blocks without their residual connections or LayerNorms "
        "(attention then a tanh MLP, default init), so the tokens' signal and the gradient fade "
        "block by block. Gradient norm per block at the start: 1.4e-9 (first), 5.7e-9, 8.8e-8, "
        "1.0e-6, 9.0e-6, 9.5e-5, 1.5e-3, 0.018 (last): first/last 7.7e-8 (2.6e-7 at the end). "
        "The loss stays at chance: full-data 2.082 -> 2.076 (ln 8 = 2.079), step losses 2.08 "
        "throughout. The fix: the same blocks with pre-LayerNorm residuals, same AdamW and "
        "schedule, reach 0.201 (0.273 at seed 1); the deep net at seed 1 ends at 2.076. "
        "Batches of 32, plain training 3.2 s.",
    ),
]
