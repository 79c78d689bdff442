"""Random restarts: the spread of final losses on XOR, grouping up to symmetry, determinism, and
the errors."""

from __future__ import annotations

import copy
import json
import math
import statistics

import pytest
import torch
from torch import nn

from optiscope.landscape.restarts import Restarts, RestartsError, restarts, summarize_losses
from optiscope.landscape.symmetry import permute_units, rescale_units, unit_counts
from optiscope.problem.problem import ProblemError
from optiscope.training.experiment import Experiment, ExperimentError

from .distributed_restarts import XOR_LOSS_TOL, xor

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def xor16() -> Restarts:
    return restarts(xor, 16, loss_tol=XOR_LOSS_TOL)


def test_xor_restarts_split_into_solutions_and_local_minima(xor16):
    losses = xor16.losses
    solved = {i for i, v in enumerate(losses) if v < 0.05}
    stuck = {i for i, v in enumerate(losses) if v > 0.3}
    # Seeded, so the counts are fixed: 7 of 16 solve XOR, 9 misclassify one input (ln(2)/2).
    assert (len(solved), len(stuck)) == (7, 9)
    assert all(abs(losses[i] - math.log(2) / 2) < 0.02 for i in stuck)
    assert sorted(i for g in xor16.groups for i in g) == list(range(16))
    for group in xor16.groups:
        assert set(group) <= solved or set(group) <= stuck, group
        assert [losses[i] for i in group] == sorted(losses[i] for i in group)
    firsts = [losses[g[0]] for g in xor16.groups]
    assert firsts == sorted(firsts)
    assert xor16.groups[0][0] == min(range(16), key=losses.__getitem__)
    for g, mean in zip(xor16.groups, xor16.group_losses):
        assert mean == pytest.approx(statistics.fmean(losses[i] for i in g))
    assert xor16.symmetry
    assert all(xor16.barriers[g[0]] == 0.0 for g in xor16.groups)
    assert all(0 <= b <= 0.01 for b in xor16.barriers)
    # Distinct restarts are apart, before and after alignment (the sign symmetry of tanh stays).
    n = 16
    for i in range(n):
        assert xor16.distances_before[i][i] == xor16.distances_after[i][i] == 0.0
        for j in range(i + 1, n):
            assert xor16.distances_before[i][j] == xor16.distances_before[j][i] > 0
            assert xor16.distances_after[i][j] == xor16.distances_after[j][i] > 0
    assert all(p.shape == (9,) for p in xor16.points)


def test_xor_summary_agrees_with_the_losses(xor16):
    summary = xor16.to_dict()["summary"]
    losses = xor16.losses
    assert summary["restarts"] == 16 and summary["non_finite"] == 0
    assert summary["min"] == min(losses) and summary["max"] == max(losses)
    assert summary["median"] == statistics.median(losses)
    assert summary["failed"] == pytest.approx(9 / 16)
    assert summary["succeeded"] == pytest.approx(7 / 16)
    best = summary["best_of_k"]
    assert [b["k"] for b in best] == list(range(1, 17))
    assert best[0]["expected_loss"] == pytest.approx(statistics.fmean(losses))  # one run
    assert best[-1]["expected_loss"] == pytest.approx(min(losses))  # all of them
    assert best[0]["p_success"] == pytest.approx(7 / 16)
    assert best[1]["p_success"] == pytest.approx(1 - math.comb(9, 2) / math.comb(16, 2))
    assert best[9]["p_success"] == 1.0  # 10 restarts cannot all land among the 9 failures
    expected = [b["expected_loss"] for b in best]
    assert expected == sorted(expected, reverse=True)
    json.dumps(xor16.to_dict(), allow_nan=False)


def test_best_of_k_on_a_closed_form():
    s = summarize_losses([0.1, 0.5, 0.1, 0.5], loss_tol=0.01)
    assert s["median"] == pytest.approx(0.3) and s["failed"] == 0.5
    # Two draws of four miss both 0.1s with probability 1 / C(4, 2).
    assert s["best_of_k"][1]["p_success"] == pytest.approx(5 / 6)
    assert s["best_of_k"][1]["expected_loss"] == pytest.approx(0.1 * 5 / 6 + 0.5 / 6)
    assert s["best_of_k"][2]["expected_loss"] == pytest.approx(0.1)
    s = summarize_losses([0.2, math.inf, math.nan], loss_tol=0.01)
    assert (s["non_finite"], s["min"], s["max"], s["failed"]) == (2, 0.2, 0.2, pytest.approx(2 / 3))
    # A non-finite loss counts as +inf: two draws of three miss the 0.2 with probability 1/3.
    assert [b["expected_loss"] for b in s["best_of_k"]] == [math.inf, math.inf, 0.2]
    assert [b["p_success"] for b in s["best_of_k"]] == pytest.approx([1 / 3, 2 / 3, 1])


