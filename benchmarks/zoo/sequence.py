"""Sequence cases of the zoo: small transformers and recurrent nets on generated sequences.

Every model is built inside ``build(seed)`` from ``torch.manual_seed(seed)``; every data set
comes from a ``torch.Generator`` seeded from the seed, so importing this module is cheap.
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

# ---------------------------------------------------------------------------------- models


class _Attention(nn.Module):
    """Multi-head self-attention written out, so double backward runs on plain ops."""

    def __init__(self, d: int, heads: int, causal: bool) -> None:
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        if self.causal:
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            att = att.masked_fill(mask, float("-inf"))
        y = att.softmax(-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    """A pre-LayerNorm transformer block; ``residual=False`` drops the skips and the norms."""

    def __init__(self, d: int, heads: int, causal: bool, residual: bool, act: str) -> None:
        super().__init__()
        self.residual = residual
        if residual:
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = _Attention(d, heads, causal)
        self.mlp = nn.Sequential(
            nn.Linear(d, 2 * d), nn.Tanh() if act == "tanh" else nn.GELU(), nn.Linear(2 * d, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return self.mlp(self.attn(x))
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """Token and position embeddings, ``layers`` blocks, a final LayerNorm, and logits from the
    token embedding itself (tied output weights). ``pool`` gives one prediction per sequence."""

    def __init__(
        self,
        vocab: int,
        length: int,
        d: int = 32,
        heads: int = 2,
        layers: int = 2,
        causal: bool = False,
        residual: bool = True,
        pool: bool = False,
        act: str = "gelu",
    ) -> None:
        super().__init__()
        self.pool, self.residual = pool, residual
        self.embed = nn.Embedding(vocab, d)
        nn.init.normal_(self.embed.weight, 0.0, 0.3 * d**-0.5)  # logits ~0.3: near chance
        self.pos = nn.Parameter(0.1 * torch.randn(length, d))
        self.blocks = nn.ModuleList(_Block(d, heads, causal, residual, act) for _ in range(layers))
        self.norm = nn.LayerNorm(d)  # after the blocks, or before them when there are no skips

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) + self.pos[: tokens.shape[1]]
        if not self.residual:  # no skips: the one norm is on the way in, none on the way out
            h = self.norm(h)
        for block in self.blocks:
            h = block(h)
        if self.residual:
            h = self.norm(h)
        if self.pool:
            h = h.mean(1)
        return h @ self.embed.weight.T


class RecurrentNet(nn.Module):
    """nn.RNN / nn.LSTM / nn.GRU and a linear read-out, of the last step or of every step."""

    def __init__(
        self,
        cell: str,
        n_in: int,
        hidden: int,
        n_out: int,
        every_step: bool = False,
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        kind = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        extra: dict[str, Any] = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = kind(n_in, hidden, batch_first=True, **extra)
        self.head = nn.Linear(hidden, n_out)
        self.every_step = every_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.rnn(x)[0]
        return self.head(h if self.every_step else h[:, -1])


class SequenceCrossEntropy(nn.Module):
    """Cross-entropy over every position of (batch, time, vocab) logits, or over (batch, vocab);
    soft targets (floats) give the cross-entropy to a teacher's distribution."""

    reduction = "mean"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        flat = logits.reshape(-1, logits.shape[-1])
        if targets.is_floating_point():
            soft = targets.reshape(-1, targets.shape[-1])
            return -(soft * flat.log_softmax(-1)).sum(-1).mean()
        return F.cross_entropy(flat, targets.reshape(-1))


