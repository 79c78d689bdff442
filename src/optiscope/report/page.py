"""The HTML report of a run: its findings and records rendered to one self-contained page.

:func:`render_report` renders what it is given (the records and the findings as dicts) and
computes nothing but pictures: it reads no file and diagnoses nothing, and a section whose data
is missing says so instead of failing. Reading a run folder, and recomputing the findings it
lacks, is :func:`optiscope.runner.report.write_report`'s job. Figures are inline SVG drawn by
matplotlib, imported lazily; without it the report keeps its text and tables. Nothing in the
page reaches the network.
"""

from __future__ import annotations

import functools
import html
import io
import itertools
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optiscope.core.errors import OptiscopeError
from optiscope.core.stats import finite, number
from optiscope.diagnosis.findings import (
    CHALLENGES,
    CLIFFS,
    ILL_CONDITIONING,
    INEXACT_GRADIENTS,
    LOCAL_GLOBAL_MISMATCH,
    LOCAL_MINIMA,
    LONG_TERM_DEPENDENCIES,
    SADDLE_POINTS,
    STATEMENT,
    THEORETICAL_LIMITS,
    Severity,
)
from optiscope.records import schema
from optiscope.records.log import Records, series, step_of
from optiscope.report.plot import _spans_decades

# A line of more points than this is thinned to min/max buckets (a pixel cannot show more).
MAX_POINTS = 1000
_SEVERITY_COLOURS = {
    Severity.OK: "#2e7d32",
    Severity.INFO: "#1565c0",
    Severity.WARNING: "#ef8f00",
    Severity.CRITICAL: "#c62828",
    Severity.ERROR: "#6a1b9a",
    STATEMENT: "#546e7a",
}
_TITLES = {
    ILL_CONDITIONING: "Ill-conditioning",
    LOCAL_MINIMA: "Local minima",
    SADDLE_POINTS: "Plateaus, saddle points and flat regions",
    CLIFFS: "Cliffs and exploding gradients",
    LONG_TERM_DEPENDENCIES: "Long-term dependencies",
    INEXACT_GRADIENTS: "Inexact gradients",
    LOCAL_GLOBAL_MISMATCH: "Poor correspondence between local and global structure",
    THEORETICAL_LIMITS: "Theoretical limits of optimization",
}


class ReportError(OptiscopeError):
    """A run folder that cannot be turned into a report."""


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML, attributes included."""
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------------------------------------
# What is rendered


@dataclass
class _Run:
    header: dict[str, Any]
    records: list[dict[str, Any]]
    truncated: bool
    findings: list[Mapping[str, Any]]
    findings_note: str

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps and values of a numeric step quantity, as records.log.series reads them."""
        steps, values = series(self.records, name)
        return np.array(steps, dtype=np.float64), np.array(values, dtype=np.float64)

    def analysis(self, name: str) -> dict[str, Any] | None:
        found = None
        for r in self.records:
            if r.get(schema.TYPE) == schema.ANALYSIS and r.get(schema.NAME) == name:
                found = r  # the last one recorded wins
        return found


def _float(x: Any) -> float:
    """``x`` as a float, NaN where it is no number (a record read back may hold anything)."""
    v = number(x)
    return math.nan if v is None else v


# ---------------------------------------------------------------------------------------------
# Numbers to text


