"""A fourteenth held-out zoo split (``"final13"``, this file): cliffs, inexact gradients and
local-global mismatch, three cases each, planted by construction.

Cliffs (Deep Learning sec. 8.2.4), none clipped: a tanh RNN whose recurrent matrix has
spectral radius 1.5 on sequences of 30 steps, plain SGD at a rate that the flat stretches
allow and the steep walls do not; multiplicative units (four linear read-outs of one tanh
layer multiplied together), plain SGD, where each factor's gradient is the product of the
others and grows with them until the run blows up; and a batch-norm ResNet counting pixels
under a Poisson likelihood with a log link, heavy ball, where the rate exp(output) is steep
wherever the output overshoots. The hand check compares each with the same run with the
gradient norm clipped to 1.

Inexact gradients (sec. 8.2.6): a batch-norm ResNet on batches of 2 with heavy ball, a
transformer on single samples with Adam, and a GRU on batches of 4 with AdamW and the gradient
norm clipped to 1; each on data with random labels or noisy targets, at a constant rate, so
that the minibatch noise sets how far the run gets. The hand check reruns the same builder on
batches 8x larger and on batches of 64, same rate, schedule and number of steps.

Local-global mismatch (sec. 8.2.7): a run started where a first phase stopped (full-batch
Adam with a cosine decay to zero, 400 steps, made in ``build``), then full-batch Adam at a
larger rate with a warmup and a cosine, which travels to a much lower point along a path that
bends around a ridge: the straight line from the start to the end rises well above the start.
A 1-3-1 ReLU MLP fitting a V with a shelf, a three-unit tanh RNN fitting a two-step delay, a
d_model 4 transformer reversing sequences. Where the first phase stops depends on the seed:
these cases are planted at their own seed (``any_seed=False``).

Data, all generated from fixed seeds of this split's range (225000 to 229999): two-channel
white-noise sequences with an end-of-sequence target, a product teacher, images of scattered
bright pixels with their count, images of a blob in one of four quadrants with 20% random
labels, tokens labelled by the first one with 20% random labels, two-channel sequences with a
target made of their last values plus noise, a noisy V with a shelf, a two-step delay, and
token sequences with their reversal. Every model is built inside ``build(seed)`` after
``torch.manual_seed(seed)``. Each builder takes ``batch`` (the inexact-gradients references
are the same run on other batches).

How each case was checked (plain training with torch, one thread; never the detectors): the
full-data loss along the run (batch norm on its running statistics), the raw gradient norm at
every step against its running median (of the 50 steps before), and the same run with the
gradient norm clipped to 1; the reruns on larger batches; the loss along the straight segment
from the start to the end parameters (21 points, full data), the length of the path (the sum
of the update norms) against the distance, and the same builder at other seeds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from optiscope import Experiment

from . import Case
from .data import batches, flip_labels
from .final2 import _mlp
from .final5 import _warm
from .final6 import _clipped
from .mlp_cnn import _ResNet
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer, _set_radius_

FINAL13 = "final13"
CLIFFS = "cliffs"
IG = "inexact-gradients"
LGM = "local-global-mismatch"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _gen(base: int, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(225000 + base + seed)


def end_sum_seq(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-channel white-noise sequences; the target is tanh(sum of the first channel's last 4
    values - sum of the second channel's last 2)."""
    gen = _gen(0, seed)
    x = torch.randn(n, length, 2, generator=gen)
    y = torch.tanh(x[:, -4:, 0].sum(1, keepdim=True) - x[:, -2:, 1].sum(1, keepdim=True))
    return x, y


