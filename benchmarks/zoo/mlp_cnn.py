"""Zoo cases for feed-forward families: MLPs and small CNNs (BatchNorm2d + residual blocks) on
scikit-learn's digits or on data generated from a seed.

Each ``build(seed)`` seeds torch before making the model, so a case's run is reproducible and
another seed gives the same kind of run. Models are built only inside ``build``: importing this
module is cheap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn

from optiscope import Experiment
from optiscope.training.loop import train_experiment

from . import Case
from .data import batches, digit_images, digits

# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _mlp(
    sizes: list[int], act: Callable[[], nn.Module] = nn.ReLU, bias: bool = True
) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class _Block(nn.Module):
    """A residual block: conv-BN-ReLU-conv-BN plus the identity, then ReLU."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(h)))


class _ResNet(nn.Module):
    """A small residual CNN for 1x8x8 digits: stem conv-BN-ReLU, residual blocks, average pool,
    linear head."""

    def __init__(self, ch: int = 16, blocks: int = 2, n_out: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(ch)
        self.blocks = nn.Sequential(*[_Block(ch) for _ in range(blocks)])
        self.head = nn.Linear(ch, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(torch.relu(self.bn(self.stem(x))))
        return self.head(h.mean((2, 3)))


class _PlainCNN(nn.Module):
    """A deep CNN without residuals or normalization (the planted fault of a deep case)."""

    def __init__(self, ch: int, depth: int, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, ch, 3, padding=1), act()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(ch, ch, 3, padding=1), act()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class _TinyConv(nn.Module):
    """A tiny conv net (no norm, no residual) for teacher-student regression: conv-tanh, mean
    pool, linear."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, ch, 3)
        self.head = nn.Linear(ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.conv(x)).mean((2, 3)))


def _digits(seed: int, size: int) -> tuple[list, tuple[torch.Tensor, torch.Tensor]]:
    """Digits as flat features: batches of ``size`` shuffled by ``seed``, and the full set."""
    x, y = digits()
    return batches(x, y, size, seed), (x, y)


def _images(seed: int, size: int, eval_n: int = 512) -> tuple[list, tuple]:
    """Digits as 1x8x8 images: batches of ``size`` and an evaluation subset of ``eval_n``."""
    x, y = digit_images()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=gen)[:eval_n]
    return batches(x, y, size, seed), (x[idx], y[idx])


def _warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warmup over ``warmup`` steps, then a cosine decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def _spikes(at: tuple[int, ...], factor: float) -> Callable[[int], float]:
    """Learning-rate multiplier 1, except ``factor`` on the steps in ``at``."""

    def mult(step: int) -> float:
        return factor if step in at else 1.0

    return mult


def _lambda_max(model: nn.Module, loss_fn: nn.Module, data: tuple) -> float:
    """Top Hessian eigenvalue of the loss on ``data`` (to set a learning rate against 2/lambda)."""
    from optiscope import Problem, hessian_eigenvalues

    result = hessian_eigenvalues(Problem(model, loss_fn, data), k=1, tol=1e-4)
    return float(result.values[0])


# --------------------------------------------------------------------------------------------
# Ill-conditioning: features over decades, the learning rate at the edge set by lambda_max
# --------------------------------------------------------------------------------------------


def _scaled_digits(seed: int, hi: float, lo: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits with each feature scaled by a factor from 10**hi down to 10**lo (order by seed)."""
    x, y = digits()
    gen = torch.Generator().manual_seed(seed)
    scales = torch.logspace(hi, lo, x.shape[1])[torch.randperm(x.shape[1], generator=gen)]
    return x * scales, y


def ill_mlp_sgd(seed: int) -> Experiment:
    """Ill-conditioning: plain SGD, features over 2.5 decades, lr = 1.2 x 2/lambda_max(init)."""
    x, y = _scaled_digits(seed, 0.5, -2.0)
    torch.manual_seed(seed)
    model = _mlp([64, 32, 10], nn.Tanh)
    loss_fn = nn.MSELoss()
    y = nn.functional.one_hot(y, 10).float()
    lam = _lambda_max(model, loss_fn, (x, y))
    lr = 1.2 * 2 / lam
    return Experiment(
        model=model,
        loss_fn=loss_fn,
        data=batches(x, y, 256, seed),
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        steps=300,
        seed=seed,
        name="ill-conditioning-mlp-sgd-scaled",
        eval_data=(x, y),
        description="tanh MLP on digits with features scaled over 2.5 decades, SGD at 1.2x the "
        "stability limit 2/lambda_max",
        config={"batch_size": 256, "lr": lr, "lambda_max_init": lam, "feature_decades": 2.5},
    )


def ill_mlp_momentum(seed: int) -> Experiment:
    """Ill-conditioning with heavy ball: lr = 1.1 x 2(1+beta)/lambda_max(init)."""
    x, y = _scaled_digits(seed, 1.0, -2.0)
    torch.manual_seed(seed)
    model = _mlp([64, 48, 10], nn.Tanh)
    loss_fn = nn.MSELoss()
    y = nn.functional.one_hot(y, 10).float()
    lam = _lambda_max(model, loss_fn, (x, y))
    beta = 0.9
    lr = 1.1 * 2 * (1 + beta) / lam
    return Experiment(
        model=model,
        loss_fn=loss_fn,
        data=batches(x, y, 256, seed),
        optimizer=torch.optim.SGD(model.parameters(), lr=lr, momentum=beta),
        steps=300,
        seed=seed,
        name="ill-conditioning-mlp-momentum-scaled",
        eval_data=(x, y),
        description="tanh MLP on digits with features scaled over 3 decades, heavy ball at 1.1x "
        "its stability limit 2(1+beta)/lambda_max",
        config={"batch_size": 256, "lr": lr, "momentum": beta, "lambda_max_init": lam},
    )


def ill_cnn_momentum(seed: int) -> Experiment:
    """Ill-conditioning in a BN ResNet: momentum SGD at a learning rate past its stability
    threshold, so the sharpest direction oscillates (edge of stability)."""
    data, eval_data = _images(seed, 128)
    torch.manual_seed(seed)
    model = _ResNet(16, 2)
    lr = 3.0
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9),
        steps=200,
        seed=seed,
        name="ill-conditioning-cnn-momentum-eos",
        eval_data=eval_data,
        description="BN ResNet on digit images, momentum 0.9 at lr 3, past 2(1+beta)/lambda_max",
        config={"batch_size": 128, "lr": lr, "momentum": 0.9},
    )


