"""The final held-out zoo cases for transformers and recurrent nets (split ``"final"``).

New tasks and constructions next to :mod:`.sequence` (whose models, optimizers and warm-start
helper are reused): token histograms, rotations, pooled max/first-token tasks and affine maps
for the transformers; echo, sign-memory, noisy-sine and column-read digits tasks for the
recurrent nets. Every model is built inside ``build(seed)`` from ``torch.manual_seed``; data
come from a ``torch.Generator`` seeded from the case, so importing this module is cheap.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from optiscope import Experiment

from . import Case
from .sequence import (
    RecurrentNet,
    SequenceCrossEntropy,
    TinyTransformer,
    _pretrain,
    _scale_,
    _set_radius_,
    rnn_two_modes,
)
from .sequence import _experiment as _assemble

# ------------------------------------------------------------------------------------ data

POOLED = ("max", "first")


def _token_task(
    task: str, n: int, length: int, vocab: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token tasks: ``hist`` (y_t = how often x_t occurs in the sequence, minus one),
    ``rotate`` (the sequence rolled by two places), ``affine`` (y = 5 x + 2 mod vocab, a
    per-token map), ``mirror`` (y = -x mod vocab), ``shift`` (causal: y_t = x_{t-1}), and the
    pooled ``max`` and ``first`` (one label per sequence)."""
    x = torch.randint(0, vocab, (n, length), generator=gen)
    if task == "hist":
        counts = (x[:, :, None] == x[:, None, :]).sum(-1) - 1
        return x, counts.clamp(max=vocab - 1)
    if task == "rotate":
        return x, x.roll(2, 1)
    if task == "affine":
        return x, (5 * x + 2) % vocab
    if task == "mirror":
        return x, (-x) % vocab
    if task == "shift":
        y = x.roll(1, 1)
        y[:, 0] = 0
        return x, y
    if task == "max":
        return x, x.max(1).values
    if task == "first":
        return x, x[:, 0].clone()
    raise ValueError(task)


def _seq_task(
    task: str, n: int, length: int, gen: torch.Generator, noise: float
) -> tuple[torch.Tensor, torch.Tensor, int, int, str]:
    """Inputs, targets, input and output sizes, and the loss kind (``"ce"`` on the last step,
    ``"seq"`` cross-entropy at every step, ``"mse"`` on the last step, ``"mse-seq"`` at every
    step)."""
    if task == "echo":  # one of 4 symbols per step; recall the one 3 steps back, every step
        k, lag = 4, 3
        z = torch.randint(0, k, (n, length + lag), generator=gen)
        x = F.one_hot(z[:, lag:], k).float()
        return x, z[:, :length].clone(), k, k, "seq"
    if task == "sign":  # the sign of a pulse at step 0, then noise: say it at the end
        s = torch.randint(0, 2, (n,), generator=gen)
        x = noise * torch.randn(n, length, 2, generator=gen)
        x[:, 0, 0] = 2.0 * s.float() - 1.0
        x[:, -1, 1] = 1.0  # the cue
        return x, s, 2, 2, "ce"
    if task == "sine":  # next value of a sum of two sines with random phases, plus noise
        t = torch.arange(length + 1).float()
        ph = 2 * math.pi * torch.rand(n, 2, generator=gen)
        wave = torch.sin(0.3 * t + ph[:, :1]) + 0.5 * torch.sin(0.11 * t + ph[:, 1:])
        wave = wave + noise * torch.randn(wave.shape, generator=gen)
        return wave[:, :-1, None], wave[:, 1:, None], 1, 1, "mse-seq"
    if task == "count":  # a noisy count of the +1s among length -1/+1 inputs
        b = torch.randint(0, 2, (n, length, 1), generator=gen).float() * 2 - 1
        y = (b > 0).float().sum(1) / length * 4 + noise * torch.randn(n, 1, generator=gen)
        return b, y, 1, 1, "mse"
    if task in ("digit-cols", "digit-rows-rev"):
        from .data import digits

        xd, yd = digits()
        img = xd.reshape(-1, 8, 8)
        img = img.transpose(1, 2) if task == "digit-cols" else img.flip(1)
        return img.contiguous(), yd, 8, 10, "ce"
    raise ValueError(task)


