"""Sec. 8.2.4: cliffs and exploding gradients. Multiplying many weights together makes the
objective steep as a cliff; a gradient step there throws the parameters far away, and clipping
the gradient's norm keeps the step, and training, under control."""

from __future__ import annotations

import math

import torch

from optiscope.lab._framework import Lab, experiment

TARGET = 3.0
LR = 0.05
CLIP = 1.0
DIVERGED = 1e30  # a loss above this ends a run


def _loss(w: torch.Tensor) -> torch.Tensor:
    """A depth-D chain of scalar layers, y = w_D ... w_1 x with x = 1, fitting y = 3."""
    return (w.prod() - TARGET) ** 2


def _train(w0: torch.Tensor, steps: int, clip: float | None) -> dict:
    """Plain gradient descent, with the gradient's norm clipped to ``clip`` or not."""
    w = w0.clone().requires_grad_(True)
    losses: list[float] = []
    moves: list[float] = []
    befores: list[torch.Tensor] = []
    for _ in range(steps):
        loss = _loss(w)
        (g,) = torch.autograd.grad(loss, w)
        if not math.isfinite(loss.item()) or loss.item() > DIVERGED:
            break
        losses.append(loss.item())
        if clip is not None:  # clip_grad_norm_'s rule, by hand on the gradient tensor
            norm = float(g.norm())
            if norm > clip:
                g = g * (clip / norm)
        befores.append(w.detach().clone())
        with torch.no_grad():
            w -= LR * g
        moves.append(float((LR * g).norm()))
    end = float(_loss(w.detach()))
    diverged = not math.isfinite(end) or end > DIVERGED
    if not diverged:
        losses.append(end)
    return {"losses": losses, "moves": moves, "befores": befores, "diverged": diverged, "w": w}


def _start(d: int, gen: torch.Generator) -> torch.Tensor:
    return 0.8 + 0.05 * torch.randn(d, generator=gen, dtype=torch.float64)


def _judge(plain: dict, clipped: dict) -> dict:
    """The plain run's first step >= 50x the clipped run's largest (its cliff), and how far the
    loss rose after it (a diverged run rose to infinity)."""
    moves, losses = plain["moves"], plain["losses"]
    limit = 50 * max(clipped["moves"])
    big = next((i for i, m in enumerate(moves) if m >= limit), None)
    if big is None:
        big = max(range(len(moves)), key=lambda i: moves[i])
    peak = math.inf if plain["diverged"] else max(losses[big + 1 :], default=losses[big])
    jump_log10 = math.log10(peak / losses[big]) if math.isfinite(peak) else math.inf
    plain_end = math.inf if plain["diverged"] else losses[-1]
    clipped_end = clipped["losses"][-1]
    move_ratio = moves[big] / max(clipped["moves"])
    holds = (
        move_ratio >= 50
        and not clipped["diverged"]
        and clipped_end <= clipped["losses"][0] / 10
        and 10 * clipped_end <= plain_end
    )
    return {
        "holds": holds,
        "rose_100x": jump_log10 >= 2,
        "big": big,
        "move_ratio": move_ratio,
        "jump_log10": min(jump_log10, 300.0),
        "plain_end": min(plain_end, DIVERGED),
        "clipped_end": clipped_end,
        "start": clipped["losses"][0],
    }


@experiment(
    "cliffs",
    "Cliffs: exploding gradients and gradient clipping",
    "Products of many weights make cliffs in the objective: near one, the gradient is so large "
    "that a plain gradient step throws the parameters far and the loss jumps by orders of "
    "magnitude, while clipping the gradient's norm keeps the same learning rate stable.",
)
def cliffs(lab: Lab) -> None:
    depth = 10
    starts, steps = (1, 60) if lab.small else (8, 200)
    gen = torch.Generator().manual_seed(lab.seed)
    judged = []
    runs = []
    for _ in range(starts):
        w0 = _start(depth, gen)
        plain, clipped = _train(w0, steps, None), _train(w0, steps, CLIP)
        judged.append(_judge(plain, clipped))
        runs.append((plain, clipped))
    reproduced = sum(j["holds"] for j in judged)
    holds = reproduced >= math.ceil(0.75 * starts)
    first, (plain, clipped) = judged[0], runs[0]

    def draw(fig) -> None:
        ax1, ax2 = fig.subplots(1, 2)
        ax1.semilogy(plain["losses"], "o-", ms=3, label="plain gradient step")
        ax1.semilogy(clipped["losses"], "s-", ms=3, label=f"gradient norm clipped to {CLIP}")
        ax1.set_xlabel("step")
        ax1.set_ylabel("loss")
        ax1.legend()
        w, step = plain["befores"][first["big"]], plain["moves"][first["big"]]
        nxt = (
            plain["befores"][first["big"] + 1]
            if first["big"] + 1 < len(plain["befores"])
            else plain["w"].detach()
        )
        alphas = torch.linspace(0, 1, 400, dtype=torch.float64)
        along = [float(_loss(w + a * (nxt - w))) for a in alphas]
        ax2.semilogy((alphas * step).tolist(), along)
        ax2.set_xlabel("distance along the plain run's first cliff step")
        ax2.set_ylabel("loss")

    lab.figure("cliff", draw, width=10.0)
    lab.verdict(
        holds,
        f"plain gradient descent and gradient descent with the gradient norm clipped to {CLIP} "
        f"run from the same start with the same learning rate {LR}; a start reproduces the "
        "claim when the plain run takes a step >= 50x the clipped run's largest (thrown off "
        "the cliff) and ends at a loss >= 10x the clipped run's (a diverged run counts as "
        "infinite), while the clipped run does not diverge and ends at <= 1/10 of its start "
        "loss; the claim holds when at least 75% of the starts reproduce it",
        depth=depth,
        starts=starts,
        steps=steps,
        starts_reproduced=reproduced,
        starts_loss_rose_100x=sum(j["rose_100x"] for j in judged),
        start_loss=first["start"],
        plain_cliff_step=plain["moves"][first["big"]],
        plain_cliff_at=first["big"],
        clipped_largest_step=max(clipped["moves"]),
        step_ratio=first["move_ratio"],
        loss_rise_log10=first["jump_log10"],
        plain_diverged=plain["diverged"],
        plain_final_loss=first["plain_end"],
        clipped_final_loss=first["clipped_end"],
        min_step_ratio=min(j["move_ratio"] for j in judged),
        min_loss_rise_log10=min(j["jump_log10"] for j in judged),
        max_clipped_final_loss=max(j["clipped_end"] for j in judged),
    )
