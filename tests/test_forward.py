"""Second directional derivatives in forward mode against dense Hessians (tiny float64 problems).

Tolerance: ``v^T H v`` and ``v^T g`` are sums of a few thousand float64 products, so 1e-10
relative to ``|v|^2 max|H|`` (and ``|v| |g|``) leaves ample room; a missing second-order term,
as in PyTorch's nested forward formulas for layer and batch norm, is off by percents.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from optiscope import NonFiniteError, Problem
from optiscope.core.modules import aside
from optiscope.problem import forward


class _Transformer(nn.Module):
    """Embedding tied to the head, LayerNorm, causal attention on the math kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(7, 6)
        self.ln1, self.ln2 = nn.LayerNorm(6), nn.LayerNorm(6)
        self.qkv, self.proj = nn.Linear(6, 18), nn.Linear(6, 6)
        self.mlp = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 6))
        self.head = nn.Linear(6, 7, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, idx):
        x = self.tok(idx)
        q, k, v = self.qkv(self.ln1(x)).view(*idx.shape, 3, 2, 3).unbind(2)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        x = x + self.proj(a.transpose(1, 2).reshape(*idx.shape, 6))
        x = x + self.mlp(self.ln2(x))
        return self.head(x)


class _Recurrent(nn.Module):
    def __init__(self, cell: type[nn.RNNBase]) -> None:
        super().__init__()
        self.rnn, self.head = cell(3, 4, batch_first=True), nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _family(kind: str, gen: torch.Generator):
    """A model, a loss and one batch; batch and instance norm normalize by the batch."""
    torch.manual_seed(0)
    n = 6
    y = torch.randint(0, 3, (n,), generator=gen)
    if kind == "layernorm-mlp":
        model = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.Tanh(), nn.Linear(5, 3))
        x = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    elif kind in ("batchnorm-cnn", "instancenorm-cnn", "groupnorm-cnn"):
        norm = {
            "batchnorm-cnn": nn.BatchNorm2d(4),
            "instancenorm-cnn": nn.InstanceNorm2d(4, affine=True),
            "groupnorm-cnn": nn.GroupNorm(2, 4),
        }[kind]
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, bias=False),
            norm,
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 2 * 2, 3),
        )
        x = torch.randn(n, 1, 5, 5, generator=gen, dtype=torch.float64)
    elif kind == "batchnorm-eval":
        model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3))
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model.eval()
        x = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    elif kind in ("lstm", "gru"):
        model = _Recurrent(nn.LSTM if kind == "lstm" else nn.GRU)
        x = torch.randn(n, 5, 3, generator=gen, dtype=torch.float64)
    elif kind == "transformer":
        model = _Transformer()
        x = torch.randint(0, 7, (2, 5), generator=gen)
        y = torch.randint(0, 7, (2, 5), generator=gen)
        return model.double(), _lm_loss, (x, y)
    else:
        raise ValueError(kind)
    return model.double(), nn.CrossEntropyLoss(), (x, y)


