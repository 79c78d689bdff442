"""The Monitor in a plain loop: correct numbers, records on disk, and no observer effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import optiscope
from optiscope.monitor.monitor import Monitor, MonitorError
from optiscope.records.log import read_records

from .conftest import FusedAttention


def _setup(opt_name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt, x, y


def _train(model, opt, x, y, monitor=None, steps=20):
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        idx = torch.randperm(64)[:16]  # the global RNG drives the batches
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        if monitor is not None:
            monitor.step(loss)
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_training_with_the_monitor_ends_bitwise_where_it_would_without(opt_name, tmp_path):
    plain = _train(*_setup(opt_name))
    model, opt, x, y = _setup(opt_name)
    with Monitor(model, opt, out=tmp_path) as mon:
        watched = _train(model, opt, x, y, mon)
    for a, b in zip(plain, watched):
        assert torch.equal(a, b)
    assert not opt._optimizer_step_post_hooks  # the hook is gone
    assert len(read_records(tmp_path).series("loss")[0]) == 20


def test_recorded_values_are_the_true_ones():
    model, opt, x, y = _setup("sgd")
    mon = Monitor(model, opt)
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    grad_norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    mon.step(loss)
    opt.step()
    mon.close()
    values = mon.history[0]["values"]
    assert values["loss"] == pytest.approx(float(loss.detach()))
    assert values["grad_norm"] == pytest.approx(grad_norm, rel=1e-6)
    now = [p.detach() for p in model.parameters()]
    upd = math.sqrt(sum(float((p - b).pow(2).sum()) for p, b in zip(now, before)))
    pnorm = math.sqrt(sum(float(b.pow(2).sum()) for b in before))
    assert values["update_norm"] == pytest.approx(upd, rel=1e-5)
    assert values["update_ratio"] == pytest.approx(upd / pnorm, rel=1e-5)
    # SGD with momentum, first step: the update is lr times the gradient.
    assert values["update_norm"] == pytest.approx(0.1 * grad_norm, rel=1e-5)
    assert values["nonfinite"] == []


def test_non_finite_values_are_flagged_with_their_step():
    model, opt, x, y = _setup("sgd")
    mon = Monitor(model, opt)
    for step in range(3):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        if step == 1:
            loss = loss * float("nan")
        loss.backward()
        mon.step(loss)
        if step != 1:
            opt.step()
    mon.close()
    flags = [r["values"]["nonfinite"] for r in mon.history]
    assert flags == [[], ["loss", "grad_norm"], []]
    assert math.isnan(mon.history[1]["values"]["loss"])


def test_without_an_optimizer_only_the_step_quantities_are_recorded():
    model, _, x, y = _setup("sgd")
    mon = Monitor(model, quantities=["loss", "grad_norm"])
    nn.CrossEntropyLoss()(model(x), y).backward()
    mon.step(torch.tensor(0.5))
    mon.close()
    assert set(mon.history[0]["values"]) == {"loss", "grad_norm"}


def test_bad_monitor_arguments_are_refused():
    model, opt, _, _ = _setup("sgd")
    with pytest.raises(MonitorError, match=r"unknown quantities \['sharpnes'\]: expected names"):
        Monitor(model, opt, quantities=["sharpnes"])
    with pytest.raises(MonitorError, match=r"must be a torch\.nn\.Module, got a str"):
        Monitor("model")
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(MonitorError, match="no trainable parameters"):
        Monitor(frozen)


def test_the_plain_loop_example_runs_and_records_every_step(tmp_path):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "plain_loop.py"
    argv = sys.argv
    sys.argv = [str(script), str(tmp_path)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    rec = read_records(tmp_path)
    steps, losses = rec.series("loss")
    assert steps == list(range(3 * 29))  # 1797 samples in batches of 64, three epochs
    assert losses[-1] < losses[0] / 3
    assert rec.header["device"] == "cpu"


class DropNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)


class TinyRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(8, 6, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _run_tiers(kind, preset, monitored, tmp_path=None):
    torch.manual_seed(0)
    model = DropNet() if kind == "mlp" else TinyRNN()
    opt = (
        torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        if kind == "mlp"
        else torch.optim.Adam(model.parameters(), lr=1e-2)
    )
    gen = torch.Generator().manual_seed(1)
    shape = (64, 8) if kind == "mlp" else (64, 5, 8)
    x = torch.randn(shape, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    loss_fn = nn.CrossEntropyLoss()
    mon = Monitor(model, opt, loss_fn=loss_fn, preset=preset, out=tmp_path) if monitored else None
    for _ in range(12):
        idx = torch.randperm(64)[:16]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        if mon is not None:
            mon.step(loss, batch=(x[idx], y[idx]))
        opt.step()
    if mon is not None:
        mon.close()
        if tmp_path is not None:  # with out=, the records live on disk only
            mon.history = read_records(tmp_path).records
    params = [p.detach().clone() for p in model.parameters()]
    return params, torch.get_rng_state(), model, mon


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
@pytest.mark.parametrize("preset", ["curvature", "full"])
def test_the_expensive_tiers_do_not_change_training_either(kind, preset):
    plain, rng_plain, _, _ = _run_tiers(kind, preset, False)
    watched, rng_watched, model, mon = _run_tiers(kind, preset, True)
    for a, b in zip(plain, watched):
        assert torch.equal(a, b)
    assert torch.equal(rng_plain, rng_watched)
    assert model.training and all(m.training for m in model.modules())
    first = mon.history[0]["values"]
    for name in (
        "gtg",
        "gthg",
        "predicted_change",
        "actual_change",
        "sharpness",
        "b_simple",
        "snr",
        "batch_size",
    ):
        assert name in first, name
    if kind == "rnn":
        hidden = [r for r in mon.history if r["type"] == "hidden_gradients"]
        assert hidden and len(hidden[0]["norms"]) == 5
        # Adam: no preconditioner before its first step, so the raw sharpness has no threshold
        # to be judged against (Adam's is on P^-1 H); from then on it is on P^-1 H.
        assert "stability_threshold" not in first and "threshold_preconditioned" not in first
        if preset == "full":
            at10 = next(r for r in mon.history if r["type"] == "step" and r["step"] == 10)
            assert at10["values"]["threshold_preconditioned"] is True
    else:
        assert first["threshold_preconditioned"] is False
        assert first["stability_threshold"] == pytest.approx((2 + 2 * 0.9) / 0.05)


def test_second_order_prediction_tracks_the_actual_change(tmp_path):
    _, _, _, mon = _run_tiers("mlp", "full", True, tmp_path)
    pairs = [
        (r["values"]["predicted_change"], r["values"]["actual_change"])
        for r in mon.history
        if r["type"] == "step" and "predicted_change" in r["values"]
    ]
    assert len(pairs) == 12
    for predicted, actual in pairs:
        assert predicted == pytest.approx(actual, rel=0.2, abs=1e-4)
    rec = read_records(tmp_path)
    assert rec.series("gthg")[0] == list(range(12))


def test_tier_misuse_is_refused_with_a_clear_message():
    model, opt, x, y = _setup("sgd")
    with pytest.raises(
        MonitorError, match=r"need the loss function: pass Monitor\(\.\.\., loss_fn"
    ):
        Monitor(model, opt, preset="curvature")
    with pytest.raises(MonitorError, match=r"unknown preset 'fast': expected one of"):
        Monitor(model, opt, preset="fast")
    with pytest.raises(MonitorError, match=r"every=\{'hessian': 3\}: expected a tier from"):
        Monitor(model, opt, loss_fn=nn.CrossEntropyLoss(), every={"hessian": 3})
    mon = Monitor(model, opt, loss_fn=nn.CrossEntropyLoss(), every={"noise": 2})
    nn.CrossEntropyLoss()(model(x), y).backward()
    with pytest.raises(MonitorError, match=r"the noise tier is due at step 0 and needs the batch"):
        mon.step(torch.tensor(1.0))
    mon.close()


def test_the_default_preset_samples_the_update_every_tenth_step():
    model, opt, x, y = _setup("sgd")
    mon = Monitor(model, opt)
    _train(model, opt, x, y, mon, steps=25)
    mon.close()
    with_update = [r["step"] for r in mon.history if "update_norm" in r["values"]]
    assert with_update == [0, 10, 20]
    assert all("grad_norm" in r["values"] for r in mon.history)
    every = Monitor(model, opt, every={"update": 1})
    _train(model, opt, x, y, every, steps=3)
    every.close()
    assert [r["step"] for r in every.history if "update_ratio" in r["values"]] == [0, 1, 2]


def _dense(model, loss_fn, x, y):
    from optiscope import Problem

    problem = Problem(model, loss_fn, (x, y))
    return problem, torch.linalg.eigvalsh(problem.dense_hessian())


def _full_batch_run(lr, every, steps, before=None):
    """A tiny float64 MLP trained on one fixed batch under the Monitor; ``before`` sees each
    point before its step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (32,), generator=gen)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    mon = Monitor(model, opt, loss_fn=loss_fn, every=every)
    losses = []
    for _ in range(steps):
        if before is not None:
            before(model, loss_fn, x, y)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        mon.step(loss, batch=(x, y))
        opt.step()
        losses.append(loss.item())
    mon.close()
    return model, loss_fn, x, y, mon, losses


