"""Built-in experiments on data that ships with a package or is generated: never downloaded."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from optiscope.core.data import digits, digits_mlp
from optiscope.training.experiment import Experiment


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


class _RNNClassifier(nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.rnn = nn.RNN(n_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def rnn_long_delay(seed: int = 0) -> Experiment:
    """Long-term dependencies: a vanilla RNN must recall its first input after 40 steps."""
    gen = torch.Generator().manual_seed(1000 + seed)
    n, steps_t, k = 512, 40, 4
    first = torch.randint(0, k, (n,), generator=gen)
    x = 0.3 * torch.randn(n, steps_t, k + 1, generator=gen)
    x[:, 0, :k] = nn.functional.one_hot(first, k).float() * 3
    model = _RNNClassifier(k + 1, 32, k)
    return Experiment(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=_batches(x, first, 64, seed),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        steps=150,
        seed=seed,
        name="rnn-long-delay",
        eval_data=(x[:128], first[:128]),
        description="a tanh RNN recalling its first input 40 steps later",
        config={"delay": steps_t, "hidden": 32},
    )


def deep_linear_plateau(seed: int = 0) -> Experiment:
    """Plateau at a saddle: a two-layer linear network from a tiny initialization (Saxe 2014)."""
    gen = torch.Generator().manual_seed(2000 + seed)
    x = torch.randn(256, 8, generator=gen)
    teacher = torch.randn(8, 8, generator=gen)
    y = x @ teacher.T
    first, second = nn.Linear(8, 8, bias=False), nn.Linear(8, 8, bias=False)
    with torch.no_grad():
        first.weight.normal_(0, 1e-5, generator=gen)
        second.weight.normal_(0, 1e-5, generator=gen)
    model = nn.Sequential(first, second)
    return Experiment(
        model=model,
        loss_fn=nn.MSELoss(),
        data=[(x, y)],
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        steps=120,
        seed=seed,
        name="deep-linear-plateau",
        eval_data=(x, y),
        description="a two-layer linear network from a 1e-5 initialization, full batch",
        config={"init_std": 1e-5, "lr": 0.01},
    )


def ill_conditioned_regression(seed: int = 0) -> Experiment:
    """Ill-conditioning: least squares, condition number ~1e3, at lr = 2.05 / lambda_max."""
    gen = torch.Generator().manual_seed(3000 + seed)
    scales = torch.logspace(0, -1.5, 10)
    x = torch.randn(512, 10, generator=gen) * scales
    y = x @ torch.randn(10, 1, generator=gen) + 0.01 * torch.randn(512, 1, generator=gen)
    lam_max = float(torch.linalg.eigvalsh(2 / len(x) * x.T @ x)[-1])
    model = nn.Linear(10, 1, bias=False)
    return Experiment(
        model=model,
        loss_fn=nn.MSELoss(),
        data=[(x, y)],
        optimizer=torch.optim.SGD(model.parameters(), lr=2.05 / lam_max),
        steps=100,
        seed=seed,
        name="ill-conditioned-regression",
        eval_data=(x, y),
        description="least squares with condition number ~1e3 at lr = 2.05 / lambda_max",
        config={"lambda_max": lam_max, "lr": 2.05 / lam_max},
    )


def tiny_batch(seed: int = 0) -> Experiment:
    """Inexact gradients: noisy least squares trained with minibatches of 2."""
    gen = torch.Generator().manual_seed(5000 + seed)
    x = torch.randn(4096, 20, generator=gen)
    y = x @ torch.randn(20, 1, generator=gen) + 2.0 * torch.randn(4096, 1, generator=gen)
    model = nn.Linear(20, 1)
    return Experiment(
        model=model,
        loss_fn=nn.MSELoss(),
        data=_batches(x, y, 2, seed),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.02),
        steps=400,
        seed=seed,
        name="tiny-batch",
        eval_data=(x, y),
        description="least squares with label noise 2.0, SGD with batches of 2",
        config={"batch_size": 2, "lr": 0.02, "label_noise": 2.0},
    )


def rnn_cliff(seed: int = 0) -> Experiment:
    """Cliffs: an RNN with recurrent spectral radius 2.5 and no gradient clipping."""
    gen = torch.Generator().manual_seed(4000 + seed)
    n, steps_t = 256, 30
    x = torch.randn(n, steps_t, 3, generator=gen)
    y = torch.randn(n, 2, generator=gen)
    model = _RNNClassifier(3, 16, 2)
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen))
        model.rnn.weight_hh_l0.copy_(2.5 * q)  # type: ignore[operator]
    return Experiment(
        model=model,
        loss_fn=nn.MSELoss(),
        data=_batches(x, y, 32, seed),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        steps=200,
        seed=seed,
        name="rnn-cliff",
        eval_data=(x[:64], y[:64]),
        description="a tanh RNN with recurrent spectral radius 2.5, SGD at lr 0.5, no clipping",
        config={"radius": 2.5, "lr": 0.5},
    )


BUILTINS: dict[str, Callable[..., Experiment]] = {
    "digits-mlp": digits_mlp_experiment,
    "logistic-control": logistic_control,
    "rnn-long-delay": rnn_long_delay,
    "deep-linear-plateau": deep_linear_plateau,
    "ill-conditioned-regression": ill_conditioned_regression,
    "tiny-batch": tiny_batch,
    "rnn-cliff": rnn_cliff,
}