def _fmt(value: Any, depth: int = 0) -> str:
    """A short readable form of an evidence value (plain text, escaped later)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}"
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:197] + "..."
    if isinstance(value, Mapping):
        if depth >= 1:
            return "{...}"
        items = [f"{k}: {_fmt(v, depth + 1)}" for k, v in list(value.items())[:6]]
        more = ", ..." if len(value) > 6 else ""
        return "{" + ", ".join(items) + more + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        if depth >= 1:
            return f"[{len(value)} items]"
        shown = ", ".join(_fmt(v, depth + 1) for v in value[:8])
        return f"[{shown}{f', ... ({len(value)} in all)' if len(value) > 8 else ''}]"
    return str(value)


def _table(rows: Iterable[tuple[Any, Any]], cls: str = "kv") -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_fmt(v))}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>' if body else ""


def _missing(what: str) -> str:
    return f'<p class="missing">Not recorded in this run: {esc(what)}.</p>'


# ---------------------------------------------------------------------------------------------
# Figures


class _NoData(Exception):
    """A figure whose data the run did not record; the message says what is missing."""


def decimate(
    x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``limit`` points of the finite ``(x, y)``: the min and max of each bucket,
    so spikes survive the thinning."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size <= limit:
        return x, y
    buckets = max(1, limit // 2)
    edges = np.linspace(0, x.size, buckets + 1).astype(int)
    idx: list[int] = []
    for lo, hi in itertools.pairwise(edges):
        if hi <= lo:
            continue
        seg = y[lo:hi]
        a, b = lo + int(np.argmin(seg)), lo + int(np.argmax(seg))
        idx.extend(sorted({a, b}))
    sel = np.array(idx, dtype=int)
    return x[sel], y[sel]


def _has(y: np.ndarray) -> bool:
    return bool(np.isfinite(y).any())


def _line(ax: Any, x: np.ndarray, y: np.ndarray, **kw: Any) -> None:
    dx, dy = decimate(x, y)
    if dx.size > 200:  # markers on a dense line only blur it and weigh on the file
        kw.pop("marker", None)
    ax.plot(dx, dy, **kw)


def _finish(ax: Any, *, log_of: Sequence[np.ndarray] = (), legend: bool = True) -> None:
    if log_of and _spans_decades(np.concatenate(log_of)):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    # Text stays text (a small, searchable file) and each figure gets its own id salt so that
    # clip paths of two figures in one page never share an id.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": str(id(fig))}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return _inline(buf.getvalue())


def _inline(text: str) -> str:
    """The ``<svg>`` element alone: no XML prolog, and no RDF metadata (its namespace URLs would
    be the only addresses in an offline page)."""
    text = text[text.find("<svg") :]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.DOTALL)


def _plot_file(draw: Callable[[Path], Any]) -> str:
    """An SVG drawn by one of :mod:`optiscope.report.plot`'s file-writing functions."""
    import matplotlib

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.svg"
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": tmp}):
            draw(path)
        return _inline(path.read_text(encoding="utf-8"))


@dataclass
class _Figure:
    caption: str
    draw: Callable[[_Run], str]  # the SVG text; raises _NoData when the run lacks the data


class _Renderer:
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.plots = True
        self.figures = 0

    def figure(self, fig: _Figure) -> str:
        if not self.plots:
            return ""
        from optiscope.report.plot import PlotUnavailable

        try:
            svg = fig.draw(self.run)
        except _NoData as err:
            return _missing(str(err))
        except PlotUnavailable:
            self.plots = False
            return ""
        except Exception as err:  # a figure must never cost the run its report
            why = esc(f"{type(err).__name__}: {err}")
            return f'<p class="missing">The figure could not be drawn ({why}).</p>'
        self.figures += 1
        return f"<figure>{svg}<figcaption>{esc(fig.caption)}</figcaption></figure>"


def _new(width: float = 6.4, height: float = 3.4) -> Any:
    from optiscope.report import plot as _plot

    return _plot._figure(width, height)


def _need(run: _Run, *names: str) -> list[tuple[np.ndarray, np.ndarray]]:
    out = [run.series(n) for n in names]
    absent = [n for n, (_, y) in zip(names, out) if not _has(y)]
    if len(absent) == len(names):
        raise _NoData(", ".join(f'"{n}"' for n in names) + " in the step records")
    return out


def _fig_overview(run: _Run) -> str:
    (s_l, loss), (s_g, gnorm) = _need(run, schema.LOSS, schema.GRAD_NORM)
    fig = _new(10.0, 3.4)
    ax1, ax2 = fig.subplots(1, 2)
    if _has(loss):
        _line(ax1, s_l, loss, color="C0", linewidth=1)
    ax1.set(xlabel="step", ylabel="loss", title="training loss")
    _finish(ax1, log_of=[loss])
    if _has(gnorm):
        _line(ax2, s_g, gnorm, color="C1", linewidth=1)
    ax2.set(xlabel="step", ylabel="|g|", title="gradient norm")
    _finish(ax2, log_of=[gnorm])
    return _svg(fig)


def _fig_curvature(run: _Run) -> str:
    (s1, gtg), (s2, gthg) = _need(run, schema.GTG, schema.GTHG)
    fig = _new()
    ax = fig.add_subplot()
    if _has(gtg):
        _line(ax, s1, gtg, color="C0", marker=".", markersize=3, label="g^T g")
    if _has(gthg):
        _line(ax, s2, gthg, color="C3", marker=".", markersize=3, label="g^T H g")
    ax.set(xlabel="step", title="gradient norm squared and curvature along the gradient")
    _finish(ax, log_of=[gtg, gthg])
    return _svg(fig)