def test_sharpness_is_warm_started_and_lambda_min_is_measured_at_plateaus():
    # lr = 0: the point never moves, so the loss is flat from the second measurement on.
    model, loss_fn, x, y, mon, _ = _full_batch_run(0.0, {"sharpness": 5}, 11)
    _, eig = _dense(model, loss_fn, x, y)
    lmax, lmin = float(eig[-1]), float(eig[0])
    rec = {r["step"]: r["values"] for r in mon.history if "sharpness" in r["values"]}
    assert sorted(rec) == [0, 5, 10]
    # To 1% away from plateaus; the top two eigenvalues are 1.3% apart, and from a random start
    # a few Lanczos steps see them as one; started from that Ritz vector, Lanczos resolves them.
    assert 0.98 * lmax <= rec[0]["sharpness"] <= lmax + 1e-12
    for step in (5, 10):
        assert rec[step]["sharpness"] == pytest.approx(lmax, rel=1e-4)
        assert abs(rec[step]["lambda_min"] - lmin) <= 1e-3 * lmax
    assert "lambda_min" not in rec[0]  # nothing to compare the loss with yet
    # Both ends, started from both of the last eigenvectors: fewer products than at step 5,
    # which had only the top one.
    assert rec[10]["sharpness_hvps"] < rec[5]["sharpness_hvps"]


