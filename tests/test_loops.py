"""The Monitor in the training loops people really write: accumulation, schedulers, mixed
precision, torch.compile, frozen parameters and parameter groups, dict outputs, models that
compute their own loss, sparse and missing gradients, non-finite values. In each deterministic
case training ends bitwise where it ends without the Monitor."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import optiscope
from optiscope import Monitor, NonFiniteError, Problem, hessian_eigenvalues, read_records
from optiscope.core.modules import aside
from optiscope.training.experiment import ExperimentError
from optiscope.training.loop import train_experiment

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=64, d=8, classes=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def _steps(out):
    return {r["step"]: r["values"] for r in read_records(out).of_type("step")}


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


class _Off:
    """Stands in for the Monitor in the reference run without it."""

    def step(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def _watch(out, *args, **kwargs):
    return Monitor(*args, out=out, **kwargs) if out is not None else _Off()


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _train(model, out, x, y, net=None, steps=3):
    """Train ``model`` (called through ``net``, e.g. its compiled wrapper) for a few SGD steps
    on one batch, under the full preset's Monitor writing to ``out`` (None: no Monitor)."""
    net = model if net is None else net
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(net, opt, out=out, loss_fn=loss_fn, preset="full") if out else None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        if mon is not None:
            mon.step(loss, batch=(x, y))
        opt.step()
    if mon is not None:
        mon.close()
    return model


# -- gradient accumulation ---------------------------------------------------------------------


def _accumulate(out, micro=4, steps=6):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    x, y = _data()
    mon = None
    if out is not None:
        every = {"update": 1, "curvature": 2, "noise": 2}
        mon = Monitor(model, opt, out=out, loss_fn=loss_fn, every=every)
    norms = []
    for step in range(steps):
        opt.zero_grad()
        total = 0.0
        rows = torch.arange(step * 8, step * 8 + 32) % 64
        for chunk in rows.chunk(micro):
            loss = loss_fn(model(x[chunk]), y[chunk]) / micro
            loss.backward()
            total += float(loss.detach())
        norms.append(
            math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in model.parameters()))
        )
        if mon is not None:
            # One record per optimizer step: the mean loss of its micro-batches, and the whole
            # accumulated batch for the tiers.
            mon.step(total, batch=(x[rows], y[rows]))
        opt.step()
    if mon is not None:
        mon.close()
    return [p.detach().clone() for p in model.parameters()], norms


def test_gradient_accumulation_gives_one_record_per_optimizer_step(tmp_path):
    watched, norms = _accumulate(tmp_path)
    plain, _ = _accumulate(None)
    assert _equal(watched, plain)
    rec = _steps(tmp_path)
    assert sorted(rec) == list(range(6))
    assert [rec[s]["grad_norm"] for s in range(6)] == pytest.approx(norms, rel=1e-6)
    # The per-sample reading of the training step sees four backward passes and declines; the
    # noise is measured on a separate pass over the whole accumulated batch of 32.
    assert [s for s in rec if "b_simple" in rec[s]] == [0, 2, 4]
    assert all(rec[s]["batch_size"] == 32 for s in (0, 2, 4))
    # g^T g of the accumulated batch's gradient is the squared norm in .grad.
    assert rec[0]["gtg"] == pytest.approx(norms[0] ** 2, rel=1e-5)


# -- schedulers and parameter groups -----------------------------------------------------------


def test_the_stability_threshold_follows_the_scheduled_learning_rate(tmp_path):
    loss_fn = nn.CrossEntropyLoss()
    x, y = _data()

    def run(out):
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.2)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        with _watch(out, model, opt, loss_fn=loss_fn, every={"sharpness": 1}) as mon:
            for _ in range(6):
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                mon.step(loss, batch=(x, y))
                opt.step()
                sched.step()
        return _params(model)

    assert _equal(run(tmp_path), run(None))
    rec = _steps(tmp_path)
    lrs = [0.2, 0.2, 0.1, 0.1, 0.05, 0.05]
    assert [rec[s]["stability_threshold"] for s in range(6)] == pytest.approx(
        [2 / lr for lr in lrs]
    )