def _fig_sharpness(run: _Run) -> str:
    (s1, sharp), (s2, thr) = _need(run, schema.SHARPNESS, schema.STABILITY_THRESHOLD)
    if not _has(sharp):
        raise _NoData(f'"{schema.SHARPNESS}" in the step records')
    # Adam's threshold, and that of groups with their own rates, apply to P^-1 H.
    pre = any(
        step_of(r) is not None and r[schema.VALUES].get(schema.THRESHOLD_PRECONDITIONED) is True
        for r in run.records
    )
    what = "of P^-1 H" if pre else "of H"
    fig = _new()
    ax = fig.add_subplot()
    _line(ax, s1, sharp, color="C0", marker=".", markersize=4, label=f"top eigenvalue {what}")
    if _has(thr):
        _line(ax, s2, thr, color="C3", linestyle="--", label="the optimizer's stability threshold")
    ax.set(xlabel="step", ylabel="eigenvalue", title="sharpness against the stability threshold")
    _finish(ax, log_of=[sharp, thr])
    return _svg(fig)


def _fig_prediction(run: _Run) -> str:
    pairs: list[tuple[float, float]] = []
    for r in run.records:
        if step_of(r) is None:
            continue
        vals = r[schema.VALUES]
        p, a = vals.get(schema.PREDICTED_CHANGE), vals.get(schema.ACTUAL_CHANGE)
        if finite(p) and finite(a):
            pairs.append((_float(p), _float(a)))
    if not pairs:
        raise _NoData(
            f'"{schema.PREDICTED_CHANGE}" and "{schema.ACTUAL_CHANGE}" in the step records'
        )
    xy = np.array(pairs)
    if len(xy) > MAX_POINTS:  # a scatter has no order to bucket by: keep an even sample
        xy = xy[np.linspace(0, len(xy) - 1, MAX_POINTS).astype(int)]
    fig = _new(5.0, 3.8)
    ax = fig.add_subplot()
    ax.scatter(xy[:, 0], xy[:, 1], s=8, color="C0", label="one step")
    lo, hi = float(xy.min()), float(xy.max())
    ax.plot(
        [lo, hi], [lo, hi], color="0.5", linestyle="--", linewidth=1, label="actual = predicted"
    )
    ax.axhline(0, color="0.8", linewidth=0.8)
    ax.axvline(0, color="0.8", linewidth=0.8)
    ax.set(
        xlabel="predicted change  -lr g^T g + lr^2/2 g^T H g",
        ylabel="actual change of the loss",
        title="second-order prediction of each step",
    )
    _finish(ax)
    return _svg(fig)


def _fig_density(run: _Run) -> str:
    rec = run.analysis(schema.SPECTRAL_DENSITY)
    if (
        rec is None
        or not isinstance(rec.get(schema.GRID), list)
        or not isinstance(rec.get(schema.DENSITY), list)
    ):
        raise _NoData(
            f'the "{schema.SPECTRAL_DENSITY}" analysis record (Hessian spectrum at the final point)'
        )
    grid = np.array([_float(v) for v in rec[schema.GRID]], dtype=np.float64)
    dens = np.array([_float(v) for v in rec[schema.DENSITY]], dtype=np.float64)
    n = min(grid.size, dens.size)
    grid, dens = grid[:n], dens[:n]
    keep = np.isfinite(grid) & np.isfinite(dens)
    if not keep.any():
        raise _NoData("a finite Hessian spectral density")
    fig = _new()
    ax = fig.add_subplot()
    ax.fill_between(grid[keep], dens[keep], color="C0", alpha=0.3)
    ax.plot(grid[keep], dens[keep], color="C0", linewidth=1)
    if (dens[keep] > 0).sum() > 1 and _spans_decades(dens[keep][dens[keep] > 0]):
        ax.set_yscale("log")
        top = float(dens[keep].max())
        ax.set_ylim(max(float(dens[keep][dens[keep] > 0].min()), top * 1e-8), top * 3)
    ax.axvline(0.0, color="C3", linestyle="--", linewidth=1, label="zero")
    frac = rec.get(schema.FRACTION_NEGATIVE)
    label = f"negative mass {_float(frac):.2%}" if finite(frac) else ""
    sigma = rec.get(schema.SIGMA)
    title = "Hessian spectral density at the final point"
    if finite(sigma):
        title += f" (smoothing {_float(sigma):.3g})"
    ax.set(xlabel="eigenvalue", ylabel="density", title=title)
    if label:
        ax.text(0.98, 0.95, label, transform=ax.transAxes, ha="right", va="top", color="C3")
    _finish(ax)
    return _svg(fig)