def test_no_lambda_min_while_the_loss_falls():
    *_, mon, losses = _full_batch_run(0.5, {"sharpness": 5}, 11)
    assert losses[-1] < 0.9 * losses[0]
    assert not any("lambda_min" in r["values"] for r in mon.history)


def test_plain_sgd_predicted_change_needs_no_second_product():
    # d = -lr g: d^T H d comes from g^T H g; it equals the product computed outright.
    from optiscope.quantities.step import step_curvature

    expected = []

    def predict(model, loss_fn, x, y):
        problem, _ = _dense(model, loss_fn, x, y)
        g = problem.gradient()
        q = step_curvature(problem, g, -0.3 * g)
        expected.append((q["predicted_change"], q["first_order_change"], q["dthd"]))

    *_, mon, _ = _full_batch_run(0.3, {"curvature": 1}, 3, before=predict)
    got = [r["values"]["predicted_change"] for r in mon.history]
    assert got == pytest.approx([e[0] for e in expected], rel=1e-9)
    # Its two terms, recorded beside it: g^T d = -lr g^T g and d^T H d = lr^2 g^T H g.
    for r, (_, gtd, dthd) in zip(mon.history, expected):
        v = r["values"]
        assert v["update_slope"] == pytest.approx(gtd, rel=1e-9)
        assert v["update_slope"] == pytest.approx(-0.3 * v["gtg"], rel=1e-9)
        assert v["update_curvature"] == pytest.approx(dthd, rel=1e-9)
        assert v["update_curvature"] == pytest.approx(0.09 * v["gthg"], rel=1e-9)