def test_the_same_seeds_give_the_same_restarts(xor16):
    again = restarts(xor, [3, 0, 5], loss_tol=XOR_LOSS_TOL)
    assert again.seeds == [3, 0, 5]
    assert again.losses == [xor16.losses[3], xor16.losses[0], xor16.losses[5]]
    assert all(torch.equal(again.points[k], xor16.points[s]) for k, s in enumerate([3, 0, 5]))
    assert again.to_dict() == restarts(xor, [3, 0, 5], loss_tol=XOR_LOSS_TOL).to_dict()


# -- a network and a symmetric copy of it are one minimum ------------------------------------


def _network(kind: str) -> nn.Module:
    torch.manual_seed(7)
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 3, 3, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3 * 2 * 2, 2),
        )
    act = nn.ReLU if kind == "relu-mlp" else nn.Tanh
    return nn.Sequential(nn.Linear(3, 8), act(), nn.Linear(8, 6), act(), nn.Linear(6, 2))


def _copies(kind: str):
    """Seed 0: a network; seed 1: its units permuted (and rescaled where ReLU allows it); seed 2:
    the network with 1 added to its outputs, another function. lr = 0: training keeps them."""
    gen = torch.Generator().manual_seed(11)
    x = (
        torch.randn(32, 1, 5, 5, generator=gen)
        if kind == "cnn"
        else torch.randn(32, 3, generator=gen)
    )
    y = torch.randn(32, 2, generator=gen)
    base = _network(kind)
    counts = unit_counts(base)
    shuffled = permute_units(base, [torch.randperm(n, generator=gen) for n in counts])
    if kind != "tanh-mlp":
        scales = [torch.exp(torch.randn(n, generator=gen)) for n in counts]
        shuffled = rescale_units(shuffled, scales)
    shifted = copy.deepcopy(base)
    with torch.no_grad():
        shifted[-1].bias.add_(1.0)

    def experiment(seed: int) -> Experiment:
        model = copy.deepcopy([base, shuffled, shifted][seed])
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        return Experiment(model, nn.MSELoss(), [(x, y)], opt, steps=1, eval_data=(x, y))

    return experiment


@pytest.mark.parametrize("kind", ["relu-mlp", "tanh-mlp", "cnn"])
def test_a_permuted_and_rescaled_copy_is_the_same_minimum(kind):
    res = restarts(_copies(kind), 3)
    assert res.symmetry
    norm = float(res.points[0].norm())
    assert res.distances_before[0][1] > 0.3 * norm
    assert res.distances_after[0][1] <= 1e-5 * norm
    assert res.distances_after[0][2] > 0.01 * norm
    assert res.losses[1] == pytest.approx(res.losses[0], rel=1e-5)
    assert abs(res.losses[2] - res.losses[0]) > 0.05
    assert sorted(map(sorted, res.groups)) == [[0, 1], [2]]
    pair = next(g for g in res.groups if 0 in g)
    assert res.barriers[pair[1]] <= 1e-5