def _fig_lambda_min(run: _Run) -> str:
    ((s, lam),) = _need(run, schema.LAMBDA_MIN)
    fig = _new(6.4, 3.0)
    ax = fig.add_subplot()
    _line(ax, s, lam, color="C2", marker=".", markersize=4)
    ax.axhline(0.0, color="0.5", linestyle="--", linewidth=1)
    ax.set(xlabel="step", ylabel="lambda_min", title="smallest Hessian eigenvalue")
    _finish(ax, legend=False)
    return _svg(fig)


def _running_median(y: np.ndarray, window: int = 20) -> np.ndarray:
    """The median of the previous ``window`` finite values before each point (the cliff
    detector's reference)."""
    out = np.full(y.shape, math.nan)
    if y.size < 2:
        return out
    padded = np.concatenate([np.full(window, math.nan), y])
    views = np.lib.stride_tricks.sliding_window_view(padded[:-1], window)
    with np.errstate(all="ignore"):
        finite = np.isfinite(views).any(axis=1)
        out[finite] = np.nanmedian(views[finite], axis=1)
    return out


def _fig_cliffs(run: _Run) -> str:
    ((s, g),) = _need(run, schema.GRAD_NORM)
    med = _running_median(g)
    with np.errstate(invalid="ignore"):
        spikes = np.isfinite(g) & np.isfinite(med) & (g > 10 * med)
    fig = _new()
    ax = fig.add_subplot()
    _line(ax, s, g, color="C1", linewidth=1, label="gradient norm")
    _line(ax, s, med, color="0.4", linestyle="--", linewidth=1, label="running median (20 steps)")
    if spikes.any():
        ax.plot(
            s[spikes][:200],
            g[spikes][:200],
            "v",
            color="C3",
            label=f"spike > 10x median ({int(spikes.sum())})",
        )
    ax.set(xlabel="step", ylabel="|g|", title="gradient norm and its spikes")
    _finish(ax, log_of=[g])
    return _svg(fig)


def _fig_update_ratio(run: _Run) -> str:
    ((s, r),) = _need(run, schema.UPDATE_RATIO)
    fig = _new(6.4, 3.0)
    ax = fig.add_subplot()
    _line(ax, s, r, color="C4", linewidth=1)
    ax.set(xlabel="step", ylabel="|update| / |params|", title="size of each update")
    _finish(ax, log_of=[r], legend=False)
    return _svg(fig)


def _hidden_modules(run: _Run) -> dict[str, list[tuple[float, list[float]]]]:
    modules: dict[str, list[tuple[float, list[float]]]] = {}
    for r in run.records:
        if r.get(schema.TYPE) != schema.HIDDEN_GRADIENTS or not isinstance(
            r.get(schema.NORMS), list
        ):
            continue
        step = number(r.get(schema.STEP))
        norms = [_float(v) for v in r[schema.NORMS]]
        if step is not None and norms:
            modules.setdefault(str(r.get(schema.MODULE, "?")), []).append((step, norms))
    return modules


def _heatmap(name: str, rows: list[tuple[float, list[float]]], _run: _Run) -> str:
    from matplotlib import colors

    rows = rows[-200:] if len(rows) > 200 else rows
    width = max(len(n) for _, n in rows)
    z = np.full((len(rows), width), math.nan)
    for i, (_, norms) in enumerate(rows):
        z[i, : len(norms)] = norms
    positive = z[np.isfinite(z) & (z > 0)]
    fig = _new(6.4, 3.2)
    ax = fig.add_subplot()
    if positive.size == 0:
        ax.text(
            0.5, 0.5, "no positive finite norm", ha="center", va="center", transform=ax.transAxes
        )
    else:
        lo, hi = float(positive.min()), float(positive.max())
        norm: Any = colors.LogNorm(lo, hi if hi > lo else lo * 10)
        masked = np.ma.masked_where(~(np.isfinite(z) & (z > 0)), z)
        image = ax.imshow(
            masked, aspect="auto", origin="lower", norm=norm, cmap="magma", interpolation="nearest"
        )
        fig.colorbar(image, ax=ax, label="|dL/dh_t| (log scale)")
        ticks = np.linspace(0, len(rows) - 1, min(len(rows), 6)).astype(int)
        ax.set_yticks(ticks, labels=[f"{rows[t][0]:.0f}" for t in ticks])
    ax.set(
        xlabel="time step t", ylabel="training step", title=f"hidden-state gradient norms: {name}"
    )
    return _svg(fig)


