"""The mistakes a user makes, each pinned to a message that says what was expected, what came and
what to do; from the command line, one line on stderr and exit status 2 (the catalogue is in
docs/reliability.md). Cases already pinned elsewhere are not repeated here: see
tests/test_problem.py (non-scalar loss, empty data, one-shot iterator, training-mode dropout,
parameter selection, NaN loss of a Problem) and tests/test_diagnose_cli.py (a factory returning
the wrong thing, a missing function, file or module from Python)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from optiscope import Experiment, Monitor, Problem, ProblemError
from optiscope.cli import main
from optiscope.monitor import MonitorError
from optiscope.training.experiment import ExperimentError
from optiscope.training.loading import load_experiment

# -- helpers ---------------------------------------------------------------------------------------

_HEAD = """
import torch, optiscope
from torch import nn

def _parts(n=16, d=3, k=2):
    torch.manual_seed(0)
    model = nn.Linear(d, k)
    x, y = torch.randn(n, d), torch.randint(0, k, (n,))
    return model, x, y
"""

_GOOD = """
def make(seed=0):
    model, x, y = _parts()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return optiscope.Experiment(model, nn.CrossEntropyLoss(), [(x, y)], opt, steps=3, name="tiny")
"""


def _file(tmp_path: Path, body: str, name: str = "exp.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(_HEAD) + textwrap.dedent(body))
    return path


def _cli_error(capsys, argv: list[str], command: str, status: int = 2) -> str:
    """Run the CLI, check it failed with one readable line, and return that line."""
    assert main(argv) == status
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"optiscope {command}: error: "), lines[0]
    assert "Traceback" not in captured.err
    return lines[0]


def _diagnose(capsys, tmp_path: Path, spec: str, *extra: str, status: int = 2) -> str:
    argv = ["diagnose", spec, "--out", str(tmp_path / "run"), "--preset", "default", *extra]
    return _cli_error(capsys, argv, "diagnose", status)


def _experiment(**changes):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    kwargs = dict(
        model=model,
        loss_fn=nn.CrossEntropyLoss(),
        data=[(x, y)],
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        steps=3,
    )
    if "model" in changes and "optimizer" not in changes:
        kwargs["optimizer"] = torch.optim.SGD(changes["model"].parameters(), lr=0.1)
    kwargs.update(changes)
    return Experiment(**kwargs)


# -- 1-6: finding and calling the experiment function ----------------------------------------------


def test_01_missing_experiment_file(tmp_path, capsys):
    line = _diagnose(capsys, tmp_path, f"{tmp_path}/missing.py:make")
    assert "experiment file" in line and "missing.py' not found" in line


def test_02_missing_function(tmp_path, capsys):
    path = _file(tmp_path, _GOOD)
    line = _diagnose(capsys, tmp_path, f"{path}:nope")
    assert "has no function 'nope': expected one of ['make']" in line
    assert "Name the function that returns the Experiment" in line


def test_03_module_not_importable(tmp_path, capsys):
    with pytest.raises(ExperimentError, match=r"cannot import module 'no_such_pkg.mod'.*Install"):
        load_experiment("no_such_pkg.mod:make")
    line = _diagnose(capsys, tmp_path, "no_such_pkg.mod:make")
    assert "cannot import module 'no_such_pkg.mod'" in line and "path/to/file.py:function" in line


def test_03b_experiment_file_that_fails_to_import(tmp_path, capsys):
    path = _file(tmp_path, "def make(:\n    pass\n")
    with pytest.raises(ExperimentError, match=r"cannot load the experiment file .*SyntaxError"):
        load_experiment(f"{path}:make")
    line = _diagnose(capsys, tmp_path, f"{path}:make")
    assert "SyntaxError" in line and "--debug" in line


def test_04_factory_raises(tmp_path, capsys):
    path = _file(tmp_path, "def make(seed=0):\n    raise ValueError('no data here')\n")
    spec = f"{path}:make"
    with pytest.raises(ExperimentError, match=r"exp.py:make' raised ValueError: no data here"):
        load_experiment(spec)
    line = _diagnose(capsys, tmp_path, spec)
    assert f"'{spec}' raised ValueError: no data here (run with --debug" in line


def test_04b_factory_builds_an_invalid_experiment(tmp_path, capsys):
    path = _file(tmp_path, _GOOD.replace("steps=3", "steps=0"))
    line = _diagnose(capsys, tmp_path, f"{path}:make")
    assert f"'{path}:make': Experiment.steps must be a positive int" in line


def test_05_factory_returns_the_wrong_thing(tmp_path, capsys):
    path = _file(tmp_path, "def make(seed=0):\n    return {'model': None}\n")
    line = _diagnose(capsys, tmp_path, f"{path}:make")
    assert "returned a dict, expected an optiscope.Experiment" in line
    assert "return optiscope.Experiment(model, loss_fn, data, optimizer, steps)" in line


def test_06_factory_with_the_wrong_signature(tmp_path, capsys):
    path = _file(tmp_path, "def make(data, lr, seed=0):\n    pass\n")
    with pytest.raises(ExperimentError, match=r"takes the parameters \['data', 'lr'\].*def make"):
        load_experiment(f"{path}:make")
    line = _diagnose(capsys, tmp_path, f"{path}:make")
    assert "give the other parameters defaults" in line


# -- 7-15, 19, 23-25: the Experiment's parts -------------------------------------------------------


def test_07_model_without_trainable_parameters(tmp_path, capsys):
    model = nn.Linear(3, 2).requires_grad_(False)
    with pytest.raises(
        ExperimentError, match=r"no trainable parameters: all 2 parameters .*Unfreeze"
    ):
        _experiment(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    body = _GOOD.replace(
        "model, x, y = _parts()", "model, x, y = _parts()\n    model.requires_grad_(False)"
    )
    line = _diagnose(capsys, tmp_path, f"{_file(tmp_path, body)}:make")
    assert "no trainable parameters" in line


def test_08_non_scalar_loss(tmp_path, capsys):
    exp = _experiment(loss_fn=nn.CrossEntropyLoss(reduction="none"))
    with pytest.raises(
        ExperimentError, match=r"must return a scalar tensor, got a tensor of shape"
    ):
        exp.check()
    body = _GOOD.replace("nn.CrossEntropyLoss()", "nn.CrossEntropyLoss(reduction='none')")
    line = _diagnose(capsys, tmp_path, f"{_file(tmp_path, body)}:make")
    assert "reduction='mean' or 'sum'" in line


def test_09_empty_data():
    with pytest.raises(ExperimentError, match=r"Experiment.data is empty \(list of length 0\)"):
        _experiment(data=[])

    class Nothing:
        def __iter__(self):
            return iter(())

    with pytest.raises(ExperimentError, match=r"yielded no batch: expected at least one"):
        _experiment(data=Nothing()).check()


def test_10_data_that_can_be_read_only_once(tmp_path, capsys):
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    with pytest.raises(ExperimentError, match=r"iterator \(generator\).*every epoch.*DataLoader"):
        _experiment(data=((x, y) for _ in range(2)))

    class Once:  # an iterable, not an iterator, that is empty the second time
        def __init__(self):
            self.gen = iter([(x, y)])

        def __iter__(self):
            return self.gen

    exp = _experiment(data=Once())
    with pytest.raises(ExperimentError, match=r"no batch on its pass number 2: .* only once"):
        list(exp.batches())
    body = _GOOD.replace("[(x, y)]", "((x, y) for _ in range(3))")
    line = _diagnose(capsys, tmp_path, f"{_file(tmp_path, body)}:make")
    assert "can be read only once" in line and "list of batches" in line


def test_11_batches_the_model_cannot_take(tmp_path, capsys):
    exp = _experiment(data=[(torch.randn(16, 5), torch.randint(0, 2, (16,)))])
    with pytest.raises(
        ExperimentError,
        match=r"could not take the first batch: inputs are a tensor of shape \(16, 5\).*"
        r"RuntimeError: mat1 and mat2 shapes cannot be multiplied",
    ):
        exp.check()
    body = _GOOD.replace("_parts()", "_parts()\n    x = torch.randn(16, 5)")
    line = _diagnose(capsys, tmp_path, f"{_file(tmp_path, body)}:make")
    assert "shape (16, 5)" in line and "mat1 and mat2" in line


def test_12_optimizer_that_does_not_hold_the_models_parameters():
    other = nn.Linear(3, 2)
    with pytest.raises(ExperimentError, match=r"optimizer holds none of the model's parameters"):
        _experiment(optimizer=torch.optim.SGD(other.parameters(), lr=0.1))
    with pytest.raises(ExperimentError, match=r"optimizer must be a torch.optim.Optimizer, got a"):
        _experiment(optimizer=torch.optim.SGD)


def test_13_integer_targets_with_a_regression_loss():
    exp = _experiment(loss_fn=nn.MSELoss(), data=[(torch.randn(8, 3), torch.randint(0, 3, (8, 2)))])
    with pytest.raises(
        ExperimentError, match=r"MSELoss got targets of dtype torch.int64.*\.float\(\)"
    ):
        exp.check()


def test_13b_regression_targets_that_would_broadcast():
    exp = _experiment(
        model=nn.Linear(3, 1), loss_fn=nn.MSELoss(), data=[(torch.randn(8, 3), torch.randn(8))]
    )
    with pytest.raises(
        ExperimentError, match=r"outputs of shape \(8, 1\) and targets of shape \(8,\)"
    ):
        exp.check()


def test_14_float_class_indices_and_targets_of_the_wrong_length():
    exp = _experiment(data=[(torch.randn(8, 3), torch.randint(0, 2, (8,)).float())])
    with pytest.raises(
        ExperimentError, match=r"Class indices must be integers: .*targets.long\(\)"
    ):
        exp.check()
    exp = _experiment(data=[(torch.randn(8, 3), torch.randint(0, 2, (4,)))])
    with pytest.raises(ExperimentError, match=r"outputs hold 8 samples and the targets 4"):
        exp.check()


def test_15_parameters_on_several_devices():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2, device="meta"))
    with pytest.raises(
        ProblemError, match=r"several devices \['cpu', 'meta'\].*model.to\(device\)"
    ):
        Problem(model, nn.CrossEntropyLoss(), (torch.randn(4, 3), torch.zeros(4, dtype=torch.long)))


@pytest.mark.parametrize("steps", [0, -5, 2.5, True, "10"])
def test_19_steps_not_a_positive_int(steps):
    with pytest.raises(ExperimentError, match=r"steps must be a positive int .*pass steps=N"):
        _experiment(steps=steps)


def test_23_nan_loss_at_the_first_step(tmp_path, capsys):
    x = torch.randn(16, 3)
    x[0, 0] = float("nan")
    with pytest.raises(ExperimentError, match=r"loss is NaN on the first batch.*NaN/inf"):
        _experiment(data=[(x, torch.randint(0, 2, (16,)))]).check()
    body = _GOOD.replace("_parts()", "_parts()\n    x[3] = float('inf')")
    line = _diagnose(capsys, tmp_path, f"{_file(tmp_path, body)}:make")
    assert "the loss is NaN on the first batch, before any training step" in line


def test_24_loss_function_returning_a_tuple():
    def loss_fn(out, y):
        loss = nn.functional.cross_entropy(out, y)
        return loss, {"accuracy": 0.5}

    with pytest.raises(ExperimentError, match=r"scalar tensor, got a tuple of 2 items"):
        _experiment(loss_fn=loss_fn).check()


def test_25_model_returning_a_dict():
    class Dict(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return {"logits": self.fc(x)}

    model = Dict()
    exp = _experiment(model=model)
    with pytest.raises(
        ExperimentError,
        match=r"outputs \(a dict with keys \['logits'\]\).*criterion\(out\['logits'\], y\)",
    ):
        exp.check()


def test_34_data_that_yields_no_pairs(tmp_path, capsys):
    x = torch.randn(16, 3)
    with pytest.raises(ExperimentError, match=r"batch 0 is a tensor of shape \(16, 3\)"):
        _experiment(data=[x, x, x]).check()
    body = _GOOD.replace("[(x, y)]", "[(x, y, 1)]")
    line = _diagnose(capsys, tmp_path, f"{_file(tmp_path, body)}:make")
    assert "each batch must be a pair (inputs, targets), but batch 0 is a tuple of 3" in line


def test_35_one_pair_given_as_the_data():
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    with pytest.raises(ExperimentError, match=r"one \(inputs, targets\) pair.*data=\[\(inputs"):
        _experiment(data=(x, y))


def test_36_loss_fn_or_data_of_the_wrong_kind():
    with pytest.raises(ExperimentError, match=r"loss_fn must be callable .*got a str"):
        _experiment(loss_fn="cross_entropy")
    with pytest.raises(ExperimentError, match=r"data must be a list or DataLoader .*got a tensor"):
        _experiment(data=torch.randn(4, 3))


# -- 16-18, 20-22, 26, 27: command-line arguments and files ----------------------------------------


def test_16_26_unknown_preset(tmp_path, capsys):
    with pytest.raises(MonitorError, match=r"unknown preset 'fast': expected one of \['default'"):
        Monitor(nn.Linear(3, 2), preset="fast")
    line = _diagnose(capsys, tmp_path, "digits-mlp", "--preset", "nosuch")
    assert "unknown preset 'nosuch': expected one of ['default'" in line


def test_18_out_is_a_file_or_unwritable(tmp_path, capsys):
    spec = f"{_file(tmp_path, _GOOD)}:make"
    taken = tmp_path / "taken"
    taken.write_text("")
    line = _cli_error(
        capsys, ["diagnose", spec, "--out", str(taken), "--preset", "default"], "diagnose"
    )
    assert "cannot write records to" in line and "pass another --out" in line
    line = _cli_error(
        capsys, ["diagnose", spec, "--out", "/proc/optiscope", "--preset", "default"], "diagnose"
    )
    assert "'/proc/optiscope/records.jsonl'" in line
    line = _cli_error(capsys, ["lab", "run", "convexity", "--out", str(taken)], "lab")
    assert "cannot create the output folder" in line and "Pass another --out" in line


def test_20_unknown_lab_experiment(capsys):
    line = _cli_error(capsys, ["lab", "run", "nosuch"], "lab")
    assert "unknown lab experiment 'nosuch': expected one of" in line and "convexity" in line
    line = _cli_error(capsys, ["lab", "run"], "lab")
    assert "needs an experiment name or all" in line


def test_21_report_on_a_folder_without_records(tmp_path, capsys):
    line = _cli_error(capsys, ["report", str(tmp_path)], "report")
    assert "the folder has no records file" in line
    line = _cli_error(capsys, ["report", str(tmp_path / "nope")], "report")
    assert "does not exist" in line


def test_22_records_file_that_is_not_json(tmp_path, capsys):
    (tmp_path / "records.jsonl").write_text("epoch,loss\n1,0.5\n")
    line = _cli_error(capsys, ["report", str(tmp_path)], "report")
    assert "line 1: expected one JSON object per line, got b'epoch,loss'" in line
    assert "not an optiscope records file" in line


def test_27_seed_not_an_int(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["diagnose", "--seed", "abc"])
    assert exit_.value.code == 2
    assert "argument --seed: invalid int value: 'abc'" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ExperimentError, match=r"unknown experiment 'nothere'"):
        main(["--debug", "diagnose", "nothere", "--out", str(tmp_path)])


def test_an_unexpected_error_is_one_line_with_status_1(tmp_path, capsys):
    # The first batch fits, a later one does not: caught by no check, still one line.
    body = _GOOD.replace("[(x, y)]", "[(x, y), (torch.randn(16, 5), y)]")
    line = _diagnose(capsys, tmp_path, f"{_file(tmp_path, body)}:make", status=1)
    assert "unexpected RuntimeError: mat1 and mat2" in line and "--debug" in line


# -- 17, 30-33: the Monitor ------------------------------------------------------------------------


def test_17_unknown_quantity_names():
    with pytest.raises(MonitorError, match=r"unknown quantities \['lr'\]: expected names from"):
        Monitor(nn.Linear(3, 2), quantities=["loss", "lr"])


@pytest.mark.parametrize("every", [{"hessian": 5}, {"curvature": -1}, {"noise": 2.5}])
def test_30_every_with_an_unknown_tier_or_a_negative_number(every):
    with pytest.raises(MonitorError, match=r"expected a tier from \['update', .* steps >= 0"):
        Monitor(nn.Linear(3, 2), loss_fn=nn.MSELoss(), every=every)


def test_31_monitor_given_no_module():
    with pytest.raises(MonitorError, match=r"model must be a torch.nn.Module, got a str"):
        Monitor("resnet18")


def test_32_step_without_the_batch_a_tier_needs():
    model = nn.Linear(3, 2)
    monitor = Monitor(model, loss_fn=nn.CrossEntropyLoss(), every={"curvature": 1})
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3)), torch.zeros(4, dtype=torch.long))
    loss.backward()
    with pytest.raises(MonitorError, match=r"curvature tier is due at step 0 and needs the batch"):
        monitor.step(loss)


def test_33_monitor_given_a_frozen_model():
    with pytest.raises(MonitorError, match=r"all 2 parameters have requires_grad=False.*Unfreeze"):
        Monitor(nn.Linear(3, 2).requires_grad_(False))


def test_37_monitor_given_something_else_as_optimizer():
    with pytest.raises(MonitorError, match=r"optimizer must be a torch.optim.Optimizer"):
        Monitor(nn.Linear(3, 2), "sgd")


def test_38_monitor_step_given_a_non_scalar_loss():
    model = nn.Linear(3, 2)
    monitor = Monitor(model)
    loss = (model(torch.randn(4, 3)) ** 2).mean(1)
    loss.sum().backward()
    with pytest.raises(MonitorError, match=r"scalar loss.*shape \(4,\).*loss.mean\(\)"):
        monitor.step(loss)