# ------------------------------------------------------------------------------- factories


def tfm(
    seed: int,
    *,
    name: str,
    task: str = "hist",
    n: int = 512,
    length: int = 8,
    vocab: int = 10,
    d: int = 32,
    heads: int = 2,
    layers: int = 2,
    residual: bool = True,
    act: str = "gelu",
    init_scale: float = 1.0,
    label_noise: float = 0.0,
    batch: int = 64,
    opt: str = "adam",
    lr: float = 3e-3,
    steps: int = 200,
    clip: float | None = None,
    data_seed: int | None = None,
    eval_n: int = 256,
    **opt_kw: Any,
) -> Experiment:
    """A small transformer with tied embeddings on a generated token task (data from
    ``data_seed`` when given, else from ``seed``)."""
    gen = torch.Generator().manual_seed(17000 + (seed if data_seed is None else data_seed))
    x, y = _token_task(task, n, length, vocab, gen)
    if label_noise:
        flip = torch.rand(y.shape, generator=gen) < label_noise
        y = torch.where(flip, torch.randint(0, vocab, y.shape, generator=gen), y)
    torch.manual_seed(seed)
    model = TinyTransformer(
        vocab,
        length,
        d,
        heads,
        layers,
        causal=task == "shift",
        residual=residual,
        pool=task in POOLED,
        act=act,
    )
    if init_scale != 1.0:
        _scale_(model, init_scale)
    config = {
        "family": "transformer",
        "task": task,
        "length": length,
        "vocab": vocab,
        "d_model": d,
        "heads": heads,
        "layers": layers,
        "residual": residual,
        "act": act,
        "init_scale": init_scale,
        "label_noise": label_noise,
        "data_seed": seed if data_seed is None else data_seed,
    }
    desc = (
        f"a {layers}-layer transformer (d={d}, tied embeddings"
        f"{'' if residual else ', no residuals'}) on {task} of length {length}, {opt} lr {lr}"
    )
    return _assemble(
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
        description=desc,
        config=config,
        clip=clip,
        eval_n=eval_n,
        **opt_kw,
    )


def rec(
    seed: int,
    *,
    name: str,
    cell: str = "lstm",
    task: str = "echo",
    n: int = 512,
    length: int = 12,
    hidden: int = 24,
    nonlinearity: str = "tanh",
    radius: float | None = None,
    init_scale: float = 1.0,
    noise: float = 0.0,
    batch: int = 64,
    opt: str = "adam",
    lr: float = 3e-3,
    steps: int = 200,
    clip: float | None = None,
    eval_n: int = 256,
    **opt_kw: Any,
) -> Experiment:
    """A recurrent net on a generated sequence task (or digits read column by column)."""
    gen = torch.Generator().manual_seed(18000 + seed)
    x, y, n_in, n_out, kind = _seq_task(task, n, length, gen, noise)
    torch.manual_seed(seed)
    every = kind in ("seq", "mse-seq")
    model = RecurrentNet(cell, n_in, hidden, n_out, every_step=every, nonlinearity=nonlinearity)
    if radius is not None:
        _set_radius_(model.rnn, radius, gen)
    if init_scale != 1.0:
        _scale_(model, init_scale)
    loss: nn.Module = {
        "ce": nn.CrossEntropyLoss(),
        "seq": SequenceCrossEntropy(),
        "mse": nn.MSELoss(),
        "mse-seq": nn.MSELoss(),
    }[kind]
    config = {
        "family": "rnn",
        "cell": cell,
        "task": task,
        "steps_in_time": x.shape[1],
        "hidden": hidden,
        "nonlinearity": nonlinearity,
        "radius": radius,
        "init_scale": init_scale,
        "noise": noise,
    }
    desc = f"a {cell} ({hidden} units) on {task} over {x.shape[1]} steps, {opt} lr {lr}"
    return _assemble(
        seed,
        name,
        model,
        loss,
        x,
        y,
        batch=batch,
        opt=opt,
        lr=lr,
        steps=steps,
        description=desc,
        config=config,
        clip=clip,
        eval_n=eval_n,
        **opt_kw,
    )