def _fig_noise(run: _Run) -> str:
    (s1, g2), (s2, tr), (s3, batch) = _need(
        run, schema.GRAD_NORM_SQ_UNBIASED, schema.TRACE_COV, schema.BATCH_SIZE
    )
    pairs = {}
    for s, v in zip(s1, g2):
        pairs[s] = [v, math.nan, math.nan]
    for s, v in zip(s2, tr):
        pairs.setdefault(s, [math.nan] * 3)[1] = v
    for s, v in zip(s3, batch):
        pairs.setdefault(s, [math.nan] * 3)[2] = v
    usable = [
        (s, v)
        for s, v in sorted(pairs.items())
        if v[0] > 0 and math.isfinite(v[0]) and v[1] >= 0 and math.isfinite(v[1])
    ]
    if not usable:
        raise _NoData(
            f'a positive "{schema.GRAD_NORM_SQ_UNBIASED}" with a finite "{schema.TRACE_COV}" at '
            "one step"
        )
    step, (gsq, trc, b) = usable[-1]
    bs = np.geomspace(1, max(1e4, 10 * (b if math.isfinite(b) else 1), 10 * trc / gsq), 200)
    share = (trc / bs) / (gsq + trc / bs)
    fig = _new()
    ax = fig.add_subplot()
    ax.plot(bs, share, color="C0", label="noise share  (trΣ/B) / (|G|² + trΣ/B)")
    b_simple = trc / gsq
    ax.axvline(b_simple, color="C2", linestyle="--", label=f"B_simple = trΣ/|G|² = {b_simple:.3g}")
    if math.isfinite(b) and b > 0:
        ax.axvline(b, color="C3", label=f"batch in use = {b:.0f}")
        here = (trc / b) / (gsq + trc / b)
        ax.plot([b], [here], "o", color="C3")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set(
        xlabel="batch size B",
        ylabel="share of noise in the minibatch gradient",
        title=f"gradient noise against batch size (step {step:.0f})",
    )
    _finish(ax, legend=False)
    ax.legend(loc="lower left", fontsize="small")  # the curve falls from the top left
    return _svg(fig)


def _fig_b_simple(run: _Run) -> str:
    (s, bsim), (s2, batch) = _need(run, schema.B_SIMPLE, schema.BATCH_SIZE)
    if not _has(bsim):
        raise _NoData(f'"{schema.B_SIMPLE}" in the step records')
    fig = _new(6.4, 3.0)
    ax = fig.add_subplot()
    _line(ax, s, bsim, color="C2", marker=".", markersize=4, label="critical batch size B_simple")
    if _has(batch):
        _line(ax, s2, batch, color="C3", linestyle="--", label="batch in use")
    ax.set(xlabel="step", ylabel="batch size", title="critical batch size over training")
    _finish(ax, log_of=[bsim, batch])
    return _svg(fig)


def _numbers(values: Any) -> list[float]:
    if not isinstance(values, list):
        return []
    return [_float(v) for v in values]


def _fig_interpolation(run: _Run) -> str:
    from optiscope.report import plot as _plot

    rec = run.analysis(schema.INTERPOLATION)
    alphas, losses = (
        _numbers(rec.get(schema.ALPHAS)) if rec else [],
        _numbers(rec.get(schema.LOSSES)) if rec else [],
    )
    if rec is None or len(alphas) < 2 or len(alphas) != len(losses):
        raise _NoData(f'the "{schema.INTERPOLATION}" analysis record (loss on the straight path)')
    barrier = _float(rec.get(schema.BARRIER))
    return _plot_file(
        lambda p: _plot.interpolation(
            p, alphas, losses, barrier, title="loss on the straight path from the start to the end"
        )
    )