def _scale_(model: nn.Module, factor: float) -> nn.Module:
    """Multiply every parameter (LayerNorm gains included) by ``factor``: a tiny init sits near
    the saddle at the origin."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)
    return model


def _set_radius_(rnn: nn.Module, radius: float, gen: torch.Generator) -> None:
    """Make the recurrent matrix ``radius`` times an orthogonal one (spectral radius = radius)."""
    w = rnn.weight_hh_l0
    hidden = w.shape[1]
    with torch.no_grad():
        for i in range(w.shape[0] // hidden):  # one block per gate
            q, _ = torch.linalg.qr(torch.randn(hidden, hidden, generator=gen))
            w[i * hidden : (i + 1) * hidden].copy_(radius * q)


# ------------------------------------------------------------------------------------ data


def _tokens(
    task: str, n: int, length: int, vocab: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A token task: ``copy``, ``reverse``, ``sort`` (per position) or ``majority`` (per
    sequence), or ``shift`` (causal next token: y_t = x_{t-1} + 1 mod vocab)."""
    x = torch.randint(0, vocab, (n, length), generator=gen)
    if task == "copy":
        return x, x.clone()
    if task == "reverse":
        return x, x.flip(1)
    if task == "sort":
        return x, x.sort(1).values
    if task == "majority":
        return x, F.one_hot(x, vocab).sum(1).argmax(1)
    if task == "succ":  # the next symbol on a cycle: a per-token map, no attention needed
        return x, (x + 1) % vocab
    if task == "shift":
        y = (x.roll(1, 1) + 1) % vocab
        y[:, 0] = x[:, 0]
        return x, y
    raise ValueError(task)


def _noisy(y: torch.Tensor, fraction: float, vocab: int, gen: torch.Generator) -> torch.Tensor:
    """Replace ``fraction`` of the labels by uniformly random ones."""
    flip = torch.rand(y.shape, generator=gen) < fraction
    return torch.where(flip, torch.randint(0, vocab, y.shape, generator=gen), y)