def test_frozen_parameters_and_groups_with_their_own_learning_rates(tmp_path):
    loss_fn = nn.CrossEntropyLoss()
    x, y = _data()

    def run(out):
        model = _mlp()
        model[0].bias.requires_grad_(False)  # frozen: not read, not in the Hessian
        opt = torch.optim.SGD(
            [
                {"params": [model[0].weight], "lr": 0.1},
                {"params": list(model[2].parameters()), "lr": 0.4},
            ]
        )
        # The dense Hessian over the trainable parameters where the Monitor measures.
        select = lambda n, p: p.requires_grad  # noqa: E731
        h = optiscope.Problem(model, loss_fn, (x, y), params=select).dense_hessian()
        with _watch(out, model, opt, loss_fn=loss_fn, every={"sharpness": 1}) as mon:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            mon.step(loss, batch=(x, y))
            opt.step()
        return model, h

    (model, h), (plain, _) = run(tmp_path), run(None)
    assert _equal(_params(model), _params(plain))
    values = _steps(tmp_path)[0]
    # The update is diag(lr_i) g: stable while the top eigenvalue of P^-1/2 H P^-1/2, with
    # P = lr_0 / lr_i, stays below 2 / lr_0.
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == 3
    scale = torch.cat(
        [torch.full((p.numel(),), r) for p, r in zip(trainable, (1.0, 4.0, 4.0))]
    ).double()
    top = torch.linalg.eigvalsh(scale.sqrt()[:, None] * h * scale.sqrt()[None, :])[-1]
    assert values["threshold_preconditioned"] is True
    assert values["stability_threshold"] == pytest.approx(2 / 0.1)
    # Lanczos stops at a 1% error bound, but the second eigenvalue lies 5% below the top (2.11
    # against 2.22) and the bound is loose there: 3% seen. Unpreconditioned, the top is 0.62.
    assert values["sharpness"] == pytest.approx(float(top), rel=5e-2)
    assert float(torch.linalg.eigvalsh(h)[-1]) < 0.5 * values["sharpness"]
    assert "param_norm" not in values or values["param_norm"] > 0


# -- outputs and losses of all shapes ----------------------------------------------------------


class _DictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = _mlp()

    def forward(self, x):
        return {"logits": self.body(x), "aux": x.sum()}


