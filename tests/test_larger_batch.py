"""The larger-batch rerun: the run trained again from its first parameters on batches FACTOR
times larger for the same steps, checked against SGD by hand on linear least squares (float64),
its failures recorded, and the run it measures left as it was."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from optiscope.records import schema
from optiscope.runner import larger
from optiscope.training.experiment import Experiment


def _least_squares(batch: int, n: int = 64, steps: int = 30) -> Experiment:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    y = y + 0.3 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(3, 1, bias=False).double()
    data = [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    return Experiment(model, nn.MSELoss(), data, opt, steps=steps)


def _by_hand(exp: Experiment, per_update: int, start: torch.Tensor) -> float:
    """SGD from ``start`` on consecutive chunks of ``per_update`` samples, cycled; the loss on
    all the data at the end."""
    x = torch.cat([b[0] for b in exp.data])
    y = torch.cat([b[1] for b in exp.data])
    w = start.view(3, 1).clone()
    chunks = len(x) // per_update
    for k in range(exp.steps):
        i = (k % chunks) * per_update
        xb, yb = x[i : i + per_update], y[i : i + per_update]
        w = w - 0.05 * 2 / per_update * xb.T @ (xb @ w - yb)
    return float(((x @ w - y) ** 2).mean())


@pytest.mark.parametrize("batch", [1, 16])
def test_the_rerun_is_sgd_on_batches_factor_times_larger(batch):
    # Batch 1: eight samples joined into one pass. Batch 16: four joined (64 samples) and two
    # such passes accumulated into one update of 128.
    n = 64 if batch == 1 else 256
    exp = _least_squares(batch, n)
    start = torch.zeros(3, dtype=torch.float64)
    record = larger.larger_batch(lambda seed: _least_squares(batch, n), exp, start, 60.0)
    assert record[schema.NAME] == schema.LARGER_BATCH and schema.ERROR not in record
    per_update = batch * larger.FACTOR
    assert record[schema.BATCH_SIZE] == batch and record[schema.BATCH_LARGER] == per_update
    assert record[schema.STEPS] == 30 and record[schema.SAMPLES] == n
    assert record[schema.LOSS_LARGER] == pytest.approx(_by_hand(exp, per_update, start), rel=1e-10)
    x = torch.cat([b[0] for b in exp.data])
    y = torch.cat([b[1] for b in exp.data])
    w = exp.model.weight.detach().T
    assert record[schema.LOSS] == pytest.approx(float(((x @ w - y) ** 2).mean()), rel=1e-12)
    assert record[schema.LOSS_START] == pytest.approx(float((y**2).mean()), rel=1e-12)


def test_the_rerun_takes_at_most_the_training_set_per_update():
    # Four batches of 16: a factor of 4 (each update all 64 samples), not 8.
    exp = _least_squares(16)
    start = torch.zeros(3, dtype=torch.float64)
    record = larger.larger_batch(lambda seed: _least_squares(16), exp, start, 60.0)
    assert record[schema.BATCH_LARGER] == 64
    assert record[schema.LOSS_LARGER] == pytest.approx(_by_hand(exp, 64, start), rel=1e-10)


def test_the_rerun_leaves_the_run_as_it_was():
    exp = _least_squares(2)
    params = [p.detach().clone() for p in exp.model.parameters()]
    rng = torch.get_rng_state()
    start = torch.ones(3, dtype=torch.float64)
    larger.larger_batch(lambda seed: _least_squares(2), exp, start, 60.0)
    assert all(torch.equal(a, b) for a, b in zip(params, exp.model.parameters()))
    assert torch.equal(rng, torch.get_rng_state())
    assert torch.equal(start, torch.ones(3, dtype=torch.float64))


def test_a_short_last_batch_counts_its_own_samples():
    # 70 samples in batches of 16: four of 16 and one of 6; a factor of 5 takes all 70, as
    # five accumulated micro-batches (each batch's mean loss weighs a fifth, as in training).
    exp = _least_squares(16, n=70)
    start = torch.zeros(3, dtype=torch.float64)
    record = larger.larger_batch(lambda seed: _least_squares(16, n=70), exp, start, 60.0)
    assert record[schema.BATCH_LARGER] == 70
    w = start.view(3, 1).clone()
    for _ in range(exp.steps):
        g = sum(2 / len(xb) * xb.T @ (xb @ w - yb) for xb, yb in exp.data) / 5
        w = w - 0.05 * g
    x = torch.cat([b[0] for b in exp.data])
    y = torch.cat([b[1] for b in exp.data])
    expected = float(((x @ w - y) ** 2).mean())
    assert record[schema.LOSS_LARGER] == pytest.approx(expected, rel=1e-10)


def test_what_keeps_the_rerun_from_running_is_recorded_not_raised():
    start = torch.zeros(3, dtype=torch.float64)
    exp = _least_squares(64)
    record = larger.larger_batch(lambda seed: _least_squares(64), exp, start, 60.0)
    assert record[schema.ERROR] == (
        "each update already takes 64 of the training set's 64 samples: no larger batch to try"
    )
    exp = _least_squares(4)
    exp.data = iter(list(exp.data))
    record = larger.larger_batch(lambda seed: _least_squares(4), exp, start, 60.0)
    assert record[schema.ERROR] == (
        "the training data is not a list of batches (a loader is not read twice)"
    )

    def wider(seed: int) -> Experiment:
        e = _least_squares(4)
        e.model = nn.Linear(3, 2, bias=False).double()
        e.optimizer = torch.optim.SGD(e.model.parameters(), lr=0.05)
        return e

    record = larger.larger_batch(wider, _least_squares(4), start, 60.0)
    assert record[schema.ERROR] == (
        "the factory's model has 6 trainable parameters, the run's 3: the rerun would train "
        "another model"
    )
    record = larger.larger_batch(lambda seed: _least_squares(4), _least_squares(4), start, 0.0)
    assert record[schema.ERROR].startswith("the rerun on batches of 32 would take about ")
    assert record[schema.ERROR].endswith(" s, over the analysis's 0 s")

    def broken(seed: int) -> Experiment:
        raise ValueError("no such data file\nat line 3")

    record = larger.larger_batch(broken, _least_squares(4), start, 60.0)
    assert record[schema.ERROR] == "ValueError: no such data file"


class _Slow(nn.MSELoss):
    """A loss that sleeps ``first`` seconds on each of its first ``warm`` calls and ``each``
    seconds on every later one: a rerun's warm-up and its pace, set by hand."""

    def __init__(self, warm: int, first: float, each: float) -> None:
        super().__init__()
        self.calls, self.warm, self.first, self.each = 0, warm, first, each

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.first if self.calls <= self.warm else self.each)
        return super().forward(a, b)


