"""The report's blockwise spectra: the section from a record of known numbers, its absence
without one, broken records, and ``optiscope analyze --blocks --out`` writing the record."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from optiscope.cli import main
from optiscope.diagnosis import CHALLENGES
from optiscope.records import schema
from optiscope.records.log import read_records
from optiscope.runner.report import render_run, write_report
from tests.test_report import EVIL, analysis_record, sections, write_run

GRID = np.linspace(-1.1, 1.1, 221)
DISTANCES = [[0.0, 0.2, 0.6], [0.2, 0.0, 0.4], [0.6, 0.4, 0.0]]
ADVICE = "the blocks differ (sharpness spans 100x, from head to emb): use Adam"


def density(center: float) -> list[float]:
    d = np.exp(-0.5 * ((GRID - center) / 0.05) ** 2)
    return (d / d.sum()).tolist()


def blocks_record(names=("emb", "attn", "head"), **fields) -> dict:
    sizes, largest, smallest = (12_000, 300, 40), (50.0, 2.5, 0.5), (-0.25, 0.001, 0.0)
    blocks = [
        {
            schema.NAME: name,
            schema.PARAMS: [f"{name}.weight"],
            schema.SIZE: size,
            schema.LARGEST: top,
            schema.SMALLEST: bottom,
            schema.HVPS: 110,
            schema.DENSITY: density(center),
        }
        for name, size, top, bottom, center in zip(names, sizes, largest, smallest, (0, 0.5, 1))
    ]
    values = {
        schema.BLOCKS: blocks,
        schema.GRID: GRID.tolist(),
        schema.DISTANCES: DISTANCES,
        schema.HETEROGENEITY: 0.4,
        schema.SPREAD: 100.0,
        schema.HETEROGENEOUS: True,
        schema.ADVICE: ADVICE,
        schema.HVPS: 330,
        **fields,
    }
    return analysis_record(schema.BLOCKWISE_SPECTRA, **values)


def with_record(folder, record: dict):
    write_run(folder, full=False)
    with open(folder / schema.RECORDS_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")
    return folder


def blocks_html(text: str) -> str:
    start = text.index('<section id="blockwise-spectra">')
    return text[start : text.index("</section>", start)]


def test_the_section_shows_each_block_and_the_distances_of_the_record(tmp_path):
    text = write_report(with_record(tmp_path, blocks_record())).read_text()
    assert sections(text) == ["verdicts", "overview", *CHALLENGES, "blockwise-spectra"]
    part = blocks_html(text)
    # One row per block; the last column is the mean of its row of distances over the others.
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", part)
    assert rows == [
        "emb</td><td>12,000</td><td>-0.25</td><td>50</td><td>0.4",
        "attn</td><td>300</td><td>0.001</td><td>2.5</td><td>0.3",
        "head</td><td>40</td><td>0</td><td>0.5</td><td>0.5",
    ]
    for fact in (
        "<th>blocks</th><td>3</td>",
        "<th>sharpness spread</th><td>100x (the largest block eigenvalue over the smallest "
        "positive one)</td>",
        "<th>mean Jensen-Shannon distance</th><td>0.4 (over pairs of blocks)</td>",
        "<th>most different pair</th><td>emb and head: 0.6</td>",
        "<th>heterogeneous</th><td>yes</td>",
        "<th>Hessian-vector products (of a block)</th><td>330</td>",
    ):
        assert fact in part
    assert f'<p class="remedy"><b>What it supports:</b> {ADVICE}</p>' in part
    # One figure: the densities (named in the legend, SVG text stays text) and the heat map.
    assert part.count("<svg") == 1 and text.count("<svg") == 3  # + the overview, the spikes
    assert ">each block's spectrum on its own scale</text>" in part
    assert ">emb</text>" in part and ">head</text>" in part
    assert "Not recorded" not in part and "could not be drawn" not in part
    # The ill-conditioning section points to it.
    assert '<a href="#blockwise-spectra">blockwise spectra</a>' in text


def test_without_the_record_there_is_no_section(tmp_path):
    for folder, full in ((tmp_path / "steps", False), (tmp_path / "full", True)):
        text = render_run(write_run(folder, full=full))
        assert sections(text) == ["verdicts", "overview", *CHALLENGES]
        assert "blockwise" not in text.split("<body>")[1].lower()  # the style sheet names it


def test_a_broken_record_says_what_is_missing(tmp_path):
    text = render_run(with_record(tmp_path / "a", blocks_record(**{schema.BLOCKS: "three"})))
    part = blocks_html(text)
    assert (
        "Not recorded in this run: the blocks of the &quot;blockwise_spectra&quot; analysis "
        "record." in part
    )
    assert f"{ADVICE}</p>" in part and "<svg" not in part
    # Distances of the wrong shape, densities of the wrong length: the table stays, the mean
    # distance is a dash, and the figure says what it lacks.
    broken = blocks_record(**{schema.DISTANCES: [[0.0, 1.0]], schema.GRID: [0.0, 1.0]})
    part = blocks_html(render_run(with_record(tmp_path / "b", broken)))
    assert "<tr><td>emb</td><td>12,000</td><td>-0.25</td><td>50</td><td>—</td></tr>" in part
    assert "<th>distances</th><td>not recorded as a matrix of one row per block</td>" in part
    assert (
        "Not recorded in this run: the blocks&#x27; densities or their distances in the "
        "blockwise_spectra record." in part
    )
    assert "could not be drawn" not in part


def test_block_names_are_escaped(tmp_path):
    text = render_run(with_record(tmp_path, blocks_record(names=(EVIL, "b", "c"))))
    assert "<script" not in text.lower()
    part = blocks_html(text)
    assert "<tr><td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in part
    assert "most different pair</th><td>&lt;script&gt;alert(1)&lt;/script&gt; and c: 0.6" in part


EXPERIMENT = """\
import torch
from torch import nn
import optiscope