def _lm_loss(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


FAMILIES = [
    "layernorm-mlp",
    "batchnorm-cnn",
    "instancenorm-cnn",
    "groupnorm-cnn",
    "batchnorm-eval",
    "lstm",
    "gru",
    "transformer",
]


def _check(problem: Problem, dense: torch.Tensor, grad: torch.Tensor, loss: float) -> None:
    gen = torch.Generator().manual_seed(5)
    scale = float(dense.abs().max())
    for _ in range(2):
        v = torch.randn(problem.num_params, generator=gen, dtype=torch.float64)
        value, slope, curvature = problem.directional(v)
        assert value == pytest.approx(loss, rel=1e-12)
        assert abs(slope - float(v @ grad)) <= 1e-10 * float(v.norm() * grad.norm())
        assert abs(curvature - float(v @ dense @ v)) <= 1e-10 * scale * float(v @ v)
    assert problem.directional_fallback is None


def _reverse_over_reverse(problem: Problem, batch) -> torch.Tensor:
    """The Hessian by double backward, no forward mode anywhere (attention on the math kernel,
    which has one)."""
    with sdpa_kernel(SDPBackend.MATH):
        return torch.autograd.functional.hessian(
            lambda t: problem._batch_loss(t, *batch), problem.point.clone()
        )


@pytest.mark.parametrize("kind", FAMILIES)
def test_directional_matches_the_dense_hessian(kind):
    model, loss_fn, batch = _family(kind, torch.Generator().manual_seed(2))
    model.train(kind != "batchnorm-eval")
    with aside(model, batch_stats=True):
        problem = Problem(model, loss_fn, batch, batch_stats=True)
        dense = _reverse_over_reverse(problem, batch)
        grad = problem.gradient()
        _check(problem, dense, grad, problem.loss())
        # dense_hessian's forward-over-reverse pass agrees with it too.
        torch.testing.assert_close(problem.dense_hessian(), dense, rtol=1e-10, atol=1e-12)


def test_directional_matches_dense_over_batches_and_reductions(case):
    problem = Problem(case.model, case.loss_fn, case.data)
    theta = case.theta()
    grad = torch.func.grad(case.objective)(theta)
    _check(problem, case.dense_hessian(), grad, float(case.objective(theta)))
    assert problem.hvp_count == 2


@pytest.mark.parametrize(
    "norm",
    [
        lambda x: F.layer_norm(x, (5,)),
        lambda x: F.batch_norm(x, None, None, training=True),
        lambda x: F.instance_norm(x.unsqueeze(0)),
    ],
    ids=["layer_norm", "batch_norm", "instance_norm"],
)
def test_the_normalizations_by_definition_are_the_kernels_function(norm):
    # Why the definitions stand in: the kernels' nested forward derivative misses terms, the
    # definitions' does not (both against the dense Hessian of the same function).
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(5, generator=gen, dtype=torch.float64)
    v = torch.randn(3, 5, generator=gen, dtype=torch.float64)

    def f(t):
        return (norm(t.view(3, 5)).reshape(3, 5) * w).pow(3).sum()

    flat = x.reshape(-1)
    with forward.definitions():
        by_definition = float(f(flat))
    assert by_definition == pytest.approx(float(f(flat)), rel=1e-13)
    exact = float(v.reshape(-1) @ torch.func.hessian(f)(flat) @ v.reshape(-1))
    _, _, curvature = forward.second_directional(f, flat, v.reshape(-1))
    assert float(curvature) == pytest.approx(exact, rel=1e-12)


class _Square(torch.autograd.Function):
    """A custom function with a differentiable backward but no forward-mode rule (no
    ``setup_context``, which functorch's transforms require)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class _Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.b(_Square.apply(self.a(x)))


def test_an_operation_without_forward_mode_falls_back_to_a_product():
    torch.manual_seed(0)
    model = _Custom().double()
    gen = torch.Generator().manual_seed(1)
    data = (torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randint(0, 2, (5,)))
    problem = Problem(model, nn.CrossEntropyLoss(), data)
    v = torch.linspace(-1, 1, problem.num_params, dtype=torch.float64)
    value, slope, curvature = problem.directional(v)
    assert "must override the setup_context staticmethod" in problem.directional_fallback
    dense = _reverse_over_reverse(problem, data)
    assert curvature == pytest.approx(float(v @ dense @ v), rel=1e-10)
    assert slope == pytest.approx(float(v @ problem.gradient()), rel=1e-10)
    assert value == pytest.approx(problem.loss(), rel=1e-12)
    assert problem.hvp_count == 1
    problem.directional(v)  # the fallback is for good: no second forward attempt
    assert problem.hvp_count == 2


def test_a_non_finite_loss_is_refused_and_an_overflowing_curvature_is_a_value():
    model = nn.Sequential(nn.Linear(2, 1)).double()
    data = (torch.ones(3, 2, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64))
    with torch.no_grad():
        model[0].weight.fill_(1e200)
    problem = Problem(model, nn.MSELoss(), data, check=False)
    with pytest.raises(NonFiniteError, match=r"the loss is infinite on batch 0 at this point"):
        problem.directional(torch.ones(problem.num_params, dtype=torch.float64))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    problem = Problem(model, nn.MSELoss(), data)
    value, _, curvature = problem.directional(torch.full((3,), 1e160, dtype=torch.float64))
    assert value == pytest.approx(problem.loss(), rel=1e-12) and curvature == float("inf")