def test_the_rerun_budget_projects_the_pace_after_the_warm_up_and_never_overruns():
    start = torch.zeros(3, dtype=torch.float64)

    losses: list[_Slow] = []

    def slow(warm: int, first: float, each: float, steps: int):
        def build(seed: int) -> Experiment:
            e = _least_squares(4, steps=steps)
            e.loss_fn = _Slow(warm, first, each)
            losses.append(e.loss_fn)
            return e

        return build

    # Two slow first steps (0.8 s), then fast ones: projected from the first three steps, 40
    # steps would have looked like 10 s against a budget of 5 s.
    record = larger.larger_batch(slow(2, 0.4, 0.0, 40), _least_squares(4, steps=40), start, 5.0)
    assert schema.ERROR not in record and record[schema.STEPS] == 40
    # A steady 0.05 s a step for 200 steps (10 s) against 2 s: stopped at its first projection,
    # long before the budget is spent, and the projection says about how long it would take.
    record = larger.larger_batch(slow(0, 0.0, 0.05, 200), _least_squares(4, steps=200), start, 2.0)
    assert record[schema.ERROR].startswith("the rerun on batches of 32 would take about ")
    assert float(record[schema.ERROR].split("about ")[1].split(" s")[0]) >= 9.5
    assert losses[-1].calls == larger.WARMUP + larger.TIMED