def test_layer_gradients_are_the_norms_of_each_layers_own_gradients():
    """The layer_gradients probe against norms taken by hand: each module owning parameters,
    in order, its gradient's norm; the names written once, on the first record."""
    from optiscope.records import schema

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Linear(16, 3))
    model[2].bias.requires_grad_(False)  # a frozen parameter is not part of its layer's norm
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    mon = Monitor(model, opt, every={"layer_gradients": 1})
    expected = []
    for _ in range(3):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        own = [[p for p in m.parameters() if p.grad is not None] for m in model[0::2]]
        own.append(list(model[3].parameters()))
        expected.append([math.sqrt(sum(float(p.grad.pow(2).sum()) for p in ps)) for ps in own])
        mon.step(loss)
        opt.step()
    findings = mon.close()
    layers = [r for r in mon.history if r[schema.TYPE] == schema.LAYER_GRADIENTS]
    assert [r[schema.STEP] for r in layers] == [0, 1, 2]
    assert layers[0][schema.NAMES] == ["0", "2", "3"]
    assert all(schema.NAMES not in r for r in layers[1:])
    for r, ref in zip(layers, expected):
        assert r[schema.NORMS] == pytest.approx(ref, rel=1e-6)
    assert len(findings) == 8 and findings == mon.findings  # diagnosed without out=


def test_every_probe_declares_names_the_schema_holds():
    """A probe writes only names spelled in the schema, and every tier can be scheduled."""
    from optiscope.monitor.monitor import PRESETS, TIERS
    from optiscope.monitor.probes import PROBES
    from optiscope.records import schema

    known = {v for k, v in vars(schema).items() if k.isupper() and isinstance(v, str)}
    for probe in PROBES:
        assert probe.name in TIERS
        assert probe.writes and set(probe.writes) <= known, probe.name
    for preset in PRESETS.values():
        assert set(preset) <= set(TIERS)