def warm(seed: int, *, name: str, kind: str, pre: dict[str, Any], **kw: Any) -> Experiment:
    """A warm start: ``pre`` (a run of the same family, same data) is trained plainly inside
    ``build``, then the experiment ``kw`` starts from its weights."""
    factory = tfm if kind == "transformer" else rec
    start = _pretrain(factory(seed, name=name, **pre))
    exp = factory(seed, name=name, **kw)
    exp.model.load_state_dict(start.state_dict())
    exp.config["warm_start"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pre.items()}
    return exp


def mirror_trap(seed: int, *, name: str, **kw: Any) -> Experiment:
    """y = -x mod 12 with d_model 3, one layer, 256 sequences, full batch (data seed 5): the
    LayerNorm puts the 12 tokens on a circle, and a cyclic order that is not a reflection of
    the true one is a trap."""
    base: dict[str, Any] = {
        "task": "mirror",
        "vocab": 12,
        "d": 3,
        "heads": 1,
        "layers": 1,
        "n": 256,
        "batch": 256,
        "data_seed": 5,
    }
    return tfm(seed, name=name, **{**base, **kw})


def gru_filters(seed: int, *, name: str, **kw: Any) -> Experiment:
    """A one-unit GRU fitting a slow (pole 0.8, weight 0.8) plus an alternating (pole -0.8,
    weight 1) filter over 20 steps (data seed 3): it can follow one of them, not both."""
    base: dict[str, Any] = {
        "cell": "gru",
        "poles": (0.8, -0.8),
        "weights": (0.8, 1.0),
        "length": 20,
        "data_seed": 3,
    }
    return rnn_two_modes(seed, name=name, **{**base, **kw})


def escape(seed: int, *, name: str, trap: Any, pre: dict[str, Any], **kw: Any) -> Experiment:
    """Warm start at the point ``trap(seed, **pre)`` trains to (a poor minimum), then ``kw``."""
    start = _pretrain(trap(seed, name=name, **pre))
    exp = trap(seed, name=name, **kw)
    exp.model.load_state_dict(start.state_dict())
    exp.config["warm_start"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pre.items()}
    return exp


# ----------------------------------------------------------------------------------- cases

IC, LM, SP, CL = "ill-conditioning", "local-minima", "saddle-points", "cliffs"
LTD, IG, LGM = "long-term-dependencies", "inexact-gradients", "local-global-mismatch"
TF, RN = "transformer", "rnn"


def _case(
    name: str,
    challenge: str | None,
    family: str,
    optimizer: str,
    factory: Any,
    seed: int,
    why: str,
    **kw: Any,
) -> Case:
    """A final-split Case whose build is ``factory(seed, name=name, **kw)``."""
    return Case(
        name, challenge, family, optimizer, "final", partial(factory, name=name, **kw), seed, why
    )


