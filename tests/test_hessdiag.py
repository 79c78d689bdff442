"""Exact Hessian diagonal (optiscope.problem.hessdiag) against the diagonal of the dense Hessian."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from optiscope.problem import hessdiag as _hessdiag
from optiscope.problem.hessdiag import UnsupportedModelError, exact_hessian_diagonal, supports

DT = torch.float64
TOL = 1e-10


def _dense_diagonal(model, loss_fn, batches, weights):
    """Diagonal of torch.func.hessian of F over the flat vector of all parameters."""
    names, values = zip(*[(n, p.detach()) for n, p in model.named_parameters()])
    sizes = [v.numel() for v in values]

    def objective(flat):
        state = {n: t.view_as(v) for n, t, v in zip(names, flat.split(sizes), values)}
        losses = [loss_fn(functional_call(model, state, (x,)), y) for x, y in batches]
        return sum(w * loss for w, loss in zip(weights, losses))

    flat = torch.cat([v.reshape(-1) for v in values])
    diag = torch.func.hessian(objective)(flat).diagonal()
    return {n: d.view_as(v) for n, d, v in zip(names, diag.split(sizes), values)}


def _assert_close(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=TOL, atol=TOL * max(1.0, float(want.abs().max())))


def _mlp_relu():
    return nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))


def _mlp_tanh_sigmoid():  # two residuals in a row, too
    return nn.Sequential(
        nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4), nn.Sigmoid(), nn.Tanh(), nn.Linear(4, 3)
    )


def _mlp_smooth():
    # Every other supported activation, with and without a second derivative.
    acts = [
        nn.ELU(alpha=0.7),
        nn.SiLU(),
        nn.GELU(),
        nn.GELU(approximate="tanh"),
        nn.Softplus(beta=2.0, threshold=1.0),
        nn.LeakyReLU(0.1),
        nn.ReLU6(),
        nn.Hardtanh(-0.5, 0.5),
    ]
    layers = [nn.Linear(5, 4)]
    for act in acts:
        layers += [act, nn.Linear(4, 4)]
    return nn.Sequential(*layers[:-1], nn.Linear(4, 3))


def _nested():
    return nn.Sequential(
        nn.Sequential(nn.Linear(5, 4), nn.ReLU(inplace=True)),
        nn.Identity(),
        nn.Dropout(0.5),
        nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Sequential(nn.Linear(4, 3))),
    )


def _cnn():  # (2, 6, 5) -> (3, 3, 3) -> (4, 4, 1)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(3, 4, (2, 3), padding=(1, 0), bias=False),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(16, 3),
    )


def _cnn_pool():  # (2, 6, 5) -> (3, 6, 5) -> (3, 3, 2) -> (2, 2, 2) -> (2, 1, 1)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding="same", dilation=(1, 2)),
        nn.Tanh(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 2, 2, dilation=(1, 1), padding=(0, 1), stride=(1, 2)),
        nn.ELU(),  # its residual vanishes at some positions
        nn.AvgPool2d(2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(2, 3),
    )


def _conv1d():  # (2, 9) -> (3, 5) -> (2, 5) -> (2, 2)
    return nn.Sequential(
        nn.Conv1d(2, 3, 3, stride=2, padding=2, dilation=2),
        nn.Tanh(),
        nn.Conv1d(3, 2, 4, padding="same"),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def _linear_3d():  # Linear on (positions, features) inputs
    return nn.Sequential(nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 3), nn.Flatten())


def _pooled_mlp():  # the average pool needs the residual's columns, not just its diagonal
    return nn.Sequential(
        nn.Linear(5, 6),
        nn.Tanh(),
        nn.AvgPool1d(3, stride=1),  # overlapping windows
        nn.Sigmoid(),
        nn.Linear(4, 3),
        nn.Tanh(),
        nn.Linear(3, 3),
    )


def _conv_on_features():  # (12,) -> (2, 6) -> (2, 4) -> (2, 2)
    return nn.Sequential(
        nn.Linear(5, 12),
        nn.Unflatten(1, (2, 6)),
        nn.Tanh(),
        nn.Conv1d(2, 2, 3),
        nn.Sigmoid(),
        nn.MaxPool1d(2),
        nn.SiLU(),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


MODELS = {
    "mlp_relu": (_mlp_relu, (5,)),
    "mlp_tanh_sigmoid": (_mlp_tanh_sigmoid, (5,)),
    "mlp_smooth": (_mlp_smooth, (5,)),
    "nested": (_nested, (5,)),
    "cnn": (_cnn, (2, 6, 5)),
    "cnn_pool": (_cnn_pool, (2, 6, 5)),
    "conv1d": (_conv1d, (2, 9)),
    "linear_3d": (_linear_3d, (2, 5)),
    "pooled_mlp": (_pooled_mlp, (5,)),
    "conv_on_features": (_conv_on_features, (5,)),
}


def _problem(name, loss, sizes, seed=0):
    torch.manual_seed(seed)
    factory, shape = MODELS[name]
    model = factory().to(DT).eval()
    loss_cls = nn.CrossEntropyLoss if loss[0] == "ce" else nn.MSELoss
    loss_fn = loss_cls(reduction=loss[1])
    out = 6 if name == "linear_3d" else 3
    batches = []
    for n in sizes:
        x = torch.randn(n, *shape, dtype=DT)
        y = torch.randint(0, out, (n,)) if loss[0] == "ce" else torch.randn(n, out, dtype=DT)
        batches.append((x, y))
    weights = [n / sum(sizes) for n in sizes]
    return model, loss_fn, batches, weights


LOSSES = [("ce", "mean"), ("ce", "sum"), ("mse", "mean"), ("mse", "sum")]


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # conv1d's even kernel
@pytest.mark.parametrize("sizes", [(7,), (5, 2, 3)], ids=["one_batch", "uneven_batches"])
@pytest.mark.parametrize("loss", LOSSES, ids=["-".join(x) for x in LOSSES])
@pytest.mark.parametrize("name", list(MODELS))
def test_matches_dense_hessian(name, loss, sizes):
    model, loss_fn, batches, weights = _problem(name, loss, sizes)
    want = _dense_diagonal(model, loss_fn, batches, weights)
    params = list(model.named_parameters())
    got = exact_hessian_diagonal(model, loss_fn, batches, weights, params)
    assert len(got) == len(params)
    for (pname, _), diag in zip(params, got):
        _assert_close(diag, want[pname])


def test_parameter_subset_in_any_order():
    model, loss_fn, batches, weights = _problem("cnn", ("ce", "mean"), (4, 3))
    want = _dense_diagonal(model, loss_fn, batches, weights)
    named = dict(model.named_parameters())
    chosen = ["5.bias", "0.weight", "2.weight", "0.weight"]
    got = exact_hessian_diagonal(model, loss_fn, batches, weights, [(n, named[n]) for n in chosen])
    for pname, diag in zip(chosen, got):
        _assert_close(diag, want[pname])
    assert got[1] is not got[3]


def test_probability_targets_and_confident_logits():
    model, loss_fn, batches, _ = _problem("mlp_tanh_sigmoid", ("ce", "mean"), (6,))
    with torch.no_grad():
        model[-1].weight.mul_(8.0)  # nearly one-hot softmax
    x = batches[0][0]
    probs = torch.softmax(torch.randn(6, 3, dtype=DT), dim=1) * 1.5  # mass 1.5 scales the Hessian
    want = _dense_diagonal(model, loss_fn, [(x, probs)], [0.7])
    got = exact_hessian_diagonal(
        model, loss_fn, [(x, probs)], [0.7], list(model.named_parameters())
    )
    for (pname, _), diag in zip(model.named_parameters(), got):
        _assert_close(diag, want[pname])


@pytest.mark.parametrize("name", ["cnn", "cnn_pool"])
def test_chunking_gives_the_same_result(monkeypatch, name):
    model, loss_fn, batches, weights = _problem(name, ("mse", "mean"), (5, 4))
    params = list(model.named_parameters())
    whole = exact_hessian_diagonal(model, loss_fn, batches, weights, params)
    monkeypatch.setattr(_hessdiag, "_CHUNK_ELEMENTS", 1)  # one sample per chunk
    chunked = exact_hessian_diagonal(model, loss_fn, batches, weights, params)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_leaves_model_untouched_and_follows_parameter_dtype():
    model, loss_fn, batches, weights = _problem("nested", ("ce", "mean"), (8,))
    x = batches[0][0]
    before = model(x)
    exact_hessian_diagonal(model, loss_fn, batches, weights, list(model.named_parameters()))
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)  # inplace ReLU did not leak
    for m in model.modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
    assert all(p.grad is None for p in model.parameters())
    model32 = model.float()
    batches32 = [(x.float(), y) for x, y in batches]
    got = exact_hessian_diagonal(
        model32, loss_fn, batches32, weights, list(model32.named_parameters())
    )
    assert all(d.dtype == torch.float32 and not d.requires_grad for d in got)


def _custom():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 3)

        def forward(self, x):
            return self.fc(x).relu()

    return Net()


def _train_dropout():
    return nn.Sequential(nn.Linear(5, 4), nn.Dropout(0.2), nn.Linear(4, 3)).train()


def _shared():
    fc = nn.Linear(4, 4)
    return nn.Sequential(fc, nn.Tanh(), fc)


UNSUPPORTED = {
    "lstm": (lambda: nn.Sequential(nn.LSTM(5, 3)), nn.CrossEntropyLoss(), "LSTM"),
    "custom": (_custom, nn.CrossEntropyLoss(), "Net"),
    "batchnorm": (
        lambda: nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)).eval(),
        nn.MSELoss(),
        "BatchNorm1d",
    ),
    "dropout_train": (_train_dropout, nn.CrossEntropyLoss(), "Dropout.*training mode"),
    "groups": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)), nn.MSELoss(), "groups=2"),
    "reflect": (
        lambda: nn.Sequential(nn.Conv1d(2, 4, 3, padding=1, padding_mode="reflect")),
        nn.MSELoss(),
        "padding_mode",
    ),
    "shared": (_shared, nn.MSELoss(), "shares parameters"),
    "weight_norm": (
        lambda: nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(5, 3))),
        nn.MSELoss(),
        "reparametrized",
    ),
    "l1": (_mlp_relu, nn.L1Loss(), "L1Loss"),
    "class_weights": (_mlp_relu, nn.CrossEntropyLoss(weight=torch.ones(3)), "class weights"),
    "smoothing": (_mlp_relu, nn.CrossEntropyLoss(label_smoothing=0.1), "label_smoothing"),
    "no_reduction": (_mlp_relu, nn.MSELoss(reduction="none"), "reduction='none'"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_raises_naming_the_module(case):
    factory, loss_fn, match = UNSUPPORTED[case]
    model = factory()
    reason = supports(model, loss_fn)
    assert reason is not None
    with pytest.raises(UnsupportedModelError, match=match) as info:
        exact_hessian_diagonal(model, loss_fn, [], [], list(model.named_parameters()))
    assert "estimate the trace instead" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_ignore_index_in_targets_is_unsupported():
    model = _mlp_relu().to(DT)
    x, y = torch.randn(4, 5, dtype=DT), torch.tensor([0, 1, -100, 2])
    with pytest.raises(UnsupportedModelError, match="ignore_index"):
        exact_hessian_diagonal(model, nn.CrossEntropyLoss(), [(x, y)], [1.0], [])


@pytest.mark.parametrize("name", list(MODELS))
def test_supports_the_supported(name):
    assert supports(MODELS[name][0]().eval(), nn.CrossEntropyLoss()) is None


def test_rejects_foreign_parameters_and_mismatched_weights():
    model = _mlp_relu().to(DT)
    x, y = torch.randn(4, 5, dtype=DT), torch.randint(0, 3, (4,))
    with pytest.raises(ValueError, match="not a parameter"):
        exact_hessian_diagonal(
            model, nn.CrossEntropyLoss(), [(x, y)], [1.0], [("w", torch.ones(2))]
        )
    with pytest.raises(ValueError, match="weights"):
        exact_hessian_diagonal(model, nn.CrossEntropyLoss(), [(x, y)], [1.0, 2.0], [])
