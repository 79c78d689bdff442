"""Built-in experiments on data that ships with a package or is generated: never downloaded."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from optiscope._data import digits, digits_mlp
from optiscope._experiment import Experiment


def _batches(x: torch.Tensor, y: torch.Tensor, size: int, seed: int) -> list:
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    return [(x[i], y[i]) for i in perm.split(size)]


def digits_mlp_experiment(seed: int = 0) -> Experiment:
    """The embedded default: an MLP 64-256-256-10 on scikit-learn's digits, SGD with momentum."""
    x, y = digits()
    model = digits_mlp()
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=_batches(x, y, 128, seed),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        steps=300,
        seed=seed,
        name="digits-mlp",
        eval_data=(x, y),
        description="an MLP 64-256-256-10 on scikit-learn's digits, SGD with momentum",
        config={"batch_size": 128, "lr": 0.05, "momentum": 0.9},
    )


def logistic_control(seed: int = 0) -> Experiment:
    """Control: logistic regression on digits (convex) with a sound learning rate."""
    x, y = digits()
    model = nn.Linear(64, 10)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=_batches(x, y, 256, seed),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        steps=200,
        seed=seed,
        name="logistic-control",
        eval_data=(x, y),
        description="a convex control: logistic regression on digits, SGD at lr 0.5",
        config={"batch_size": 256, "lr": 0.5},
    )


BUILTINS: dict[str, Callable[..., Experiment]] = {
    "digits-mlp": digits_mlp_experiment,
    "logistic-control": logistic_control,
}