class _SelfLoss(nn.Module):
    """Hugging Face style: called with the labels, returns its own loss."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _mlp()

    def forward(self, x, labels):
        logits = self.body(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


@pytest.mark.parametrize("kind", ["dict", "self-loss"])
def test_models_returning_dicts_or_their_own_loss(kind, tmp_path):
    x, y = _data()

    def run(out):
        torch.manual_seed(0)
        model = _DictNet() if kind == "dict" else _SelfLoss()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        if kind == "dict":
            loss_fn = lambda out, t: nn.functional.cross_entropy(out["logits"], t)  # noqa: E731
            batch = (x, y)
        else:
            loss_fn = lambda out, _t: out["loss"]  # noqa: E731
            batch = ((x, y), y)  # the inputs hold the labels; the model computes the loss
        mon = None
        if out is not None:
            mon = Monitor(model, opt, out=out, loss_fn=loss_fn, preset="full")
        for _ in range(3):
            opt.zero_grad()
            loss = loss_fn(model(*batch[0]) if kind != "dict" else model(x), y)
            loss.backward()
            if mon is not None:
                mon.step(loss, batch=batch)
            opt.step()
        if mon is not None:
            mon.close()
        return [p.detach().clone() for p in model.parameters()]

    assert _equal(run(tmp_path), run(None))
    rec = _steps(tmp_path)
    assert all(k in rec[0] for k in ("gtg", "gthg", "sharpness", "b_simple"))
    assert rec[0]["gtg"] == pytest.approx(rec[0]["grad_norm"] ** 2, rel=1e-5)


# -- torch.compile -------------------------------------------------------------------------------


def test_a_compiled_model(tmp_path):
    x, y = _data()

    def run(out):
        model = _mlp()
        _train(model, out, x, y, net=torch.compile(model, backend="aot_eager"))
        return [p.detach().clone() for p in model.parameters()]

    assert _equal(run(tmp_path), run(None))
    rec = _steps(tmp_path)
    assert len(rec) == 3 and rec[0]["sharpness"] > 0  # the full preset: every 10 steps
    assert all(v["gtg"] == pytest.approx(v["grad_norm"] ** 2, rel=1e-5) for v in rec.values())


# -- mixed precision ---------------------------------------------------------------------------


def test_mixed_precision_reads_unscaled_gradients_and_records_skipped_steps(tmp_path):
    loss_fn = nn.CrossEntropyLoss()
    x, y = _data()
    steps = 8

    def run(out):
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        # A first scale so large that the scaled gradients overflow: the scaler skips those
        # steps and halves the scale until they fit.
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127, growth_interval=1000)
        expected, skipped = [], []
        with _watch(out, model, opt, scaler=scaler) as mon:
            for step in range(steps):
                opt.zero_grad()
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = 100 * loss_fn(model(x), y)
                scaler.scale(loss).backward()
                scale = scaler.get_scale()
                sq = sum(float((p.grad.double() / scale).pow(2).sum()) for p in model.parameters())
                expected.append(math.sqrt(sq))
                if step == steps - 1:
                    scaler.unscale_(opt)  # as before clipping: the Monitor must not divide twice
                mon.step(loss)
                before = scaler.get_scale()
                scaler.step(opt)
                scaler.update()
                skipped.append(scaler.get_scale() < before)
        return _params(model), expected, skipped

    (watched, expected, skipped), (plain, _, _) = run(tmp_path), run(None)
    assert _equal(watched, plain)
    rec = _steps(tmp_path)
    assert skipped[0] and not any(skipped[-2:])
    # The scaler's overflows are its calibration, not cliffs.
    findings = json.loads((tmp_path / "findings.json").read_text())["findings"]
    cliffs = next(f for f in findings if f["challenge"] == "cliffs")
    assert cliffs["evidence"]["nonfinite_steps"] == []
    assert cliffs["evidence"]["skipped_steps"] == sum(skipped)
    for s in range(steps):
        if skipped[s]:
            assert rec[s].get("skipped") == 1
            assert "grad_norm" in rec[s]["nonfinite"]
        else:
            assert "skipped" not in rec[s]
            assert rec[s]["grad_norm"] == pytest.approx(expected[s], rel=1e-6)


# -- sparse and missing gradients --------------------------------------------------------------


class _Bag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8, sparse=True)
        self.head = nn.Linear(8, 3)
        self.unused = nn.Linear(8, 8)  # never called: its gradient stays None

    def forward(self, idx):
        return self.head(self.emb(idx).mean(1))


def test_sparse_and_none_gradients_count_in_the_norm(tmp_path):
    idx = torch.randint(0, 50, (16, 5), generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(3))

    def run(out):
        torch.manual_seed(0)
        model = _Bag()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with _watch(out, model, opt) as mon:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(idx), y)
            loss.backward()
            assert model.emb.weight.grad.is_sparse and model.unused.weight.grad is None
            dense = model.emb.weight.grad.to_dense().double().pow(2).sum()
            dense += sum(p.grad.double().pow(2).sum() for p in model.head.parameters())
            mon.step(loss)
            opt.step()
        return _params(model), dense

    (watched, dense), (plain, _) = run(tmp_path), run(None)
    assert _equal(watched, plain)
    assert _steps(tmp_path)[0]["grad_norm"] == pytest.approx(float(dense.sqrt()), rel=1e-6)


# -- batch norm and dropout --------------------------------------------------------------------


def test_curvature_is_measured_on_the_function_being_trained(tmp_path):
    x, y = _data()

    def run(out):
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3)
        )
        _train(model, out, x, y)
        state = [t.detach().clone() for t in model.state_dict().values()]
        return state, torch.get_rng_state()

    (a, rng_a), (b, rng_b) = run(tmp_path), run(None)
    assert _equal(a, b) and torch.equal(rng_a, rng_b)  # batch-norm statistics included
    header = read_records(tmp_path).header
    assert header["curvature_mode"] == "eval, batch norm on the batch's statistics"
    values = _steps(tmp_path)[0]
    assert "sharpness" in values and values["noise_method"] == "groups"


def test_batch_norm_curvature_uses_the_batch_statistics_not_the_running_ones(tmp_path):
    # Inputs far from the running statistics' start (mean 0, variance 1): the eval-mode function
    # is another one, and so is its Hessian.
    x, y = _data()
    x = 5 * x + 3

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3))

    loss_fn = nn.CrossEntropyLoss()
    net = model()
    with aside(net, batch_stats=True):
        trained_fn = hessian_eigenvalues(Problem(net, loss_fn, (x, y), batch_stats=True), k=1)
        trained_loss = Problem(net, loss_fn, (x, y), batch_stats=True).loss()
    with aside(net):
        eval_fn = hessian_eigenvalues(Problem(net, loss_fn, (x, y)), k=1)
    running = [b.clone() for b in net.buffers()]
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: step 0's point is the one measured
    with Monitor(net, opt, out=tmp_path, loss_fn=loss_fn, every={"sharpness": 1}) as mon:
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        mon.step(loss, batch=(x, y))
        opt.step()
    measured = _steps(tmp_path)[0]["sharpness"]
    # Lanczos to 1% (the tier's tolerance); the two functions' Hessians differ far more.
    assert measured == pytest.approx(float(trained_fn.values[0]), rel=2e-2)
    assert abs(float(eval_fn.values[0]) - measured) > 0.1 * measured
    assert loss.item() == pytest.approx(trained_loss, rel=1e-6)  # the function being trained
    # The tier ran the batch norm in training mode; its running statistics are training's own:
    # one update, by the training step's forward pass, not by the measurement's.
    torch.manual_seed(0)
    reference = model()
    reference(x)
    assert _equal(list(net.buffers()), list(reference.buffers()))
    assert not _equal(running, list(net.buffers()))


# -- non-finite values -------------------------------------------------------------------------


def _explode(out, policy):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    x, y = _data()
    every = {"curvature": 1, "sharpness": 1}
    with Monitor(model, opt, out=out, loss_fn=loss_fn, every=every, on_nonfinite=policy) as mon:
        for step in range(5):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            if step == 3:
                loss = loss * float("nan")
            loss.backward()
            mon.step(loss, batch=(x, y))
            opt.step()


def test_a_nan_is_recorded_flagged_and_the_run_goes_on(tmp_path):
    _explode(tmp_path, "record")
    rec = _steps(tmp_path)
    assert sorted(rec) == [0, 1, 2, 3, 4]
    assert rec[3]["nonfinite"] == ["loss", "grad_norm"]
    assert "sharpness" not in rec[3] and "sharpness" in rec[2]  # no curvature of a NaN point
    findings = json.loads((tmp_path / "findings.json").read_text())["findings"]
    finding = next(f for f in findings if f["challenge"] == "cliffs")
    assert finding["severity"] == "critical" and "at step 3" in finding["summary"]


def test_on_nonfinite_raise_stops_the_run_and_keeps_the_records(tmp_path):
    with pytest.raises(NonFiniteError, match=r"non-finite loss and grad_norm at step 3: recorded"):
        _explode(tmp_path, "raise")
    rec = _steps(tmp_path)
    assert sorted(rec) == [0, 1, 2, 3]  # the bad step written, nothing lost
    assert (tmp_path / "findings.json").exists()


def test_an_unknown_nonfinite_policy_is_refused():
    with pytest.raises(
        optiscope.monitor.MonitorError, match=r"on_nonfinite='stop': expected 'record'"
    ):
        Monitor(_mlp(), on_nonfinite="stop")


# -- CUDA ----------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_on_cuda(tmp_path):
    x, y = (t.cuda() for t in _data())

    def run(out):
        model = _train(_mlp().cuda(), out, x, y)
        return [p.detach().clone() for p in model.parameters()]

    assert _equal(run(tmp_path), run(None))
    assert read_records(tmp_path).header["device"].startswith("cuda")


def test_an_experiment_schedules_its_learning_rate_and_clips_after_the_monitor_reads(tmp_path):
    x, y = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    exp = optiscope.Experiment(
        model, nn.CrossEntropyLoss(), [(x, y)], opt, steps=4, scheduler=sched, clip_grad_norm=0.01
    )
    rates = []
    with Monitor(model, opt, out=tmp_path, every={"update": 1}) as mon:
        train_experiment(
            exp, monitor=mon, after_step=lambda step, loss: rates.append(opt.param_groups[0]["lr"])
        )
    assert rates == pytest.approx([0.1 / 2, 0.1 / 3, 0.1 / 4, 0.1 / 5])
    values = _steps(tmp_path)
    # The Monitor saw the gradient unclipped; the update was that of the clipped one.
    assert all(values[s]["grad_norm"] > 0.01 for s in values)
    lrs = [0.1, 0.1 / 2, 0.1 / 3, 0.1 / 4]
    for s, lr in zip(sorted(values), lrs):
        assert values[s]["update_norm"] == pytest.approx(lr * 0.01, rel=1e-4)


def test_gradient_accumulation_makes_one_update_of_the_micro_batches_mean(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    halves = [(x[:8], y[:8]), (x[8:], y[8:])]

    def run(data, accumulate, monitor_out=None):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        exp = optiscope.Experiment(model, nn.MSELoss(), data, opt, steps=3, accumulate=accumulate)
        seen = []
        if monitor_out is None:
            train_experiment(exp, after_step=lambda step, loss: seen.append(loss.item()))
        else:
            with Monitor(model, opt, out=monitor_out) as mon:
                real = mon.step

                def spy(loss, batch=None):
                    seen.append(batch[0].shape[0])
                    real(loss, batch=batch)

                mon.step = spy
                train_experiment(exp, monitor=mon)
        return [p.detach().clone() for p in model.parameters()], seen

    # Two micro-batches of 8 whose gradients add up: the update of the batch of 16, and the
    # hooks see its loss (the mean of the halves' means) once per update.
    whole, losses = run([(x, y)], 1)
    accumulated, mean_losses = run(halves, 2)
    for a, b in zip(whole, accumulated):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert mean_losses == pytest.approx(losses, rel=1e-12)
    # The monitor measures the update's whole batch (the halves joined), once per update.
    _, sizes = run(halves, 2, tmp_path)
    assert sizes == [16, 16, 16]
    assert len(_steps(tmp_path)) == 3
    with pytest.raises(ExperimentError, match=r"Experiment.accumulate must be a positive int"):
        run(halves, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheduler": 3}, "Experiment.scheduler must be a learning-rate scheduler"),
        ({"clip_grad_norm": 0}, "Experiment.clip_grad_norm must be a positive number"),
        ({"clip_grad_norm": float("nan")}, "Experiment.clip_grad_norm must be a positive number"),
    ],
)
def test_an_experiments_schedule_and_clip_are_checked(kwargs, message):
    x, y = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ExperimentError, match=message):
        optiscope.Experiment(model, nn.CrossEntropyLoss(), [(x, y)], opt, steps=2, **kwargs)
    other = torch.optim.SGD(_mlp().parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(other, 1)
    with pytest.raises(ExperimentError, match="drives another optimizer"):
        optiscope.Experiment(model, nn.CrossEntropyLoss(), [(x, y)], opt, steps=2, scheduler=sched)