class _SumPoolResNet(_ResNet):
    """:class:`_ResNet` whose head reads the features summed over the 8x8 positions, not
    averaged: 64x larger inputs to the head, which no batch norm rescales."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(torch.relu(self.bn(self.stem(x))))
        return self.head(h.sum((2, 3)))


def _lambda_max_train_bn(model: nn.Module, loss_fn: nn.Module, batch: tuple) -> float:
    """Top Hessian eigenvalue of the loss on ``batch`` with batch norm on the batch's statistics
    (the function being trained), running statistics untouched."""
    from optiscope import Problem, hessian_eigenvalues
    from optiscope.core.modules import aside

    with aside(model, batch_stats=True):
        problem = Problem(model, loss_fn, batch, batch_stats=True)
        result = hessian_eigenvalues(problem, k=1, tol=1e-4)
    return float(result.values[0])


def ill_cnn_momentum_sumpool(seed: int) -> Experiment:
    """Ill-conditioning in a BN ResNet: the linear head over SUM-pooled features (64x a mean
    pool; batch norm does not normalize the head's inputs) makes the head's common direction
    some 1e4 sharp under the MSE on +-1 targets, far above every other. Heavy ball (0.9) at
    1.5x its stability limit 2(1+beta)/lambda_max (measured with batch statistics at the zero
    head), gradients clipped at norm 4 so the unstable direction bounces instead of blowing
    up: the steps overshoot the sharp valley, and at that learning rate the rest of the net
    crawls."""
    x, labels = digit_images()
    y = 2 * nn.functional.one_hot(labels, 10).float() - 1
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=gen)[:512]
    data = batches(x, y, 128, seed)
    torch.manual_seed(seed)
    model = _SumPoolResNet(16, 2)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    loss_fn = nn.MSELoss()
    lam = _lambda_max_train_bn(model, loss_fn, data[0])
    beta = 0.9
    lr = 1.5 * (2 + 2 * beta) / lam
    return Experiment(
        model=model,
        loss_fn=loss_fn,
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr, momentum=beta),
        steps=200,
        seed=seed,
        name="ill-conditioning-cnn-momentum-eos",
        eval_data=(x[idx], y[idx]),
        clip_grad_norm=4.0,
        description="BN ResNet with a head over sum-pooled features, MSE on +-1 targets, heavy "
        "ball at 1.5x 2(1+beta)/lambda_max, clipped at norm 4",
        config={
            "batch_size": 128,
            "lr": lr,
            "momentum": beta,
            "lambda_max_init": lam,
            "pool": "sum",
            "clip_grad_norm": 4.0,
        },
    )


# --------------------------------------------------------------------------------------------
# Local minima: narrow students of a random teacher, seeds that land in a spurious minimum
# --------------------------------------------------------------------------------------------


def _tanh_teacher(
    data_seed: int, n: int, d: int, k: int, w_scale: float, b_scale: float, a_scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of a random one-hidden-layer tanh teacher with ``k`` units."""
    gen = torch.Generator().manual_seed(data_seed)
    if d == 1:
        x = torch.linspace(-3, 3, n).unsqueeze(1)
    else:
        x = torch.randn(n, d, generator=gen)
    w = torch.randn(k, d, generator=gen) * w_scale
    b = torch.randn(k, generator=gen) * b_scale
    a = torch.randn(k, generator=gen) * a_scale
    return x, torch.tanh(x @ w.T + b) @ a.unsqueeze(1)


def _student(
    name: str, x: torch.Tensor, y: torch.Tensor, model: nn.Module, seed: int, steps: int, lr: float
) -> Experiment:
    """Full-batch Adam with a cosine decay to 0, so the run settles into the minimum it found."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return Experiment(
        model=model,
        loss_fn=nn.MSELoss(),
        data=[(x, y)],
        optimizer=opt,
        steps=steps,
        seed=seed,
        name=name,
        eval_data=(x, y),
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps),
        description="teacher-student regression, a narrow student, full batch, Adam+cosine",
        config={"lr": lr, "schedule": "cosine", "full_batch": len(x)},
    )


def lm_mlp_1d(seed: int) -> Experiment:
    """Local minima: a 1-3-1 tanh student of a 6-unit tanh teacher on [-3, 3]."""
    x, y = _tanh_teacher(7, 128, 1, 6, 3.0, 3.0, 1.0)
    torch.manual_seed(seed)
    model = _mlp([1, 3, 1], nn.Tanh)
    return _student("local-minima-mlp-1d", x, y, model, seed, 400, 0.1)


def lm_mlp_2d(seed: int) -> Experiment:
    """Local minima: a 2-3-1 tanh student of a 5-unit tanh teacher on Gaussian inputs."""
    x, y = _tanh_teacher(11, 256, 2, 5, 2.0, 1.0, 2.0)
    torch.manual_seed(seed)
    model = _mlp([2, 3, 1], nn.Tanh)
    return _student("local-minima-mlp-2d", x, y, model, seed, 400, 0.1)


def lm_cnn(seed: int) -> Experiment:
    """Local minima: a 2-channel conv student of a 2-channel conv teacher (no BN, no residual:
    the tiny student is the construction)."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(256, 1, 8, 8, generator=gen)
    teacher = _TinyConv(2)
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(2 * torch.randn(p.shape, generator=gen))
        teacher.head.weight.mul_(3)
        y = teacher(x)
    torch.manual_seed(seed)
    model = _TinyConv(2)
    return _student("local-minima-cnn-tiny", x, y, model, seed, 300, 0.1)


# --------------------------------------------------------------------------------------------
# Saddle points: deep linear nets from a tiny init; dead ReLU units
# --------------------------------------------------------------------------------------------


def _deep_linear(
    seed: int, depth: int, width: int, init: float, lr: float, steps: int
) -> Experiment:
    """A deep linear net from a tiny init on a random linear teacher: it starts at the saddle at
    the origin and leaves it only after a plateau (Saxe et al. 2014)."""
    gen = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(256, width, generator=gen)
    y = x @ torch.randn(width, width, generator=gen).T / math.sqrt(width)
    torch.manual_seed(seed)
    model = _mlp([width] * (depth + 1), nn.Identity, bias=False)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, init)
    return Experiment(
        model=model,
        loss_fn=nn.MSELoss(),
        data=[(x, y)],
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        steps=steps,
        seed=seed,
        name=f"saddle-points-mlp-deeplinear{depth}",
        eval_data=(x, y),
        description=f"a {depth}-layer linear net from an init of std {init}, full batch SGD",
        config={"depth": depth, "width": width, "init_std": init, "lr": lr},
    )