class _Wrapped(nn.Module):
    """An MLP the symmetry tools do not take apart (not an nn.Sequential)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def test_without_symmetry_restarts_are_grouped_on_raw_paths():
    x, y = torch.randn(16, 3), torch.randn(16, 2)

    def experiment(seed: int) -> Experiment:
        torch.manual_seed(0)  # seeds 0 and 1: the same network
        model = _Wrapped(_network("relu-mlp"))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return Experiment(model, nn.MSELoss(), [(x, y)], opt, steps=20)

    res = restarts(experiment, 2)
    assert not res.symmetry
    assert all(math.isnan(v) for row in res.distances_after for v in row)
    assert res.distances_before[0][1] == 0.0
    assert res.losses[0] == res.losses[1]
    assert res.groups == [[0, 1]] and res.barriers == [0.0, 0.0]
    assert res.to_dict()["distances_after"] == [["nan", "nan"], ["nan", "nan"]]


def test_a_diverging_restart_is_its_own_group_not_a_crash():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=gen), torch.randn(64, 1, generator=gen)
    calls = []

    def experiment(seed: int) -> Experiment:
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=1e6 if seed == 1 else 0.1)
        return Experiment(model, nn.MSELoss(), [(x, y)], opt, steps=50)

    res = restarts(experiment, 3, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert not math.isfinite(res.losses[1])
    assert res.diverged_at[0] is None and res.diverged_at[2] is None
    assert res.diverged_at[1] is not None and 1 < res.diverged_at[1] < 50
    assert res.groups[-1] == [1] and sorted(res.groups[0]) == [0, 2]  # a convex problem
    assert math.isnan(res.barriers[1]) and math.isnan(res.distances_before[0][1])
    summary = res.to_dict()["summary"]
    assert summary["non_finite"] == 1 and summary["failed"] == pytest.approx(1 / 3)
    assert summary["best_of_k"][0]["expected_loss"] == "inf"
    low, high = sorted(res.losses[::2])
    assert summary["best_of_k"][1]["expected_loss"] == pytest.approx(2 / 3 * low + 1 / 3 * high)
    assert summary["best_of_k"][2]["expected_loss"] == low


# -- errors ------------------------------------------------------------------------------------


def _tiny(seed: int = 0, *, data=None, loss_fn=None, width: int = 3) -> Experiment:
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    model = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 1))
    return Experiment(
        model,
        loss_fn or nn.MSELoss(),
        data or [(x, y)],
        torch.optim.SGD(model.parameters(), lr=0.1),
        steps=2,
        eval_data=(x, y),
    )


def test_wrong_arguments_are_refused_with_what_to_do():
    with pytest.raises(RestartsError, match=r"experiment must be a spec string .* got a int"):
        restarts(42)  # type: ignore[arg-type]
    with pytest.raises(ExperimentError, match=r"unknown experiment 'nothere'"):
        restarts("nothere")
    with pytest.raises(RestartsError, match=r"positive number of restarts .* got 0"):
        restarts(_tiny, 0)
    with pytest.raises(RestartsError, match=r"seeds \[1\] appear more than once"):
        restarts(_tiny, [1, 2, 1])
    with pytest.raises(RestartsError, match=r"non-empty list of ints, got \['a', 'b'\]"):
        restarts(_tiny, "ab")
    with pytest.raises(RestartsError, match=r"loss_tol must be a finite number >= 0, got -1"):
        restarts(_tiny, 2, loss_tol=-1)
    with pytest.raises(RestartsError, match=r"barrier_tol must be .* got nan"):
        restarts(_tiny, 2, barrier_tol=math.nan)


def test_failing_restarts_name_their_seed_and_stage():
    with pytest.raises(
        RestartsError, match=r"experiment\(0\) returned a dict with keys \[\], expected an"
    ):
        restarts(lambda seed: {}, 2)  # type: ignore[arg-type,return-value]
    with pytest.raises(
        RestartsError,
        match=r"the restart with seed 1 could not be built: experiment\(1\) returned a NoneType",
    ):
        restarts(lambda seed: None if seed == 1 else _tiny(), 2)  # type: ignore[arg-type]
    bad = [(torch.randn(8, 5), torch.randn(8, 1))]  # 5 inputs to a layer that takes 2
    with pytest.raises(
        RestartsError,
        match=r"the restart with seed 0 failed in training: RuntimeError: mat1 and mat2 shapes",
    ) as info:
        restarts(lambda seed: _tiny(data=bad), 2)
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ProblemError, match=r"loss_fn must return a scalar tensor"):
        restarts(lambda seed: _tiny(loss_fn=lambda out, y: (out - y) ** 2), 2)

    def unreduced_on_pairs(out, y):  # a scalar on the evaluation batch only
        return ((out - y) ** 2).mean() if len(y) > 2 else (out - y) ** 2

    pairs = [(torch.randn(2, 2), torch.randn(2, 1))]
    with pytest.raises(
        RestartsError,
        match=r"seed 0 failed in training: loss_fn returned a tensor of shape \(2, 1\) and dtype "
        r"torch.float32 at step 1, expected a scalar tensor",
    ):
        restarts(lambda seed: _tiny(data=pairs, loss_fn=unreduced_on_pairs), 1)
    with pytest.raises(
        RestartsError,
        match=r"seed 1 has 17 trainable parameters and the one with seed 0 has 13: expected one",
    ):
        restarts(lambda seed: _tiny(width=3 + seed), 2)