CONTROLS: list[Case] = [
    _case(
        "final-control-transformer-adamw-warmup-cosine-clip-histogram",
        None,
        TF,
        "adamw+warmup+cosine+clip",
        tfm,
        0,
        "Token histogram (y_t = count of x_t in the sequence - 1), 1024 sequences, batches of "
        "128, AdamW lr 2e-3 (wd 0.05), 40 warmup steps, cosine, clip 1: loss 2.39 -> 0.066 "
        "(tenths 1.60 1.09 0.95 0.63 0.37 0.22 0.15 0.10 0.08 0.07), gradient norm <= 8.9 as "
        "the logits sharpen, update/parameter <= 0.007; the start-end line falls monotonically "
        "past the middle (2.37 -> 1.25 -> 0.06, no point above the start).",
        task="hist",
        n=1024,
        batch=128,
        opt="adamw",
        lr=2e-3,
        wd=0.05,
        steps=400,
        warmup=40,
        cosine=True,
        clip=1.0,
    ),
    _case(
        "final-control-transformer-nesterov-cosine-rotate",
        None,
        TF,
        "momentum(nesterov)+cosine",
        tfm,
        0,
        "Rotate the sequence by two places, SGD with Nesterov momentum 0.9 at lr 0.05 and a "
        "cosine schedule, batches of 64: loss 2.34 -> 0.0021 (converged: 0.0021-0.0022 over the "
        "last fifth), gradient norm 1.4 at most (step 22) then 5e-3; monotone start-end line.",
        task="rotate",
        opt="momentum",
        nesterov=True,
        lr=0.05,
        steps=300,
        cosine=True,
    ),
    _case(
        "final-control-transformer-adam-pooled-max",
        None,
        TF,
        "adam",
        tfm,
        0,
        "The largest token of each sequence (mean-pooled read-out), d_model 24, Adam lr 2e-3, "
        "batches of 64: loss 2.33 -> 0.014-0.03 (tenths 1.50 0.82 0.29 0.13 0.07 0.04 0.03 "
        "0.02 0.018 0.014), gradient norm 3.3 at step 0 falling to 0.09; monotone line.",
        task="max",
        d=24,
        opt="adam",
        lr=2e-3,
        steps=250,
    ),
    _case(
        "final-control-transformer-sgd-affine-map",
        None,
        TF,
        "sgd",
        tfm,
        0,
        "A one-layer transformer learns the per-token map y = 5x + 2 mod 10, plain SGD lr 0.3, "
        "batches of 64: loss 2.17 -> 5e-4, falling on 77% of the steps, still creeping down "
        "(6.6e-4 -> 5.0e-4 over the last fifth); gradient norm 4.6 early, 3e-3 at the end.",
        task="affine",
        layers=1,
        opt="sgd",
        lr=0.3,
        steps=300,
    ),
    _case(
        "final-control-transformer-adamw-warmup-clip-causal-shift",
        None,
        TF,
        "adamw+warmup+clip",
        tfm,
        0,
        "A causal transformer predicts the previous token (length 12), AdamW lr 2e-3, 20 warmup "
        "steps, clip 0.5: loss 2.38 -> 0.0049, falling on 90% of the steps, gradient norm "
        "<= 1.4; monotone start-end line.",
        task="shift",
        length=12,
        opt="adamw",
        lr=2e-3,
        steps=250,
        warmup=20,
        clip=0.5,
    ),
    _case(
        "final-control-rnn-adam-lstm-echo",
        None,
        RN,
        "adam",
        rec,
        0,
        "An LSTM (24 units) repeats the symbol seen 3 steps earlier at every step (the first 3 "
        "steps are unpredictable: floor 3/12 ln 4 = 0.347), Adam lr 5e-3: loss 1.39 -> 0.366, "
        "converged at the floor; gradient norm <= 0.49, update/parameter <= 0.04.",
        cell="lstm",
        task="echo",
        hidden=24,
        opt="adam",
        lr=5e-3,
        steps=250,
    ),
    _case(
        "final-control-rnn-sgd-gru-digit-columns",
        None,
        RN,
        "sgd",
        rec,
        0,
        "A GRU (32 units) reads digits column by column, plain SGD lr 0.3, batches of 128: loss "
        "2.30 -> 0.34 and still falling (tenths 2.29 2.20 1.91 1.57 1.32 1.08 0.80 0.60 0.47 "
        "0.39), gradient norm <= 3.0; monotone start-end line.",
        cell="gru",
        task="digit-cols",
        hidden=32,
        batch=128,
        opt="sgd",
        lr=0.3,
        steps=400,
    ),
    _case(
        "final-control-rnn-momentum-clip-tanh-sine",
        None,
        RN,
        "momentum+clip",
        rec,
        0,
        "A tanh RNN (24 units) predicts the next value of a two-sine wave (noise 0.05) over 30 "
        "steps, SGD momentum 0.9 lr 0.02, clip 1: loss 0.61 -> 0.015 (noise floor 0.0025 plus "
        "what 24 units miss), flat over the last half; gradient norm 1.1 at the start, 0.02 at "
        "the end.",
        cell="rnn",
        task="sine",
        length=30,
        noise=0.05,
        hidden=24,
        opt="momentum",
        lr=0.02,
        steps=300,
        clip=1.0,
    ),
    _case(
        "final-control-rnn-adamw-warmup-cosine-lstm-reversed-rows",
        None,
        RN,
        "adamw+warmup+cosine",
        rec,
        0,
        "An LSTM (32 units) reads digits bottom row first, AdamW lr 1e-2, 25 warmup steps, "
        "cosine: loss 2.33 -> 0.15 (tenths 2.22 1.19 0.57 0.42 0.31 0.27 0.22 0.18 0.16 0.15), "
        "gradient norm <= 6 (during warmup's end), monotone start-end line.",
        cell="lstm",
        task="digit-rows-rev",
        hidden=32,
        opt="adamw",
        lr=1e-2,
        steps=300,
        warmup=25,
        cosine=True,
    ),
    _case(
        "final-control-rnn-adam-gru-count",
        None,
        RN,
        "adam",
        rec,
        0,
        "A GRU (16 units) counts the +1s among 20 inputs (target noise 0.1), Adam lr 3e-3: "
        "loss 3.6 -> 0.012 (noise floor 0.01), converged; gradient norm 5 at step 0 -> 0.07.",
        cell="gru",
        task="count",
        length=20,
        noise=0.1,
        hidden=16,
        opt="adam",
        lr=3e-3,
        steps=250,
    ),
]

