"""The final held-out zoo cases for MLPs and CNNs (split ``"final"``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from optiscope import Experiment

from . import Case
from .data import batches
from .mlp_cnn import _lambda_max, _mlp, _ResNet, _warmup_cosine

# --------------------------------------------------------------------------------------------
# Data: scikit-learn's bundled tables, generated images and generated point sets
# --------------------------------------------------------------------------------------------

SHAPES = ("row", "column", "diagonal", "anti-diagonal", "plus", "box")


def patterns(
    seed: int, n: int = 768, size: int = 8, noise: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated 1 x size x size images of six shapes (a row, a column, a diagonal, an
    anti-diagonal, a plus, a hollow box) at a random place and brightness, on Gaussian pixel
    noise of std ``noise``; the label is the shape. Drawn from ``seed`` alone."""
    gen = torch.Generator().manual_seed(9000 + seed)
    x = noise * torch.randn(n, 1, size, size, generator=gen)
    y = torch.randint(0, len(SHAPES), (n,), generator=gen)
    bright = 0.6 + 0.8 * torch.rand(n, generator=gen)
    idx = torch.arange(size)
    for i in range(n):
        r, c = (int(v) for v in torch.randint(1, size - 1, (2,), generator=gen))
        k = int(y[i])
        img = torch.zeros(size, size)
        if k == 0:
            img[r, :] = 1
        elif k == 1:
            img[:, c] = 1
        elif k == 2:
            img[idx, idx] = 1
            img = img.roll(int(r - size // 2), 1)
        elif k == 3:
            img[idx, size - 1 - idx] = 1
            img = img.roll(int(r - size // 2), 1)
        elif k == 4:
            img[r, max(0, c - 2) : c + 3] = 1
            img[max(0, r - 2) : r + 3, c] = 1
        else:
            a, b = max(0, r - 1), max(0, c - 1)
            img[a : a + 3, b : b + 3] = 1
            img[a + 1, b + 1] = 0
        x[i, 0] += bright[i] * img
    return x, y


CASES: list[Case] = []