def _fig_surface(run: _Run) -> str:
    from optiscope.report import plot as _plot

    rec = run.analysis(schema.SURFACE)
    if rec is None:
        raise _NoData(f'the "{schema.SURFACE}" analysis record (loss on the trajectory\'s plane)')
    xs, ys = _numbers(rec.get(schema.XS)), _numbers(rec.get(schema.YS))
    losses = rec.get(schema.LOSSES)
    if len(xs) < 2 or len(ys) < 2 or not isinstance(losses, list) or len(losses) != len(ys):
        raise _NoData("a complete loss surface (xs, ys and losses)")
    grid = [_numbers(row) for row in losses]
    if any(len(row) != len(xs) for row in grid):
        raise _NoData("a complete loss surface (a row of losses has the wrong length)")
    traj = run.analysis(schema.TRAJECTORY)
    coords = traj.get(schema.COORDS) if traj else None
    path = None
    if (
        isinstance(coords, list)
        and coords
        and all(isinstance(c, list) and len(c) >= 2 for c in coords)
    ):
        path = [[_numbers(c)[0], _numbers(c)[1]] for c in coords]
    explained = _numbers(rec.get(schema.EXPLAINED))
    labels = [
        f"direction {i + 1}"
        + (
            f" ({explained[i]:.0%} of the variance)"
            if i < len(explained) and math.isfinite(explained[i])
            else ""
        )
        for i in range(2)
    ]
    return _plot_file(
        lambda p: _plot.surface(
            p,
            xs,
            ys,
            grid,
            trajectory=path,
            xlabel=labels[0],
            ylabel=labels[1],
            title="loss surface with the training trajectory",
        )
    )


# ---------------------------------------------------------------------------------------------
# Sections


_OVERVIEW = _Figure(
    "Loss and gradient norm against the step (log scale where they span decades).", _fig_overview
)
_FIGURES: dict[str, list[_Figure]] = {
    ILL_CONDITIONING: [
        _Figure(
            "g^T g and g^T H g at each curvature measurement: ill-conditioning shows as "
            "g^T H g growing while g^T g does not shrink.",
            _fig_curvature,
        ),
        _Figure(
            "Sharpness (the top Hessian eigenvalue; of the preconditioned Hessian P^-1 H under "
            "Adam) against the optimizer's stability threshold (2/lr for plain SGD).",
            _fig_sharpness,
        ),
        _Figure(
            "The second-order prediction of each step's change against the change that came.",
            _fig_prediction,
        ),
    ],
    SADDLE_POINTS: [
        _Figure(
            "Hessian eigenvalue density at the final point (stochastic Lanczos quadrature); "
            "mass left of zero is negative curvature.",
            _fig_density,
        ),
        _Figure("The smallest Hessian eigenvalue during training.", _fig_lambda_min),
    ],
    CLIFFS: [
        _Figure(
            "Gradient norm against its running median; spikes above 10x the median are marked.",
            _fig_cliffs,
        ),
        _Figure("Update norm relative to the parameter norm.", _fig_update_ratio),
    ],
    INEXACT_GRADIENTS: [
        _Figure(
            "Share of the minibatch gradient's squared norm that is noise, against the batch "
            "size, from the last measurement.",
            _fig_noise,
        ),
        _Figure(
            "The critical batch size B_simple = tr(Σ)/|G|² over training, with the batch in use.",
            _fig_b_simple,
        ),
    ],
    LOCAL_GLOBAL_MISMATCH: [
        _Figure(
            "Loss on the straight line from the initial point to the final point.",
            _fig_interpolation,
        ),
        _Figure(
            "Loss on the plane of the trajectory's first two principal components, with the "
            "trajectory drawn on it.",
            _fig_surface,
        ),
    ],
}


def _section_id(challenge: str) -> str:
    clean = "".join(c if c.isalnum() or c in "-_" else "-" for c in challenge.lower())
    return clean or "challenge"


def _label(finding: Mapping[str, Any] | None) -> str:
    """What the severity cell says: the severity, "statement" for a finding that reads nothing
    from the run, "none" where no finding was recorded."""
    if finding is None:
        return "none"
    if finding.get(schema.MEASURED) is False:
        return STATEMENT
    return str(finding.get(schema.SEVERITY))


def _badge(finding: Mapping[str, Any] | None) -> str:
    label = _label(finding)
    colour = _SEVERITY_COLOURS.get(label, "#616161")
    return f'<span class="sev" style="background:{colour}">{esc(label)}</span>'