def saddle_deep_linear4(seed: int) -> Experiment:
    """Saddle: 4 linear layers from std 0.08."""
    return _deep_linear(seed, 4, 8, 0.08, 0.1, 300)


def saddle_deep_linear3(seed: int) -> Experiment:
    """Saddle: 3 linear layers from std 0.05."""
    return _deep_linear(seed, 3, 10, 0.05, 0.1, 300)


def saddle_dead_relu(seed: int) -> Experiment:
    """Saddle (dead units): every hidden ReLU gets a bias of -20, so no unit ever fires; only
    the output bias has a gradient and the loss sits at the label entropy."""
    data, full = _digits(seed, 128)
    torch.manual_seed(seed)
    model = _mlp([64, 64, 64, 10])
    with torch.no_grad():
        for layer in list(model)[:-1]:
            if isinstance(layer, nn.Linear):
                layer.bias.fill_(-20.0)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        steps=200,
        seed=seed,
        name="saddle-points-mlp-dead-relu",
        eval_data=full,
        description="ReLU MLP on digits whose hidden biases are -20: every unit dead",
        config={"batch_size": 128, "lr": 0.1, "hidden_bias": -20.0},
    )


def saddle_cnn_dead(seed: int) -> Experiment:
    """Saddle (dead units) in a BN ResNet: every BatchNorm shift is -10, so every ReLU is off
    on every input, the features are 0 and only the head's bias learns."""
    data, eval_data = _images(seed, 128)
    torch.manual_seed(seed)
    model = _ResNet(16, 2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.fill_(-10.0)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        steps=200,
        seed=seed,
        name="saddle-points-cnn-dead-bn",
        eval_data=eval_data,
        description="BN ResNet on digit images with every BN shift at -10: all ReLUs dead",
        config={"batch_size": 128, "lr": 0.05, "momentum": 0.9, "bn_shift": -10.0},
    )


# --------------------------------------------------------------------------------------------
# Cliffs: learning-rate spikes and a learning rate far too high
# --------------------------------------------------------------------------------------------


def cliffs_mlp_spike(seed: int) -> Experiment:
    """Cliffs: SGD at a sound lr except 3 steps where LambdaLR multiplies it by 60."""
    data, full = _digits(seed, 64)
    torch.manual_seed(seed)
    model = _mlp([64, 64, 64, 10])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    at = (100, 180, 260)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=opt,
        steps=320,
        seed=seed,
        name="cliffs-mlp-sgd-lrspike",
        eval_data=full,
        scheduler=torch.optim.lr_scheduler.LambdaLR(opt, _spikes(at, 60.0)),
        description="ReLU MLP on digits, SGD lr 0.05 with x60 spikes at steps 100, 180, 260",
        config={"batch_size": 64, "lr": 0.05, "spike_factor": 60.0, "spike_steps": list(at)},
    )


