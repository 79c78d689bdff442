"""The exact-steps analysis: steps from the end on the exact gradient against steps on the run's
own minibatches, checked against closed forms on linear least squares (float64), and the run it
measures left as it was."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn

from optiscope.records import schema
from optiscope.runner import exact
from optiscope.training.experiment import Experiment


def _least_squares(batch: int, momentum: float = 0.0, steps: int = 100) -> Experiment:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    y = y + 0.3 * torch.randn(64, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(3, 1, bias=False).double()
    data = [(x[i : i + batch], y[i : i + batch]) for i in range(0, 64, batch)]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=momentum)
    return Experiment(model, nn.MSELoss(), data, opt, steps=steps)


def _train(exp: Experiment, steps: int) -> None:
    """A few of the run's own steps: the optimizer holds momentum, as at the end of a run."""
    for x, y in exp.data[:steps]:
        exp.optimizer.zero_grad()
        exp.loss_fn(exp.model(x), y).backward()
        exp.optimizer.step()


def test_the_exact_arm_is_gradient_descent_on_all_the_data():
    exp = _least_squares(batch=4)
    start = torch.cat([p.detach().reshape(-1) for p in exp.model.parameters()])
    record = exact.exact_steps(exp, seconds=60.0, start=start * 0)
    assert record[schema.NAME] == schema.EXACT_STEPS and schema.ERROR not in record
    k = record[schema.STEPS]
    assert k == exact.MIN_STEPS  # a tenth of 100 steps
    x = torch.cat([b[0] for b in exp.data])
    y = torch.cat([b[1] for b in exp.data])
    w = exp.model.weight.detach().clone().T

    def loss(v: torch.Tensor) -> float:
        return float(((x @ v - y) ** 2).mean())

    assert record[schema.LOSS] == pytest.approx(loss(w), rel=1e-12)
    assert record[schema.LOSS_START] == pytest.approx(loss(torch.zeros_like(w)), rel=1e-12)
    for _ in range(k):  # plain SGD on the mean squared error's exact gradient
        w = w - 0.05 * 2 / len(x) * x.T @ (x @ w - y)
    assert record[schema.LOSS_EXACT] == pytest.approx(loss(w), rel=1e-10)
    assert len(record[schema.LOSS_MINIBATCH]) == exact.DRAWS
    assert record[schema.SAMPLES] == 64 and record[schema.BATCH_SIZE] == 4


