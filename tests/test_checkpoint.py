"""Checkpoints load as weights only: a round trip, a pickle that would run code (refused, never
run), names and shapes that do not match, and ``--checkpoint`` in analyze and landscape."""

from __future__ import annotations

import json
import os
import pickle
import re

import pytest
import torch
from torch import nn

from optiscope.cli import main
from optiscope.core.errors import OptiscopeError
from optiscope.training.checkpoint import CheckpointError, load_checkpoint
from optiscope.training.loading import load_experiment


class Payload:
    """Unpickling this runs ``os.mkdir(marker)``: the kind of file weights_only refuses."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def trained_logistic(steps: int = 5) -> nn.Module:
    exp = load_experiment("logistic-control", seed=0)
    for _, (x, y) in zip(range(steps), exp.batches()):
        exp.optimizer.zero_grad()
        exp.loss_fn(exp.model(x), y).backward()
        exp.optimizer.step()
    return exp.model


def same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model_state_dict", "model", "ddp"])
def test_round_trip(tmp_path, wrap):
    torch.manual_seed(0)
    trained = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    state = trained.state_dict()
    if wrap == "ddp":
        obj: object = {f"module.{k}": v for k, v in state.items()}
    elif wrap != "plain":
        obj = {wrap: state, "epoch": 3, "note": "best"}
    else:
        obj = state
    torch.save(obj, tmp_path / "w.pt")
    torch.manual_seed(1)
    fresh = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    assert not same(fresh, trained)
    load_checkpoint(fresh, tmp_path / "w.pt")
    assert same(fresh, trained)


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_a_pickle_that_would_run_code_is_refused_and_never_run(tmp_path, how):
    live = tmp_path / "live"
    pickle.loads(pickle.dumps(Payload(str(live))))  # the payload does run when unpickled
    assert live.is_dir()
    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save({"weight": Payload(str(marker))}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(Payload(str(marker)), f)
    model = nn.Linear(4, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path)
    assert not marker.exists()
    assert str(info.value) == (
        f"checkpoint {str(path)!r} holds arbitrary Python objects, not only tensors, and "
        "optiscope loads only weights (torch.load with weights_only=True), because unpickling "
        "such objects can run code. Re-save the weights alone from code you trust with "
        "torch.save(model.state_dict(), path)"
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_missing_and_foreign_files(tmp_path):
    model = nn.Linear(4, 3)
    with pytest.raises(CheckpointError, match=r"'.*nope\.pt' does not exist: expected a file"):
        load_checkpoint(model, tmp_path / "nope.pt")
    (tmp_path / "notes.pt").write_text("hello world\n")
    with pytest.raises(CheckpointError, match=r"'.*notes\.pt' is not a torch file \("):
        load_checkpoint(model, tmp_path / "notes.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"holds a list: expected a state_dict"):
        load_checkpoint(model, tmp_path / "list.pt")
    assert issubclass(CheckpointError, OptiscopeError)


def test_names_and_shapes_that_do_not_match(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(nn.Linear(4, 3), path)
    assert str(info.value) == (
        f"checkpoint {str(path)!r} does not match the model: of its parameter names, 2 missing "
        "from the file ('weight', 'bias') and 4 the model does not have ('0.weight', '0.bias', "
        "'2.weight', '2.bias'). Expected the state_dict of the same architecture; check that "
        "the experiment builds the model the checkpoint was saved from"
    )
    torch.save(nn.Linear(4, 5).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(nn.Linear(4, 3), path)
    assert str(info.value) == (
        f"checkpoint {str(path)!r} does not match the model's shapes (weight: [5, 4] in the "
        "file, [3, 4] in the model; bias: [5] in the file, [3] in the model). Expected the "
        "state_dict of the same architecture with the same layer sizes"
    )


def test_analyze_refuses_a_bad_checkpoint_in_one_line(tmp_path, capsys):
    marker, bad = tmp_path / "marker", tmp_path / "bad.pt"
    torch.save({"weight": Payload(str(marker))}, bad)
    assert main(["analyze", "logistic-control", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        f"optiscope analyze: error: checkpoint {str(bad)!r} holds arbitrary Python objects"
    )
    assert not marker.exists()


def test_analyze_measures_the_checkpoint_point(tmp_path, capsys):
    model = trained_logistic()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    x, y = load_experiment("logistic-control").eval_data
    with torch.no_grad():
        expected = float(nn.functional.cross_entropy(model(x), y))
        accuracy = float((model(x).argmax(1) == y).float().mean())
    argv = ["analyze", "logistic-control", "--checkpoint", str(tmp_path / "w.pt"), "-k", "1"]
    assert main([*argv, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model"] == "logistic-control" and r["parameters"] == 650
    assert r["train"]["checkpoint"] == str(tmp_path / "w.pt") and "steps" not in r["train"]
    assert r["loss"] == pytest.approx(expected, rel=1e-6)
    assert r["accuracy"] == pytest.approx(accuracy)


def test_landscape_interpolates_from_the_start_to_the_checkpoint(tmp_path, capsys):
    model = trained_logistic()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    start = load_experiment("logistic-control", seed=0).model  # the line's start: --seed 0
    x, y = load_experiment("logistic-control").eval_data
    with torch.no_grad():
        ends = [float(nn.functional.cross_entropy(m(x), y)) for m in (start, model)]
    out = tmp_path / "line"
    argv = ["landscape", "logistic-control", "--kind", "interpolate", "--points", "3"]
    assert main([*argv, "--checkpoint", str(tmp_path / "w.pt"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"to the checkpoint {tmp_path / 'w.pt'}, 3 points" in printed
    payload = json.loads((out / "landscape.json").read_text())
    assert payload["training"]["steps"] == 0
    assert payload["checkpoint"] == str(tmp_path / "w.pt")
    losses = payload["result"]["losses"]
    assert [losses[0], losses[-1]] == pytest.approx(ends, rel=1e-6)


def test_landscape_refuses_a_checkpoint_where_it_has_no_meaning(capsys):
    argv = ["landscape", "logistic-control", "--checkpoint", "w.pt", "--kind"]
    assert main([*argv, "restarts"]) == 2
    assert main([*argv, "surface", "--directions", "pca"]) == 2
    err = capsys.readouterr().err
    assert re.findall(r"got --kind \w+", err) == ["got --kind restarts", "got --kind surface"]
    assert "--directions pca (the plane of a training trajectory" in err


def test_a_surface_around_a_checkpoint_prints_no_training_path(tmp_path, capsys):
    """A checkpoint has no trajectory: the surface says so and gives the distance from the
    initial point, rather than a "path length" that was the distance under another name."""
    torch.save(trained_logistic().state_dict(), tmp_path / "w.pt")
    out = tmp_path / "plane"
    argv = ["landscape", "logistic-control", "--kind", "surface", "--steps", "3"]
    assert main([*argv, "--checkpoint", str(tmp_path / "w.pt"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no training path (a checkpoint): distance from the initial point" in printed
    assert "training path length" not in printed
    training = json.loads((out / "landscape.json").read_text())["training"]
    assert training["path_length"] is None and training["distance"] > 0
