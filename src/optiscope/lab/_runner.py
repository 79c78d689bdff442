"""The lab's runner: runs registered experiments, writes per experiment its numbers (JSON), its
figures and the claim's verdict, plus an index page."""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optiscope.core.files import write_atomic
from optiscope.lab._experiments import ORDER  # importing registers them
from optiscope.lab._framework import REGISTRY, Entry, Lab, LabError, Result


def names() -> list[str]:
    """The lab's experiments, in the chapter's order."""
    order = ORDER
    return sorted(REGISTRY, key=lambda n: order.index(n) if n in order else len(order))


def entry(name: str) -> Entry:
    """The registered experiment ``name``: its title, the claim it reproduces, its function."""
    if name not in REGISTRY:
        raise LabError(
            f"unknown lab experiment {name!r}: expected one of {', '.join(REGISTRY)} (or 'all')"
        )
    return REGISTRY[name]


def run(name: str, *, out: str | Path | None = None, seed: int = 0, small: bool = False) -> Result:
    """Run one experiment; with ``out``, write OUT/NAME/result.json and its figures."""
    found = entry(name)
    folder = None
    if out is not None:
        folder = Path(out) / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LabError(
                f"cannot create the output folder {str(folder)!r}: {err.strerror}. Pass another "
                "--out"
            ) from err
    lab = Lab(found, seed, small, folder)
    t0 = time.perf_counter()
    found.fn(lab)
    if lab._verdict is None:
        raise LabError(f"experiment {name!r} ended without stating its verdict")
    holds, criterion, numbers = lab._verdict
    result = Result(
        name=name,
        title=found.title,
        claim=found.claim,
        criterion=criterion,
        reproduced=holds,
        numbers=numbers,
        figures=lab.figures,
        seed=seed,
        small=small,
        seconds=time.perf_counter() - t0,
        notes=lab.notes,
    )
    if folder is not None:
        text = json.dumps(result.to_dict(), indent=1, allow_nan=False)
        write_atomic(folder / "result.json", text + "\n")
    return result


def run_all(
    *,
    out: str | Path | None = None,
    seed: int = 0,
    small: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Every experiment in order; with ``out``, also OUT/index.html and OUT/index.json."""
    results = []
    for name in names():
        if progress is not None:
            progress(name)
        results.append(run(name, out=out, seed=seed, small=small))
    if out is not None:
        write_index(Path(out), results)
    return results


def _number(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def write_index(out: Path, results: list[Result]) -> Path:
    """OUT/index.json and a self-contained OUT/index.html listing every experiment."""
    write_atomic(
        out / "index.json",
        json.dumps([r.to_dict() for r in results], indent=1, allow_nan=False) + "\n",
    )
    rows = []
    for r in results:
        mark = "reproduced" if r.reproduced else "not reproduced"
        figs = "".join(
            f'<a href="{html.escape(r.name)}/{html.escape(f)}"><img src="{html.escape(r.name)}/'
            f'{html.escape(f)}" alt="{html.escape(f)}" width="320"></a>'
            for f in r.figures
        )
        nums = ", ".join(
            f"{html.escape(k)} = {html.escape(_number(v))}"
            for k, v in r.numbers.items()
            if not isinstance(v, (list, dict))
        )
        rows.append(
            f'<section id="{html.escape(r.name)}"><h2>{html.escape(r.title)} '
            f'<span class="{mark.replace(" ", "-")}">{mark}</span></h2>'
            f"<p><b>Claim.</b> {html.escape(r.claim)}</p>"
            f"<p><b>Criterion.</b> {html.escape(r.criterion)}</p>"
            f"<p><b>Numbers.</b> {nums}</p>{figs}"
            f'<p class="small">seed {r.seed}, {r.seconds:.1f} s, <a href="{html.escape(r.name)}'
            f'/result.json">result.json</a></p></section>'
        )
    done = sum(r.reproduced for r in results)
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>optiscope lab</title><style>body{font-family:sans-serif;max-width:60em;"
        "margin:auto;padding:1em}.reproduced{color:#176d2d}.not-reproduced{color:#a4161a}"
        "h2 span{font-size:70%}.small{color:#666;font-size:85%}</style></head><body>"
        f"<h1>optiscope lab: Deep Learning sec. 8.2</h1><p>{done} of {len(results)} claims "
        f"reproduced on this run.</p>{''.join(rows)}</body></html>\n"
    )
    return write_atomic(out / "index.html", page)