def _recall(
    n: int, delay: int, k: int, gen: torch.Generator, noise: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Delayed recall: a one-hot symbol at step 0, ``delay - 1`` steps of noise, then recall it."""
    first = torch.randint(0, k, (n,), generator=gen)
    x = noise * torch.randn(n, delay, k + 1, generator=gen)
    x[:, 0, :k] = F.one_hot(first, k).float() * 3
    x[:, -1, k] = 3.0  # the cue
    return x, first


def _digit_rows() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits read row by row: 8 steps of 8 pixels."""
    from .data import digits

    x, y = digits()
    return x.reshape(-1, 8, 8), y


def _batches(x: Any, y: torch.Tensor, size: int, seed: int) -> list:
    from .data import batches

    return batches(x, y, size, seed)


# ------------------------------------------------------------------------------- optimizers


def _optimizer(
    model: nn.Module,
    kind: str,
    lr: float,
    steps: int,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    wd: float = 0.01,
    warmup: int = 0,
    cosine: bool = False,
    milestones: tuple[int, ...] = (),
    spike: tuple[int, int, float] | None = None,
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and, with ``warmup``, ``cosine``, step ``milestones`` (lr x0.3 at each)
    or an lr ``spike`` (start, length, factor), a LambdaLR schedule over it."""
    params = model.parameters()
    opt: torch.optim.Optimizer
    if kind == "sgd":
        opt = torch.optim.SGD(params, lr=lr)
    elif kind == "momentum":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov)
    elif kind == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if not (warmup or cosine or milestones or spike):
        return opt, None

    def factor(step: int) -> float:
        f = 1.0
        if step < warmup:
            f = (step + 1) / warmup
        elif cosine:
            done = (step - warmup) / max(1, steps - warmup)
            f = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
        f *= 0.3 ** sum(step >= m for m in milestones)
        if spike is not None and spike[0] <= step < spike[0] + spike[1]:
            f *= spike[2]
        return f

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _experiment(
    seed: int,
    name: str,
    model: nn.Module,
    loss_fn: Any,
    x: Any,
    y: torch.Tensor,
    *,
    batch: int,
    opt: str,
    lr: float,
    steps: int,
    description: str,
    config: dict[str, Any],
    clip: float | None = None,
    eval_n: int = 256,
    **opt_kw: Any,
) -> Experiment:
    """Assemble the Experiment; the config records everything that shapes the run."""
    optimizer, scheduler = _optimizer(model, opt, lr, steps, **opt_kw)
    data = [(x, y)] if batch >= len(y) else _batches(x, y, batch, seed)
    return Experiment(
        model=model,
        loss_fn=loss_fn,
        data=data,
        optimizer=optimizer,
        steps=steps,
        seed=seed,
        name=name,
        eval_data=(x[:eval_n], y[:eval_n]),
        description=description,
        config={
            **config,
            "optimizer": opt,
            "lr": lr,
            "batch_size": min(batch, len(y)),
            "steps": steps,
            "clip_grad_norm": clip,
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in opt_kw.items()},
        },
        scheduler=scheduler,
        clip_grad_norm=clip,
    )


# ------------------------------------------------------------------------------- factories


def transformer_run(
    seed: int,
    *,
    name: str,
    task: str = "reverse",
    n: int = 512,
    length: int = 8,
    vocab: int = 10,
    d: int = 32,
    heads: int = 2,
    layers: int = 2,
    causal: bool = False,
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
    **opt_kw: Any,
) -> Experiment:
    """A small transformer with tied embeddings on a generated token task; the data are drawn
    from ``data_seed`` when given (restarts then share them), else from ``seed``."""
    gen = torch.Generator().manual_seed(7000 + (seed if data_seed is None else data_seed))
    x, y = _tokens(task, n, length, vocab, gen)
    if label_noise:
        y = _noisy(y, label_noise, vocab, gen)
    torch.manual_seed(seed)
    model = TinyTransformer(
        vocab, length, d, heads, layers, causal, residual, pool=task == "majority", act=act
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
        "causal": causal,
        "residual": residual,
        "init_scale": init_scale,
        "label_noise": label_noise,
        "data_seed": seed if data_seed is None else data_seed,
    }
    desc = (
        f"a {layers}-layer transformer (d={d}, tied embeddings"
        f"{'' if residual else ', no residuals'}) on {task} of length {length}, {opt} lr {lr}"
    )
    return _experiment(
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
        **opt_kw,
    )


def _sequences(
    task: str, n: int, delay: int, gen: torch.Generator, noise: float
) -> tuple[torch.Tensor, torch.Tensor, int, int, bool]:
    """Inputs, targets, input and output sizes, and whether targets are class labels."""
    if task == "recall":
        x, y = _recall(n, delay, 4, gen)
        return x, y, 5, 4, True
    if task == "digits":
        x, y = _digit_rows()
        return x, y, 8, 10, True
    if task == "adding":  # sum of the two marked values among ``delay`` uniform ones
        vals = torch.rand(n, delay, generator=gen)
        marks = torch.zeros(n, delay)
        idx = torch.stack([torch.randperm(delay, generator=gen)[:2] for _ in range(n)])
        marks.scatter_(1, idx, 1.0)
        y = (vals * marks).sum(1, keepdim=True)
        y = y + noise * torch.randn(y.shape, generator=gen)
        return torch.stack([vals, marks], -1), y, 2, 1, False
    if task == "sum":  # a running mean of the inputs, a linear target a small net can fit
        x = torch.randn(n, delay, 3, generator=gen)
        w = torch.tensor([1.0, -0.5, 0.25])
        y = (x @ w).mean(1, keepdim=True) * 3
        y = y + noise * torch.randn(y.shape, generator=gen)
        return x, y, 3, 1, False
    raise ValueError(task)


def rnn_run(
    seed: int,
    *,
    name: str,
    cell: str = "rnn",
    task: str = "recall",
    n: int = 512,
    delay: int = 10,
    hidden: int = 32,
    nonlinearity: str = "tanh",
    radius: float | None = None,
    init_scale: float = 1.0,
    target_noise: float = 0.0,
    batch: int = 64,
    opt: str = "adam",
    lr: float = 3e-3,
    steps: int = 200,
    clip: float | None = None,
    **opt_kw: Any,
) -> Experiment:
    """A recurrent net on a generated sequence task (or digits read row by row)."""
    gen = torch.Generator().manual_seed(8000 + seed)
    x, y, n_in, n_out, labels = _sequences(task, n, delay, gen, target_noise)
    torch.manual_seed(seed)
    model = RecurrentNet(cell, n_in, hidden, n_out, nonlinearity=nonlinearity)
    if radius is not None:
        _set_radius_(model.rnn, radius, gen)
    if init_scale != 1.0:
        _scale_(model, init_scale)
    config = {
        "family": "rnn",
        "cell": cell,
        "task": task,
        "delay": x.shape[1],
        "hidden": hidden,
        "nonlinearity": nonlinearity,
        "radius": radius,
        "init_scale": init_scale,
        "target_noise": target_noise,
    }
    desc = f"a {cell} ({hidden} units) on {task} over {x.shape[1]} steps, {opt} lr {lr}"
    loss = nn.CrossEntropyLoss() if labels else nn.MSELoss()
    return _experiment(
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
        **opt_kw,
    )


def rnn_two_modes(
    seed: int,
    *,
    name: str,
    cell: str = "rnn",
    poles: tuple[float, float] = (0.95, -0.95),
    weights: tuple[float, float] = (1.0, 0.8),
    length: int = 30,
    n: int = 256,
    data_seed: int = 0,
    opt: str = "adam",
    lr: float = 0.02,
    steps: int = 300,
    **opt_kw: Any,
) -> Experiment:
    """A one-unit student RNN fitting the sum of two linear filters of its input, a slow one
    (pole ``poles[0]``) and an alternating one (``poles[1]``): one recurrent weight can follow
    either, not both, and the way between passes w = 0, which fits neither. A start with w < 0
    settles on the weaker, alternating mode: a spurious minimum. ``seed`` draws only the start.
    """
    gen = torch.Generator().manual_seed(9000 + data_seed)
    x = 0.5 * torch.randn(n, length, 1, generator=gen)
    y = torch.zeros(n, length, 1)
    for pole, weight in zip(poles, weights):
        state = torch.zeros(n, 1)
        norm = math.sqrt(1 - pole**2)  # unit gain in variance
        trace = []
        for t in range(length):
            state = pole * state + norm * x[:, t]
            trace.append(state)
        y = y + weight * torch.stack(trace, 1) / 0.5
    torch.manual_seed(seed)
    model = RecurrentNet(cell, 1, 1, 1, every_step=True)
    config = {
        "family": "rnn",
        "cell": cell,
        "student_hidden": 1,
        "poles": list(poles),
        "weights": list(weights),
        "length": length,
        "data_seed": data_seed,
    }
    desc = f"a one-unit {cell} fitting two linear filters (poles {poles}), {opt}"
    return _experiment(
        seed,
        name,
        model,
        nn.MSELoss(),
        x,
        y,
        batch=n,
        opt=opt,
        lr=lr,
        steps=steps,
        description=desc,
        config=config,
        **opt_kw,
    )


def _pretrain(exp: Experiment) -> nn.Module:
    """Run ``exp`` plainly (no monitor) and return its model: a warm start made in ``build``."""
    model = exp.model
    for inputs, targets in exp.batches():
        exp.optimizer.zero_grad(set_to_none=True)
        exp.loss_fn(model(inputs), targets).backward()
        exp.optimizer.step()
        if exp.scheduler is not None:
            exp.scheduler.step()
    return model


def transformer_escape(seed: int, *, name: str, lr: float = 0.03, **kw: Any) -> Experiment:
    """Local descent that does not point at the solution: start at a sharp, tangled minimum
    of succ with d_model 3 (the LayerNorm puts the tokens on a circle, in the wrong cyclic
    order), then run full-batch Adam at an lr too large to stay there; it leaves for a better
    ordering, and the straight line back to the start crosses the ridge between them."""
    base = {"task": "succ", "vocab": 16, "d": 3, "heads": 1, "layers": 1, "n": 256, "batch": 256}
    start = _pretrain(transformer_run(seed, name=name, lr=0.03, steps=400, cosine=True, **base))
    exp = transformer_run(seed, name=name, lr=lr, **{**base, **kw})
    exp.model.load_state_dict(start.state_dict())
    exp.config["warm_start"] = "400 steps of full-batch Adam lr 0.03 with a cosine schedule"
    return exp


def rnn_warm(
    seed: int,
    *,
    name: str,
    start_w: float | None,
    poles: tuple[float, float] = (0.9, -0.9),
    weights: tuple[float, float] = (0.7, 1.0),
    pre_lr: float = 0.02,
    **kw: Any,
) -> Experiment:
    """The two-filter problem of :func:`rnn_two_modes` from a warm start: the recurrent weight
    set to ``start_w`` (picking a basin: > 0 the slow filter, < 0 the alternating one; None
    keeps the seed's draw), then 400 steps of Adam with a cosine schedule, which settle in
    that basin's minimum."""
    base: dict[str, Any] = {"poles": poles, "weights": weights}
    for key in ("data_seed", "length"):
        if key in kw:
            base[key] = kw.pop(key)
    pre = rnn_two_modes(seed, name=name, lr=pre_lr, steps=400, cosine=True, **base)
    if start_w is not None:
        with torch.no_grad():
            pre.model.rnn.weight_hh_l0.fill_(start_w)
    start = _pretrain(pre)
    exp = rnn_two_modes(seed, name=name, **base, **kw)
    exp.model.load_state_dict(start.state_dict())
    exp.config["warm_start"] = f"w_hh = {start_w}, then 400 steps of Adam lr {pre_lr}, cosine"
    return exp


# ----------------------------------------------------------------------------------- cases

T, R = transformer_run, rnn_run
IC, LM, SP, CL = "ill-conditioning", "local-minima", "saddle-points", "cliffs"
LTD, IG, LGM = "long-term-dependencies", "inexact-gradients", "local-global-mismatch"


def _case(
    name: str,
    challenge: str | None,
    family: str,
    optimizer: str,
    split: str,
    factory: Any,
    seed: int,
    why: str,
    any_seed: bool = True,
    **kw: Any,
) -> Case:
    """A Case whose build is ``factory(seed, name=name, **kw)``."""
    build = partial(factory, name=name, **kw)
    return Case(name, challenge, family, optimizer, split, build, seed, why, any_seed)


CASES: list[Case] = [
    # ---- ill-conditioning
    _case(
        "ill-conditioning-rnn-sgd-past-edge",
        IC,
        "rnn",
        "sgd",
        "tune",
        rnn_warm,
        0,
        "Warm start at the minimum of a one-unit RNN's alternating filter (lambda_max 10.0), "
        "then full-batch SGD at lr 0.25 = 2.5/lambda_max: the loss leaves 0.49 and oscillates "
        "(up on 59% of the late steps, 0.49-0.66) without diverging; gradient norm ~1, "
        "lambda_max 23 at the end (lr x lambda 5.8).",
        start_w=-0.8,
        opt="sgd",
        lr=0.25,
        steps=300,
    ),
    _case(
        "ill-conditioning-transformer-adam-fullbatch",
        IC,
        "transformer",
        "adam",
        "held",
        T,
        0,
        "Full-batch Adam at lr 0.06 on sort of length 12 (stable up to ~0.03): the loss falls "
        "2.34 -> 1.31 then wanders 1.38-1.54, rising on 43% of the late steps, never blowing up; "
        "lambda_max 13.9 at the start, 265 at the end (lr x lambda_max 16).",
        task="sort",
        length=12,
        n=256,
        batch=256,
        opt="adam",
        lr=0.06,
        steps=300,
    ),
    _case(
        "ill-conditioning-rnn-sgd-past-edge-other-filters",
        IC,
        "rnn",
        "sgd",
        "held",
        rnn_warm,
        3,
        "Other filters (poles +-0.85), data and seed: warm start at the alternating filter's "
        "minimum (loss 0.38, lambda_max 5.46), full-batch SGD at lr 0.4 = 2.18/lambda_max: the "
        "loss rises to ~0.5 and flips up and down every step (0.49-0.52) to the end; "
        "lambda_max 6.7 there (lr x lambda 2.7).",
        start_w=-0.8,
        poles=(0.85, -0.85),
        weights=(0.6, 1.0),
        data_seed=1,
        length=24,
        opt="sgd",
        lr=0.4,
        steps=300,
    ),
    # ---- local minima
    _case(
        "local-minima-rnn-adam-two-filters",
        LM,
        "rnn",
        "adam+cosine",
        "tune",
        rnn_two_modes,
        8,
        "A one-unit RNN fits the sum of a slow (pole 0.9, weight 0.7) and an alternating "
        "(pole -0.9, weight 1) filter; seed 8 starts with w_hh = +0.69 and settles on the slow "
        "one: loss 0.864, |g| 0.03 (lambda_max 224), lambda_min -1e-5; seeds 9-12 reach 0.45-0.48.",
        poles=(0.9, -0.9),
        weights=(0.7, 1.0),
        lr=0.02,
        steps=400,
        cosine=True,
    ),
    _case(
        "local-minima-transformer-adam-tangled-circle",
        LM,
        "transformer",
        "adam+cosine",
        "held",
        T,
        12,
        "succ (y = x + 1 mod 16) with d_model 3: the LayerNorm puts the 16 tokens on a circle "
        "and a wrong cyclic order is a trap. Seed 12 ends at 0.60, |g| 0.09 against lambda_max "
        "596, lambda_min -0.04 (~0); seeds 13-16 on the same data reach 0.15-0.41.",
        task="succ",
        vocab=16,
        d=3,
        heads=1,
        layers=1,
        n=256,
        batch=256,
        lr=0.03,
        steps=400,
        cosine=True,
        data_seed=12,
    ),
    _case(
        "local-minima-rnn-momentum-two-filters",
        LM,
        "rnn",
        "momentum",
        "held",
        rnn_two_modes,
        16,
        "Two filters (poles +-0.85, weights 0.6 and 1, other data), SGD with momentum: seed 16 "
        "starts at w_hh = +0.25 and ends on the slow filter at loss 1.419, |g| 7e-4, "
        "lambda_min -3e-3 (lambda_max 4); seeds 17-20 all reach 0.312.",
        poles=(0.85, -0.85),
        weights=(0.6, 1.0),
        data_seed=1,
        length=24,
        opt="momentum",
        lr=0.05,
        steps=400,
    ),
    # ---- saddle points
    _case(
        "saddle-points-transformer-momentum-tiny-init",
        SP,
        "transformer",
        "momentum",
        "tune",
        T,
        0,
        "Every weight (LayerNorm gains too) times 0.003: the loss sits at chance (2.30) with "
        "gradient norm 1e-3 -> 3e-2 for 71 of 300 steps, then escapes cleanly to 0.001.",
        task="copy",
        init_scale=3e-3,
        opt="momentum",
        lr=0.05,
        steps=300,
    ),
    _case(
        "saddle-points-rnn-sgd-tiny-init",
        SP,
        "rnn",
        "sgd",
        "held",
        R,
        0,
        "A tanh RNN with every weight times 0.001 on a linear running-sum target: loss 1.1-1.2 "
        "with gradient norm ~0.25 for the first ~90 of 300 steps, then it escapes to 0.3 "
        "(gradient norm 2).",
        task="sum",
        delay=10,
        init_scale=1e-3,
        opt="sgd",
        lr=0.1,
        steps=300,
    ),
    _case(
        "saddle-points-transformer-sgd-tiny-init-reverse",
        SP,
        "transformer",
        "sgd",
        "held",
        T,
        1,
        "reverse from every weight times 0.003, plain SGD: the whole run sits at chance "
        "(2.30 -> 2.30) while the gradient norm grows 2e-4 -> 4e-2, still on the plateau.",
        task="reverse",
        init_scale=3e-3,
        opt="sgd",
        lr=0.5,
        steps=300,
    ),
    # ---- cliffs
    _case(
        "cliffs-rnn-sgd-radius3",
        CL,
        "rnn",
        "sgd",
        "tune",
        R,
        0,
        "Recurrent matrix 3 x orthogonal over 30 steps, no clipping: gradient norm 800-13000 in "
        "every tenth of the run, loss erratic (rises on 49% of steps) 0.77 -> 0.63.",
        task="sum",
        delay=30,
        hidden=16,
        radius=3.0,
        opt="sgd",
        lr=1e-4,
        steps=200,
    ),
    _case(
        "cliffs-transformer-adam-huge-lr",
        CL,
        "transformer",
        "adam",
        "tune",
        T,
        0,
        "Adam at lr 0.3 on copy: the first updates are as large as the weights (update/parameter "
        "~1 on step 0), the loss jumps 2.13 -> 5.4 and never gets below chance (2.3) again.",
        task="copy",
        opt="adam",
        lr=0.3,
        steps=200,
    ),
    _case(
        "cliffs-rnn-sgd-radius3-delay40",
        CL,
        "rnn",
        "sgd",
        "held",
        R,
        5,
        "Another seed, 24 units, 40 steps, radius 3: gradient norm up to 5e4 (3500 average in "
        "the first tenth, still ~100 at the end), loss erratic 0.54 -> 1.17 -> 0.79.",
        task="sum",
        delay=40,
        hidden=24,
        radius=3.0,
        opt="sgd",
        lr=1e-4,
        steps=200,
    ),
    _case(
        "cliffs-transformer-momentum-huge-lr",
        CL,
        "transformer",
        "momentum",
        "held",
        T,
        0,
        "SGD with momentum 0.9 at lr 0.3: the loss falls to 0.1 by step 60, then explodes for "
        "good: 7 -> 300 -> 2e4, gradient norm 10 -> 500, never NaN within 200 steps. lr 0.3 "
        "is the edge: seeds 100, 200 and 400 converge instead (seed 300 explodes), so the "
        "fresh draw leaves this case out.",
        any_seed=False,
        task="copy",
        opt="momentum",
        lr=0.3,
        steps=200,
    ),
    # ---- long-term dependencies
    _case(
        "long-term-dependencies-rnn-tanh-delay60",
        LTD,
        "rnn",
        "adam",
        "tune",
        R,
        0,
        "A tanh RNN (recurrent radius 0.4) recalls the symbol it saw 60 steps earlier: dL/dh_t is "
        "3e-2 at the last step, 4e-14 halfway, 0 at t = 0; loss 1.40 -> 1.31 (chance 1.39).",
        task="recall",
        delay=60,
        hidden=32,
        radius=0.4,
        opt="adam",
        lr=1e-3,
        steps=250,
    ),
    _case(
        "long-term-dependencies-rnn-relu-delay60",
        LTD,
        "rnn",
        "adam",
        "held",
        R,
        1,
        "ReLU RNN, radius 0.5, delay 60, other seed: dL/dh_t 3e-2 at the end, 3e-14 halfway, 0 "
        "at t = 0 (still 3e-6 after training); loss 1.38 -> 1.27.",
        task="recall",
        delay=60,
        hidden=32,
        nonlinearity="relu",
        radius=0.5,
        opt="adam",
        lr=1e-3,
        steps=300,
    ),
    _case(
        "long-term-dependencies-transformer-8-layers-no-residual",
        LTD,
        "transformer",
        "adam",
        "held",
        T,
        0,
        "8 blocks with no residual connections and no norms inside (tanh MLPs): the gradient "
        "norm per block falls 1e-2 (last) -> 6e-10 (first), ~x10 per block; loss stays 2.30.",
        task="reverse",
        layers=8,
        residual=False,
        act="tanh",
        d=16,
        opt="adam",
        lr=1e-3,
        steps=200,
    ),
    # ---- inexact gradients
    _case(
        "inexact-gradients-rnn-sgd-batch2",
        IG,
        "rnn",
        "sgd",
        "tune",
        R,
        0,
        "Running-sum target with noise of std 1, batches of 2, SGD lr 0.05: per-sample gradient "
        "variance 36 x the squared mean gradient per batch; loss erratic 2.8 -> ~2 while "
        "full-batch Adam on the same data reaches 0.25.",
        task="sum",
        delay=10,
        hidden=16,
        target_noise=1.0,
        batch=2,
        opt="sgd",
        lr=0.05,
        steps=400,
    ),
    _case(
        "inexact-gradients-transformer-sgd-batch2",
        IG,
        "transformer",
        "sgd",
        "held",
        T,
        0,
        "majority with 30% random labels, batches of 2, SGD lr 0.1: gradient noise 37 x the "
        "squared mean gradient; loss 2.37 -> 1.83 while full-batch Adam reaches 0.001.",
        task="majority",
        label_noise=0.3,
        batch=2,
        opt="sgd",
        lr=0.1,
        steps=400,
    ),
    # ---- local-global mismatch
    _case(
        "local-global-mismatch-transformer-adam-escape",
        LGM,
        "transformer",
        "adam",
        "tune",
        transformer_escape,
        12,
        "Warm start at the tangled minimum of succ with d_model 3 (loss 0.60), then full-batch "
        "Adam lr 0.03: it leaves (loss up to 3.5 early) for a better order at 0.41; the straight "
        "line from start to end peaks at 2.21: barrier 1.6.",
        steps=300,
    ),
    _case(
        "local-global-mismatch-rnn-adam-escape",
        LGM,
        "rnn",
        "adam",
        "held",
        rnn_warm,
        8,
        "Warm start at the slow-filter minimum of the one-unit RNN (w_hh 0.93, loss 0.86), Adam "
        "lr 0.1 throws it over w = 0 to the alternating filter (w_hh -0.90, loss 0.42); the "
        "straight line between rises to 0.93: barrier 0.065.",
        start_w=None,
        opt="adam",
        lr=0.1,
        steps=300,
    ),
    # ---- healthy controls
    _case(
        "control-transformer-adamw-warmup-cosine-clip",
        None,
        "transformer",
        "adamw+warmup+cosine+clip",
        "tune",
        T,
        0,
        "reverse, AdamW lr 3e-3, 30 warmup steps, cosine, clip 1: loss 2.35 -> 0.007 steadily, "
        "gradient norm <= 1.2, straight line from start to end monotone.",
        task="reverse",
        opt="adamw",
        lr=3e-3,
        steps=300,
        warmup=30,
        cosine=True,
        clip=1.0,
    ),
    _case(
        "control-lstm-adam-recall",
        None,
        "rnn",
        "adam",
        "tune",
        R,
        0,
        "LSTM recalls a symbol 6 steps back, Adam lr 5e-3: loss 1.40 -> 0.0008 (converged), "
        "gradient norm <= 0.62, no spike.",
        cell="lstm",
        task="recall",
        delay=6,
        opt="adam",
        lr=5e-3,
        steps=250,
    ),
    _case(
        "control-gru-momentum-digits",
        None,
        "rnn",
        "momentum",
        "tune",
        R,
        0,
        "GRU over digits rows, SGD lr 0.1 momentum 0.9, batches of 64: loss 2.29 -> 0.05, "
        "falling every tenth of the run, gradient norm <= 2.4.",
        cell="gru",
        task="digits",
        opt="momentum",
        lr=0.1,
        steps=300,
    ),
    _case(
        "control-transformer-adam-sort",
        None,
        "transformer",
        "adam",
        "held",
        T,
        1,
        "sort of length 8, Adam lr 2e-3, batches of 64: loss 2.33 -> 0.014, gradient norm "
        "<= 3.8, monotone interpolation.",
        task="sort",
        opt="adam",
        lr=2e-3,
        steps=300,
    ),
    _case(
        "control-lstm-momentum-clip-digits",
        None,
        "rnn",
        "momentum+clip",
        "held",
        R,
        1,
        "LSTM over digits rows, SGD lr 0.2 momentum 0.9, clip 1: loss 2.32 -> 0.14, gradient "
        "norm <= 2.6.",
        cell="lstm",
        task="digits",
        opt="momentum",
        lr=0.2,
        steps=300,
        clip=1.0,
    ),
    _case(
        "control-rnn-adam-recall-delay5",
        None,
        "rnn",
        "adam",
        "held",
        R,
        2,
        "tanh RNN recalls a symbol 5 steps back, Adam lr 3e-3: loss 1.41 -> 0.002, gradient "
        "norm <= 0.9.",
        task="recall",
        delay=5,
        opt="adam",
        lr=3e-3,
        steps=250,
    ),
    _case(
        "control-gru-adamw-cosine-digits",
        None,
        "rnn",
        "adamw+cosine",
        "held",
        R,
        2,
        "GRU over digits rows, AdamW lr 1e-2 with a cosine schedule: loss 2.32 -> 0.09, falling "
        "every tenth, gradient norm <= 3.2.",
        cell="gru",
        task="digits",
        opt="adamw",
        lr=1e-2,
        steps=300,
        cosine=True,
    ),
]