PLANTED: list[Case] = [
    # ---- ill-conditioning
    _case(
        "final-ill-conditioning-transformer-sgd-warm-past-edge",
        IC,
        TF,
        "sgd",
        warm,
        0,
        "A one-layer transformer (d 16) warm-started at the minimum of y = 5x + 2 mod 10 with "
        "20% random labels (300 steps of full-batch Adam, cosine; lambda_max there 170), then "
        "full-batch SGD at lr 0.025 = 4.25/lambda_max: the gradient norm rises 0.04 -> 0.5 and "
        "stays, the loss goes up on 50% of the steps and gets nowhere (0.606 -> 0.596 in 300 "
        "steps); no spike, no divergence; lambda_max 62 at the end.",
        kind=TF,
        pre={
            "task": "affine",
            "label_noise": 0.2,
            "n": 256,
            "batch": 256,
            "d": 16,
            "layers": 1,
            "opt": "adam",
            "lr": 1e-2,
            "steps": 300,
            "cosine": True,
        },
        task="affine",
        label_noise=0.2,
        n=256,
        batch=256,
        d=16,
        layers=1,
        opt="sgd",
        lr=0.025,
        steps=300,
    ),
    _case(
        "final-ill-conditioning-rnn-lstm-sgd-warm-past-edge",
        IC,
        RN,
        "sgd",
        warm,
        0,
        "An LSTM (16 units) warm-started at the minimum of noisy (0.3) next-value prediction of "
        "a two-sine wave (300 steps of full-batch Adam, cosine; loss 0.1359, lambda_max 12.0), "
        "then full-batch SGD at lr 0.25 = 3/lambda_max: the loss rises to ~0.16 and wanders "
        "0.136-0.142 for the rest of the run (up on 37% of the steps, never back below 0.1357), "
        "gradient norm 0.005 -> 0.1-0.3 in bursts; lambda_max 8.3 at the end (lr x lambda 2.1).",
        kind=RN,
        pre={
            "cell": "lstm",
            "task": "sine",
            "noise": 0.3,
            "n": 256,
            "batch": 256,
            "length": 30,
            "hidden": 16,
            "opt": "adam",
            "lr": 1e-2,
            "steps": 300,
            "cosine": True,
        },
        cell="lstm",
        task="sine",
        noise=0.3,
        n=256,
        batch=256,
        length=30,
        hidden=16,
        opt="sgd",
        lr=0.25,
        steps=300,
    ),
    # ---- saddle points
    _case(
        "final-saddle-points-rnn-lstm-momentum-small-init-echo",
        SP,
        RN,
        "momentum",
        rec,
        0,
        "An LSTM with every weight times 0.05 on the echo task, SGD momentum 0.9 lr 0.5: the "
        "loss sits at ln 4 = 1.386 with gradient norm 0.028 (only the read-out bias moves) for "
        "the first ~45% of 300 steps, then escapes: 1.38 -> 0.93 by the end, gradient norm 0.1.",
        cell="lstm",
        task="echo",
        init_scale=0.05,
        opt="momentum",
        lr=0.5,
        steps=300,
    ),
    _case(
        "final-saddle-points-transformer-nesterov-tiny-init-rotate",
        SP,
        TF,
        "momentum(nesterov)",
        tfm,
        0,
        "Every weight (LayerNorm gains too) times 0.003 on rotate-by-two, SGD with Nesterov "
        "momentum 0.9 lr 0.05: the loss stays at chance (2.303) for all 300 steps while the "
        "gradient norm grows steadily from 1.5e-4 to 4e-3 (x30: the way out of the saddle at the "
        "origin opening up, the escape not reached within the run).",
        task="rotate",
        init_scale=3e-3,
        opt="momentum",
        nesterov=True,
        lr=0.05,
        steps=300,
    ),
    # ---- inexact gradients
    _case(
        "final-inexact-gradients-transformer-sgd-batch1-max",
        IG,
        TF,
        "sgd",
        tfm,
        0,
        "The pooled largest-token task, d 24, one sequence per batch, SGD lr 0.05: the minibatch "
        "loss jumps between 0.003 and 2.3 to the end, per-sample gradient variance 34.5 x "
        "|mean gradient|^2 at the end; the full-data loss after 400 steps is 0.194, while "
        "full-batch SGD at the same lr and steps (256 sequences) reaches 0.015.",
        task="max",
        d=24,
        batch=1,
        opt="sgd",
        lr=0.05,
        steps=400,
    ),
    _case(
        "final-inexact-gradients-rnn-lstm-sgd-batch1-count",
        IG,
        RN,
        "sgd",
        rec,
        0,
        "An LSTM (16 units) counts +1s among 20 inputs with target noise 0.5 (floor 0.25), one "
        "sequence per batch, SGD lr 0.1: the minibatch loss ranges 1e-5 to 5.6 in the last "
        "fifth, per-sample gradient variance 50 x |mean gradient|^2; full-data loss 0.48 after "
        "400 steps, while full-batch SGD (same lr, steps) reaches 0.29.",
        cell="lstm",
        task="count",
        noise=0.5,
        length=20,
        hidden=16,
        batch=1,
        opt="sgd",
        lr=0.1,
        steps=400,
    ),
    # ---- local minima
    _case(
        "final-local-minima-transformer-adamw-mirror-circle",
        LM,
        TF,
        "adamw+warmup+cosine",
        mirror_trap,
        8,
        "y = -x mod 12 with d_model 3 (tokens on a LayerNorm circle), full-batch AdamW lr 0.03, "
        "20 warmup steps, cosine, 300 steps: seed 8 ends at 0.598 (flat: 0.5981-0.5993 over "
        "the last fifth), |g| 0.017, lambda_max 3.0, lambda_min -0.0014; seeds 9 and 11 reach "
        "0.215 and 0.115 (seed 10 is trapped too, 0.594).",
        opt="adamw",
        lr=0.03,
        steps=300,
        warmup=20,
        cosine=True,
    ),
    _case(
        "final-local-minima-rnn-gru-adamw-two-filters",
        LM,
        RN,
        "adamw",
        gru_filters,
        4,
        "A one-unit GRU fitting a slow and an alternating filter (poles +-0.8), full-batch "
        "AdamW lr 0.02, 300 steps: seed 4 ends at 1.736 (1.7357-1.7387 over the last fifth), "
        "|g| 0.005, lambda_max 2.8, lambda_min -0.0015; seeds 5, 6, 7 reach 0.546, 0.544, 0.528.",
        opt="adamw",
        lr=0.02,
        steps=300,
    ),
    # ---- local-global mismatch
    _case(
        "final-local-global-mismatch-transformer-adam-mirror-escape",
        LGM,
        TF,
        "adam",
        escape,
        8,
        "Warm start at seed 8's trapped circle order of y = -x mod 12 (loss 0.598, the local "
        "minimum above), then full-batch Adam lr 0.2: it sits near 0.58 for ~40% of the run, "
        "crosses over (loss up to 0.8 on the way) and settles at 0.348; the straight line from "
        "start to end rises to 1.22: barrier 0.62 against 0.25 gained.",
        trap=mirror_trap,
        pre={"opt": "adamw", "lr": 0.03, "steps": 300, "warmup": 20, "cosine": True},
        opt="adam",
        lr=0.2,
        steps=300,
    ),
    _case(
        "final-local-global-mismatch-rnn-gru-adam-filter-escape",
        LGM,
        RN,
        "adam",
        escape,
        4,
        "Warm start at seed 4's trapped point of the one-unit GRU two-filter problem (loss "
        "1.736), then full-batch Adam lr 0.1: it leaves within ~60 steps for the other filter "
        "and settles at 0.502; the straight line from start to end rises to 7.44: barrier 5.7 "
        "against 1.23 gained.",
        trap=gru_filters,
        pre={"opt": "adamw", "lr": 0.02, "steps": 300},
        opt="adam",
        lr=0.1,
        steps=300,
    ),
    # ---- long-term dependencies
    _case(
        "final-long-term-dependencies-transformer-10-blocks-no-residual",
        LTD,
        TF,
        "momentum",
        tfm,
        0,
        "10 blocks with neither skips nor norms inside (GELU MLPs), d 16, the pooled first-token "
        "task, SGD momentum lr 0.05: the gradient norm per block falls 0.024 (last) -> 6e-14 "
        "(first), ~x15 per block, and stays so after training (0.012 -> 2.5e-14); loss "
        "2.31 -> 2.24 (chance 2.30).",
        task="first",
        layers=10,
        residual=False,
        d=16,
        opt="momentum",
        lr=0.05,
        steps=200,
    ),
    _case(
        "final-long-term-dependencies-rnn-tanh-sign-120-steps",
        LTD,
        RN,
        "adam",
        rec,
        0,
        "A tanh RNN (24 units, default init) must report the sign of a pulse seen 120 steps "
        "earlier through noise of std 1, Adam lr 1e-3: dL/dh_t is 0.029 at the last step and "
        "3e-5 at t = 0 after training (~x0.94 per step); loss 0.689 -> 0.687, at the no-memory "
        "level ln 2 = 0.693 the whole run.",
        cell="rnn",
        task="sign",
        length=120,
        hidden=24,
        noise=1.0,
        opt="adam",
        lr=1e-3,
        steps=250,
    ),
    # ---- cliffs
    _case(
        "final-cliffs-transformer-momentum-lr-spike",
        CL,
        TF,
        "momentum+lr-spike",
        tfm,
        0,
        "Rotate by two, SGD momentum 0.9 at lr 0.03, but the schedule multiplies the lr by 100 "
        "for steps 60-62: the loss, 0.037 before, jumps to 0.76 then 23.6 (step 63), gradient "
        "norm 0.09 -> 12.8, update/parameter 0.004 -> 0.32-0.68 on the spike steps; it then "
        "climbs back down (tenths 2.10 0.59 6.77 2.03 1.58 0.78 0.16 0.03 0.011 0.006).",
        task="rotate",
        opt="momentum",
        lr=0.03,
        steps=300,
        spike=(60, 3, 100.0),
    ),
    _case(
        "final-cliffs-rnn-gru-momentum-lr-spike",
        CL,
        RN,
        "momentum+lr-spike",
        rec,
        0,
        "A GRU (32 units) on digits read by columns, SGD momentum 0.9 lr 0.05, with the lr x60 "
        "for steps 100-102: loss 1.50 -> 4.86 -> 12.7, gradient norm 0.96 -> 5.9, "
        "update/parameter 0.013 -> 0.73-1.2 on the spike; afterwards it recovers to 0.82 by "
        "step 300 (it was 1.5 before the spike).",
        cell="gru",
        task="digit-cols",
        hidden=32,
        opt="momentum",
        lr=0.05,
        steps=300,
        spike=(100, 3, 60.0),
    ),
]

CASES: list[Case] = [*PLANTED, *CONTROLS]