def _finding_section(r: _Renderer, challenge: str, finding: Mapping[str, Any] | None) -> str:
    sid = _section_id(challenge)
    title = _TITLES.get(challenge, challenge)
    parts = [f'<section id="{esc(sid)}"><h2>{esc(title)} {_badge(finding)}</h2>']
    if finding is None:
        parts.append('<p class="missing">No verdict was recorded for this challenge.</p>')
    else:
        label = _label(finding)
        cls = {STATEMENT: "summary statement", Severity.ERROR: "summary error"}.get(
            label, "summary"
        )
        parts.append(f'<p class="{cls}">{esc(finding.get(schema.SUMMARY, ""))}</p>')
        if label == Severity.ERROR:
            parts.append(
                '<p class="missing">No verdict: the detector failed on these records, a bug in '
                "optiscope (please report it with the records file); the other verdicts stand.</p>"
            )
        evidence = finding.get(schema.EVIDENCE)
        if isinstance(evidence, Mapping) and evidence:
            parts.append("<h3>Evidence</h3>" + _table(evidence.items()))
        remedy = finding.get(schema.REMEDY)
        if remedy:
            parts.append(f'<p class="remedy"><b>What to try:</b> {esc(remedy)}</p>')
    parts.append(_extras(r, challenge))
    figures = "".join(r.figure(fig) for fig in _FIGURES.get(challenge, []))
    if figures:
        parts.append(f'<div class="figures">{figures}</div>')
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


_FINAL_POINT_FIELDS = (
    schema.KIND,
    schema.CURVATURE,
    schema.LOSS,
    schema.GRADIENT_NORM,
    schema.LAMBDA_MAX,
    schema.LAMBDA_MIN,
    schema.INDEX,
    schema.REASON,
)


def _extras(r: _Renderer, challenge: str) -> str:
    run = r.run
    if challenge == LOCAL_MINIMA:
        return (
            '<p>The loss and the gradient norm over the run are in the <a href="#overview">'
            "overview</a>: a stalled loss whose gradient norm does not shrink is not a minimum.</p>"
        )
    if challenge == SADDLE_POINTS:
        rec = run.analysis(schema.FINAL_POINT)
        if rec is None:
            return _missing(
                f'the "{schema.FINAL_POINT}" analysis record (curvature at the final point)'
            )
        return "<h3>Final point</h3>" + _table((k, rec[k]) for k in _FINAL_POINT_FIELDS if k in rec)
    if challenge == LONG_TERM_DEPENDENCIES:
        modules = _hidden_modules(run)
        if not modules:
            return _missing(
                f'hidden-state gradients (a recurrent model\'s "{schema.HIDDEN_GRADIENTS}" records)'
            )
        out = []
        for name, rows in list(modules.items())[:4]:
            out.append(
                r.figure(
                    _Figure(
                        f"Gradient norm of the loss with respect to the hidden state of {name} at "
                        "each time step (rows: training steps measured).",
                        functools.partial(_heatmap, name, rows),
                    )
                )
            )
        return f'<div class="figures">{"".join(out)}</div>'
    if challenge == LOCAL_GLOBAL_MISMATCH:
        traj = run.analysis(schema.TRAJECTORY)
        if traj and traj.get(schema.ERROR):
            return _missing(f"the trajectory's plane ({traj[schema.ERROR]})")
    if challenge == THEORETICAL_LIMITS:
        return "<p>No figure: this limit is a theorem about the problem, not a measurement.</p>"
    return ""


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;
 max-width:1100px;margin:0 auto;padding:1.5em 2em;line-height:1.45;background:#fff}
