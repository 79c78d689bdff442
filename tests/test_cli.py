"""The analyze command end to end on the embedded default, and its error path."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from optiscope.cli import main


def test_analyze_json_reports_a_consistent_analysis(capsys):
    assert main(["analyze", "--steps", "60", "-k", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["parameters"] == 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert r["samples"] == 1797
    assert 0 < r["loss"] < math.log(10)  # trained below chance
    assert r["accuracy"] > 0.5
    top, bottom = r["top_eigenvalues"], r["bottom_eigenvalues"]
    assert len(top) == 2 and len(bottom) == 2
    assert top[0] >= top[1] > bottom[1] >= bottom[0]
    assert top[0] > 0
    assert r["trace"] > 0
    assert r["critical_point"]["kind"] in ("minimum", "saddle", "not a critical point")
    assert r["gradient_norm"] > 0


def test_analyze_table(capsys):
    assert main(["analyze", "--steps", "5", "-k", "1"]) == 0
    out = capsys.readouterr().out
    for label in ("loss", "gradient norm", "top eigenvalues", "trace", "critical point"):
        assert label in out


def test_analyze_blocks_reports_each_layers_spectrum(capsys):
    assert main(["analyze", "--steps", "5", "-k", "1", "--blocks", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["blocks"]
    # The digits MLP's three Linear layers, each weight and bias one block.
    assert [b["name"] for b in r["blocks"]] == ["0", "2", "4"]
    assert [b["size"] for b in r["blocks"]] == [64 * 256 + 256, 256 * 256 + 256, 256 * 10 + 10]
    tops = [b["largest"] for b in r["blocks"]]
    assert r["spread"] == max(tops) / min(tops) and 0 <= r["heterogeneity"] <= 1
    assert r["advice"].startswith("the blocks are alike" if not r["heterogeneous"] else "the")
    assert main(["analyze", "--steps", "5", "-k", "1", "--blocks"]) == 0
    assert "verdict" in capsys.readouterr().out


def test_bad_arguments_give_one_readable_line_and_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "optiscope.cli", "analyze", "--steps", "-3"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "optiscope analyze: error: expected --steps >= 0, --batch-size >= 1 and --lr > 0, "
        "got --steps -3, --batch-size 64, --lr 0.05"
    )
    assert "Traceback" not in proc.stderr


def test_analyze_without_evaluation_data_measures_on_the_first_batch(tmp_path, capsys):
    """An experiment without eval_data is analysed on its first batch, as diagnose's end
    analysis is, not on every training batch (each product would pass over them all)."""
    (tmp_path / "many.py").write_text(
        "import torch\nfrom torch import nn\nimport optiscope\n\n\n"
        "def make(seed=0):\n"
        "    gen = torch.Generator().manual_seed(seed)\n"
        "    data = [(torch.randn(32, 4, generator=gen), torch.randint(0, 3, (32,), generator=gen))"
        " for _ in range(50)]\n"
        "    model = nn.Linear(4, 3)\n"
        "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "    return optiscope.Experiment(model, nn.CrossEntropyLoss(), data, opt, steps=5)\n"
    )
    assert main(["analyze", f"{tmp_path / 'many.py'}:make", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 32  # one batch, not 50 * 32
