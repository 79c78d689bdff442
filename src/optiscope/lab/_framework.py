"""The lab's framework: a registry of experiments, each reproducing one claim of Deep Learning
sec. 8.2, and what an experiment is given (:class:`Lab`) and returns (:class:`Result`).

An experiment is a function ``fn(lab: Lab) -> None`` registered with :func:`experiment`. It
measures with optiscope's public API, draws with ``lab.figure(name, draw)`` and states its
verdict once with ``lab.verdict(holds, criterion, **numbers)``: a claim that does not hold on the
run is reported as not reproduced, never forced. ``lab.small`` asks for the reduced size the
tests run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optiscope.core.data import digits as load
from optiscope.core.errors import OptiscopeError
from optiscope.records.log import encode
from optiscope.report.plot import PlotUnavailable, _figure, _save


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

        return encode(self.__dict__.copy())


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

    x, y = load(dtype or torch.float32)
    if seed is not None:
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        return x[idx], y[idx]
    return x[:n], y[:n]