class _TinyCausalLM(nn.Module):
    """Embeddings, one causal self-attention block (PyTorch's fused kernel), LayerNorm and a
    head tied to the embeddings: the shape of a small GPT."""

    def __init__(self, vocab: int = 11, width: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.block = nn.TransformerEncoderLayer(width, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x):
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        return self.head(self.block(self.emb(x), src_mask=mask, is_causal=True))


def _lm_loss(out, y):
    return nn.functional.cross_entropy(out.flatten(0, 1), y.flatten())


def test_hessian_vector_products_run_through_fused_attention():
    """Double backward through the fused attention kernel is not implemented in PyTorch; the
    Problem runs attention on the math kernel, the same function: H v against central
    differences of the gradient (float64: the truncation error is O(eps^2) ~ 1e-10)."""
    import optiscope

    torch.manual_seed(0)
    model = _TinyCausalLM().double().eval()
    x, y = torch.randint(0, 11, (4, 6)), torch.randint(0, 11, (4, 6))
    problem = optiscope.Problem(model, _lm_loss, (x, y))
    v = torch.randn(problem.num_params, dtype=torch.float64)
    eps = 1e-5
    fd = (problem.gradient(problem.point + eps * v) - problem.gradient(problem.point - eps * v)) / (
        2 * eps
    )
    assert torch.allclose(problem.hvp(v), fd, rtol=1e-5, atol=1e-7)


def test_every_tier_measures_a_small_transformer_and_training_is_unchanged():
    import optiscope
    from optiscope.records import schema

    def run(monitored):
        torch.manual_seed(0)
        model = _TinyCausalLM()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(1)
        every = {"update": 1, "curvature": 1, "sharpness": 2, "noise": 1, "layer_gradients": 1}
        mon = optiscope.Monitor(model, opt, loss_fn=_lm_loss, every=every) if monitored else None
        for _ in range(4):
            x = torch.randint(0, 11, (8, 6), generator=gen)
            y = torch.randint(0, 11, (8, 6), generator=gen)
            opt.zero_grad()
            loss = _lm_loss(model(x), y)
            loss.backward()
            if mon is not None:
                mon.step(loss, batch=(x, y))
            opt.step()
        return model, mon

    plain, _ = run(False)
    model, mon = run(True)
    mon.close()
    for a, b in zip(plain.parameters(), model.parameters()):
        assert torch.equal(a, b)
    assert not [r for r in mon.history if r[schema.TYPE] == schema.PROBE_ERROR]
    steps = [r[schema.VALUES] for r in mon.history if r[schema.TYPE] == schema.STEP_RECORD]
    for key in (schema.GTHG, schema.PREDICTED_CHANGE, schema.TRACE_COV, schema.UPDATE_RATIO):
        assert all(math.isfinite(v[key]) for v in steps), key
    assert math.isfinite(steps[0][schema.SHARPNESS]) and schema.SHARPNESS in steps[2]


def test_a_tier_that_fails_is_recorded_and_training_goes_on():
    """A failing tier (here: a model whose eval-mode forward raises, as the tiers run in eval
    mode) never stops the user's training: each failure is a probe_error record with its
    reason, one warning says so, and the other tiers measure."""
    import optiscope
    from optiscope.records import schema

    class EvalFails(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))

        def forward(self, x):
            if not self.training:
                raise RuntimeError("this model has no eval mode")
            return self.net(x)

    _, _, x, y = _setup("sgd")
    model = EvalFails()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    mon = optiscope.Monitor(model, opt, loss_fn=loss_fn, every={"curvature": 1, "update": 1})
    with pytest.warns(
        RuntimeWarning,
        match=r"the curvature tier failed at step 0 \(RuntimeError: this model has no eval "
        r"mode\); recorded",
    ):
        for _ in range(3):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            mon.step(loss, batch=(x, y))
            opt.step()
    mon.close()
    errors = [r for r in mon.history if r[schema.TYPE] == schema.PROBE_ERROR]
    assert [(r[schema.STEP], r[schema.PROBE]) for r in errors] == [
        (0, "curvature"),
        (1, "curvature"),
        (2, "curvature"),
    ]
    assert errors[0][schema.ERROR] == "RuntimeError: this model has no eval mode"
    steps = [r for r in mon.history if r[schema.TYPE] == schema.STEP_RECORD]
    assert len(steps) == 3 and all(schema.UPDATE_NORM in r[schema.VALUES] for r in steps)


def test_the_plateau_decision_reads_the_runs_recent_past():
    from optiscope.monitor.decisions import Plateau

    flat = Plateau()
    for _ in range(5):
        flat.observe(2.0, 1.0)
    assert not flat.decide(5)  # too little history to judge
    flat.observe(2.0, 1.0)
    assert flat.decide(6)  # a plateau at the very start is seen while the run sits on it
    falling = Plateau()
    for i in range(50):
        falling.observe(2.0 * 0.97**i, 1.0)
    assert not falling.decide(50)
    for _ in range(200):  # converged: flat again, whatever was asked before
        falling.observe(0.4, 1.0)
    assert falling.decide(250)
    vanished = Plateau()
    for i in range(40):
        vanished.observe(2.0 * 0.9**i, 1.0 if i < 10 else 0.01)
    assert vanished.decide(40)  # the smoothed gradient fell below a tenth of its peak


