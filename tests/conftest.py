"""Tiny float64 problems with exact dense references, shared by the numerical tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.func import functional_call


class TinyRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(3, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def make_model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(
            nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)
        )
    elif kind == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(2, 2, 3, stride=2),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(2 * 2 * 2, 3),
        )
    elif kind == "rnn":
        model = TinyRNN()
    else:
        raise ValueError(kind)
    return model.double()


def make_inputs(kind: str, n: int, gen: torch.Generator) -> torch.Tensor:
    shape = {"mlp": (n, 4), "cnn": (n, 1, 5, 5), "rnn": (n, 4, 3)}[kind]
    return torch.randn(shape, generator=gen, dtype=torch.float64)


@dataclass
class Case:
    model: nn.Module
    loss_fn: nn.Module
    data: object  # what the Problem receives
    batches: list  # the same data as a list of (x, y)
    reduction: str

    def objective(self, theta: torch.Tensor) -> torch.Tensor:
        """F(theta) computed independently of optiscope: the loss on all data as one batch."""
        names = [n for n, _ in self.model.named_parameters()]
        shapes = [p.shape for _, p in self.model.named_parameters()]
        numels = [p.numel() for _, p in self.model.named_parameters()]
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(theta, numels), shapes)}
        x = torch.cat([b[0] for b in self.batches])
        y = torch.cat([b[1] for b in self.batches])
        return self.loss_fn(functional_call(self.model, params, (x,)), y)

    def theta(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])

    def dense_hessian(self) -> torch.Tensor:
        return torch.func.hessian(self.objective)(self.theta())


def make_case(kind: str, reduction: str, split: str, loss: str = "ce") -> Case:
    model = make_model(kind)
    gen = torch.Generator().manual_seed(1)
    n = 11
    x = make_inputs(kind, n, gen)
    if loss == "ce":
        y = torch.randint(0, 3, (n,), generator=gen)
        loss_fn = nn.CrossEntropyLoss(reduction=reduction)
    else:
        y = torch.randn(n, 3, generator=gen, dtype=torch.float64)
        loss_fn = nn.MSELoss(reduction=reduction)
    if split == "one":
        batches = [(x, y)]
        data: object = (x, y)
    else:
        # Uneven batches: 4 + 4 + 3.
        batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, n, 4)]
        data = batches
    return Case(model, loss_fn, data, batches, reduction)


CASES = [
    (kind, red, split, loss)
    for kind in ("mlp", "cnn", "rnn")
    for red in ("mean", "sum")
    for split in ("one", "batches")
    for loss in (("ce", "mse") if kind == "mlp" else ("ce",))
]


@pytest.fixture(params=CASES, ids=lambda c: "-".join(c))
def case(request) -> Case:
    return make_case(*request.param)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny problems: on a shared 2-core machine a second
    thread mostly waits for a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Saddle(nn.Module):
    """f(x) = x1^2 - x2^2 as a model whose output is the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def forward(self, inputs):
        return (self.x[0] ** 2 - self.x[1] ** 2) * torch.ones_like(inputs[:, 0])


class FusedAttention(nn.Module):
    """One attention layer; ``fused`` calls the CPU flash kernel itself, which has no double
    backward (a kernel chosen below the reach of ``sdpa_kernel``, as custom kernels are)."""

    def __init__(self, fused: bool) -> None:
        super().__init__()
        self.fused = fused
        self.qkv, self.out = nn.Linear(4, 12), nn.Linear(4, 3)

    def forward(self, x):
        q, k, v = self.qkv(x).unsqueeze(1).chunk(3, -1)
        if self.fused:
            y = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[0]
        else:
            y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.out(y.squeeze(1).mean(1))