def cliffs_mlp_momentum_spike(seed: int) -> Experiment:
    """Cliffs: heavy ball with two x150 learning-rate spikes (another seed and width)."""
    data, full = _digits(seed, 64)
    torch.manual_seed(seed)
    model = _mlp([64, 96, 10])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    at = (120, 220)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=opt,
        steps=300,
        seed=seed,
        name="cliffs-mlp-momentum-lrspike",
        eval_data=full,
        scheduler=torch.optim.lr_scheduler.LambdaLR(opt, _spikes(at, 150.0)),
        description="ReLU MLP on digits, momentum lr 0.01 with x150 spikes at steps 120, 220",
        config={"batch_size": 64, "lr": 0.01, "momentum": 0.9, "spike_factor": 150.0},
    )


def cliffs_cnn_high_lr(seed: int) -> Experiment:
    """Cliffs: a BN ResNet under plain SGD at lr 30, far too high: huge updates, the loss
    rises."""
    data, eval_data = _images(seed, 128)
    torch.manual_seed(seed)
    model = _ResNet(16, 2)
    lr = 30.0
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        steps=150,
        seed=seed,
        name="cliffs-cnn-sgd-highlr",
        eval_data=eval_data,
        description="BN ResNet on digit images, plain SGD at lr 30 (some 300x a sound lr)",
        config={"batch_size": 128, "lr": lr},
    )


# --------------------------------------------------------------------------------------------
# Long-term dependencies across depth: vanishing and exploding gradients in deep plain nets
# --------------------------------------------------------------------------------------------


def ltd_mlp_sigmoid(seed: int) -> Experiment:
    """Vanishing across depth: 20 sigmoid layers of width 32 at PyTorch's default init."""
    data, full = _digits(seed, 128)
    torch.manual_seed(seed)
    model = _mlp([64] + [32] * 20 + [10], nn.Sigmoid)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        steps=200,
        seed=seed,
        name="long-term-dependencies-mlp-sigmoid20",
        eval_data=full,
        description="a 20-layer sigmoid MLP of width 32 on digits, SGD",
        config={"batch_size": 128, "lr": 0.1, "depth": 20, "width": 32},
    )


def ltd_mlp_tanh_explode(seed: int) -> Experiment:
    """Exploding across depth: 16 tanh layers of width 32, weights N(0, 3^2/fan_in) (the
    chaotic phase), at a small lr so the loss itself stays tame."""
    data, full = _digits(seed, 128)
    torch.manual_seed(seed)
    model = _mlp([64] + [32] * 16 + [10], nn.Tanh)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0, 3.0 / math.sqrt(layer.in_features))
                layer.bias.zero_()
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0005),
        steps=200,
        seed=seed,
        name="long-term-dependencies-mlp-tanh16-gain3",
        eval_data=full,
        description="a 16-layer tanh MLP with init gain 3 on digits, SGD at lr 5e-4",
        config={"batch_size": 128, "lr": 0.0005, "depth": 16, "gain": 3.0},
    )


def ltd_cnn_deep(seed: int) -> Experiment:
    """Vanishing across depth: 14 tanh conv layers without residuals or normalization."""
    data, eval_data = _images(seed, 64)
    torch.manual_seed(seed)
    model = _PlainCNN(8, 14, nn.Tanh)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        steps=150,
        seed=seed,
        name="long-term-dependencies-cnn-tanh14-plain",
        eval_data=eval_data,
        description="14 tanh conv layers (8 channels), no residuals, no BN, momentum SGD",
        config={"batch_size": 64, "lr": 0.05, "momentum": 0.9, "depth": 14, "residual": False},
    )


# --------------------------------------------------------------------------------------------
# Inexact gradients: batches of 2 with label noise at a high lr
# --------------------------------------------------------------------------------------------


def _noisy_labels(y: torch.Tensor, frac: float, seed: int) -> torch.Tensor:
    """``y`` with a fraction ``frac`` of labels replaced by random classes."""
    gen = torch.Generator().manual_seed(700 + seed)
    flip = torch.rand(len(y), generator=gen) < frac
    return torch.where(flip, torch.randint(0, 10, y.shape, generator=gen), y)


def inexact_mlp(seed: int) -> Experiment:
    """Inexact gradients: batches of 2, 20% noisy labels, SGD at lr 0.2."""
    x, y = digits()
    y = _noisy_labels(y, 0.2, seed)
    torch.manual_seed(seed)
    model = _mlp([64, 64, 10])
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=batches(x, y, 2, seed),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.2),
        steps=400,
        seed=seed,
        name="inexact-gradients-mlp-batch2",
        eval_data=(x, y),
        description="ReLU MLP on digits with 20% random labels, SGD lr 0.2 on batches of 2",
        config={"batch_size": 2, "lr": 0.2, "label_noise": 0.2},
    )


