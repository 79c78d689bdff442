"""The lab's machinery: a registry of experiments, each reproducing one claim of Deep Learning
sec. 8.2, and a runner that writes per experiment its numbers (JSON), its figures and the claim's
verdict, plus an index page.

An experiment is a function ``fn(lab: Lab) -> None`` registered with :func:`experiment`. It
measures with optiscope's public API, draws with ``lab.figure(name, draw)`` and states its
verdict once with ``lab.verdict(holds, criterion, **numbers)``: a claim that does not hold on the
run is reported as not reproduced, never forced. ``lab.small`` asks for the reduced size the
tests run.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optiscope._errors import OptiscopeError


class LabError(OptiscopeError):
    """An unknown experiment, or an experiment that broke its own contract."""


@dataclass
class Entry:
    name: str
    title: str
    claim: str
    fn: Callable[[Lab], None]


REGISTRY: dict[str, Entry] = {}


def experiment(name: str, title: str, claim: str) -> Callable[[Callable[[Lab], None]], Any]:
    """Register ``fn`` as the lab experiment ``name`` reproducing ``claim``."""

    def wrap(fn: Callable[[Lab], None]) -> Callable[[Lab], None]:
        REGISTRY[name] = Entry(name, title, claim, fn)
        return fn

    return wrap


@dataclass
class Result:
    """What one experiment found: the claim, the stated criterion, whether it held on this run
    (``reproduced``), the numbers behind it, and the figures written."""

    name: str
    title: str
    claim: str
    criterion: str
    reproduced: bool
    numbers: dict[str, Any]
    figures: list[str]
    seed: int
    small: bool
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from optiscope._records import _encode

        return _encode(self.__dict__.copy())


class Lab:
    """What an experiment gets: its seed and size, where figures go, and how to state its
    verdict."""

    def __init__(self, entry: Entry, seed: int, small: bool, out: Path | None) -> None:
        self.entry, self.seed, self.small, self.out = entry, seed, small, out
        self.figures: list[str] = []
        self.notes: list[str] = []
        self._verdict: tuple[bool, str, dict[str, Any]] | None = None

    def figure(
        self, name: str, draw: Callable[[Any], None], width: float = 6.4, height: float = 4.4
    ) -> None:
        """Draw ``draw(fig)`` on a new matplotlib Figure and save it as OUT/NAME.png; skipped
        (and noted) without an output folder or without matplotlib."""
        if self.out is None:
            return
        from optiscope._plot import PlotUnavailable, _figure, _save

        try:
            fig = _figure(width, height)
        except PlotUnavailable as err:
            self.notes.append(f"no figure {name}: {err}")
            return
        draw(fig)
        _save(fig, self.out / f"{name}.png")
        self.figures.append(f"{name}.png")

    def verdict(self, holds: bool, criterion: str, **numbers: Any) -> None:
        """The claim's verdict on this run, the criterion it was judged by, and the numbers."""
        if self._verdict is not None:
            raise LabError(f"experiment {self.entry.name!r} stated its verdict twice")
        self._verdict = (bool(holds), criterion, numbers)


def digits(n: int | None = None, *, seed: int | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """scikit-learn's bundled digits, pixels in [0, 1] (float32 unless ``dtype``): the first
    ``n`` samples, or ``n`` drawn at random under ``seed``."""
    import torch

    from optiscope._data import digits as load

    x, y = load(dtype or torch.float32)
    if seed is not None:
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        return x[idx], y[idx]
    return x[:n], y[:n]


def names() -> list[str]:
    """The lab's experiments, in the chapter's order."""
    order = _load()
    return sorted(REGISTRY, key=lambda n: order.index(n) if n in order else len(order))


def _load() -> tuple[str, ...]:
    from optiscope.lab._experiments import ORDER  # importing registers them

    return ORDER


def run(name: str, *, out: str | Path | None = None, seed: int = 0, small: bool = False) -> Result:
    """Run one experiment; with ``out``, write OUT/NAME/result.json and its figures."""
    _load()
    if name not in REGISTRY:
        raise LabError(
            f"unknown lab experiment {name!r}: expected one of {', '.join(REGISTRY)} (or 'all')"
        )
    entry = REGISTRY[name]
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
    lab = Lab(entry, seed, small, folder)
    t0 = time.perf_counter()
    entry.fn(lab)
    if lab._verdict is None:
        raise LabError(f"experiment {name!r} ended without stating its verdict")
    holds, criterion, numbers = lab._verdict
    result = Result(
        name=name,
        title=entry.title,
        claim=entry.claim,
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
        (folder / "result.json").write_text(text + "\n")
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
    (out / "index.json").write_text(
        json.dumps([r.to_dict() for r in results], indent=1, allow_nan=False) + "\n"
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
    path = out / "index.html"
    path.write_text(page)
    return path