def make(seed=0):
    gen = torch.Generator().manual_seed(seed)
    data = [(torch.randn(16, 4, generator=gen), torch.randint(0, 3, (16,), generator=gen))
            for _ in range(4)]
    x, y = torch.randn(64, 4, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return optiscope.Experiment(model, nn.CrossEntropyLoss(), data, opt, steps=6,
                                eval_data=(x, y), name="tiny-mlp")
"""


@pytest.fixture
def spec(tmp_path):
    (tmp_path / "tiny.py").write_text(EXPERIMENT)
    return f"{tmp_path / 'tiny.py'}:make"


def test_analyze_out_writes_a_run_whose_report_shows_the_blocks(tmp_path, spec, capsys):
    out = tmp_path / "run"
    assert main(["analyze", spec, "-k", "1", "--blocks", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] == str(out)
    log = read_records(out)
    assert log.header[schema.EXPERIMENT] == "tiny-mlp" and log.header[schema.STEPS] == 6
    assert [r[schema.STEP] for r in log.of_type(schema.STEP_RECORD)] == list(range(6))
    (rec,) = [r for r in log.of_type(schema.ANALYSIS) if r[schema.NAME] == "blockwise_spectra"]
    (point,) = [r for r in log.of_type(schema.ANALYSIS) if r[schema.NAME] == "final_point"]
    blocks = result["blocks"]
    # The record holds what the command printed, and each block's density on the grid.
    assert [b[schema.NAME] for b in rec[schema.BLOCKS]] == ["0", "2"]
    assert [b[schema.SIZE] for b in rec[schema.BLOCKS]] == [4 * 8 + 8, 8 * 3 + 3]
    for kept, shown in zip(rec[schema.BLOCKS], blocks["blocks"]):
        assert kept[schema.LARGEST] == shown["largest"]
        assert kept[schema.SMALLEST] == shown["smallest"]
        assert len(kept[schema.DENSITY]) == len(rec[schema.GRID]) == 221
        assert sum(kept[schema.DENSITY]) == pytest.approx(1.0, abs=1e-12)
    assert rec[schema.DISTANCES] == blocks["distances"]
    assert rec[schema.ADVICE] == blocks["advice"] and rec[schema.SPREAD] == blocks["spread"]
    assert point[schema.LOSS] == result["loss"]
    assert point[schema.KIND] == result["critical_point"]["kind"]
    assert (out / schema.FINDINGS_FILE).is_file()
    text = (out / schema.REPORT_FILE).read_text()
    assert sections(text) == ["verdicts", "overview", *CHALLENGES, "blockwise-spectra"]
    part = blocks_html(text)
    for b in blocks["blocks"]:
        assert f"<td>{b['largest']:.4g}</td>" in part
    assert html.escape(blocks["advice"]) in part
    # The Monitor leaves the training as it is: the same point as without --out.
    assert main(["analyze", spec, "-k", "1", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["loss"] == result["loss"] and plain["out"] is None
    assert plain["top_eigenvalues"] == result["top_eigenvalues"]


def test_analyze_out_of_a_checkpoint_records_no_steps(tmp_path, spec, capsys):
    import torch

    from optiscope.training.loading import load_experiment

    torch.save(load_experiment(spec).model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "run"
    argv = ["analyze", spec, "--checkpoint", str(tmp_path / "w.pt"), "-k", "1", "--out", str(out)]
    assert main(argv) == 0
    assert f"records, findings and report.html in {out}/" in capsys.readouterr().out
    log = read_records(out)
    assert list(log.of_type(schema.STEP_RECORD)) == []
    assert log.header[schema.CONFIG] == {"checkpoint": str(tmp_path / "w.pt")}
    assert [r[schema.NAME] for r in log.of_type(schema.ANALYSIS)] == ["final_point"]
    text = (out / schema.REPORT_FILE).read_text()
    assert sections(text) == ["verdicts", "overview", *CHALLENGES]
    assert "<h3>Final point</h3>" in text


def test_analyze_out_refuses_a_taken_folder_unless_told_to_overwrite(tmp_path, spec, capsys):
    taken = write_run(tmp_path / "taken", steps=3, full=False)
    assert main(["analyze", "--steps", "1", "--out", str(taken)]) == 2
    assert capsys.readouterr().err == (
        f"optiscope analyze: error: {str(taken)!r} already holds a run (one run per folder): "
        f"pass --overwrite to replace it, or a fresh folder, e.g. --out {taken}-2\n"
    )
    (tmp_path / "file").write_text("")
    assert main(["analyze", "--steps", "1", "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == (
        f"optiscope analyze: error: --out {str(tmp_path / 'file')!r} is an existing file: "
        "expected a folder (created if missing). Pass another --out\n"
    )
    assert main(["analyze", "--steps", "1", "--overwrite"]) == 2
    assert capsys.readouterr().err == (
        "optiscope analyze: error: --overwrite replaces the run in --out DIR, and no --out was "
        "given: pass --out DIR, or leave out --overwrite\n"
    )
    assert read_records(taken).header[schema.EXPERIMENT] == "synthetic"  # left as it was
    assert main(["analyze", spec, "-k", "1", "--out", str(taken), "--overwrite"]) == 0
    assert read_records(taken).header[schema.EXPERIMENT] == "tiny-mlp"