def inexact_cnn(seed: int) -> Experiment:
    """Inexact gradients in a BN ResNet: batches of 2, 20% noisy labels, momentum at lr 0.05."""
    x, y = digit_images()
    y = _noisy_labels(y, 0.2, seed)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=gen)[:512]
    torch.manual_seed(seed)
    model = _ResNet(8, 2)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=batches(x, y, 2, seed),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        steps=300,
        seed=seed,
        name="inexact-gradients-cnn-batch2",
        eval_data=(x[idx], y[idx]),
        description="BN ResNet on digit images, 20% random labels, momentum lr 0.05, batches of 2",
        config={"batch_size": 2, "lr": 0.05, "momentum": 0.9, "label_noise": 0.2},
    )


# --------------------------------------------------------------------------------------------
# Local-global mismatch: Adam at a large lr travels far around and across a barrier
# --------------------------------------------------------------------------------------------


def lgm_mlp(seed: int) -> Experiment:
    """Mismatch: start in the spurious minimum of :func:`lm_mlp_2d` (its stuck seed 17, trained
    there first), then Adam at lr 0.3 leaves that basin for the global one: two basins, so the
    straight path from the start to the end crosses the ridge between them."""
    trap = lm_mlp_2d(17 + seed)
    train_experiment(trap)
    model = trap.model
    x, y = trap.eval_data
    return Experiment(
        model=model,
        loss_fn=nn.MSELoss(),
        data=[(x, y)],
        optimizer=torch.optim.Adam(model.parameters(), lr=0.3),
        steps=300,
        seed=seed,
        name="local-global-mismatch-mlp-escape",
        eval_data=(x, y),
        description="a 2-3-1 tanh student started in a spurious minimum, Adam at lr 0.3 escapes",
        config={"lr": 0.3, "trap_seed": 17 + seed, "full_batch": len(x)},
    )


def lgm_cnn(seed: int) -> Experiment:
    """Mismatch in a BN ResNet: Adam at lr 0.03 for 300 steps."""
    data, eval_data = _images(seed, 64)
    torch.manual_seed(seed)
    model = _ResNet(16, 2)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.Adam(model.parameters(), lr=0.03),
        steps=300,
        seed=seed,
        name="local-global-mismatch-cnn-adam",
        eval_data=eval_data,
        description="BN ResNet on digit images, Adam at lr 0.03 for 300 steps",
        config={"batch_size": 64, "lr": 0.03},
    )


def lgm_cnn_escape(seed: int) -> Experiment:
    """Mismatch in a BN ResNet: start where momentum SGD with a cosine decay to 0 settled (200
    steps of 64: a basin it stopped in, eval loss ~0.1), then Adam at lr 0.03 kicks the run out
    of that basin and it settles in another, lower one; the straight path between the two
    crosses the ridge between them (checked with batch norm on batch statistics)."""
    data, eval_data = _images(seed, 64)
    torch.manual_seed(seed)
    model = _ResNet(16, 2)
    warm_steps = 200
    warm_opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    trap = Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=warm_opt,
        steps=warm_steps,
        seed=seed,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(warm_opt, warm_steps),
    )
    model.train()
    train_experiment(trap)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.Adam(model.parameters(), lr=0.03),
        steps=200,
        seed=seed,
        name="local-global-mismatch-cnn-adam",
        eval_data=eval_data,
        description="BN ResNet on digit images started where momentum+cosine settled, then Adam "
        "at lr 0.03 escapes into another basin",
        config={
            "batch_size": 64,
            "lr": 0.03,
            "warm_start": "momentum 0.9 lr 0.02 cosine, 200 steps",
            "warm_steps": warm_steps,
        },
    )


# --------------------------------------------------------------------------------------------
# Healthy controls
# --------------------------------------------------------------------------------------------


def ctl_mlp_sgd(seed: int) -> Experiment:
    """Control: ReLU MLP, SGD lr 0.1, batches of 64."""
    data, full = _digits(seed, 64)
    torch.manual_seed(seed)
    model = _mlp([64, 64, 10])
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        steps=300,
        seed=seed,
        name="control-mlp-sgd",
        eval_data=full,
        description="ReLU MLP 64-64-10 on digits, SGD lr 0.1",
        config={"batch_size": 64, "lr": 0.1},
    )


def ctl_cnn_momentum(seed: int) -> Experiment:
    """Control: BN ResNet, momentum 0.9 at lr 0.02."""
    data, eval_data = _images(seed, 64)
    torch.manual_seed(seed)
    model = _ResNet(16, 2)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9),
        steps=200,
        seed=seed,
        name="control-cnn-momentum",
        eval_data=eval_data,
        description="BN ResNet (2 residual blocks) on digit images, momentum 0.9 lr 0.02",
        config={"batch_size": 64, "lr": 0.02, "momentum": 0.9},
    )


def ctl_mlp_adam(seed: int) -> Experiment:
    """Control trained to convergence: Adam lr 3e-3, 400 steps of 128."""
    data, full = _digits(seed, 128)
    torch.manual_seed(seed)
    model = _mlp([64, 128, 10])
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-3),
        steps=400,
        seed=seed,
        name="control-mlp-adam-converged",
        eval_data=full,
        description="ReLU MLP 64-128-10 on digits, Adam lr 3e-3 to convergence",
        config={"batch_size": 128, "lr": 3e-3},
    )


