"""Part of the fifteenth held-out zoo split (``"final14"``, this file): planted cases of saddle
points, long-term dependencies, inexact gradients and local minima (Deep Learning sec. 8.2),
written blind to the detectors and checked by hand with plain PyTorch training only.

Saddle points: a tanh MLP whose hidden units start as copies of one (jitter 1e-5), so it
trains on the symmetric subspace until the jitter grows; a TinyTransformer with every parameter
scaled by 0.1 (heavy ball, step decay); a batch-norm ResNet whose stem and block-output batch
norms start with bias -3.75, so nearly every ReLU is dead and the region is flat. Long-term
dependencies: an LSTM with its forget gates closed (bias -4) recalling the first of 30 steps; a
12-layer sigmoid MLP on digits (Nesterov, step decay); a 10-layer tanh MLP with weights 0.5x
the default on breast cancer (SGD). Inexact gradients: a ReLU MLP on diabetes with SGD on
single samples, a batch-norm ResNet on digits with Adam on batches of 4, a transformer on
(first + last) mod 7 with Nesterov on batches of 2, each against the same builder on batches
of 64. Local minima: a 2-unit GRU regressing the range of 6 values, at a seed whose run stops
well above what the next three seeds reach (``any_seed=False``).

Data: scikit-learn's diabetes, breast-cancer and digits tables, and sets generated from
``torch.Generator`` seeds in 265000-269999. Every model is built in ``build(seed)`` after
``torch.manual_seed(seed)``. Plain-training seconds are with ``torch.set_num_threads(1)``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from optiscope import Experiment

from . import Case
from .data import digit_images, digits
from .final5 import _warm
from .final6 import _clipped
from .final12 import _exp
from .mlp_cnn import _mlp, _ResNet
from .sequence import RecurrentNet, SequenceCrossEntropy, TinyTransformer, _scale_

FINAL14 = "final14"
LM = "local-minima"
SP = "saddle-points"
LTD = "long-term-dependencies"
IG = "inexact-gradients"
LGM = "local-global-mismatch"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _gen(base: int) -> torch.Generator:
    assert 265000 <= base < 270000
    return torch.Generator().manual_seed(base)


def _standardized(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / x.std(0)


def diabetes() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's diabetes table (442 patients, 10 features), inputs and the disease
    progression standardized."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    y = torch.tensor(bunch.target, dtype=torch.float32).unsqueeze(1)
    return _standardized(x), _standardized(y)


def two_ridges(n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs in R^4; the target tanh(2 u.x) - tanh(2 v.x) for two orthogonal unit
    directions u, v: it needs two different hidden units."""
    gen = _gen(265100)
    x = torch.randn(n, 4, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen))
    y = torch.tanh(2 * x @ q[:, :1]) - torch.tanh(2 * x @ q[:, 1:2])
    return x, y


