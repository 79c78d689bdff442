"""Per-sample gradient moments in one backward pass against per-sample gradients, float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optiscope import Problem
from optiscope.problem.persample import gradient_moments
from optiscope.quantities.step import gradient_noise


class Seq(nn.Module):
    """A Linear layer applied at every position of a sequence, then pooled."""

    def __init__(self, width: int, length: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, 7)
        self.head = nn.Linear(7, 3)
        self.length = length

    def forward(self, x):
        return self.head(torch.tanh(self.inner(x)).mean(1))


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 4)

    def forward(self, x):
        return self.layer(torch.tanh(self.layer(x)))


def _tied() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4))
    model[2].weight = model[0].weight  # one parameter in two layers
    return model


def _model(kind: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)), (4,)
    if kind == "mlp-no-bias":
        return nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 3)), (4,)
    if kind == "seq-gram":  # 3 positions: the Gram form is cheaper
        return Seq(40, 3), (3, 40)
    if kind == "seq-outer":  # 30 positions: the outer-product form is cheaper
        return Seq(2, 30), (30, 2)
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=1),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=2),
            nn.Tanh(),
            nn.Conv2d(4, 2, (2, 3), padding="valid", bias=False),
            nn.Flatten(),
            nn.Linear(2 * 2 * 1, 3),
        ), (2, 6, 5)
    if kind == "conv1d":
        return nn.Sequential(
            nn.Conv1d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3, 3)
        ), (3, 8)
    if kind == "conv3d":
        return nn.Sequential(
            nn.Conv3d(1, 2, 2, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 27, 3)
        ), (1, 2, 2, 2)
    raise ValueError(kind)


KINDS = ["mlp", "mlp-no-bias", "seq-gram", "seq-outer", "cnn", "conv1d", "conv3d"]
LOSSES = {
    "ce-mean": lambda: nn.CrossEntropyLoss(),
    "ce-sum": lambda: nn.CrossEntropyLoss(reduction="sum"),
    "ce-weighted": lambda: nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]).double()),
    "mse": lambda: nn.MSELoss(),
}


def _case(kind: str, loss: str, n: int = 9):
    model, shape = _model(kind)
    model = model.double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((n, *shape), generator=gen, dtype=torch.float64)
    y = (
        torch.randn(n, 3, generator=gen, dtype=torch.float64)
        if loss == "mse"
        else torch.randint(0, 3, (n,), generator=gen)
    )
    return model, LOSSES[loss](), x, y


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("kind", KINDS)
def test_moments_equal_the_per_sample_gradients(kind, loss):
    model, loss_fn, x, y = _case(kind, loss)
    problem = Problem(model, loss_fn, (x, y))
    m = gradient_moments(problem, x, y)
    assert m is not None
    rows = problem.per_sample_gradients(x, y)
    assert m.n == len(x)
    torch.testing.assert_close(m.total, rows.sum(0), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m.sq_norms, (rows * rows).sum(1), rtol=1e-10, atol=1e-12)


def test_moments_cover_only_the_selected_parameters():
    model, loss_fn, x, y = _case("cnn", "ce-mean")
    problem = Problem(model, loss_fn, (x, y), params=["2.weight", "6.bias"])
    m = gradient_moments(problem, x, y)
    assert m is not None and m.total.shape == (problem.num_params,)
    rows = problem.per_sample_gradients(x, y)
    torch.testing.assert_close(m.sq_norms, (rows * rows).sum(1), rtol=1e-10, atol=1e-12)


def test_convolutions_are_chunked_without_changing_the_result(monkeypatch):
    model, loss_fn, x, y = _case("cnn", "ce-mean", n=13)
    problem = Problem(model, loss_fn, (x, y))
    whole = gradient_moments(problem, x, y)
    monkeypatch.setattr(
        "optiscope.problem.persample._CHUNK_ELEMENTS", 100
    )  # a few samples at a time
    chunked = gradient_moments(problem, x, y)
    assert whole is not None and chunked is not None
    torch.testing.assert_close(chunked.sq_norms, whole.sq_norms, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.Sequential(nn.Linear(4, 4), nn.GroupNorm(2, 4), nn.Linear(4, 3)), (4,)),
        (Twice(), (4,)),
        (_tied(), (4,)),
        (
            nn.Sequential(nn.Conv1d(2, 3, 3, padding=1, padding_mode="circular"), nn.Flatten()),
            (2, 1),
        ),
        (nn.Sequential(nn.Conv1d(2, 3, 2, padding="same"), nn.Flatten()), (2, 1)),
    ],
    ids=[
        "group-norm",
        "layer-used-twice",
        "weight-shared-by-two-layers",
        "circular-padding",
        "asymmetric-same",
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_other_models_fall_back_and_the_noise_is_still_exact(model, shape):
    model = model.double()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn((7, *shape), generator=gen, dtype=torch.float64)
    out = model(x)
    y = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    problem = Problem(model, nn.MSELoss(), (x, y))
    assert gradient_moments(problem, x, y) is None
    q = gradient_noise(problem, x, y)
    rows = problem.per_sample_gradients(x, y)
    mean = rows.mean(0)
    assert q["method"] == "per-sample"
    assert q["trace_cov"] == pytest.approx(float(((rows - mean) ** 2).sum() / 6), rel=1e-10)


class Conv1D(nn.Module):
    """Hugging Face's GPT-2 Conv1D, as transformers defines it: y = x W + b, W of (in, out)."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.3)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(
            *x.shape[:-1], -1
        )