def ctl_mlp_momentum_cosine(seed: int) -> Experiment:
    """Control: heavy ball lr 0.05 with a cosine schedule."""
    data, full = _digits(seed, 64)
    torch.manual_seed(seed)
    model = _mlp([64, 64, 64, 10])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=opt,
        steps=300,
        seed=seed,
        name="control-mlp-momentum-cosine",
        eval_data=full,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, 300),
        description="ReLU MLP 64-64-64-10 on digits, momentum 0.9 lr 0.05, cosine to 0",
        config={"batch_size": 64, "lr": 0.05, "momentum": 0.9, "schedule": "cosine"},
    )


def ctl_cnn_adamw_warmup(seed: int) -> Experiment:
    """Control: BN ResNet, AdamW lr 3e-3 with 30 warmup steps, then cosine."""
    data, eval_data = _images(seed, 64)
    torch.manual_seed(seed)
    model = _ResNet(16, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=opt,
        steps=250,
        seed=seed,
        name="control-cnn-adamw-warmup",
        eval_data=eval_data,
        scheduler=torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(30, 250)),
        description="BN ResNet on digit images, AdamW lr 3e-3, 30 warmup steps then cosine",
        config={"batch_size": 64, "lr": 3e-3, "weight_decay": 1e-2, "warmup": 30},
    )


def ctl_mlp_sgd_clip(seed: int) -> Experiment:
    """Control trained to convergence: SGD lr 0.3 with clipping at 5, 400 steps."""
    data, full = _digits(seed, 32)
    torch.manual_seed(seed)
    model = _mlp([64, 128, 10])
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.3),
        steps=400,
        seed=seed,
        name="control-mlp-sgd-clip-converged",
        eval_data=full,
        clip_grad_norm=5.0,
        description="ReLU MLP 64-128-10 on digits, SGD lr 0.3, gradients clipped at norm 5",
        config={"batch_size": 32, "lr": 0.3, "clip_grad_norm": 5.0},
    )


def ctl_cnn_sgd(seed: int) -> Experiment:
    """Control trained to convergence: BN ResNet, plain SGD lr 0.1, 400 steps."""
    data, eval_data = _images(seed, 64)
    torch.manual_seed(seed)
    model = _ResNet(16, 2)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        steps=400,
        seed=seed,
        name="control-cnn-sgd-converged",
        eval_data=eval_data,
        description="BN ResNet on digit images, plain SGD lr 0.1 to convergence",
        config={"batch_size": 64, "lr": 0.1},
    )


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

