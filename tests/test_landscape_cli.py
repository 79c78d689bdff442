"""``optiscope landscape``: each kind writes numbers that agree with the loss recomputed here, a
picture, and refuses bad input with one readable line."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from optiscope.cli import main
from optiscope.landscape.line import LandscapeError
from optiscope.problem.problem import Problem
from optiscope.training.loading import load_experiment

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


def _trained(name, seed=0):
    """The experiment trained here with the plain loop: its problem (at the end) and start."""
    exp = load_experiment(name, seed)
    start = _flat(exp.model).clone()
    for x, y in exp.batches():
        exp.optimizer.zero_grad()
        exp.loss_fn(exp.model(x), y).backward()
        exp.optimizer.step()
    exp.model.eval()
    return Problem(exp.model, exp.loss_fn, exp.eval_data), start


def _read(out):
    return json.loads((out / "landscape.json").read_text())


def test_interpolate_ends_at_the_start_and_end_losses(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["landscape", "logistic-control", "--kind", "interpolate", "--points", "5"]) == 0
    out = tmp_path / "landscape-logistic-control-interpolate"  # the default folder
    data = _read(out)
    assert (data["kind"], data["experiment"], data["seed"]) == (
        "interpolate",
        "logistic-control",
        0,
    )
    problem, start = _trained("logistic-control")
    losses = data["result"]["losses"]
    assert data["result"]["alphas"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert losses[0] == pytest.approx(problem.loss(start), rel=1e-5)
    assert losses[-1] == pytest.approx(problem.loss(), rel=1e-5)
    assert (
        data["training"]["start_loss"] == losses[0] and data["training"]["end_loss"] == losses[-1]
    )
    ends = max(losses[0], losses[-1])
    assert data["result"]["barrier"] == pytest.approx(max(max(losses) - ends, 0.0))
    assert data["result"]["distance"] == pytest.approx(float((problem.point - start).norm()))
    npz = np.load(out / "landscape.npz")
    np.testing.assert_allclose(npz["losses"], losses)
    assert (out / "landscape.png").read_bytes().startswith(PNG)
    text = capsys.readouterr().out
    assert "logistic-control: loss along the line" in text and "barrier" in text
    assert "landscape.json, landscape.npz, landscape.png" in text


def test_a_random_surface_is_exact_and_centered_on_the_end_point(tmp_path, capsys):
    out = tmp_path / "random"
    args = ["landscape", "logistic-control", "--kind", "surface", "--steps", "9"]
    assert main([*args, "--format", "svg", "--out", str(out)]) == 0
    data = _read(out)
    res = data["result"]
    grid = np.array(res["losses"], dtype=float)
    assert grid.shape == (9, 9) and np.isfinite(grid).all()
    assert data["box"] == [-1.0, 1.0, -1.0, 1.0] and res["xs"][4] == 0.0 == res["ys"][4]
    problem, _ = _trained("logistic-control")
    assert res["center_loss"] == pytest.approx(problem.loss(), rel=1e-5)
    assert grid[4, 4] == pytest.approx(res["center_loss"], rel=1e-5)
    assert grid.min() >= res["center_loss"] - 1e-6  # a convex problem at its trained point
    assert res["directions"]["kind"] == "random" and res["method"] == "exact"
    np.testing.assert_allclose(np.load(out / "landscape.npz")["losses"], grid)
    assert ET.parse(out / "landscape.svg").getroot().tag.endswith("svg")
    assert "9 x 9 surface" in capsys.readouterr().out


def test_a_pca_surface_holds_the_trajectory_with_a_margin(tmp_path, capsys):
    out = tmp_path / "pca"
    argv = ["landscape", "logistic-control", "--kind", "surface", "--directions", "pca"]
    assert main([*argv, "--steps", "9", "--out", str(out)]) == 0
    data = _read(out)
    coords = np.array(data["trajectory"]["coords"])
    assert len(coords) == data["training"]["snapshots"] >= 40
    assert coords[-1] == pytest.approx([0.0, 0.0], abs=1e-9)  # centered on the end point
    lo, hi = coords.min(0), coords.max(0)
    width = hi - lo
    box = data["box"]
    assert box == pytest.approx(
        [
            lo[0] - 0.2 * width[0],
            hi[0] + 0.2 * width[0],
            lo[1] - 0.2 * width[1],
            hi[1] + 0.2 * width[1],
        ]
    )
    assert data["result"]["xs"][0] == pytest.approx(box[0])
    explained = data["trajectory"]["explained"]
    assert 0 < explained[1] <= explained[0] and sum(explained) <= 1 + 1e-9
    assert data["training"]["path_length"] >= data["training"]["distance"] > 0
    assert np.isfinite(np.array(data["result"]["losses"], dtype=float)).all()
    assert (out / "landscape.png").read_bytes().startswith(PNG)
    assert "of its variance" in capsys.readouterr().out


def test_a_hessian_surface_spans_where_the_quadratic_model_rises_clearly(tmp_path):
    out = tmp_path / "hessian"
    argv = ["landscape", "logistic-control", "--kind", "surface", "--directions", "hessian"]
    assert main([*argv, "--steps", "9", "--out", str(out)]) == 0
    data = _read(out)
    res = data["result"]
    center, top = res["center_loss"], res["directions"]["eigenvalues"][0]
    rise = max(center, 0.1)
    span = math.sqrt(2 * rise / top)
    assert data["box"] == pytest.approx([-span, span, -span, span])
    assert "sqrt(2 r / lambda_1)" in data["span_rule"]
    row = res["losses"][4]  # y = 0: along the top eigenvector
    assert min(row[0], row[-1]) >= center + rise / 2


def test_connect_aligns_the_second_minimum_and_keeps_its_loss(tmp_path, capsys):
    out = tmp_path / "connect"
    argv = ["landscape", "digits-mlp", "--kind", "connect", "--points", "5"]
    assert main([*argv, "--curve-steps", "10", "--out", str(out)]) == 0
    data = _read(out)
    align = data["alignment"]
    assert align["aligned"] and align["distance_after"] <= align["distance_before"]
    res = data["result"]
    assert res["ts"] == [0.0, 0.25, 0.5, 0.75, 1.0] and res["steps"] == 10
    first, _ = _trained("digits-mlp", 0)
    second, _ = _trained("digits-mlp", 1)
    # The ends are the two minima; permuting hidden units leaves the second's loss unchanged.
    assert res["line_losses"][0] == pytest.approx(first.loss(), rel=1e-4)
    assert res["line_losses"][-1] == pytest.approx(second.loss(), rel=1e-4)
    assert res["curve_losses"][0] == pytest.approx(res["line_losses"][0], rel=1e-5)
    assert res["curve_losses"][-1] == pytest.approx(res["line_losses"][-1], rel=1e-5)
    assert set(np.load(out / "landscape.npz").files) >= {"ts", "curve_losses", "line_losses"}
    assert (out / "landscape.png").read_bytes().startswith(PNG)
    text = capsys.readouterr().out
    assert "aligned to the first's" in text and "curve barrier" in text


def test_connect_says_when_the_network_cannot_be_aligned(tmp_path, capsys):
    out = tmp_path / "connect"
    argv = ["landscape", "logistic-control", "--kind", "connect", "--points", "3"]
    assert main([*argv, "--curve-steps", "5", "--out", str(out)]) == 0
    align = _read(out)["alignment"]
    assert align["aligned"] is False and "nn.Sequential" in align["reason"]
    assert "not aligned" in capsys.readouterr().out


def test_restarts_print_parsable_json(tmp_path, capsys):
    out = tmp_path / "restarts"
    argv = ["landscape", "logistic-control", "--kind", "restarts", "--restarts", "3"]
    assert main([*argv, "--seed", "4", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["files"] == [str(out / "landscape.json"), str(out / "landscape.png")]
    del printed["files"]
    assert printed == _read(out)
    res = printed["result"]
    assert res["seeds"] == [4, 5, 6] and printed["seeds"] == [4, 5, 6]
    assert sorted(i for g in res["groups"] for i in g) == [0, 1, 2]
    assert res["summary"]["min"] == min(res["losses"])
    assert not (out / "landscape.npz").exists()
    assert (out / "landscape.png").read_bytes().startswith(PNG)


def test_without_matplotlib_the_numbers_are_written_and_the_exit_is_zero(
    tmp_path, monkeypatch, capsys
):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "nompl"
    argv = ["landscape", "logistic-control", "--kind", "interpolate", "--points", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["landscape.json", "landscape.npz"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        "no picture: the picture needs matplotlib, which is not installed: "
        'pip install "optiscope[report]"'
    )


def test_only_rank_zero_writes_and_prints(tmp_path, monkeypatch, capsys):
    import optiscope.core.shard as shard

    monkeypatch.setattr(shard, "init_from_env", lambda: True)
    monkeypatch.setattr(shard, "world", lambda: (1, 2))
    out = tmp_path / "rank1"
    argv = ["landscape", "logistic-control", "--kind", "interpolate", "--points", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    assert not out.exists()
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "1"], r"--steps must be at least 2 grid points per axis, got 1$"),
        (["--span", "0"], r"--span must be a positive half-width of the box, got 0.0: pass"),
        (["--span", "-1"], r"--span must be a positive half-width of the box, got -1.0: pass"),
        (["--tol", "0"], r"--tol must be a positive relative tolerance \(0.01 for 1%\), got 0.0"),
        (["--restarts", "1"], r"--restarts must be at least 2 \(restarts are compared with"),
        (["--points", "1"], r"--points must be at least 2 \(the two ends\), got 1$"),
    ],
)
def test_bad_settings_give_one_line_before_any_work(tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    argv = ["landscape", "logistic-control", "--kind", "surface", "--out", str(out), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("optiscope landscape: error: ")
    assert "Traceback" not in err
    assert re.search(message, err.strip()), err
    assert not out.exists()


def test_an_unknown_experiment_or_an_out_file_is_refused(tmp_path, capsys):
    assert main(["landscape", "nothere", "--kind", "interpolate", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optiscope landscape: error: unknown experiment 'nothere': expected")
    target = tmp_path / "a-file"
    target.write_text("keep me")
    argv = ["landscape", "logistic-control", "--kind", "interpolate", "--out", str(target)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"optiscope landscape: error: --out {str(target)!r} is an existing file: expected a "
        "folder (created if missing). Pass another --out"
    )
    assert target.read_text() == "keep me"
    with pytest.raises(LandscapeError, match="is an existing file"):
        main([*argv, "--debug"])


def test_an_unknown_kind_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["landscape", "logistic-control", "--kind", "volume"])
    assert exit_info.value.code == 2
    assert "argument --kind: invalid choice: 'volume'" in capsys.readouterr().err


def test_the_command_line_shows_no_traceback_and_loads_no_matplotlib():
    proc = subprocess.run(
        [sys.executable, "-m", "optiscope.cli", "landscape", "nothere", "--kind", "surface"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("optiscope landscape: error: unknown experiment 'nothere'")
    code = (
        "import sys, optiscope, optiscope.cli, optiscope.cli.landscape, optiscope.report.plot; "
        "optiscope.cli.build_parser(); print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
