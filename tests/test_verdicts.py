"""A fast subset of the calibration zoo (benchmarks/zoo; benchmarks/verdicts.py runs it all):
runs planted with one challenge get its verdict, a healthy control gets none, each run as
``optiscope diagnose`` runs it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from optiscope.diagnosis.findings import CHALLENGES  # noqa: E402
from verdicts import run_case, summary  # noqa: E402
from zoo import FAMILIES, SPLITS, cases  # noqa: E402

FAST = [
    "ill-conditioning-mlp-sgd-scaled",
    "local-minima-mlp-1d-tanh3",
    "saddle-points-mlp-deeplinear4",
    "saddle-points-mlp-dead-relu",
    "cliffs-mlp-sgd-lrspike",
    "long-term-dependencies-mlp-sigmoid20",
    "inexact-gradients-mlp-batch2",
    "local-global-mismatch-mlp-escape",
    "control-mlp-sgd",
    "control-mlp-adam-converged",
]


def test_the_zoo_covers_every_challenge_and_family_on_both_splits():
    found = cases()
    assert len(found) >= 40
    for challenge in CHALLENGES[:-1]:  # the theoretical limits are a statement, not a verdict
        mine = [c for c in found if c.challenge == challenge]
        assert len(mine) >= 4, challenge
        tuned = {c.family for c in mine if c.split == "tune"}
        held = {c.family for c in mine if c.split == "held"}
        assert held - tuned, f"{challenge}: no held-out family unseen while tuning"
    controls = [c for c in found if c.challenge is None]
    assert len(controls) >= 12
    assert {c.family for c in controls} == set(FAMILIES)
    # The final held-out set, written after the held split was seen: four of each challenge
    # and twenty controls, over every family.
    final = [c for c in found if c.split == "final"]
    for challenge in CHALLENGES[:-1]:
        assert sum(c.challenge == challenge for c in final) >= 4, challenge
    assert sum(c.challenge is None for c in final) >= 20
    assert {c.family for c in final} == set(FAMILIES)


def test_the_final5_split_holds_seven_inexact_cases_and_seven_controls_over_every_family():
    # The sixth held-out set, written after final4 was seen: 7 inexact-gradients runs on batches
    # of 1 to 8 and 7 healthy controls on 1 to 16, each over every family and optimizer.
    assert "final5" in SPLITS
    final5 = [c for c in cases() if c.split == "final5"]
    planted = [c for c in final5 if c.challenge is not None]
    controls = [c for c in final5 if c.challenge is None]
    assert len(planted) == 7 and len(controls) == 7
    assert {c.challenge for c in planted} == {"inexact-gradients"}
    for group, most in ((planted, 8), (controls, 16)):
        assert {c.family for c in group} == set(FAMILIES)
        assert {c.optimizer.split("+")[0] for c in group} == {"sgd", "momentum", "adam", "adamw"}
        for c in group:
            exp = c.build(c.seed)
            assert exp.name == c.name and c.name.startswith("final5-")
            assert 1 <= exp.config["batch_size"] <= most, c.name
            # The hand check's large-batch reference is the same builder at batch 64.
            assert c.build(c.seed, batch=64).config["batch_size"] == 64, c.name
            assert "batches of 64" in c.why or "full-batch" in c.why, c.name
    for c in planted:
        assert "|mean gradient|^2 at the start" in c.why, c.name


@pytest.mark.parametrize(
    "split",
    ["final5", "final6", "final7", "final8", "final9", "final10", "final11", "final12", "final13"],
)
def test_the_split_builders_are_deterministic_from_their_seed(split):
    for c in [c for c in cases() if c.split == split]:
        a, b = c.build(c.seed), c.build(c.seed)
        pa = torch.cat([p.detach().flatten() for p in a.model.parameters()])
        pb = torch.cat([p.detach().flatten() for p in b.model.parameters()])
        assert torch.equal(pa, pb), c.name
        (xa, ya), (xb, yb) = next(iter(a.data)), next(iter(b.data))
        assert torch.equal(xa, xb) and torch.equal(ya, yb), c.name
        assert torch.equal(a.eval_data[0], b.eval_data[0]), c.name
        other = c.build(c.seed + 1)
        po = torch.cat([p.detach().flatten() for p in other.model.parameters()])
        assert not torch.equal(pa, po), c.name


def test_the_summary_has_a_table_for_the_final5_split():
    row = {
        "name": "final5-control-x",
        "challenge": None,
        "split": "final5",
        "flagged": [],
        "named": None,
        "verdicts": {},
        "summaries": {},
        "error": None,
    }
    text = summary([row])
    assert text.startswith("## final5: 1 runs")
    assert "false alarms on 0 of 1 healthy controls" in text


def test_the_final6_split_holds_seven_inexact_cases_and_seven_controls_over_every_family():
    # The seventh held-out set, written after final5 was seen: 7 inexact-gradients runs on
    # batches of 1 to 8 and 7 healthy controls on 1 to 16, each over every family and optimizer.
    assert "final6" in SPLITS
    final6 = [c for c in cases() if c.split == "final6"]
    planted = [c for c in final6 if c.challenge is not None]
    controls = [c for c in final6 if c.challenge is None]
    assert len(planted) == 7 and len(controls) == 7
    assert {c.challenge for c in planted} == {"inexact-gradients"}
    for group, most in ((planted, 8), (controls, 16)):
        assert {c.family for c in group} == set(FAMILIES)
        assert {c.optimizer.split("+")[0] for c in group} == {"sgd", "momentum", "adam", "adamw"}
        for c in group:
            exp = c.build(c.seed)
            assert exp.name == c.name and c.name.startswith("final6-")
            assert 1 <= exp.config["batch_size"] * exp.accumulate <= most, c.name
            # The hand check's large-batch reference is the same builder at batch 64.
            assert c.build(c.seed, batch=64).config["batch_size"] == 64, c.name
            assert "batches of 64" in c.why, c.name
    for c in planted:
        assert "|mean gradient|^2 at the start" in c.why, c.name
    # The training features this split plants, each in at least one case.
    built = {c.name: c.build(c.seed) for c in final6}
    assert any(e.clip_grad_norm is not None for e in built.values())
    assert any(e.accumulate > 1 for e in built.values())
    steps = [e for e in built.values() if isinstance(e.scheduler, torch.optim.lr_scheduler.StepLR)]
    assert steps and all("step-lr" in e.name for e in steps)


@pytest.mark.parametrize(
    "earlier, later",
    [
        ("final5", "final6"),
        ("final6", "final7"),
        ("final7", "final8"),
        ("final8", "final9"),
        ("final9", "final10"),
        ("final10", "final11"),
        ("final11", "final12"),
        ("final12", "final13"),
    ],
)
def test_the_summary_puts_a_later_split_after_an_earlier_one(earlier, later):
    rows = [
        {
            "name": f"{split}-control-x",
            "challenge": None,
            "split": split,
            "flagged": [],
            "named": None,
            "verdicts": {},
            "summaries": {},
            "error": None,
        }
        for split in (later, earlier)
    ]
    text = summary(rows)
    assert text.startswith(f"## {earlier}: 1 runs")
    assert f"## {later}: 1 runs" in text and text.index(f"## {later}") > text.index(f"## {earlier}")


def _final_rate(exp):
    """The learning rate of ``exp``'s last step over its peak, by stepping a fresh build's
    scheduler (after no-op optimizer steps: no gradients yet)."""
    rates = []
    for _ in range(exp.steps):
        rates.append(exp.optimizer.param_groups[0]["lr"])
        exp.optimizer.step()
        exp.scheduler.step()
    return rates[-1] / max(rates)


def test_the_final7_split_holds_seven_inexact_cases_and_seven_controls_most_under_schedules():
    # The eighth held-out set, written after final6 was seen: 7 inexact-gradients runs on
    # batches of 1 to 8 and 7 healthy controls on 2 to 32, each over every family and
    # optimizer, at least four of each under a learning-rate schedule that ends low.
    assert "final7" in SPLITS
    final7 = [c for c in cases() if c.split == "final7"]
    planted = [c for c in final7 if c.challenge is not None]
    controls = [c for c in final7 if c.challenge is None]
    assert len(planted) == 7 and len(controls) == 7
    assert {c.challenge for c in planted} == {"inexact-gradients"}
    for group, least, most in ((planted, 1, 8), (controls, 2, 32)):
        assert {c.family for c in group} == set(FAMILIES)
        assert {c.optimizer.split("+")[0] for c in group} == {"sgd", "momentum", "adam", "adamw"}
        low = 0
        for c in group:
            exp = c.build(c.seed)
            assert exp.name == c.name and c.name.startswith("final7-")
            assert least <= exp.config["batch_size"] <= most, c.name
            # The hand check's large-batch reference is the same builder at batch 64.
            assert c.build(c.seed, batch=64).config["batch_size"] == 64, c.name
            assert "batches of 64" in c.why or "full-batch" in c.why, c.name
            # A schedule is named in the optimizer and ends at a tenth of its peak or lower.
            assert (exp.scheduler is not None) == ("+" in c.optimizer), c.name
            if exp.scheduler is not None:
                assert _final_rate(exp) <= 0.1 + 1e-12, c.name  # 0.1 itself in floats
                low += 1
        assert low >= 4
    for c in planted:
        assert "|mean gradient|^2 at" in c.why and "x at the end, against batch" in c.why, c.name


def test_the_final10_split_holds_ten_inexact_cases_and_ten_hard_controls():
    # The eleventh held-out set, written after final9 was seen: 10 inexact-gradients runs on
    # batches of 1 to 8 (three on a flat noise floor, three under a schedule that ends low, two
    # with plain SGD on single samples, two under Adam or AdamW on a sequence model) and 10
    # healthy controls on 1 to 16, two or more of each family in each group.
    assert "final10" in SPLITS
    mine = [c for c in cases() if c.split == "final10"]
    planted = [c for c in mine if c.challenge is not None]
    controls = [c for c in mine if c.challenge is None]
    assert len(planted) == 10 and len(controls) == 10
    assert {c.challenge for c in planted} == {"inexact-gradients"}
    built = {c.name: c.build(c.seed) for c in mine}
    size = {c.name: built[c.name].config["batch_size"] * built[c.name].accumulate for c in mine}
    for group, most in ((planted, 8), (controls, 16)):
        assert all(sum(c.family == f for c in group) >= 2 for f in FAMILIES)
        assert {c.optimizer.split("+")[0] for c in group} == {"sgd", "momentum", "adam", "adamw"}
        for c in group:
            exp = built[c.name]
            assert exp.name == c.name and c.name.startswith("final10-"), c.name
            assert 1 <= size[c.name] <= most, c.name
            # The hand check's large-batch reference is the same builder at batch 64.
            assert c.build(c.seed, batch=64).config["batch_size"] == 64, c.name
            assert "batches of 64" in c.why, c.name
            # A schedule is named in the optimizer and ends at a tenth of its peak or lower.
            named = [k for k in c.optimizer.split("+")[1:] if k != "clip"]
            assert (exp.scheduler is not None) == bool(named), c.name
            assert (exp.clip_grad_norm is not None) == ("clip" in c.optimizer), c.name
            if exp.scheduler is not None:
                assert _final_rate(exp) <= 0.1 + 1e-12, c.name
    for c in planted:
        assert "|mean gradient|^2 at the start" in c.why, c.name
        assert "x at the end, against batch" in c.why, c.name
    floors = [c for c in planted if c.name.endswith("-floor")]
    assert len(floors) >= 3 and all("flat" in c.why for c in floors)
    assert sum(built[c.name].scheduler is not None for c in planted) >= 3
    assert sum(c.optimizer == "sgd" or c.optimizer.startswith("sgd+") for c in planted) >= 2
    assert sum(c.optimizer.split("+")[0] == "sgd" and size[c.name] == 1 for c in planted) >= 2
    sequence_adam = [
        c
        for c in planted
        if c.family in ("transformer", "rnn") and c.optimizer.split("+")[0] in ("adam", "adamw")
    ]
    assert len(sequence_adam) >= 2
    limited = [c for c in controls if c.name.endswith("-lr-limited")]
    assert len(limited) >= 4 and all(built[c.name].scheduler is None for c in limited)
    assert all("still falling" in c.why for c in limited)
    converged = [c for c in controls if c.name.endswith("-converged")]
    assert len(converged) >= 3 and all(built[c.name].scheduler is not None for c in converged)
    assert sum(size[c.name] <= 2 for c in controls) >= 2
    assert sum("heavy-tailed" in c.why for c in controls) >= 2
    runs = [built[c.name] for c in controls]
    assert any(e.clip_grad_norm is not None for e in runs) and any(e.accumulate > 1 for e in runs)


@pytest.mark.parametrize(
    ("split", "controls_wanted", "recurrent_momentum"), [("final8", 10, 1), ("final9", 11, 2)]
)
def test_the_final8_and_final9_splits_hold_cliffs_ill_conditioning_and_small_batch_controls(
    split, controls_wanted, recurrent_momentum
):
    # Held-out sets for the cliffs and ill-conditioning verdicts, final9 written after final8
    # was seen: 5 cliffs runs (two on batches of 1 to 8, the rest on 32 or more), 4
    # ill-conditioning runs on batches of 16 to the full data, and 10 or 11 healthy controls on
    # 1 to 16, two or more of each family.
    assert split in SPLITS
    mine = [c for c in cases() if c.split == split]
    by = {k: [c for c in mine if c.challenge == k] for k in (None, "cliffs", "ill-conditioning")}
    assert len(mine) == controls_wanted + 9
    assert [len(v) for v in by.values()] == [controls_wanted, 5, 4]
    built = {c.name: c.build(c.seed) for c in mine}
    for c in mine:
        exp = built[c.name]
        assert exp.name == c.name and c.name.startswith(f"{split}-"), c.name
        assert (exp.clip_grad_norm is not None) == ("clip" in c.optimizer), c.name
    size = {c.name: built[c.name].config["batch_size"] * built[c.name].accumulate for c in mine}
    controls = by[None]
    assert all(sum(c.family == f for c in controls) >= 2 for f in FAMILIES)
    kinds = [c.optimizer.split("+")[0] for c in controls]
    assert kinds.count("momentum") >= 4 and kinds.count("adam") + kinds.count("adamw") >= 3
    assert "sgd" in kinds
    recurrent = sum(c.family == "rnn" and k == "momentum" for c, k in zip(controls, kinds))
    assert recurrent >= recurrent_momentum
    if split == "final9":
        assert any(k == "sgd" and size[c.name] == 1 for c, k in zip(controls, kinds))
    for c in controls:
        assert 1 <= size[c.name] <= 16, c.name
        # The hand check's large-batch reference is the same builder at batch 64.
        assert c.build(c.seed, batch=64).config["batch_size"] == 64, c.name
        assert "batches of 64" in c.why, c.name
    runs = [built[c.name] for c in controls]
    assert any(e.scheduler is not None for e in runs) and any(e.scheduler is None for e in runs)
    assert any(e.clip_grad_norm is not None for e in runs) and any(e.accumulate > 1 for e in runs)
    cliffs = by["cliffs"]
    assert len({c.family for c in cliffs}) >= 3
    assert sorted(size[c.name] <= 8 for c in cliffs) == [False, False, False, True, True]
    assert all(size[c.name] >= 32 for c in cliffs if size[c.name] > 8)
    for c in cliffs:
        assert built[c.name].clip_grad_norm is None, c.name  # nothing stops the spike
        assert "x its running median" in c.why, c.name
    ill = by["ill-conditioning"]
    assert len({c.family for c in ill}) >= 3
    assert sum(c.optimizer.split("+")[0] in ("momentum", "adam", "adamw") for c in ill) >= 2
    for c in ill:
        assert size[c.name] >= 16, c.name
        group = built[c.name].optimizer.param_groups[0]
        # The why states the optimizer's own threshold: 2/lr, (2 + 2 beta)/lr with momentum.
        threshold = (2 + 2 * group.get("momentum", 0.0)) / group["lr"]
        assert f"/lr = {threshold:.3g}" in c.why, c.name
        assert "lambda_max" in c.why and "of the updates raise the loss" in c.why, c.name


@pytest.mark.parametrize("name", FAST)
def test_a_planted_challenge_is_named_and_a_control_gets_no_alarm(name, tmp_path):
    (case,) = [c for c in cases() if c.name == name]
    row = run_case(case, tmp_path)
    assert row["error"] is None
    if case.challenge is None:
        assert row["flagged"] == [], row["summaries"]
    else:
        assert case.challenge in row["flagged"], row["summaries"][case.challenge]


def test_restarts_run_for_a_stalled_end_and_a_failing_one_costs_nothing(tmp_path):
    from optiscope.records import schema
    from optiscope.records.log import read_records
    from optiscope.runner.run import run_experiment

    (case,) = [c for c in cases() if c.name == "local-minima-mlp-1d-tanh3"]
    run_experiment(case.build(case.seed), tmp_path / "ok", factory=case.build)
    (r,) = [x for x in read_records(tmp_path / "ok").of_type("analysis") if x["name"] == "restarts"]
    assert r[schema.SEEDS] == [case.seed + 1, case.seed + 2, case.seed + 3]
    assert len(r[schema.LOSSES]) == 3 and r[schema.LOSS] > min(r[schema.LOSSES])

    def broken(seed):
        raise RuntimeError(f"no data for seed {seed}")

    result = run_experiment(case.build(case.seed), tmp_path / "broken", factory=broken)
    (r,) = [
        x for x in read_records(tmp_path / "broken").of_type("analysis") if x["name"] == "restarts"
    ]
    assert "no data for seed" in r[schema.ERROR] and schema.LOSSES not in r
    minima = next(f for f in result.findings if f.challenge == "local-minima")
    assert minima.severity == "info" and "which failed (" in minima.summary


def test_the_final11_split_holds_nine_inexact_cases_and_five_controls():
    # The twelfth held-out set, written after final10 was seen: 9 inexact-gradients runs on
    # batches of 1 to 8 over every family and optimizer, and the 5 small-batch controls whose
    # large-batch reference ended no more than 10% below them in the hand check.
    assert "final11" in SPLITS
    mine = [c for c in cases() if c.split == "final11"]
    planted = [c for c in mine if c.challenge is not None]
    controls = [c for c in mine if c.challenge is None]
    assert len(planted) == 9 and len(controls) == 5
    assert {c.challenge for c in planted} == {"inexact-gradients"}
    assert all(sum(c.family == f for c in planted) >= 2 for f in FAMILIES)
    assert {c.optimizer.split("+")[0] for c in planted} == {"sgd", "momentum", "adam", "adamw"}
    assert {c.optimizer.split("+")[0] for c in controls} == {"sgd", "momentum", "adamw"}
    for group, most in ((planted, 8), (controls, 16)):
        for c in group:
            exp = c.build(c.seed)
            assert exp.name == c.name and c.name.startswith("final11-"), c.name
            assert 1 <= exp.config["batch_size"] * exp.accumulate <= most, c.name
            # The hand check's large-batch reference is the same builder at batch 64.
            assert c.build(c.seed, batch=64).config["batch_size"] == 64, c.name
            assert "batches of 64" in c.why, c.name
            # A schedule is named in the optimizer and ends at a tenth of its peak or lower.
            named = [k for k in c.optimizer.split("+")[1:] if k != "clip"]
            assert (exp.scheduler is not None) == bool(named), c.name
            assert (exp.clip_grad_norm is not None) == ("clip" in c.optimizer), c.name
            if exp.scheduler is not None:
                assert _final_rate(exp) <= 0.1 + 1e-12, c.name
    for c in planted:
        assert "|mean gradient|^2 at the start" in c.why, c.name
        assert "x at the end, against batch" in c.why, c.name


def test_the_final12_split_holds_twenty_healthy_runs_over_every_family_and_optimizer():
    # The thirteenth held-out set, written after final11 was seen, for the false-alarm rate:
    # 20 healthy controls, five per family, ten on batches of 1 to 16 and ten on 32 to 128,
    # under the optimizers, schedules and training features people use.
    assert "final12" in SPLITS
    mine = [c for c in cases() if c.split == "final12"]
    assert len(mine) == 20 and all(c.challenge is None for c in mine)
    assert all(sum(c.family == f for c in mine) == 5 for f in FAMILIES)
    base = [c.optimizer.split("+")[0].replace("(nesterov)", "") for c in mine]
    assert all(base.count(o) >= 4 for o in ("sgd", "momentum", "adam", "adamw")), base
    built = {c.name: c.build(c.seed) for c in mine}
    size = {n: e.config["batch_size"] * e.accumulate for n, e in built.items()}
    assert sum(1 <= s <= 16 for s in size.values()) == 10
    assert sum(32 <= s <= 128 for s in size.values()) == 10
    for c in mine:
        exp = built[c.name]
        assert exp.name == c.name and c.name.startswith("final12-control-"), c.name
        # The hand check's large-batch reference is the same builder at batch 64 (full batch
        # for a run already at 64).
        assert c.build(c.seed, batch=64).config["batch_size"] == 64, c.name
        assert "batches of 64" in c.why or "full-batch" in c.why, c.name
        assert "full-data loss" in c.why and "Largest gradient norm" in c.why, c.name
        # A schedule is named in the optimizer and ends at a tenth of its peak or lower.
        named = [k for k in c.optimizer.split("+")[1:] if k != "clip"]
        assert (exp.scheduler is not None) == bool(named), c.name
        assert (exp.clip_grad_norm is not None) == ("clip" in c.optimizer), c.name
        if exp.scheduler is not None:
            assert _final_rate(exp) <= 0.1 + 1e-12, c.name
        nesterov = exp.optimizer.param_groups[0].get("nesterov", False)
        assert nesterov == ("nesterov" in c.optimizer), c.name
    # The training features this split covers, each in several runs.
    assert sum(e.clip_grad_norm is not None for e in built.values()) >= 4
    assert sum(e.accumulate > 1 for e in built.values()) == 2
    assert sum(e.scheduler is None for e in built.values()) >= 2
    dropout = [
        e for e in built.values() if any(isinstance(m, torch.nn.Dropout) for m in e.model.modules())
    ]
    assert len(dropout) >= 2
    decayed = [e for e in built.values() if e.optimizer.param_groups[0]["weight_decay"] > 0]
    assert len(decayed) >= 5


def test_the_final13_split_plants_every_measurable_challenge_three_times_beside_twenty_controls():
    # The fourteenth held-out set, written after final12 was seen: three planted cases for each
    # challenge a run can show, each challenge on two families or more, and twenty healthy
    # controls, five per family, half of them on (micro-)batches of 1 to 16.
    assert "final13" in SPLITS
    mine = [c for c in cases() if c.split == "final13"]
    planted = [c for c in mine if c.challenge is not None]
    controls = [c for c in mine if c.challenge is None]
    measurable = [c for c in CHALLENGES if c != "theoretical-limits"]
    assert sorted(c.challenge for c in planted) == sorted(measurable * 3)
    for challenge in measurable:
        assert len({c.family for c in planted if c.challenge == challenge}) >= 2, challenge
    assert {c.family for c in planted} == set(FAMILIES)
    assert len(controls) == 20
    assert all(sum(c.family == f for c in controls) == 5 for f in FAMILIES)
    base = [c.optimizer.split("+")[0].replace("(nesterov)", "") for c in controls]
    assert all(base.count(o) >= 4 for o in ("sgd", "momentum", "adam", "adamw")), base
    built = {c.name: c.build(c.seed) for c in mine}
    small = [n for n, e in built.items() if e.config["batch_size"] <= 16]
    assert sum(n.startswith("final13-control-") for n in small) == 10
    for c in mine:
        assert built[c.name].name == c.name and c.name.startswith("final13-"), c.name
        assert c.why, c.name