h1{margin:0 0 .2em;font-size:1.7em}h2{margin-top:0;font-size:1.3em}
h3{font-size:1em;margin:.8em 0 .3em}
.desc{color:#555;margin:0 0 1em}
section{border-top:1px solid #ddd;padding:1.2em 0}
table{border-collapse:collapse;margin:.4em 0 .8em;font-size:.92em}
th,td{border-bottom:1px solid #eee;padding:.25em .8em .25em 0;text-align:left;vertical-align:top}
table.kv th{font-weight:normal;color:#555;font-family:ui-monospace,Menlo,Consolas,monospace}
table.kv td{font-family:ui-monospace,Menlo,Consolas,monospace}
table.verdicts td,table.verdicts th{padding:.35em .9em .35em 0}
table.verdicts th{color:#555;font-weight:600;border-bottom:2px solid #ddd}
.sev{display:inline-block;color:#fff;border-radius:3px;padding:0 .5em;font-size:.8em;
 font-weight:600;vertical-align:middle;text-transform:uppercase;letter-spacing:.03em}
.missing{color:#777;font-style:italic}
.note{background:#fff4e5;border-left:4px solid #ef8f00;padding:.5em .8em}
.remedy{background:#f3f7fb;border-left:4px solid #1565c0;padding:.5em .8em}
.statement{background:#f5f7f8;border-left:4px solid #546e7a;padding:.5em .8em}
.error{color:#6a1b9a}
.figures{display:flex;flex-wrap:wrap;gap:0 2em;align-items:flex-start}
.figures>.missing{flex-basis:100%}
figure{margin:.8em 0 1.2em;flex:1 1 460px;max-width:640px}
figure svg{max-width:100%;height:auto;display:block}
#overview figure{max-width:100%}
figcaption{color:#555;font-size:.9em}
a{color:#1565c0}footer{color:#888;font-size:.85em;border-top:1px solid #ddd;padding-top:1em}
"""


def render_report(
    records: Records,
    findings: Sequence[Mapping[str, Any]],
    note: str = "",
    name_hint: str = "",
) -> str:
    """The HTML text of the report of a run: its ``records`` and its ``findings`` (the dicts of
    ``findings.json``, in any order; a challenge without one says so), with ``note`` shown at the
    top (say, where the findings came from). The title is the header's experiment, else
    ``name_hint`` (the run folder's name). Reads no file and diagnoses nothing."""
    header = records.header if isinstance(records.header, dict) else {}
    kept = [rec for rec in records.records if isinstance(rec, dict)]
    run = _Run(
        header, kept, records.truncated, [f for f in findings if isinstance(f, Mapping)], note
    )
    r = _Renderer(run)
    try:
        from optiscope.report import plot as _plot

        _plot._figure(1, 1)
    except OptiscopeError:
        r.plots = False

    h = run.header
    name = h.get(schema.EXPERIMENT) or name_hint or "run"
    steps_done = [float(step) for step in map(step_of, run.records) if step is not None]
    last = max(steps_done) if steps_done else math.nan
    planned = number(h.get(schema.STEPS))
    facts = [
        (schema.STEPS, h.get(schema.STEPS)),
        (
            "steps recorded",
            f"{len(steps_done)} (last step {_fmt(last)})" if steps_done else "none",
        ),
        (schema.SEED, h.get(schema.SEED)),
        (schema.OPTIMIZER, h.get(schema.OPTIMIZER)),
        (schema.PRESET, h.get(schema.PRESET)),
        (schema.CONFIG, h.get(schema.CONFIG)),
        (schema.DEVICE, h.get(schema.DEVICE)),
        ("versions", ", ".join(f"{k} {h[k]}" for k in schema.VERSIONS if h.get(k))),
    ]
    notes = []
    if run.truncated:
        notes.append(
            "The records file ends in a line cut short: the run was cut short, and the report "
            "shows what was written before."
        )
    elif planned is not None and steps_done and last + 1 < planned:
        notes.append(
            f"The records stop at step {_fmt(last)} of {_fmt(h[schema.STEPS])}: the run did not "
            "finish."
        )
    if run.findings_note:
        notes.append(run.findings_note)

    by_challenge: dict[str, Mapping[str, Any]] = {}
    for finding in run.findings:
        challenge = finding.get(schema.CHALLENGE)
        if isinstance(challenge, str):
            by_challenge.setdefault(challenge, finding)
    order = list(by_challenge) + [c for c in CHALLENGES if c not in by_challenge]

    rows = []
    for c in order:
        f = by_challenge.get(c)
        rows.append(
            f'<tr><td><a href="#{esc(_section_id(c))}">{esc(c)}</a></td>'
            f"<td>{_badge(f)}</td>"
            f"<td>{esc(f.get(schema.SUMMARY, '') if f else 'no verdict recorded')}</td></tr>"
        )
    overview = r.figure(_OVERVIEW)
    sections = [_finding_section(r, c, by_challenge.get(c)) for c in order]
    if not r.plots:
        notes.append(
            "matplotlib is not installed, so the figures are left out: "
            'pip install "optiscope[report]".'
        )

    description = h.get(schema.DESCRIPTION)
    body = [
        f"<header><h1>optiscope report: {esc(name)}</h1>",
        f'<p class="desc">{esc(description)}</p>' if description else "",
        _table(((k, v) for k, v in facts if v not in (None, "")), cls="kv"),
        "".join(f'<p class="note">{esc(n)}</p>' for n in notes),
        "</header>",
        '<section id="verdicts"><h2>Verdicts</h2><table class="verdicts">',
        "<tr><th>challenge</th><th>severity</th><th>summary</th></tr>",
        "".join(rows),
        "</table></section>",
        f'<section id="overview"><h2>Overview</h2>{overview}</section>',
        *sections,
        "<footer>Written by optiscope from the run's records.jsonl and findings.json; "
        "self-contained, no network needed.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>optiscope report: {esc(name)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(b for b in body if b)
        + "\n</body></html>\n"
    )