def test_the_minibatch_arm_replays_the_runs_own_batches_with_its_momentum():
    exp = _least_squares(batch=8, momentum=0.9)
    # Give the optimizer a momentum buffer, as at the end of a run.
    _train(exp, 3)
    record = exact.exact_steps(exp, seconds=60.0)
    model = nn.Linear(3, 1, bias=False).double()
    model.load_state_dict(exp.model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt.load_state_dict(exp.optimizer.state_dict())
    order = torch.randperm(len(exp.data), generator=torch.Generator().manual_seed(0))
    for k in range(record[schema.STEPS]):
        x, y = exp.data[int(order[k % len(exp.data)])]
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    xs = torch.cat([b[0] for b in exp.data])
    ys = torch.cat([b[1] for b in exp.data])
    expected = float(nn.functional.mse_loss(model(xs), ys).detach())
    assert record[schema.LOSS_MINIBATCH][0] == pytest.approx(expected, rel=1e-10)


def test_the_analysis_leaves_the_run_as_it_was():
    exp = _least_squares(batch=4, momentum=0.9)
    _train(exp, 2)
    params = [p.detach().clone() for p in exp.model.parameters()]
    buffers = [exp.optimizer.state[p]["momentum_buffer"].clone() for p in exp.model.parameters()]
    rng = torch.get_rng_state()
    exact.exact_steps(exp, seconds=60.0)
    assert all(torch.equal(a, b) for a, b in zip(params, exp.model.parameters()))
    assert all(
        torch.equal(b, exp.optimizer.state[p]["momentum_buffer"])
        for b, p in zip(buffers, exp.model.parameters())
    )
    assert torch.equal(rng, torch.get_rng_state())


def test_data_it_cannot_join_is_recorded_not_raised():
    exp = _least_squares(batch=4)
    exp.data = iter(list(exp.data))  # a single-pass loader
    record = exact.exact_steps(exp, seconds=60.0)
    assert record[schema.ERROR] == (
        "the training data is not a list of batches (a loader is not read twice)"
    )
    exp = _least_squares(batch=4)
    exp.data = [({"x": x}, y) for x, y in exp.data]
    assert exact.exact_steps(exp, seconds=60.0)[schema.ERROR] == (
        "the batches' inputs or targets are not tensors"
    )


def test_a_budget_too_small_for_the_arms_is_recorded():
    record = exact.exact_steps(_least_squares(batch=4), seconds=0.0)
    assert record[schema.ERROR].startswith("a loss on the 64 samples takes ")
    assert record[schema.ERROR].endswith(
        "the arms' 10 steps would take about 0 s, past the analysis's 0 s"
    )


@pytest.mark.parametrize("steps, arms", [(30, 10), (100, 10), (300, 30), (500, 50), (5000, 50)])
def test_the_arms_are_a_tenth_of_the_run_whatever_the_budget(monkeypatch, steps, arms):
    # The budget decides whether the arms run, never how long: a length cut to fit the time
    # would move the verdict with the machine's load.
    monkeypatch.setattr(exact, "fastest", lambda call: 0.01)
    projected = 3 * 0.01 * (1 + exact.DRAWS) * arms
    for seconds in (projected * 1.01, 600.0):
        record = exact.exact_steps(_least_squares(batch=4, steps=steps), seconds=seconds)
        assert schema.ERROR not in record and record[schema.STEPS] == arms
        assert record[schema.SECONDS] >= 0
    short = exact.exact_steps(_least_squares(batch=4, steps=steps), seconds=projected * 0.99)
    assert schema.STEPS not in short
    assert short[schema.ERROR] == (
        f"a loss on the 64 samples takes 0.01 s: the arms' {arms} steps would take about "
        f"{projected:.0f} s, past the analysis's {projected * 0.99:.0f} s"
    )


def test_where_a_schedule_annealed_the_rate_both_arms_step_at_the_runs_median():
    # At the end of a schedule that annealed the rate to 1e-4 of the run's median, arms at the
    # last rate would not move; they step at the median, and the record says which they used.
    def run(last: float, peak: list[float] | None):
        exp = _least_squares(batch=4)
        exp.optimizer.param_groups[0]["lr"] = last
        return exp, exact.exact_steps(exp, seconds=60.0, run_lr=peak)

    exp, annealed = run(0.05 * 1e-4, [0.05])
    assert annealed[schema.LAST_LR] == 0.05 * 1e-4 and annealed[schema.ARMS_LR] == 0.05
    assert exp.optimizer.param_groups[0]["lr"] == 0.05 * 1e-4  # the run's optimizer untouched
    _, constant = run(0.05, None)
    assert constant[schema.ARMS_LR] == constant[schema.LAST_LR] == 0.05
    # The same arms as a run that ended at the peak rate, bitwise.
    assert annealed[schema.LOSS_EXACT] == constant[schema.LOSS_EXACT]
    assert annealed[schema.LOSS_MINIBATCH] == constant[schema.LOSS_MINIBATCH]
    # Above half the median, the last rate stays.
    _, mild = run(0.03, [0.05])
    assert mild[schema.ARMS_LR] == 0.03


def test_the_learning_rates_of_each_group_or_none():
    opt = torch.optim.SGD(
        [
            {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.1},
            {"params": [nn.Parameter(torch.zeros(1))]},
        ],
        lr=1,
    )
    assert exact.learning_rates(opt) == [0.1, 1.0]
    opt.param_groups[0]["lr"] = torch.tensor(0.1)
    assert exact.learning_rates(opt) is None


def test_diagnose_gives_the_arms_the_schedules_median_rate(tmp_path):
    from optiscope.records.log import read_records
    from optiscope.runner.run import run_experiment

    exp = _least_squares(batch=8, steps=40)
    exp.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(exp.optimizer, T_max=40)
    run_experiment(exp, tmp_path / "run", preset="default", end_seconds=30.0)
    (record,) = [
        r
        for r in read_records(tmp_path / "run").of_type("analysis")
        if r["name"] == schema.EXACT_STEPS
    ]
    # Cosine over 40 steps: the median of the 40 rates used is the mean of the 20th and 21st.
    rates = [0.025 * (1 + math.cos(math.pi * k / 40)) for k in range(40)]
    assert record[schema.ARMS_LR] == pytest.approx(statistics.median(rates), rel=1e-12)
    assert record[schema.LAST_LR] < 1e-3


def test_an_end_of_run_analysis_that_raises_is_recorded_and_the_others_still_run(
    tmp_path, monkeypatch
):
    from optiscope.records.log import read_records
    from optiscope.runner import run

    def broken(problem):
        raise ArithmeticError("no curvature here\nsecond line")

    monkeypatch.setattr(run, "final_point_and_density", broken)
    said: list[str] = []
    result = run.run_experiment(
        _least_squares(batch=8, steps=40), tmp_path / "run", end_seconds=30.0, say=said.append
    )
    assert len(result.findings) == 8 and result.findings[0].challenge == "ill-conditioning"
    rec = read_records(tmp_path / "run")
    errors = rec.of_type(schema.PROBE_ERROR)
    assert [(e[schema.PROBE], e[schema.ERROR]) for e in errors] == [
        (schema.FINAL_POINT, "ArithmeticError: no curvature here")
    ]
    assert (
        "the final_point analysis failed (ArithmeticError: no curvature here); recorded, and "
        "the others go on"
    ) in said
    names = {r["name"] for r in rec.of_type("analysis")}
    assert {schema.INTERPOLATION, schema.EXACT_STEPS, schema.SURFACE} <= names
    # The density is the final point's own quadrature: it goes with it.
    assert schema.FINAL_POINT not in names and schema.SPECTRAL_DENSITY not in names