def first_of_four(n: int = 512, steps: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """One of 4 symbols, one-hot, at the first step of ``steps``, then Gaussian noise of std 0.5
    in every channel: the label is the first symbol."""
    gen = _gen(265200)
    y = torch.randint(0, 4, (n,), generator=gen)
    x = 0.5 * torch.randn(n, steps, 4, generator=gen)
    x[torch.arange(n), 0] = nn.functional.one_hot(y, 4).float() * 2.0
    return x, y


# --------------------------------------------------------------------------------------------
# Saddle points
# --------------------------------------------------------------------------------------------


def _clone_units_(layer_in: nn.Linear, layer_out: nn.Linear, jitter: float) -> None:
    """Make every hidden unit a copy of the first (same incoming weights and bias, same outgoing
    weight), plus Gaussian jitter of std ``jitter``: the net starts on the symmetric subspace
    where it computes what one unit computes."""
    with torch.no_grad():
        layer_in.weight.copy_(layer_in.weight[:1].expand_as(layer_in.weight))
        layer_in.bias.fill_(float(layer_in.bias[0]))
        layer_out.weight.copy_(layer_out.weight[:, :1].expand_as(layer_out.weight))
        for p in (layer_in.weight, layer_in.bias, layer_out.weight):
            p.add_(jitter * torch.randn_like(p))


def sp_mlp_sgd(
    seed: int, jitter: float | None = 1e-5, lr: float = 0.2, steps: int = 600
) -> Experiment:
    """A tanh MLP 4-8-1 whose 8 hidden units start as copies of one, regressing a target that
    needs two different units, full-batch SGD."""
    x, y = two_ridges()
    torch.manual_seed(seed)
    model = _mlp([4, 8, 1], nn.Tanh)
    if jitter is not None:
        _clone_units_(model[0], model[2], jitter)
    return _exp(
        seed,
        "final14-saddle-points-mlp-sgd-full-batch-cloned-units",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=len(y),
        opt="sgd",
        lr=lr,
        steps=steps,
        description="tanh MLP 4-8-1 whose hidden units start as copies of one (jitter "
        f"{jitter}), regressing tanh(2u.x) - tanh(2v.x) on 512 Gaussian points, full-batch SGD "
        f"lr {lr}",
        config={"family": "mlp", "jitter": jitter},
    )


def cyclic_shift(n: int = 512, length: int = 6, vocab: int = 6) -> tuple:
    """Random token sequences; the label at each position is the next token (cyclically)."""
    x = torch.randint(0, vocab, (n, length), generator=_gen(265400))
    return x, x.roll(-1, 1)


def sp_transformer_momentum(
    seed: int, scale: float | None = 0.1, lr: float = 0.1, steps: int = 500
) -> Experiment:
    """A TinyTransformer with every parameter (LayerNorm gains included) multiplied by 0.1,
    predicting the next token cyclically, heavy ball with a step decay, batches of 64."""
    x, y = cyclic_shift()
    torch.manual_seed(seed)
    model = TinyTransformer(6, 6, d=16, heads=2, layers=1)
    if scale is not None:
        _scale_(model, scale)
    exp = _exp(
        seed,
        "final14-saddle-points-transformer-momentum-step-decay-scaled-init",
        model,
        SequenceCrossEntropy(),
        x,
        y,
        batch=64,
        opt="momentum",
        lr=lr,
        steps=steps,
        description="TinyTransformer (d 16, 2 heads, 1 block, tied output) with every "
        f"parameter multiplied by {scale}, predicting the next token (cyclically) of 512 "
        f"sequences of 6 (vocab 6), heavy ball 0.9 lr {lr} halved every 150 steps, batches of 64",
        config={"family": "transformer", "scale": scale},
    )
    sched = torch.optim.lr_scheduler.StepLR(exp.optimizer, 150, 0.5)
    return dataclasses.replace(exp, scheduler=sched, config={**exp.config, "step_decay": 150})


def sp_cnn_nesterov(seed: int, shift: float | None = -3.75, lr: float = 0.05, steps: int = 400):
    """A batch-norm ResNet on digits whose block's last batch norm starts with bias -3.75: the
    block's output ReLU is dead on nearly every pixel, Nesterov, batches of 64."""
    x, y = digit_images()
    torch.manual_seed(seed)
    model = _ResNet(ch=8, blocks=1)
    if shift is not None:
        with torch.no_grad():
            model.blocks[0].bn2.bias.fill_(shift)
            model.bn.bias.fill_(shift)
    return _exp(
        seed,
        "final14-saddle-points-cnn-nesterov-dead-relus",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=64,
        opt="nesterov",
        lr=lr,
        steps=steps,
        description="residual CNN (8 channels, 1 block) on digits whose stem and block-output "
        f"batch norms start with bias {shift} (dead ReLUs), Nesterov 0.9 lr {lr}, batches of 64",
        config={"family": "cnn", "bn_bias": shift},
    )


# --------------------------------------------------------------------------------------------
# Long-term dependencies
# --------------------------------------------------------------------------------------------


def ltd_lstm_adam(seed: int, forget: float = -4.0, lr: float = 3e-3, steps: int = 300):
    """An LSTM (16 units) whose forget gates start with bias -4 (sigmoid 0.018: the cell
    forgets at every step) naming the symbol shown at the first of 30 noisy steps, Adam with
    the gradient norm clipped to 1, batches of 32."""
    x, y = first_of_four()
    torch.manual_seed(seed)
    model = RecurrentNet("lstm", 4, 16, 4)
    with torch.no_grad():
        for b in (model.rnn.bias_ih_l0, model.rnn.bias_hh_l0):
            b[16:32].fill_(forget / 2)  # gate order i, f, g, o: the two biases add up
    exp = _exp(
        seed,
        "final14-long-term-dependencies-rnn-lstm-adam-clip-closed-forget-gates",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=32,
        opt="adam",
        lr=lr,
        steps=steps,
        description=f"LSTM (16 units, forget-gate bias {forget}) naming the one-hot symbol of "
        "the first of 30 steps (noise std 0.5 after), 512 sequences, Adam lr "
        f"{lr} clipped at norm 1, batches of 32",
        config={"family": "rnn", "forget_bias": forget, "delay": 30},
    )
    return _clipped(exp, 1.0)


def ltd_mlp_nesterov(seed: int, depth: int = 12, lr: float = 0.5, steps: int = 400):
    """Digits, a sigmoid MLP of 12 hidden layers of 32 (default init, no normalization or
    skips), Nesterov with a step decay, batches of 64."""
    x, y = digits()
    torch.manual_seed(seed)
    model = _mlp([64] + [32] * depth + [10], nn.Sigmoid)
    exp = _exp(
        seed,
        "final14-long-term-dependencies-mlp-nesterov-step-decay-deep-sigmoid",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=64,
        opt="nesterov",
        lr=lr,
        steps=steps,
        description=f"sigmoid MLP with {depth} hidden layers of 32 (PyTorch's default init, no "
        f"normalization or skips) on digits, Nesterov 0.9 lr {lr} halved every 100 steps, "
        "batches of 64",
        config={"family": "mlp", "depth": depth},
    )
    sched = torch.optim.lr_scheduler.StepLR(exp.optimizer, 100, 0.5)
    return dataclasses.replace(exp, scheduler=sched, config={**exp.config, "step_decay": 100})


def cancer() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's breast-cancer table (569 x 30), standardized, and its labels."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    return _standardized(x), torch.tensor(bunch.target)


def ltd_mlp_sgd(seed: int, depth: int = 10, gain: float = 0.5, lr: float = 0.1, steps: int = 400):
    """Breast cancer, a tanh MLP of 10 hidden layers of 32 whose weights are 0.5 times
    PyTorch's default (every layer shrinks the signal), plain SGD, batches of 16."""
    x, y = cancer()
    torch.manual_seed(seed)
    model = _mlp([30] + [32] * depth + [2], nn.Tanh)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(gain)
    return _exp(
        seed,
        "final14-long-term-dependencies-mlp-sgd-batch16-deep-shrinking-tanh",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=16,
        opt="sgd",
        lr=lr,
        steps=steps,
        description=f"tanh MLP with {depth} hidden layers of 32, weights {gain} x PyTorch's "
        f"default, no normalization or skips, on breast cancer (standardized), SGD lr {lr}, "
        "batches of 16",
        config={"family": "mlp", "depth": depth, "gain": gain},
    )


# --------------------------------------------------------------------------------------------
# Inexact gradients
# --------------------------------------------------------------------------------------------


def ig_mlp_sgd_b1(seed: int, batch: int = 1, lr: float = 0.05, steps: int = 400) -> Experiment:
    """Diabetes (standardized), a ReLU MLP 10-32-1, plain SGD on single patients at a constant
    rate."""
    x, y = diabetes()
    torch.manual_seed(seed)
    model = _mlp([10, 32, 1])
    return _exp(
        seed,
        "final14-inexact-gradients-mlp-sgd-batch1-diabetes",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=batch,
        opt="sgd",
        lr=lr,
        steps=steps,
        description="ReLU MLP 10-32-1 regressing disease progression on scikit-learn's "
        f"diabetes table (442 patients, standardized), SGD lr {lr}, batches of {batch}",
        config={"family": "mlp"},
    )


def ig_cnn_adam_b4(seed: int, batch: int = 4, lr: float = 3e-3, steps: int = 300) -> Experiment:
    """Digits, a batch-norm ResNet, Adam on batches of 4 at a constant rate (the batch-norm
    statistics of 4 images are noisy too)."""
    x, y = digit_images()
    torch.manual_seed(seed)
    model = _ResNet(ch=8, blocks=1)
    return _exp(
        seed,
        "final14-inexact-gradients-cnn-adam-batch4-digits",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="adam",
        lr=lr,
        steps=steps,
        description="residual CNN (8 channels, 1 block, batch norm) on digits, Adam lr "
        f"{lr}, batches of {batch}",
        config={"family": "cnn"},
    )


def pair_sum(n: int = 1024, length: int = 6, vocab: int = 7) -> tuple:
    """Random token sequences; the label is (first + last token) mod ``vocab``."""
    x = torch.randint(0, vocab, (n, length), generator=_gen(265600))
    return x, (x[:, 0] + x[:, -1]) % vocab


def ig_transformer_nesterov_b2(
    seed: int, batch: int = 2, lr: float = 0.03, steps: int = 500
) -> Experiment:
    """A TinyTransformer naming (first + last token) mod 7, Nesterov on batches of 2 at a
    constant rate."""
    x, y = pair_sum()
    torch.manual_seed(seed)
    model = TinyTransformer(7, 6, d=16, heads=2, layers=1, pool=True)
    return _exp(
        seed,
        "final14-inexact-gradients-transformer-nesterov-batch2-pair-sum",
        model,
        nn.CrossEntropyLoss(),
        x,
        y,
        batch=batch,
        opt="nesterov",
        lr=lr,
        steps=steps,
        description="TinyTransformer (d 16, 2 heads, 1 block, mean-pooled, tied output) naming "
        f"(first + last token) mod 7 of 1024 sequences of 6, Nesterov 0.9 lr {lr}, batches of "
        f"{batch}",
        config={"family": "transformer"},
    )


# --------------------------------------------------------------------------------------------
# Local minima
# --------------------------------------------------------------------------------------------


def value_range(n: int = 256, steps: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of values uniform on [-1, 1]; the target is their range (max - min),
    centred."""
    x = 2 * torch.rand(n, steps, 1, generator=_gen(265700)) - 1
    y = x.amax(1) - x.amin(1)
    return x, (y - y.mean()) / y.std()


def lm_rnn_adam(seed: int, lr: float = 0.03, steps: int = 500) -> Experiment:
    """A GRU of 2 units regressing the range of 6 values, full-batch Adam, warmup then cosine."""
    x, y = value_range()
    torch.manual_seed(seed)
    model = RecurrentNet("gru", 1, 2, 1)
    exp = _exp(
        seed,
        "final14-local-minima-rnn-gru-adam-warmup-cosine-value-range",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=len(y),
        opt="adam",
        lr=lr,
        steps=steps,
        description="GRU (2 units) regressing the range (max - min) of 6 values uniform on "
        f"[-1, 1], 256 sequences, full-batch Adam lr {lr}, warmup 20 then a cosine to 0",
        config={"family": "rnn"},
    )
    return _warm(exp, 20)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

CASES: list[Case] = [
    Case(
        "final14-saddle-points-mlp-sgd-full-batch-cloned-units",
        SP,
        "mlp",
        "sgd",
        FINAL14,
        sp_mlp_sgd,
        265000,
        "Planted: the 8 hidden units of a tanh MLP 4-8-1 start as copies of one (jitter 1e-5), "
        "on a target tanh(2u.x) - tanh(2v.x) that needs two different units; full-batch SGD "
        "0.2, 600 steps. Full-data loss 1.243 -> 0.179 (step 50) -> 0.173 (100) -> 0.166 (200) "
        "-> 0.164 (250) -> 0.158 (300), then the escape: 0.110 (350) -> 0.041 (400) -> 0.0032 "
        "at 600. Gradient norm 0.67 at the start, 0.022 (step 100) and 0.015 (200) on the "
        "plateau; exact Hessian (49 parameters): lambda_min -0.158 / lambda_max 3.85 at step "
        "100, -0.156 / 3.43 at 200, -0.159 / 3.56 at 300. Reference: the default init, same "
        "SGD, 0.0037 at 600 with no plateau. Seed 265001: plateau 0.168 -> 0.158 to step 300, "
        "lambda_min -0.16, end 0.0018. Plain training 0.15 s.",
    ),
    Case(
        "final14-saddle-points-transformer-momentum-step-decay-scaled-init",
        SP,
        "transformer",
        "momentum+step",
        FINAL14,
        sp_transformer_momentum,
        265000,
        "Planted: every parameter of a TinyTransformer (d 16, 1 block, tied output), LayerNorm "
        "gains included, multiplied by 0.1: the logits are products of small factors, a saddle "
        "at the uniform prediction. Heavy ball 0.9 lr 0.1 halved every 150 steps, batches of "
        "64, 500 steps. Full-data loss 1.792 (ln 6) at the start, 1.790 (50), 1.788 (100), "
        "1.786 (200), 1.782 (250), then a slow partial escape: 1.738 (300), 1.694 (400), 1.683 "
        "at 500. Full-data gradient 0.018 (step 100), 0.021 (200); Hessian by power iteration "
        "(2,448 parameters): lambda_min -0.018 / lambda_max 1.72 at step 100, -0.81 / 4.9 at "
        "200. Reference: the default init, same optimizer, reaches 2.2e-4 (1.1e-3 by step 50). "
        "Plain training 0.75 s.",
    ),
    Case(
        "final14-saddle-points-cnn-nesterov-dead-relus",
        SP,
        "cnn",
        "momentum(nesterov)",
        FINAL14,
        sp_cnn_nesterov,
        265000,
        "Planted: the stem's and the block's last batch norms start with bias -3.75, so the "
        "ReLUs after them fire on almost no pixel (the features are ~0): a flat region at the "
        "class prior. Nesterov 0.9 lr 0.05, batches of 64, 400 steps. Full-data loss 2.328 -> "
        "2.303 (ln 10) at step 100 and to the end (never escapes). Full-data gradient norm "
        "0.21 at the start, 0.0034 at steps 100 and 200, 0.0041 at 300; Hessian on 256 images "
        "(training-mode batch norm, exact, 1,362 parameters) at step 200: lambda_max 0.102 "
        "(the head's bias), lambda_min -3e-9, gradient 0.008: flat, no negative curvature. "
        "Bias -3.5 instead escapes slowly (2.19 at step 50, 1.49 at 400); the default init "
        "reaches 0.035. Plain training 1.0 s.",
    ),
    Case(
        "final14-long-term-dependencies-rnn-lstm-adam-clip-closed-forget-gates",
        LTD,
        "rnn",
        "adam+clip",
        FINAL14,
        ltd_lstm_adam,
        265000,
        "Planted: the LSTM's forget gates start with bias -4 (sigmoid 0.018), so the cell "
        "state is wiped at every step and the symbol of step 0 cannot reach the read-out after "
        "30 steps. Adam 3e-3 clipped at 1, batches of 32, 300 steps. Full-data loss 1.391 -> "
        "1.382 (50) -> 1.374 (150) -> 1.351 at the end (chance ln 4 = 1.386). The fix, forget "
        "bias +2 in the same builder: 1.276 (50) -> 0.828 (100) -> 0.453 (200) -> 0.382. "
        "(dL/dh_t per step was not measured: the unrolled check failed for lack of time.) "
        "Plain training 0.39 s.",
    ),
    Case(
        "final14-long-term-dependencies-mlp-nesterov-step-decay-deep-sigmoid",
        LTD,
        "mlp",
        "momentum(nesterov)+step",
        FINAL14,
        ltd_mlp_nesterov,
        265000,
        "Planted: 12 sigmoid hidden layers of 32 at PyTorch's default init, no normalization "
        "or skips: each layer multiplies the gradient by at most 1/4 of its weights. Weight-"
        "gradient norms on the full data at the start, first to last layer: 4.8e-11, 1.9e-10, "
        "1.2e-9, 7.8e-9, 5.6e-8, 4.0e-7, 3.2e-6, 2.2e-5, 1.3e-4, 9.7e-4, 6.4e-3, 0.046, 0.30 "
        "(first/last 1.6e-10). Nesterov 0.9 lr 0.5 halved every 100 steps, batches of 64, 400 "
        "steps: full-data loss 2.358 -> 2.313 (100) -> 2.306 (200) -> 2.303 at the end (ln 10). "
        "The fix, 2 hidden layers, same builder: 0.675 (100), 0.205 (200), 0.122 at the end. "
        "Plain training 0.31 s.",
    ),
    Case(
        "final14-long-term-dependencies-mlp-sgd-batch16-deep-shrinking-tanh",
        LTD,
        "mlp",
        "sgd",
        FINAL14,
        ltd_mlp_sgd,
        265000,
        "Planted: 10 tanh hidden layers of 32 with weights 0.5x PyTorch's default, so the "
        "signal and the gradient shrink layer by layer. Weight-gradient norms on the full data "
        "at the start, first to last: 8.4e-6, 8.7e-6, 9.7e-6, 1.9e-5, 7.1e-5, 2.6e-4, 8.7e-4, "
        "3.0e-3, 0.012, 0.043, 0.121 (first/last 6.9e-5); at the end 1.4e-5 / 0.012 (1.2e-3). "
        "SGD lr 0.1, batches of 16, 400 steps: full-data loss 0.700 -> 0.660 (100) and 0.660 "
        "to 0.662 to the end (the class prior, entropy 0.66). The fix, 2 hidden layers in the "
        "same builder: 0.072 (100), 0.050 at the end. Plain training 0.18 s.",
    ),
    Case(
        "final14-inexact-gradients-mlp-sgd-batch1-diabetes",
        IG,
        "mlp",
        "sgd",
        FINAL14,
        ig_mlp_sgd_b1,
        265000,
        "Planted: plain SGD lr 0.05 on single patients of the (noisy) diabetes regression, 400 "
        "steps, constant rate. Full-data loss 1.024 -> 0.760 (100) -> 0.637 (200) -> 0.845 "
        "(300) -> 0.807 (399) -> 0.649 at the end: it jumps with each sample. The same builder "
        "on batches of 64 (same lr and steps): 0.449 (100), 0.435 (200), 0.412 at the end. "
        "Batch 1 gained 0.375, batch 64 ends 0.237 lower (63% of that gain). Plain training "
        "0.12 s.",
    ),
    Case(
        "final14-inexact-gradients-cnn-adam-batch4-digits",
        IG,
        "cnn",
        "adam",
        FINAL14,
        ig_cnn_adam_b4,
        265000,
        "Planted: Adam lr 3e-3 on batches of 4 digits (batch-norm statistics of 4 images), 300 "
        "steps, constant rate. Full-data loss (batch statistics of the full data) 2.422 -> "
        "2.112 (100) -> 1.887 (200) -> 1.617 at the end. The same builder on batches of 64: "
        "1.469 (100), 0.744 (200), 0.362 at the end. Batch 4 gained 0.81, batch 64 ends 1.26 "
        "lower (155%). Plain training 0.70 s.",
    ),
    Case(
        "final14-inexact-gradients-transformer-nesterov-batch2-pair-sum",
        IG,
        "transformer",
        "momentum(nesterov)",
        FINAL14,
        ig_transformer_nesterov_b2,
        265000,
        "Planted: Nesterov 0.9 lr 0.03 on batches of 2 sequences, 500 steps, constant rate, "
        "naming (first + last token) mod 7. Full-data loss 1.970 -> 2.065 (100) -> 1.954 (200) "
        "-> 1.982 (300) -> 1.967 at the end (chance ln 7 = 1.946). The same builder on batches "
        "of 64: 1.539 (100), 0.033 (200), 0.0066 (300), 0.0024 at the end. Doubt: on batches "
        "of 2 the run gains nothing at all, so it may read as a plateau rather than as a "
        "noise-limited descent. Plain training 0.46 s.",
    ),
    Case(
        "final14-local-minima-rnn-gru-adam-warmup-cosine-value-range",
        LM,
        "rnn",
        "adam+warmup-cosine",
        FINAL14,
        lm_rnn_adam,
        265010,
        "Planted: a 2-unit GRU has barely enough state to track a running max and min; some "
        "seeds settle on a poorer fit. At seed 265010, full-batch Adam 0.03, warmup 20 then a "
        "cosine to 0, 500 steps: full-data loss 0.997 -> 0.314 (100) -> 0.228 (200) -> 0.208 "
        "(300) -> 0.202 (400) -> 0.2007 at the end; gradient norm 0.022 at the end; exact "
        "Hessian (33 parameters) at the end: lambda_max 1152, lambda_min -0.0041 (-3.5e-6 of "
        "lambda_max). The same builder at seeds 265011, 265012, 265013 ends at 0.0736, 0.0367, "
        "0.0619 (0.37x, 0.18x, 0.31x). Plain training 0.86 s.",
        any_seed=False,
    ),
]