class TokenNet(nn.Module):
    """Embedding (with a padding index) -> LayerNorm -> Conv1D -> Linear head over the mean of
    the positions: the layers of a transformer without attention."""

    def __init__(self, affine_bias: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(12, 6, padding_idx=0)
        self.norm = nn.LayerNorm(6, bias=affine_bias)
        self.mix = Conv1D(5, 6)
        self.head = nn.Linear(5, 3)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.mix(self.norm(self.embed(idx))))
        return self.head(h.mean(1))


@pytest.mark.parametrize("affine_bias", [True, False])
def test_layer_norm_embedding_and_conv1d_moments_equal_the_per_sample_gradients(affine_bias):
    # Sequences with repeated tokens (their embedding rows add within a sample) and padding
    # (index 0 gets no gradient): the closed forms against per-sample gradients, float64.
    torch.manual_seed(0)
    model = TokenNet(affine_bias).double()
    with torch.no_grad():
        model.norm.weight.copy_(1 + 0.3 * torch.randn(6))
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 5, (9, 7), generator=gen)
    y = torch.randint(0, 3, (9,), generator=gen)
    problem = Problem(model, nn.CrossEntropyLoss(), (x, y))
    moments = gradient_moments(problem, x, y)
    assert moments is not None
    rows = problem.per_sample_gradients(x, y)
    torch.testing.assert_close(moments.sq_norms, rows.square().sum(1), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(moments.total, rows.sum(0), rtol=1e-10, atol=1e-14)
    assert gradient_noise(problem, x, y)["method"] == "moments"
    # An embedding that renormalizes its rows in the forward pass is not read in closed form.
    model.embed.max_norm = 1.0
    assert gradient_moments(Problem(model, nn.CrossEntropyLoss(), (x, y)), x, y) is None


def test_gradient_noise_says_which_method_it_used():
    model, loss_fn, x, y = _case("mlp", "ce-mean")
    problem = Problem(model, loss_fn, (x, y))
    q = gradient_noise(problem, x, y)
    rows = problem.per_sample_gradients(x, y)
    mean = rows.mean(0)
    assert q["method"] == "moments"
    assert q["trace_cov"] == pytest.approx(float(((rows - mean) ** 2).sum() / 8), rel=1e-10)
    assert q["grad_norm_sq"] == pytest.approx(float(mean @ mean), rel=1e-10)


# -- the noise tier read from the training step itself ---------------------------------------


def _train_with_noise(model, copy, loss_fn, x, y, steps=4, accumulate=False):
    from optiscope.monitor.monitor import Monitor

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, loss_fn=loss_fn, every={"noise": 1})
    expected = []
    for _ in range(steps):
        opt.zero_grad()
        if accumulate:  # two half batches: per-sample norms cannot be read from the step
            h = len(x) // 2
            loss = loss_fn(model(x[:h]), y[:h]) / 2 + loss_fn(model(x[h:]), y[h:]) / 2
        else:
            loss = loss_fn(model(x), y)
        loss.backward()
        mon.step(loss, batch=(x, y))
        # On a copy without the Monitor's hooks, at the same point.
        twin = copy()
        twin.load_state_dict(model.state_dict())
        expected.append(gradient_noise(Problem(twin, loss_fn, (x, y)), x, y))
        opt.step()
    mon.close()
    return [r["values"] for r in mon.history], expected


@pytest.mark.parametrize(
    "kind, loss, accumulate, read",
    [
        ("mlp", "ce-mean", False, True),
        ("cnn", "ce-mean", False, True),
        ("seq-gram", "mse", False, True),
        ("mlp", "ce-sum", False, True),
        ("mlp", "ce-weighted", False, False),  # the batch loss is not the per-sample mean
        ("mlp", "ce-mean", True, False),
    ],
)
def test_the_noise_tier_reads_the_training_step_or_measures_apart(
    kind, loss, accumulate, read, monkeypatch
):
    import optiscope.quantities.step as quantities

    calls = []
    real = quantities.gradient_noise
    monkeypatch.setattr(
        quantities, "gradient_noise", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    model, loss_fn, x, y = _case(kind, loss, n=10)
    twin = lambda: _model(kind)[0].double()  # noqa: E731
    got, expected = _train_with_noise(model, twin, loss_fn, x, y, accumulate=accumulate)
    assert len(calls) == (0 if read else 4)  # the Monitor's separate passes
    for values, ref in zip(got, expected):
        for key in ("trace_cov", "snr", "b_simple", "grad_norm_sq_unbiased", "batch_size"):
            assert values[key] == pytest.approx(ref[key], rel=1e-9), key


def test_dropout_in_training_mode_is_measured_apart_in_eval_mode():
    from optiscope.monitor.monitor import Monitor

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.Tanh(), nn.Linear(6, 3)).double()
    _, loss_fn, x, y = _case("mlp", "ce-mean", n=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, loss_fn=loss_fn, every={"noise": 1})
    model.eval()
    ref = gradient_noise(Problem(model, loss_fn, (x, y)), x, y)
    model.train()
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    mon.step(loss, batch=(x, y))
    mon.close()
    assert mon.history[0]["values"]["trace_cov"] == pytest.approx(ref["trace_cov"], rel=1e-9)


def test_the_hooks_are_there_only_before_the_steps_the_tier_is_due():
    from optiscope.monitor.monitor import Monitor

    model, loss_fn, x, y = _case("mlp", "ce-mean", n=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, loss_fn=loss_fn, every={"noise": 3})

    def hooked():
        return sum(len(m._forward_hooks) for m in model.modules())

    seen = []
    for _ in range(6):
        seen.append(hooked())
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        mon.step(loss, batch=(x, y))
        opt.step()
    assert seen == [3, 0, 0, 3, 0, 0]  # two Linear layers and the model's output
    mon.close()
    assert hooked() == 0
    assert [("snr" in r["values"]) for r in mon.history] == [True, False, False, True, False, False]