def product_target(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs; the target is prod_k (1 + tanh(x_k) / 2) over the first 4 inputs, times
    the sign of the fifth, plus noise of std 0.05."""
    gen = _gen(3500, seed)
    x = torch.randn(n, d, generator=gen)
    y = (1 + 0.5 * torch.tanh(x[:, :4])).prod(1, keepdim=True) * torch.sign(x[:, 4:5])
    return x, y + 0.05 * torch.randn(n, 1, generator=gen)


def dot_counts(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 images with k bright pixels (+1, k uniform on 0..59) at random places on Gaussian
    pixel noise of std 0.2; the target is the count k."""
    gen = _gen(1700, seed)
    k = torch.randint(0, 60, (n,), generator=gen)
    img = 0.2 * torch.randn(n, 64, generator=gen)
    for i in range(n):
        img[i, torch.randperm(64, generator=gen)[: int(k[i])]] += 1.0
    return img.view(n, 1, 8, 8), k.float().unsqueeze(1)


def blob_images(n: int, pixel: float, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1x8x8 images with a 2x2 blob (+1) in one of four 4x4 quadrants (the class) at a random
    offset inside it, on Gaussian pixel noise of std ``pixel``; a fraction ``noise`` of the
    labels redrawn at random."""
    gen = _gen(2000, seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    img = pixel * torch.randn(n, 8, 8, generator=gen)
    off = torch.randint(0, 3, (n, 2), generator=gen)
    for i in range(n):
        r = 4 * (int(y[i]) // 2) + int(off[i, 0])
        c = 4 * (int(y[i]) % 2) + int(off[i, 1])
        img[i, r : r + 2, c : c + 2] += 1.0
    return img.unsqueeze(1), flip_labels(y, noise, 4, 229000 + seed) if noise else y


def _random_tokens(n: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, (n, length), generator=_gen(3000, seed))


def first_token(
    n: int, length: int, vocab: int, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token sequences labelled by their first token, a fraction ``noise`` of the labels
    redrawn at random."""
    x = _random_tokens(n, length, vocab, seed)
    return x, flip_labels(x[:, 0], noise, vocab, 229500 + seed) if noise else x[:, 0]


def mirrored_tokens(
    n: int, length: int, vocab: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token sequences; the labels are the sequence reversed (position by position)."""
    x = _random_tokens(n, length, vocab, seed)
    return x, x.flip(1)


def recent_sums(n: int, length: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-channel Gaussian sequences; the target is tanh of a decaying weighted sum of the
    first channel's last 6 values minus tanh of the sum of the second channel's last 3, scaled
    to variance 1, plus Gaussian noise of std ``noise``."""
    gen = _gen(4000, seed)
    x = torch.randn(n, length, 2, generator=gen)
    w = 0.8 ** torch.arange(6.0).flip(0)
    y = torch.tanh((x[:, -6:, 0] * w).sum(1)) - torch.tanh(x[:, -3:, 1].sum(1))
    y = y / y.std() + noise * torch.randn(n, generator=gen)
    return x, y.unsqueeze(1)


def v_shelf(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D inputs uniform on [-3, 3]; the target is |x - 0.7| - 1.5 relu(x - 2) (a V with its
    kink at 0.7 that turns down past 2) plus noise of std 0.05."""
    gen = _gen(5000, seed)
    x = 6 * torch.rand(n, 1, generator=gen) - 3
    y = (x - 0.7).abs() - 1.5 * torch.relu(x - 2.0) + 0.05 * torch.randn(n, 1, generator=gen)
    return x, y


def delay_seq(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar Gaussian sequences; the target at every step is the value two steps before minus
    half the one before (zero at the first two steps)."""
    gen = _gen(4500, seed)
    x = torch.randn(n, length, 1, generator=gen)
    y = torch.zeros_like(x)
    y[:, 2:] = x[:, :-2] - 0.5 * x[:, 1:-1]
    return x, y


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _optim(model: nn.Module, kind: str, lr: float, wd: float) -> torch.optim.Optimizer:
    p = model.parameters()
    if kind in ("sgd", "momentum"):
        return torch.optim.SGD(p, lr=lr, momentum=0.0 if kind == "sgd" else 0.9, weight_decay=wd)
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
) -> Experiment:
    """One run on ``(x, y)`` cut into batches of ``batch`` (the full data when ``batch`` covers
    it), evaluated on the full data; AdamW gets its default weight decay 1e-2."""
    wd = 1e-2 if opt == "adamw" and not wd else wd
    return Experiment(
        model=model,
        loss_fn=loss_fn,
        data=[(x, y)] if batch >= len(y) else batches(x, y, batch, seed),
        optimizer=_optim(model, opt, lr, wd),
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
        },
    )


def _settle(exp: Experiment) -> None:
    """Train ``exp`` plainly (no monitor): the first phase of a warm start, made in ``build``."""
    model = exp.model
    for inputs, targets in exp.batches():
        exp.optimizer.zero_grad(set_to_none=True)
        exp.loss_fn(model(inputs), targets).backward()
        exp.optimizer.step()
        if exp.scheduler is not None:
            exp.scheduler.step()


def _warm_start(
    seed: int,
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    pre_lr: float,
    pre_steps: int = 400,
) -> None:
    """Settle ``model`` in a basin: full-batch Adam at ``pre_lr`` with a cosine decay to zero."""
    pre = _exp(
        seed,
        "warm-start",
        model,
        loss_fn,
        x,
        y,
        batch=len(y),
        opt="adam",
        lr=pre_lr,
        steps=pre_steps,
        description="",
        config={},
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(pre.optimizer, pre_steps)
    _settle(dataclasses.replace(pre, scheduler=sched))


class _ProductNet(nn.Module):
    """A tanh layer, then ``k`` linear read-outs multiplied together (multiplicative units)."""

    def __init__(self, n_in: int, hidden: int, k: int, bias: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh())
        self.heads = nn.Linear(hidden, k)
        with torch.no_grad():
            self.heads.bias.fill_(bias)  # each factor starts near ``bias``: off the saddle at 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.body(x)).prod(-1, keepdim=True)


# --------------------------------------------------------------------------------------------
# Cliffs
# --------------------------------------------------------------------------------------------


def cliffs_rnn_sgd(seed: int, batch: int = 16, lr: float = 0.15, steps: int = 300) -> Experiment:
    """A tanh RNN with recurrent spectral radius 1.5 regressing a function of the last inputs
    of 30-step sequences, plain SGD at lr 0.15 on batches of 16, no clipping."""
    x, y = end_sum_seq(512, 30, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("rnn", 2, 16, 1)
    _set_radius_(model.rnn, 1.5, _gen(50, seed))
    return _exp(
        seed,
        "final13-cliffs-rnn-sgd-batch16-spectral-radius-1.5-no-clip",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="tanh RNN (16 units, recurrent spectral radius 1.5) regressing tanh of a sum "
        f"of the last inputs of 30-step sequences, 512 sequences, SGD lr {lr} batch {batch}, "
        "no clipping",
        config={"family": "rnn", "radius": 1.5, "length": 30},
    )


def cliffs_mlp_product_sgd(
    seed: int, batch: int = 32, lr: float = 0.09, steps: int = 300, bias: float = 1.0
) -> Experiment:
    """Multiplicative units: four linear read-outs of a tanh layer multiplied together,
    regressing a product teacher, plain SGD at lr 0.09 on batches of 32, no clipping."""
    x, y = product_target(1024, 6, 0)
    torch.manual_seed(seed)
    model = _ProductNet(6, 32, 4, bias)
    return _exp(
        seed,
        "final13-cliffs-mlp-sgd-batch32-product-of-four-units-no-clip",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="MLP 6-32 (tanh) whose 4 linear read-outs are multiplied together, "
        f"regressing a product teacher, 1024 points, SGD lr {lr} batch {batch}, no clipping",
        config={"family": "mlp", "factors": 4},
    )


def cliffs_cnn_momentum_poisson(
    seed: int, batch: int = 32, lr: float = 0.04, steps: int = 300
) -> Experiment:
    """A batch-norm ResNet counting bright pixels with a Poisson likelihood on a log-rate
    output (the rate is exp of the output: steep where it overshoots), heavy ball at lr 0.04
    on batches of 32, no clipping; the output bias starts at log 30, the mean count."""
    x, y = dot_counts(1024, 0)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 1)
    with torch.no_grad():
        model.head.bias.fill_(3.4)
    return _exp(
        seed,
        "final13-cliffs-cnn-momentum-batch32-poisson-log-rate-counts-no-clip",
        model,
        nn.PoissonNLLLoss(log_input=True, full=True),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) predicting the log-rate of a "
        "Poisson count of bright pixels (0 to 59) in 1024 noisy 8x8 images, momentum 0.9 lr "
        f"{lr} batch {batch}, no clipping",
        config={"family": "cnn", "likelihood": "poisson, log link"},
    )


# --------------------------------------------------------------------------------------------
# Inexact gradients
# --------------------------------------------------------------------------------------------


def ig_cnn_momentum_b2(seed: int, batch: int = 2, lr: float = 0.02, steps: int = 300) -> Experiment:
    """A batch-norm ResNet naming the quadrant of a faint blob, 20% random labels, heavy ball
    on batches of 2 at a constant rate."""
    x, y = blob_images(1024, 0.6, 0.2, 0)
    torch.manual_seed(seed)
    model = _ResNet(8, 1, 4)
    return _exp(
        seed,
        "final13-inexact-gradients-cnn-momentum-batch2-blob-quadrants-label-noise",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="batch-norm ResNet (8 channels, 1 block) naming which quadrant of a noisy "
        f"8x8 image holds a faint blob, 1024 images, 20% random labels, momentum 0.9 lr {lr} "
        f"batch {batch}",
        config={"family": "cnn", "label_noise": 0.2},
    )


def ig_tfm_adam_b1(seed: int, batch: int = 1, lr: float = 1e-3, steps: int = 400) -> Experiment:
    """A transformer naming the first token of a sequence, 20% random labels, Adam on single
    samples at a constant rate."""
    x, y = first_token(1024, 8, 8, 0.2, 0)
    torch.manual_seed(seed)
    model = TinyTransformer(8, 8, d=16, heads=2, layers=1, pool=True)
    return _exp(
        seed,
        "final13-inexact-gradients-transformer-adam-batch1-first-token-label-noise",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="transformer (d 16, 2 heads, 1 block, mean-pooled, tied output) naming the "
        f"first of 8 tokens (vocab 8), 1024 sequences, 20% random labels, Adam lr {lr} batch "
        f"{batch}",
        config={"family": "transformer", "label_noise": 0.2},
    )


def ig_rnn_adamw_b4(seed: int, batch: int = 4, lr: float = 1e-2, steps: int = 300) -> Experiment:
    """A GRU regressing a function of the recent inputs with noisy targets, AdamW on batches
    of 4 with the gradient norm clipped to 1."""
    x, y = recent_sums(1024, 16, 0.7, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 2, 16, 1)
    exp = _exp(
        seed,
        "final13-inexact-gradients-rnn-gru-adamw-batch4-recent-sums-noisy-targets-clipped",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="adamw",
        lr=lr,
        steps=steps,
        description="GRU (16 units) regressing tanh(weighted sum of the last 6 inputs) - "
        "tanh(sum of a second channel's last 3), 1024 sequences of 16 steps, target noise std "
        f"0.7, AdamW (wd 1e-2) lr {lr} batch {batch}, gradient norm clipped to 1",
        config={"family": "rnn", "target_noise": 0.7},
    )
    return _clipped(exp, 1.0)


# --------------------------------------------------------------------------------------------
# Local-global mismatch
# --------------------------------------------------------------------------------------------


def lgm_mlp_adam(seed: int, lr: float = 0.05, steps: int = 300) -> Experiment:
    """A 1-3-1 ReLU MLP fitting a V with a shelf, started where full-batch Adam with a cosine
    settled, then full-batch Adam at lr 0.05 with a warmup and a cosine."""
    x, y = v_shelf(256, 0)
    torch.manual_seed(seed)
    model = _mlp([1, 3, 1])
    _warm_start(seed, model, nn.MSELoss(), x, y, 0.01)
    exp = _exp(
        seed,
        "final13-local-global-mismatch-mlp-adam-full-batch-v-shelf-warm-start",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=len(y),
        opt="adam",
        lr=lr,
        steps=steps,
        description="ReLU MLP 1-3-1 fitting a V with a shelf (256 points), started where "
        "full-batch Adam lr 0.01 with a cosine settled (400 steps), then full-batch Adam lr "
        f"{lr}, warmup 30 then cosine to 0",
        config={"family": "mlp", "warm_start": "400 steps of full-batch Adam lr 0.01, cosine"},
    )
    return _warm(exp, 30)


def lgm_rnn_adam(seed: int, lr: float = 0.05, steps: int = 300) -> Experiment:
    """A three-unit tanh RNN fitting a two-step delay at every step, started where full-batch
    Adam with a cosine settled, then full-batch Adam at lr 0.05 with a warmup and a cosine."""
    x, y = delay_seq(256, 12, 0)
    torch.manual_seed(seed)
    model = RecurrentNet("rnn", 1, 3, 1, every_step=True)
    _warm_start(seed, model, nn.MSELoss(), x, y, 0.01)
    exp = _exp(
        seed,
        "final13-local-global-mismatch-rnn-adam-full-batch-delay-warm-start",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=len(y),
        opt="adam",
        lr=lr,
        steps=steps,
        description="tanh RNN (3 units) predicting x[t-2] - x[t-1]/2 at every step of 256 "
        "sequences of 12, started where full-batch Adam lr 0.01 with a cosine settled (400 "
        f"steps), then full-batch Adam lr {lr}, warmup 30 then cosine to 0",
        config={"family": "rnn", "warm_start": "400 steps of full-batch Adam lr 0.01, cosine"},
    )
    return _warm(exp, 30)


def lgm_tfm_adam(seed: int, lr: float = 0.03, steps: int = 300) -> Experiment:
    """A d_model 4 transformer reversing token sequences, started where full-batch Adam with a
    cosine settled, then full-batch Adam at lr 0.03 with a warmup and a cosine."""
    x, y = mirrored_tokens(256, 6, 6, 7)
    torch.manual_seed(seed)
    model = TinyTransformer(6, 6, d=4, heads=1, layers=1)
    _warm_start(seed, model, SequenceCrossEntropy(), x, y, 0.01)
    exp = _exp(
        seed,
        "final13-local-global-mismatch-transformer-adam-full-batch-reversal-warm-start",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=len(y),
        opt="adam",
        lr=lr,
        steps=steps,
        description="transformer (d 4, 1 head, 1 block, tied output) reversing 256 sequences of "
        "6 tokens (vocab 6), started where full-batch Adam lr 0.01 with a cosine settled (400 "
        f"steps), then full-batch Adam lr {lr}, warmup 30 then cosine to 0",
        config={"family": "transformer", "warm_start": "400 steps of full-batch Adam lr 0.01"},
    )
    return _warm(exp, 30)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

CASES: list[Case] = [
    # ---- cliffs
    Case(
        "final13-cliffs-rnn-sgd-batch16-spectral-radius-1.5-no-clip",
        CLIFFS,
        "rnn",
        "sgd",
        FINAL13,
        cliffs_rnn_sgd,
        0,
        "A tanh RNN (16 units) with recurrent spectral radius 1.5 on 30-step sequences, SGD lr "
        "0.15 on batches of 16, no clipping; hand check: full-data loss 0.889 at the start, "
        "0.559 at step 40, 0.549 at 45 (after a first bump to 6.2 at step 25); raw gradient "
        "norm median 2.39, then 466x its running median (2.8e3) at step 53, 5.9e3x (5.1e4) at "
        "63, 1.1e4x (1.2e5) at 70, 18 steps over 10x between steps 52 and 206; loss 11.0 at "
        "step 50, 3070 at 60, 4078 at 65, 199 at 70, 42.7 at 75, under 1 again only at step "
        "100, then 0.54 to 1.42 to the end (0.588 at step 300). The same run with the gradient "
        "norm clipped to 1: 0.570 (step 25), 0.360 (50), 0.225 (100), 0.094 (200), 0.084 at "
        "the end, no step over 10x its running median. Seeds 1 and 2: largest gradient 1.3e3x "
        "and 8.1e3x its running median, end 0.649 and 1.01 unclipped, 0.050 and 0.063 clipped.",
    ),
    Case(
        "final13-cliffs-mlp-sgd-batch32-product-of-four-units-no-clip",
        CLIFFS,
        "mlp",
        "sgd",
        FINAL13,
        cliffs_mlp_product_sgd,
        0,
        "Multiplicative units: a tanh layer (6-32) whose 4 linear read-outs (biases 1) are "
        "multiplied, regressing a product teacher (variance 1.48), SGD lr 0.09 on batches of "
        "32, no clipping; hand check: full-data loss 3.89 -> 1.35 (step 5) -> 0.81 (step 40), "
        "then it thrashes between 1.09 and 1.47 (steps 45 to 115) while the raw gradient norm "
        "rises step over step: 12.8x its running median at step 44, 22x at 50, 68x at 104, 79x "
        "at 117, 159x at 118, 1961x (931) at 119 and 2.6e13 at step 120, where the loss turns "
        "infinite (NaN after). The same run with the gradient norm clipped to 1: 1.13 (step "
        "25), 0.83 (50), 0.42 (100), 0.35 (150), 0.346 at step 300, no step over 10x. Seed 1 "
        "blows up too (clipped: 0.324); seed 2 thrashes to 0.851 with steps 47x its running "
        "median (clipped: 0.284).",
    ),
    Case(
        "final13-cliffs-cnn-momentum-batch32-poisson-log-rate-counts-no-clip",
        CLIFFS,
        "cnn",
        "momentum",
        FINAL13,
        cliffs_cnn_momentum_poisson,
        0,
        "A batch-norm ResNet (8 channels, 1 block) predicting the log-rate of a Poisson count "
        "(0 to 59 bright pixels), output bias started at log 30, heavy ball 0.9 lr 0.04 on "
        "batches of 32, no clipping; hand check: full-data loss 8.86 at the start; batch loss "
        "19.4, 54.9, 34.5, 57.7 on the first 4 steps and full-data loss 1631 at step 5, 183 at "
        "40, 3831 at 55, 1.4e4 at 70, down to 240 at 120; raw gradient norm median 30.1, 17x "
        "its running median at step 17, 65x (1893) at 54, 23x at 122, 547x (1.67e4) at 144; "
        "batch loss 472 at step 140 -> 1.65e4 at 143 -> 1.16e5 at 150; full-data loss 1.0e5 "
        "at step 150, 1.85e5 at 180, 1.46e5 at the end (the spike threw the log-rate far "
        "negative, where the gradient stays near the count and the loss falls slowly). The "
        "same run with the gradient norm clipped to 1: 3.62 (step 25), 2.89 (50), 2.65 to 4.31 "
        "from step 75 on, 3.99 at the end, no step over 10x. Seed 1 ends at 1.2e6 (clipped "
        "3.0); seed 2 turns NaN (clipped 2.68).",
    ),
    # ---- inexact gradients
    Case(
        "final13-inexact-gradients-cnn-momentum-batch2-blob-quadrants-label-noise",
        IG,
        "cnn",
        "momentum",
        FINAL13,
        ig_cnn_momentum_b2,
        0,
        "A batch-norm ResNet (8 channels, 1 block) naming the quadrant of a blob in 1024 noisy "
        "images, 20% random labels (entropy floor 0.59), heavy ball 0.9 lr 0.02 on batches of "
        "2, 300 steps; hand check: full-data loss (running statistics) 1.433 -> 1.53 (step 50) "
        "-> 1.40 (100) -> 1.38 (200) -> 1.342 at the end, mean batch loss of the last fifth "
        "1.356. Same builder, lr and steps: batches of 16 reach 1.30 (100), 1.105 (200), 0.997 "
        "at the end; batches of 64 1.266, 1.037, 1.064 (last-fifth batch mean 0.924). Seeds 1 "
        "and 2: 1.365 and 1.261 on batches of 2, 1.102 and 0.991 on batches of 16.",
    ),
    Case(
        "final13-inexact-gradients-transformer-adam-batch1-first-token-label-noise",
        IG,
        "transformer",
        "adam",
        FINAL13,
        ig_tfm_adam_b1,
        0,
        "A transformer (d 16, 2 heads, 1 block, mean-pooled, tied output) naming the first of "
        "8 tokens, 1024 sequences, 20% random labels (entropy floor 0.80), Adam lr 1e-3 on "
        "single samples, 400 steps; hand check: full-data loss 2.069 -> 2.03 (step 50) -> 1.98 "
        "(150) -> 1.62 (250) -> 1.48 (300) -> 1.27 at the end. Same builder, lr and steps: "
        "batches of 8 reach 1.626 (100), 1.105 (200), 0.884 (300), 0.814 at the end; batches "
        "of 64 1.167, 0.823, 0.772, 0.749. Seeds 1 and 2: 1.515 and 1.788 on single samples, "
        "0.864 and 0.899 on batches of 8.",
    ),
    Case(
        "final13-inexact-gradients-rnn-gru-adamw-batch4-recent-sums-noisy-targets-clipped",
        IG,
        "rnn",
        "adamw+clip",
        FINAL13,
        ig_rnn_adamw_b4,
        0,
        "A GRU (16 units) regressing a function of the last inputs of 16-step sequences, "
        "target noise std 0.7 (floor 0.49), AdamW lr 1e-2 (wd 1e-2) on batches of 4 with the "
        "gradient norm clipped to 1, 300 steps; hand check: full-data loss 1.404 -> 0.678 "
        "(step 50) -> 0.665 (100), then 0.651 to 0.685, 0.694 at the end (last-fifth batch mean "
        "0.714). Same builder, lr, clipping and steps: batches of 32 reach 0.618 (100), 0.531 "
        "(200), 0.502 at the end; batches of 64 0.592, 0.495, 0.423. Seeds 1 and 2: 0.643 and "
        "0.670 on batches of 4, 0.505 and 0.527 on batches of 32.",
    ),
    # ---- local-global mismatch
    Case(
        "final13-local-global-mismatch-mlp-adam-full-batch-v-shelf-warm-start",
        LGM,
        "mlp",
        "adam+warmup-cosine",
        FINAL13,
        lgm_mlp_adam,
        2,
        "A 1-3-1 ReLU MLP on a noisy V with a shelf, started where 400 steps of full-batch Adam "
        "lr 0.01 with a cosine to 0 stopped (seed 2: loss 0.0912, gradient norm 0.32), then "
        "full-batch Adam lr 0.05, warmup 30, cosine; hand check: the loss falls at every record "
        "(8 of 299 steps raise it), 0.0296 (step 25), 0.0136 (100), 0.0056 (200), 0.00495 at the"
        " end, no gradient spike (largest 0.32 at step 1); along the straight line from the "
        "start to the end: 0.091, 0.117 (alpha 0.1), 0.220 (0.25), 0.325 (0.5), 0.222 (0.7), "
        "0.084 (0.85), 0.005: a ridge 0.234 above the start (3.6x its loss); path 4.19 against "
        "distance 2.62 (1.6x). Of seeds 0 to 11 only seed 2 shows a ridge (on the others the "
        "straight line falls from the start to the end).",
        any_seed=False,
    ),
    Case(
        "final13-local-global-mismatch-rnn-adam-full-batch-delay-warm-start",
        LGM,
        "rnn",
        "adam+warmup-cosine",
        FINAL13,
        lgm_rnn_adam,
        8,
        "A 3-unit tanh RNN predicting x[t-2] - x[t-1]/2 at every step, started where 400 steps "
        "of full-batch Adam lr 0.01 with a cosine to 0 stopped (seed 8: loss 0.0662, gradient "
        "norm 0.070), then full-batch Adam lr 0.05, warmup 30, cosine; hand check: 0.035 (step "
        "25, 56 of 299 steps raise the loss), 0.0236 (100), 0.0203 (200), 0.0201 at the end, "
        "largest gradient norm 1.53 at step 30 (no step over 10x its running median); along the "
        "straight line: 0.066, 0.060 (alpha 0.1), 0.069 (0.2), 0.100 (0.35), 0.128 (0.55), 0.097"
        " (0.75), 0.041 (0.9), 0.020: a ridge 0.062 above the start (1.9x its loss); path 4.04 "
        "against distance 3.30 (1.22x). Seeds 0 to 11 all show a ridge, 0.001 to 0.062 (this one"
        " the largest).",
        any_seed=False,
    ),
    Case(
        "final13-local-global-mismatch-transformer-adam-full-batch-reversal-warm-start",
        LGM,
        "transformer",
        "adam+warmup-cosine",
        FINAL13,
        lgm_tfm_adam,
        14,
        "A d_model 4 transformer (1 head, 1 block, tied output) reversing sequences of 6 tokens,"
        " started where 400 steps of full-batch Adam lr 0.01 with a cosine to 0 stopped (seed "
        "14: loss 0.674, gradient norm 0.054), then full-batch Adam lr 0.03, warmup 30, cosine; "
        "hand check: 0.659 (step 25, 36 of 299 steps raise the loss), 0.649 (50), 0.580 (75), "
        "0.447 (100), 0.306 (150), 0.120 (200), 0.0779 at the end; largest gradient norm 7.0 at "
        "step 105 (batch loss 0.855 there), under 10x its running median; along the straight "
        "line: 0.674, 0.734 (alpha 0.1), 1.05 (0.25), 1.38 (0.4), 1.56 (0.5), 1.42 (0.6), 0.857 "
        "(0.75), 0.431 (0.85), 0.078: a ridge 0.89 above the start (2.3x its loss); path 14.7 "
        "against distance 8.31 (1.77x). Of seeds 0 to 19, 7 show a ridge of 0.05 or more (0.07 "
        "to 0.89), this one the largest.",
        any_seed=False,
    ),
]
