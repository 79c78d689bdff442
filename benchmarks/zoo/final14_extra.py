"""Part of the fifteenth held-out zoo split (``"final14"``, this file): planted cases of local
minima and of poor correspondence between local and global structure (Deep Learning sec. 8.2),
written blind to the detectors and checked by hand with plain PyTorch training only.

Local minima: a tanh MLP 2-2-1 on four XOR blobs, at a seed whose heavy-ball run settles on a
fit of three blobs out of four while the next three seeds solve all four (``any_seed=False``).
Local-global mismatch: a ReLU MLP on diabetes warm-started far along its rescaling symmetry
(layer 1 x30, layer 2 /30), which AdamW's weight decay carries along the curved valley of
rescalings, so the straight line from start to end crosses a barrier.

Data: scikit-learn's diabetes table and sets generated from ``torch.Generator`` seeds in
270000-274999. Every model is built in ``build(seed)`` after ``torch.manual_seed(seed)``.
Plain-training seconds are with ``torch.set_num_threads(1)``.
"""

from __future__ import annotations

import torch
from torch import nn

from optiscope import Experiment

from . import Case
from .final12 import _exp
from .final14_more import diabetes
from .mlp_cnn import _mlp

FINAL14 = "final14"
LM = "local-minima"
LGM = "local-global-mismatch"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _gen(base: int) -> torch.Generator:
    assert 270000 <= base < 275000
    return torch.Generator().manual_seed(base)


def xor_blobs(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Four Gaussian blobs (std 0.25) at (+-1, +-1) in the plane; label 1 for the two blobs on
    the anti-diagonal (XOR)."""
    gen = _gen(270100)
    c = torch.randint(0, 4, (n,), generator=gen)
    centers = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    x = centers[c] + 0.25 * torch.randn(n, 2, generator=gen)
    return x, (c >= 2).float().unsqueeze(1)


# --------------------------------------------------------------------------------------------
# Local minima
# --------------------------------------------------------------------------------------------


def lm_mlp_momentum(seed: int, lr: float = 0.05, steps: int = 400) -> Experiment:
    """A tanh MLP 2-2-1 classifying four XOR blobs, full-batch heavy ball."""
    x, y = xor_blobs()
    torch.manual_seed(seed)
    model = _mlp([2, 2, 1], nn.Tanh)
    return _exp(
        seed,
        "final14-local-minima-mlp-momentum-xor-two-units",
        model,
        nn.BCEWithLogitsLoss(),
        x,
        y,
        batch=len(y),
        opt="momentum",
        lr=lr,
        steps=steps,
        description="tanh MLP 2-2-1 classifying 256 points of four XOR blobs (logistic loss), "
        f"full-batch heavy ball 0.9 lr {lr}",
        config={"family": "mlp"},
    )


# --------------------------------------------------------------------------------------------
# Local-global mismatch
# --------------------------------------------------------------------------------------------


def lgm_mlp_adamw(seed: int, scale: float = 30.0, lr: float = 0.01, steps: int = 300):
    """A ReLU MLP 10-32-1 on diabetes, warm-started from 40 steps of full-batch Adam 0.01 and
    then rescaled (first layer x30, second layer /30: the same function, far from balanced),
    then full-batch AdamW with weight decay 0.5, which drifts it along the curved valley of
    rescalings towards balance."""
    x, y = diabetes()
    torch.manual_seed(seed)
    model = _mlp([10, 32, 1], nn.ReLU)
    pre = torch.optim.Adam(model.parameters(), 0.01)
    for _ in range(40):
        pre.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        pre.step()
    with torch.no_grad():
        model[0].weight.mul_(scale)
        model[0].bias.mul_(scale)
        model[2].weight.div_(scale)
    return _exp(
        seed,
        "final14-local-global-mismatch-mlp-adamw-rescaled-warm-start",
        model,
        nn.MSELoss(),
        x,
        y,
        batch=len(y),
        opt="adamw",
        lr=lr,
        steps=steps,
        wd=0.5,
        description="ReLU MLP 10-32-1 regressing diabetes (standardized), warm-started from 40 "
        f"steps of Adam and rescaled (layer 1 x{scale}, layer 2 /{scale}), full-batch AdamW "
        f"lr {lr} weight decay 0.5",
        config={"family": "mlp", "rescale": scale},
    )


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

CASES: list[Case] = [
    Case(
        "final14-local-minima-mlp-momentum-xor-two-units",
        LM,
        "mlp",
        "momentum",
        FINAL14,
        lm_mlp_momentum,
        270012,
        "Planted: two tanh units are just enough for XOR; some seeds settle on a fit that gets "
        "three blobs of four. At seed 270012, full-batch heavy ball 0.9 lr 0.05, 400 steps: "
        "full-data loss 0.706 -> 0.418 (100) -> 0.335 (200) -> 0.324 (300) -> 0.3192 at the "
        "end; gradient norm 0.0076 at the end; exact Hessian (9 parameters) at the end: "
        "lambda_min +7.1e-4, lambda_max 0.336. Trained on to 3000 steps it stays at 0.310 "
        "(gradient 0.0010, lambda_min -2.9e-5). The same builder at seeds 270013, 270014, "
        "270015 ends at 0.0536, 0.0340, 0.0315 (0.17x, 0.11x, 0.10x). Plain training 0.07 s.",
        any_seed=False,
    ),
    Case(
        "final14-local-global-mismatch-mlp-adamw-rescaled-warm-start",
        LGM,
        "mlp",
        "adamw",
        FINAL14,
        lgm_mlp_adamw,
        270000,
        "Planted: a warm start rescaled far along the ReLU rescaling symmetry (layer 1 x30, "
        "layer 2 /30, same function); AdamW's weight decay carries the run along the curved "
        "valley of rescalings, so the straight line from start to end cuts across it. At seed "
        "270000, full-batch AdamW lr 0.01 wd 0.5, 300 steps: full-data loss 0.429 -> 0.391 at "
        "the end; start-end distance 86.9. Straight line (alpha 0, 0.25, 0.5, 0.75, 1): "
        "0.429, 0.538, 0.633, 0.522, 0.391 (barrier +0.20 above the start, 47% of the start "
        "loss). Without weight decay (Adam) the line is monotone (0.429 -> 0.385). Not checked: "
        "restarts from other seeds. Plain training 0.08 s.",
    ),
]
