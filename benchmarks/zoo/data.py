"""Data for the zoo: scikit-learn's digits and generated tasks, split into batches by seed."""

from __future__ import annotations

import torch

from optiscope.core.data import digits


def batches(x: torch.Tensor, y: torch.Tensor, size: int, seed: int) -> list:
    """``(x, y)`` shuffled by ``seed`` and cut into batches of ``size`` (the last may be short)."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    return [(x[i], y[i]) for i in perm.split(size) if len(i) == size or len(perm) < size]


def digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Digits as 1x8x8 images in [0, 1], and their labels."""
    x, y = digits()
    return x.reshape(-1, 1, 8, 8), y


__all__ = ["batches", "digit_images", "digits"]


def flip_labels(y: torch.Tensor, frac: float, classes: int, seed: int) -> torch.Tensor:
    """``y`` with a fraction ``frac`` of its labels replaced by uniformly random classes, drawn
    from a generator seeded with ``seed`` (each split passes a seed range of its own)."""
    gen = torch.Generator().manual_seed(seed)
    flip = torch.rand(y.shape, generator=gen) < frac
    return torch.where(flip, torch.randint(0, classes, y.shape, generator=gen), y)