def test_close_analyses_the_final_point_and_the_straight_path_on_end_batch(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    start = [p.detach().clone() for p in model.parameters()]
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 8, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    mon = Monitor(model, opt, out=tmp_path, loss_fn=loss_fn, every={"update": 1}, end_batch=(x, y))
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        mon.step(loss, batch=(x, y))
        opt.step()
    findings = {f.challenge: f for f in mon.close()}
    log = read_records(tmp_path)
    (line,) = [r for r in log.records if r.get("name") == "interpolation"]
    (point,) = [r for r in log.records if r.get("name") == "final_point"]
    # The straight path runs from the parameters the Monitor saw first to the final ones.
    problem = optiscope.Problem(model, loss_fn, (x, y))
    assert line["losses"][-1] == pytest.approx(problem.loss(), rel=1e-5)
    first = torch.cat([p.reshape(-1) for p in start])
    assert line["losses"][0] == pytest.approx(problem.at(first).loss(), rel=1e-5)
    assert line["distance"] == pytest.approx(float((problem.point - first).norm()), rel=1e-5)
    assert line["path_length"] == pytest.approx(mon.path_length)
    assert point["loss"] == pytest.approx(problem.loss(), rel=1e-5)
    # The density comes with the final point, from its index's quadrature.
    (density,) = [r for r in log.records if r.get("name") == "spectral_density"]
    assert density["shared"] == "final_point" and density["hvps"] == 60
    assert np.trapezoid(density["density"], density["grid"]) == pytest.approx(1.0, abs=1e-2)
    # The local-global verdict is measured, as diagnose measures it.
    assert "no barrier on the straight path" in findings["local-global-mismatch"].summary


def test_end_batch_that_fails_is_recorded_and_the_run_still_diagnosed(tmp_path):
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    bad = (torch.randn(8, 5), torch.randint(0, 2, (8,)))  # 5 features for a 4-input layer
    mon = Monitor(model, opt, out=tmp_path, loss_fn=nn.CrossEntropyLoss(), end_batch=bad)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        mon.step(loss)
        opt.step()
    with pytest.warns(RuntimeWarning, match="the end-of-run analyses failed"):
        findings = mon.close()
    assert len(findings) == 8
    (err,) = read_records(tmp_path).of_type("probe_error")
    assert err["probe"] == "end" and err["step"] == 3


def test_end_batch_needs_the_loss_function():
    model = nn.Linear(4, 2)
    with pytest.raises(MonitorError, match=r"end_batch needs the loss function"):
        Monitor(model, end_batch=(torch.randn(2, 4), torch.zeros(2, dtype=torch.long)))


def test_the_curvature_preset_follows_the_runs_length():
    model = nn.Linear(4, 2)
    loss_fn = nn.CrossEntropyLoss()
    fixed = Monitor(model, loss_fn=loss_fn, preset="curvature")
    assert fixed.every["sharpness"] == 250  # made for long runs: a 50-step run measures once
    short = Monitor(model, loss_fn=loss_fn, preset="curvature", steps=60)
    assert (short.every["curvature"], short.every["sharpness"], short.every["noise"]) == (2, 10, 5)
    mine = Monitor(model, loss_fn=loss_fn, preset="curvature", steps=60, every={"sharpness": 3})
    assert mine.every["sharpness"] == 3
    for m in (fixed, short, mine):
        m.close()
    with pytest.raises(MonitorError, match=r"steps=0: expected the run's planned number"):
        Monitor(model, loss_fn=loss_fn, steps=0)


class _OwnLossLM(nn.Module):
    """A causal transformer in the Hugging Face style: keyword inputs, a dict out with the loss
    it computes itself, output weights tied to the embedding, dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(16, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
        self.norm = nn.LayerNorm(16)

    def forward(self, input_ids, labels=None):
        mask = nn.Transformer.generate_square_subsequent_mask(input_ids.shape[1])
        h = self.norm(self.layer(self.emb(input_ids), src_mask=mask, is_causal=True))
        logits = h @ self.emb.weight.T
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits.reshape(-1, 16), labels.reshape(-1))
        return out


def test_a_model_computing_its_own_loss_is_measured_by_every_tier(tmp_path):
    torch.manual_seed(0)
    model = _OwnLossLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 16, (8, 12))
    batch = ({"input_ids": x, "labels": torch.roll(x, -1, 1)}, None)
    mon = Monitor(
        model,
        opt,
        out=tmp_path,
        loss_fn=lambda out, _: out["loss"],
        preset="full",
        end_batch=batch,
    )
    for _ in range(11):
        opt.zero_grad()
        loss = model(**batch[0])["loss"]
        loss.backward()
        mon.step(loss, batch=batch)
        opt.step()
    mon.close()
    log = read_records(tmp_path)
    assert list(log.of_type("probe_error")) == []
    seen = {k for r in log.of_type("step") for k in r["values"]}
    for name in ("gthg", "predicted_change", "sharpness", "b_simple", "noise_method"):
        assert name in seen, name
    names = {r.get("name") for r in log.of_type("analysis")}
    assert {"final_point", "interpolation"} <= names


def test_layer_updates_are_the_norms_of_each_layers_own_update():
    """Where per-layer gradients are recorded, each measured update is also split by layer:
    each layer's parameters after the step minus before, its norm; kinds on the first record."""
    from optiscope.records import schema

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    mon = Monitor(model, opt, every={"layer_gradients": 1, "update": 2})
    expected = []
    for step in range(4):
        before = [
            [p.detach().clone() for p in m.parameters()] for m in (model[0], model[1], model[3])
        ]
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        mon.step(loss)
        opt.step()
        if step % 2 == 0:
            after = [list(m.parameters()) for m in (model[0], model[1], model[3])]
            expected.append(
                [
                    math.sqrt(sum(float((a.detach() - b).pow(2).sum()) for a, b in zip(aa, bb)))
                    for aa, bb in zip(after, before)
                ]
            )
    mon.close()
    rows = [r for r in mon.history if r[schema.TYPE] == schema.LAYER_UPDATES]
    assert [r[schema.STEP] for r in rows] == [0, 2]
    assert rows[0][schema.NAMES] == ["0", "1", "3"]
    assert rows[0][schema.KINDS] == ["Linear", "LayerNorm", "Linear"]
    for r, ref in zip(rows, expected):
        assert r[schema.NORMS] == pytest.approx(ref, rel=1e-5)
    # The default preset records no per-layer updates (nor gradients).
    plain = Monitor(model, opt)
    opt.zero_grad()
    nn.CrossEntropyLoss()(model(x), y).backward()
    plain.step(torch.tensor(1.0))
    opt.step()
    plain.close()
    assert not [r for r in plain.history if r[schema.TYPE] == schema.LAYER_UPDATES]


def test_curvature_tiers_fall_back_to_finite_differences_and_say_so():
    # The same weights and batches with and without the fused kernel: the finite-difference
    # tiers agree with the exact ones to the difference's error (float64: < 1e-6 relative),
    # the records name the method, and the training is the same.
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(16, 5, 4, generator=gen, dtype=torch.float64), torch.randint(0, 3, (16,)))
        for _ in range(3)
    ]
    runs = {}
    for fused in (True, False):
        torch.manual_seed(0)
        model = FusedAttention(fused).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        mon = Monitor(
            model, opt, loss_fn=nn.CrossEntropyLoss(), every={"curvature": 1, "sharpness": 1}
        )
        for x, y in batches:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            mon.step(loss, (x, y))
            opt.step()
        runs[fused] = ([r["values"] for r in mon.history if r["type"] == "step"], model)
    fd, exact = runs[True][0], runs[False][0]
    assert all(v["hvp_method"] == "finite-difference" for v in fd)
    assert not any("hvp_method" in v for v in exact)
    for a, b in zip(fd, exact):
        for name in ("gthg", "predicted_change", "sharpness"):
            assert a[name] == pytest.approx(b[name], rel=1e-6), name
    for p, q in zip(runs[True][1].parameters(), runs[False][1].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