CASES: list[Case] = [
    # ill-conditioning
    Case(
        "ill-conditioning-mlp-sgd-scaled",
        "ill-conditioning",
        "mlp",
        "sgd",
        "tune",
        ill_mlp_sgd,
        0,
        "Features scaled over 2.5 decades, MSE on one-hot, plain SGD at lr = 1.2 x "
        "2/lambda_max(init); hand check: loss 0.14 -> 0.051 by step 150 then stalls at 0.048, 45% "
        "of steps raise the loss, grad norm 0.03 -> 0.085 while stalled, final lambda_max 1.36 > "
        "2/lr 1.18, no NaN.",
    ),
    Case(
        "ill-conditioning-mlp-momentum-scaled",
        "ill-conditioning",
        "mlp",
        "momentum",
        "held",
        ill_mlp_momentum,
        3,
        "Features over 3 decades, heavy ball (0.9) at 1.1x its limit 2(1+beta)/lambda_max(init); "
        "hand check: loss 0.30 -> 0.02 slowly with 49% of steps up, final lambda_max 6.9 vs "
        "2(1+beta)/lr 7.75 (at the edge), no NaN.",
    ),
    Case(
        "ill-conditioning-cnn-momentum-eos",
        "ill-conditioning",
        "cnn",
        "momentum+clip",
        "held",
        ill_cnn_momentum_sumpool,
        2,
        "BN ResNet whose linear head reads sum-pooled features (64x a mean pool, not normalized"
        " by any BN), MSE on +-1 targets from a zero head, heavy ball 0.9 at 1.5x 2(1+beta)/"
        "lambda_max, clipped at norm 4 so the unstable direction bounces instead of diverging; hand"
        " check with BN on batch statistics: lambda_max 1.09e4 vs 2(1+beta)/lr 7.29e3, 1.50-1.51x"
        " the threshold in all 20 measurements (every 10 steps); 41% of steps raise their batch's"
        " loss before it is 90% down (33% over the run; 6% for the same net at 0.3x); loss 1.0 ->"
        " 0.47 (first tenth) -> 0.23 (eval 0.23; a mean-pool head at lr 0.59 reaches 0.034), "
        "grad norm median 22, max 118 at step 0, no NaN.",
    ),
    # local minima
    Case(
        "local-minima-mlp-1d-tanh3",
        "local-minima",
        "mlp",
        "adam+cosine",
        "tune",
        lm_mlp_1d,
        21,
        "1-3-1 tanh student of a 6-unit tanh teacher, full batch Adam+cosine 400 steps; hand "
        "check: seed 21 ends at 0.416 with grad norm 0.022 and lambda_min +0.002, seeds 22-25 "
        "reach 0.025, 0.013, 0.005, 0.40.",
    ),
    Case(
        "local-minima-mlp-2d-tanh3",
        "local-minima",
        "mlp",
        "adam+cosine",
        "tune",
        lm_mlp_2d,
        17,
        "2-3-1 tanh student of a 5-unit tanh teacher on Gaussian inputs, full batch Adam+cosine; "
        "hand check: seed 17 ends at 0.524 with grad norm 0.004 and lambda_min +0.019, seeds 18-21"
        " reach 0.013, 0.008, 0.010, 0.012.",
    ),
    Case(
        "local-minima-mlp-2d-tanh3-seed5",
        "local-minima",
        "mlp",
        "adam+cosine",
        "held",
        lm_mlp_2d,
        5,
        "Another stuck seed of the 2-3-1 tanh student: seed 5 ends at 0.365, grad norm 0.014, "
        "lambda_min +0.004; seeds 6-9 reach 0.012, 0.056, 0.012, 0.011.",
    ),
    Case(
        "local-minima-cnn-tiny-student",
        "local-minima",
        "cnn",
        "adam+cosine",
        "held",
        lm_cnn,
        11,
        "Tiny 2-channel conv student (no BN, no residual: the construction) of a 2-channel conv "
        "teacher, full batch Adam+cosine; hand check: seed 11 ends at 0.053, grad norm 0.0009, "
        "lambda_min +0.0015; seeds 12-15 reach 0.019, 0.024, 0.042, 0.007.",
    ),
    # saddle points
    Case(
        "saddle-points-mlp-deeplinear4",
        "saddle-points",
        "mlp",
        "sgd",
        "tune",
        saddle_deep_linear4,
        0,
        "4 linear layers from init std 0.08 (the origin is a saddle), full batch SGD; hand check: "
        "loss 1.162 -> 1.125 over the first ~135 steps (grad norm 0.025-0.04), then escapes to "
        "0.57 by step 300.",
    ),
    Case(
        "saddle-points-mlp-dead-relu",
        "saddle-points",
        "mlp",
        "sgd",
        "tune",
        saddle_dead_relu,
        0,
        "Hidden ReLU biases at -20, every unit dead; hand check: first-layer gradient exactly 0 "
        "throughout, loss 2.29 -> 2.303 (label entropy) and flat, final grad norm 0.004 (output "
        "bias only).",
    ),
    Case(
        "saddle-points-cnn-dead-bn",
        "saddle-points",
        "cnn",
        "momentum",
        "held",
        saddle_cnn_dead,
        1,
        "BN ResNet with every BN shift at -10 (cnn with all units dead); hand check: stem gradient"
        " exactly 0, loss flat at 2.303 for 200 steps, only the head bias moves.",
    ),
    Case(
        "saddle-points-mlp-deeplinear3",
        "saddle-points",
        "mlp",
        "sgd",
        "held",
        saddle_deep_linear3,
        1,
        "3 linear layers of width 10 from init std 0.05, full batch SGD; hand check: loss 0.923 ->"
        " 0.88 over the first 150 steps (grad norm 0.024-0.04), then 0.41 by step 300.",
    ),
    # cliffs
    Case(
        "cliffs-mlp-sgd-lrspike",
        "cliffs",
        "mlp",
        "sgd+spike",
        "tune",
        cliffs_mlp_spike,
        0,
        "SGD lr 0.05 with LambdaLR x60 on steps 100, 180, 260; hand check: grad norm median 0.63, "
        "peak 12.2 at step 261, loss jumps 0.66 -> 2.4 after the spike at 260.",
    ),
    Case(
        "cliffs-cnn-sgd-highlr",
        "cliffs",
        "cnn",
        "sgd",
        "held",
        cliffs_cnn_high_lr,
        2,
        "BN ResNet, plain SGD at lr 30; hand check: loss 2.47 -> 1.9e4 by step 18 and ~1e8 in the "
        "second tenth, grad norm peak 1.7e5 at step 14, update/parameter ratio up to 9.6, ends at "
        "~5 > ln 10 with dead features.",
    ),
    Case(
        "cliffs-mlp-momentum-lrspike",
        "cliffs",
        "mlp",
        "momentum+spike",
        "held",
        cliffs_mlp_momentum_spike,
        4,
        "Heavy ball lr 0.01 with LambdaLR x150 on steps 120 and 220; hand check: grad norm median "
        "0.52, peak 8.4 at step 122, loss (tenth mean) 1.23 -> 3.3 after the spike, update ratio "
        "0.72 at the spike vs 0.004 median.",
    ),
    # long-term dependencies (across depth)
    Case(
        "long-term-dependencies-mlp-sigmoid20",
        "long-term-dependencies",
        "mlp",
        "sgd",
        "tune",
        ltd_mlp_sigmoid,
        0,
        "20 sigmoid layers of width 32 at the default init; hand check: first/last layer gradient-"
        "norm ratio ~1e-17 throughout, loss stuck at 2.30.",
    ),
    Case(
        "long-term-dependencies-cnn-tanh14-plain",
        "long-term-dependencies",
        "cnn",
        "momentum",
        "held",
        ltd_cnn_deep,
        1,
        "14 tanh conv layers, no residuals and no BN (the planted fault); hand check: first/last "
        "layer gradient-norm ratio 2-4e-4 throughout, loss stuck at 2.30.",
    ),
    Case(
        "long-term-dependencies-mlp-tanh16-gain3",
        "long-term-dependencies",
        "mlp",
        "sgd",
        "held",
        ltd_mlp_tanh_explode,
        3,
        "16 tanh layers, init gain 3 (chaotic phase), SGD lr 5e-4; hand check: first/last layer "
        "gradient-norm ratio 70 at step 0, median 82, 126 at the end (exploding across depth), "
        "loss 4.6 -> 3.85.",
    ),
    # inexact gradients
    Case(
        "inexact-gradients-mlp-batch2",
        "inexact-gradients",
        "mlp",
        "sgd",
        "tune",
        inexact_mlp,
        0,
        "20% random labels, SGD lr 0.2 on batches of 2; hand check: batch loss jumps between 0.4 "
        "and 2.2 from step to step (47% up), path 22x the distance covered, full-set loss 1.39 at "
        "the end.",
    ),
    Case(
        "inexact-gradients-cnn-batch2",
        "inexact-gradients",
        "cnn",
        "momentum",
        "held",
        inexact_cnn,
        3,
        "BN ResNet (8 channels), 20% random labels, momentum lr 0.05 on batches of 2; hand check: "
        "batch loss 2.84 -> 2.1 with tenth means flat at 2.1-2.35 after step 30, 49% of steps up, "
        "eval loss 2.14.",
    ),
    # local-global mismatch
    Case(
        "local-global-mismatch-mlp-escape",
        "local-global-mismatch",
        "mlp",
        "adam",
        "tune",
        lgm_mlp,
        0,
        "started in the spurious minimum of the 2-3-1 teacher-student (seed 17, loss 0.524), "
        "Adam at lr 0.3 full batch escapes to 0.0042; hand check (optiscope.interpolate): barrier "
        "0.55 on the straight path, distance 7.2 (trap seed 5: barrier 0.12, end 0.0057). It "
        "replaces a BatchNorm MLP whose barrier came from eval-mode running statistics only.",
    ),
    Case(
        "local-global-mismatch-cnn-adam",
        "local-global-mismatch",
        "cnn",
        "adam",
        "held",
        lgm_cnn_escape,
        1,
        "BN ResNet warm-started where momentum 0.9 (lr 0.02, cosine to 0, 200 steps) settled, "
        "then Adam at lr 0.03 escapes into another basin; hand check on the eval set with BN on "
        "batch statistics: straight-path loss 0.117 at the start rises to 0.293 at alpha 0.1, "
        "then falls to 0.039 at the end (barrier 0.175 = 2.2x the 0.079 gained; seed 3: barrier "
        "0.31 vs 0.08 gained). It replaces a run from the init whose barrier was eval-mode only.",
    ),
    # healthy controls
    Case(
        "control-mlp-sgd",
        None,
        "mlp",
        "sgd",
        "tune",
        ctl_mlp_sgd,
        0,
        "Healthy: SGD lr 0.1, batch 64; hand check: loss 2.31 -> 0.30 steadily, grad norms "
        "0.36-0.78, lambda_max 3.8 << 2/lr 20.",
    ),
    Case(
        "control-cnn-momentum",
        None,
        "cnn",
        "momentum",
        "tune",
        ctl_cnn_momentum,
        0,
        "Healthy: BN ResNet, momentum 0.9 lr 0.02; hand check: loss 2.44 -> 0.04 steadily, update "
        "ratio <= 0.009, no spikes (grad norm max 2.1).",
    ),
    Case(
        "control-mlp-adam-converged",
        None,
        "mlp",
        "adam",
        "tune",
        ctl_mlp_adam,
        0,
        "Healthy, converged: Adam lr 3e-3; hand check: loss 2.30 -> 0.036 on the full set, final "
        "grad norm 0.02, lambda_min +1e-4.",
    ),
    Case(
        "control-mlp-momentum-cosine",
        None,
        "mlp",
        "momentum+cosine",
        "held",
        ctl_mlp_momentum_cosine,
        1,
        "Healthy: momentum 0.9 lr 0.05 with cosine decay; hand check: loss 2.31 -> 0.096 on the "
        "full set, final grad norm 0.04, lambda_max 6.2 < 2(1+beta)/lr 76.",
    ),
    Case(
        "control-cnn-adamw-warmup",
        None,
        "cnn",
        "adamw+warmup+cosine",
        "held",
        ctl_cnn_adamw_warmup,
        2,
        "Healthy: BN ResNet, AdamW 3e-3 with 30 warmup steps then cosine; hand check: loss 2.49 ->"
        " 0.10 steadily, grad norm max 1.6, update ratio <= 0.013.",
    ),
    Case(
        "control-mlp-sgd-clip-converged",
        None,
        "mlp",
        "sgd+clip",
        "held",
        ctl_mlp_sgd_clip,
        3,
        "Healthy: SGD lr 0.3, batch 32, clipped at norm 5 (rarely reached: grad norm max 1.4); "
        "hand check: loss 2.34 -> 0.097 on the full set, lambda_max 2.2 < 2/lr 6.7.",
    ),
    Case(
        "control-cnn-sgd-converged",
        None,
        "cnn",
        "sgd",
        "held",
        ctl_cnn_sgd,
        4,
        "Healthy, converged: BN ResNet, plain SGD lr 0.1 for 400 steps; hand check: loss 2.34 -> "
        "0.029 (batch), 0.076 on the eval set, grad norm max 2.8, steady fall.",
    ),
]
