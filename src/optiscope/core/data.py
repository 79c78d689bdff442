"""Data sets that ship with an installed package or are generated: never downloaded."""

from __future__ import annotations

import torch
from torch import Tensor


def digits(dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=dtype) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    return x, y


def digits_mlp(hidden: int = 256, depth: int = 2) -> torch.nn.Sequential:
    """The embedded default model: an MLP 64-hidden-...-10 with ReLU."""
    layers: list[torch.nn.Module] = []
    width = 64
    for _ in range(depth):
        layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)
