"""Catalogues of module kinds, and the one way to run a model aside from its training.

Each tuple is spelled once here and read by the layers that need it: the Problem's guard against
stochastic modules, the closed-form per-sample norms, the symmetry tools, the recurrent probes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

# Layers with a weight (and a bias) acting on the last (Linear) or channel (conv) dimension.
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
POOLS = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
# Positively homogeneous: f(a x) = a f(x) for a > 0, so a unit's scale passes through.
HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)
# Functions of each element alone (dropout in eval mode is the identity).
ACTIVATIONS = (
    *HOMOGENEOUS,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.ELU,
    nn.SiLU,
    nn.Softplus,
    nn.Dropout3d,
)
ELEMENTWISE = (*ACTIVATIONS, *POOLS)
# Random in training mode: the loss is then not a fixed function of the parameters.
STOCHASTIC: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)


def training_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm modules of ``model`` in training mode: there they normalize with the
    batch's own statistics, the function being trained."""
    return [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
    ]


@contextlib.contextmanager
def aside(model: nn.Module, batch_stats: bool = False) -> Iterator[None]:
    """Run ``model`` in eval mode with the random number generators forked (those of the CUDA
    devices its parameters live on too); every module's mode is restored exactly on exit, so a
    measurement taken inside leaves the training run as it was.

    ``batch_stats``: batch norms that were training stay in training mode, normalizing with the
    measured batch's statistics as training does (dropout is still off), without reading or
    updating their running statistics, which remain what training made them."""
    modes = [(m, m.training) for m in model.modules()]
    # Batch statistics without touching the running ones: with track_running_stats off, a
    # training-mode batch norm neither reads nor updates them (no in-place write that a cached
    # second-order graph would trip on).
    norms = [(m, m.track_running_stats) for m in training_norms(model)] if batch_stats else []
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            model.eval()
            for norm, _ in norms:
                norm.training = True
                norm.track_running_stats = False
            yield
    finally:
        for m, mode in modes:
            m.training = mode
        for norm, tracked in norms:
            norm.track_running_stats = tracked
