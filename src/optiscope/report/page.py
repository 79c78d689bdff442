"""The HTML report of a run: its findings and records rendered to one self-contained file.

The report reads only what the run recorded (``records.jsonl`` and ``findings.json``) and
computes nothing but pictures: a section whose data is missing says so instead of failing.
Figures are inline SVG drawn by matplotlib, imported lazily; without it the report keeps its
text and tables. Nothing in the page reaches the network.
"""

from __future__ import annotations

import functools
import html
import io
import itertools
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from optiscope.core.errors import OptiscopeError
from optiscope.diagnosis.detectors import diagnose, series
from optiscope.report.plot import _spans_decades

# A line of more points than this is thinned to min/max buckets (a pixel cannot show more).
MAX_POINTS = 1000
_SEVERITY_COLOURS = {
    "ok": "#2e7d32",
    "info": "#1565c0",
    "warning": "#ef8f00",
    "critical": "#c62828",
}
_TITLES = {
    "ill-conditioning": "Ill-conditioning",
    "local-minima": "Local minima",
    "saddle-points": "Plateaus, saddle points and flat regions",
    "cliffs": "Cliffs and exploding gradients",
    "long-term-dependencies": "Long-term dependencies",
    "inexact-gradients": "Inexact gradients",
    "local-global-mismatch": "Poor correspondence between local and global structure",
    "theoretical-limits": "Theoretical limits of optimization",
}


class ReportError(OptiscopeError):
    """A run folder that cannot be turned into a report."""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------------------------------------
# Reading the run


@dataclass
class _Run:
    header: dict[str, Any]
    records: list[dict[str, Any]]
    truncated: bool
    findings: list[dict[str, Any]]
    findings_note: str

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps and values of a numeric step quantity."""
        steps, values = series(self.records, name)
        return np.array(steps, dtype=np.float64), np.array(values, dtype=np.float64)

    def analysis(self, name: str) -> dict[str, Any] | None:
        found = None
        for r in self.records:
            if r.get("type") == "analysis" and r.get("name") == name:
                found = r  # the last one recorded wins
        return found


def _is_number(x: Any) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# A Monitor writes findings.json when it closes: a run folder without one was never closed.
_MISSING = "findings.json was missing: the verdicts were recomputed from the records"
_NEVER_CLOSED = (
    "The run never closed its Monitor, so it was cut short (killed, or still running): the "
    "report shows what was recorded before."
)


def _load_findings(
    run_dir: Path, records: list[dict[str, Any]], save: bool = False
) -> tuple[list[dict], str]:
    from optiscope.records.log import _decode

    path = run_dir / "findings.json"
    if save and not path.exists():
        from optiscope.runner.run import write_findings

        try:
            found = write_findings(run_dir)
        except OSError as err:
            findings = [f.to_dict() for f in diagnose(records)]
            why = err.strerror or err
            return findings, f"{_MISSING} (they could not be saved: {why}). {_NEVER_CLOSED}"
        return [f.to_dict() for f in found], f"{_MISSING} and written to {path}. {_NEVER_CLOSED}"
    try:
        payload = _decode(json.loads(path.read_text(encoding="utf-8")))
        items = payload["findings"]
        if not isinstance(items, list) or not all(
            isinstance(f, dict) and isinstance(f.get("challenge"), str) for f in items
        ):
            raise ValueError("not a list of findings")
        return items, ""
    except (OSError, ValueError, KeyError, TypeError) as err:
        # Unless asked to save them, the verdicts are recomputed in memory only.
        findings = [f.to_dict() for f in diagnose(records)]
        if isinstance(err, FileNotFoundError):
            return findings, f"{_MISSING}. {_NEVER_CLOSED}"
        return (
            findings,
            "findings.json was unreadable: the verdicts were recomputed from the records.",
        )


def _read_run(run_dir: Path, save_findings: bool = False) -> _Run:
    from optiscope.records.log import read_records

    if not run_dir.is_dir():
        what = "does not exist" if not run_dir.exists() else "is not a folder"
        raise ReportError(
            f"expected a run folder holding records.jsonl, but {str(run_dir)!r} {what}. Pass the "
            "folder written by `optiscope diagnose` (default runs/EXPERIMENT)"
        )
    if not (run_dir / "records.jsonl").is_file():
        raise ReportError(
            f"expected {str(run_dir / 'records.jsonl')!r}, but the folder has no records file. "
            "Pass the folder written by `optiscope diagnose` or by a Monitor"
        )
    log = read_records(run_dir)
    records = [r for r in log.records if isinstance(r, dict)]
    findings, note = _load_findings(run_dir, records, save_findings)
    header = log.header if isinstance(log.header, dict) else {}
    return _Run(header, records, log.truncated, findings, note)


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
    (s_l, loss), (s_g, gnorm) = _need(run, "loss", "grad_norm")
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
    (s1, gtg), (s2, gthg) = _need(run, "gtg", "gthg")
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
    (s1, sharp), (s2, thr) = _need(run, "sharpness", "stability_threshold")
    if not _has(sharp):
        raise _NoData('"sharpness" in the step records')
    # Adam's threshold, and that of groups with their own rates, apply to P^-1 H.
    pre = any(
        isinstance(r.get("values"), Mapping) and r["values"].get("threshold_preconditioned") is True
        for r in run.records
        if r.get("type") == "step"
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
        vals = r.get("values") if r.get("type") == "step" else None
        if isinstance(vals, Mapping):
            p, a = vals.get("predicted_change"), vals.get("actual_change")
            if _is_number(p) and _is_number(a) and math.isfinite(p) and math.isfinite(a):
                pairs.append((float(p), float(a)))
    if not pairs:
        raise _NoData('"predicted_change" and "actual_change" in the step records')
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
    rec = run.analysis("spectral_density")
    if (
        rec is None
        or not isinstance(rec.get("grid"), list)
        or not isinstance(rec.get("density"), list)
    ):
        raise _NoData(
            'the "spectral_density" analysis record (Hessian spectrum at the final point)'
        )
    grid = np.array([v if _is_number(v) else math.nan for v in rec["grid"]], dtype=np.float64)
    dens = np.array([v if _is_number(v) else math.nan for v in rec["density"]], dtype=np.float64)
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
    frac = rec.get("fraction_negative")
    label = f"negative mass {frac:.2%}" if _is_number(frac) and math.isfinite(frac) else ""
    sigma = rec.get("sigma")
    title = "Hessian spectral density at the final point"
    if _is_number(sigma) and math.isfinite(sigma):
        title += f" (smoothing {sigma:.3g})"
    ax.set(xlabel="eigenvalue", ylabel="density", title=title)
    if label:
        ax.text(0.98, 0.95, label, transform=ax.transAxes, ha="right", va="top", color="C3")
    _finish(ax)
    return _svg(fig)


def _fig_lambda_min(run: _Run) -> str:
    ((s, lam),) = _need(run, "lambda_min")
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
    ((s, g),) = _need(run, "grad_norm")
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
    ((s, r),) = _need(run, "update_ratio")
    fig = _new(6.4, 3.0)
    ax = fig.add_subplot()
    _line(ax, s, r, color="C4", linewidth=1)
    ax.set(xlabel="step", ylabel="|update| / |params|", title="size of each update")
    _finish(ax, log_of=[r], legend=False)
    return _svg(fig)


def _hidden_modules(run: _Run) -> dict[str, list[tuple[float, list[float]]]]:
    modules: dict[str, list[tuple[float, list[float]]]] = {}
    for r in run.records:
        if r.get("type") != "hidden_gradients" or not isinstance(r.get("norms"), list):
            continue
        step = r.get("step")
        norms = [float(v) if _is_number(v) else math.nan for v in r["norms"]]
        if _is_number(step) and norms:
            modules.setdefault(str(r.get("module", "?")), []).append((float(step), norms))
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
    (s1, g2), (s2, tr), (s3, batch) = _need(run, "grad_norm_sq_unbiased", "trace_cov", "batch_size")
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
        raise _NoData('a positive "grad_norm_sq_unbiased" with a finite "trace_cov" at one step')
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
    (s, bsim), (s2, batch) = _need(run, "b_simple", "batch_size")
    if not _has(bsim):
        raise _NoData('"b_simple" in the step records')
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
    return [float(v) if _is_number(v) else math.nan for v in values]


def _fig_interpolation(run: _Run) -> str:
    from optiscope.report import plot as _plot

    rec = run.analysis("interpolation")
    alphas, losses = (
        _numbers(rec.get("alphas")) if rec else [],
        _numbers(rec.get("losses")) if rec else [],
    )
    if rec is None or len(alphas) < 2 or len(alphas) != len(losses):
        raise _NoData('the "interpolation" analysis record (loss on the straight path)')
    barrier = rec.get("barrier")
    barrier = float(barrier) if _is_number(barrier) else math.nan
    return _plot_file(
        lambda p: _plot.interpolation(
            p, alphas, losses, barrier, title="loss on the straight path from the start to the end"
        )
    )


def _fig_surface(run: _Run) -> str:
    from optiscope.report import plot as _plot

    rec = run.analysis("surface")
    if rec is None:
        raise _NoData('the "surface" analysis record (loss on the trajectory\'s plane)')
    xs, ys, losses = _numbers(rec.get("xs")), _numbers(rec.get("ys")), rec.get("losses")
    if len(xs) < 2 or len(ys) < 2 or not isinstance(losses, list) or len(losses) != len(ys):
        raise _NoData("a complete loss surface (xs, ys and losses)")
    grid = [_numbers(row) for row in losses]
    if any(len(row) != len(xs) for row in grid):
        raise _NoData("a complete loss surface (a row of losses has the wrong length)")
    traj = run.analysis("trajectory")
    coords = traj.get("coords") if traj else None
    path = None
    if (
        isinstance(coords, list)
        and coords
        and all(isinstance(c, list) and len(c) >= 2 for c in coords)
    ):
        path = [[_numbers(c)[0], _numbers(c)[1]] for c in coords]
    explained = _numbers(rec.get("explained"))
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
    "ill-conditioning": [
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
    "saddle-points": [
        _Figure(
            "Hessian eigenvalue density at the final point (stochastic Lanczos quadrature); "
            "mass left of zero is negative curvature.",
            _fig_density,
        ),
        _Figure("The smallest Hessian eigenvalue during training.", _fig_lambda_min),
    ],
    "cliffs": [
        _Figure(
            "Gradient norm against its running median; spikes above 10x the median are marked.",
            _fig_cliffs,
        ),
        _Figure("Update norm relative to the parameter norm.", _fig_update_ratio),
    ],
    "inexact-gradients": [
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
    "local-global-mismatch": [
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


def _severity(sev: Any) -> str:
    sev = str(sev)
    colour = _SEVERITY_COLOURS.get(sev, "#616161")
    return f'<span class="sev" style="background:{colour}">{esc(sev)}</span>'


def _finding_section(r: _Renderer, challenge: str, finding: dict[str, Any] | None) -> str:
    sid = _section_id(challenge)
    title = _TITLES.get(challenge, challenge)
    sev = _severity(finding.get("severity") if finding else "none")
    parts = [f'<section id="{esc(sid)}"><h2>{esc(title)} {sev}</h2>']
    if finding is None:
        parts.append('<p class="missing">No verdict was recorded for this challenge.</p>')
    else:
        parts.append(f'<p class="summary">{esc(finding.get("summary", ""))}</p>')
        evidence = finding.get("evidence")
        if isinstance(evidence, Mapping) and evidence:
            parts.append("<h3>Evidence</h3>" + _table(evidence.items()))
        remedy = finding.get("remedy")
        if remedy:
            parts.append(f'<p class="remedy"><b>What to try:</b> {esc(remedy)}</p>')
    parts.append(_extras(r, challenge))
    figures = "".join(r.figure(fig) for fig in _FIGURES.get(challenge, []))
    if figures:
        parts.append(f'<div class="figures">{figures}</div>')
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _extras(r: _Renderer, challenge: str) -> str:
    run = r.run
    if challenge == "local-minima":
        return (
            '<p>The loss and the gradient norm over the run are in the <a href="#overview">'
            "overview</a>: a stalled loss whose gradient norm does not shrink is not a minimum.</p>"
        )
    if challenge == "saddle-points":
        rec = run.analysis("final_point")
        if rec is None:
            return _missing('the "final_point" analysis record (curvature at the final point)')
        keys = (
            "kind",
            "curvature",
            "loss",
            "gradient_norm",
            "lambda_max",
            "lambda_min",
            "index",
            "reason",
        )
        return "<h3>Final point</h3>" + _table((k, rec[k]) for k in keys if k in rec)
    if challenge == "long-term-dependencies":
        modules = _hidden_modules(run)
        if not modules:
            return _missing(
                'hidden-state gradients (a recurrent model\'s "hidden_gradients" records)'
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
    if challenge == "local-global-mismatch":
        traj = run.analysis("trajectory")
        if traj and traj.get("error"):
            return _missing(f"the trajectory's plane ({traj['error']})")
    if challenge == "theoretical-limits":
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
.figures{display:flex;flex-wrap:wrap;gap:0 2em;align-items:flex-start}
.figures>.missing{flex-basis:100%}
figure{margin:.8em 0 1.2em;flex:1 1 460px;max-width:640px}
figure svg{max-width:100%;height:auto;display:block}
#overview figure{max-width:100%}
figcaption{color:#555;font-size:.9em}
a{color:#1565c0}footer{color:#888;font-size:.85em;border-top:1px solid #ddd;padding-top:1em}
"""


def render_report(run_dir: str | os.PathLike[str], *, save_findings: bool = False) -> str:
    """The HTML text of the report of the run folder ``run_dir``. A folder without
    ``findings.json`` (a run that never closed) has its verdicts recomputed from the records,
    and with ``save_findings`` also written to ``run_dir/findings.json``."""
    run = _read_run(Path(run_dir), save_findings)
    r = _Renderer(run)
    try:
        from optiscope.report import plot as _plot

        _plot._figure(1, 1)
    except OptiscopeError:
        r.plots = False

    h = run.header
    name = h.get("experiment") or Path(run_dir).resolve().name
    steps_done: list[float] = [
        float(rec["step"])
        for rec in run.records
        if rec.get("type") == "step" and _is_number(rec.get("step"))
    ]
    last = max(steps_done) if steps_done else math.nan
    facts = [
        ("steps", h.get("steps")),
        (
            "steps recorded",
            f"{len(steps_done)} (last step {_fmt(last)})" if steps_done else "none",
        ),
        ("seed", h.get("seed")),
        ("optimizer", h.get("optimizer")),
        ("preset", h.get("preset")),
        ("config", h.get("config")),
        ("device", h.get("device")),
        (
            "versions",
            ", ".join(f"{k} {h[k]}" for k in ("optiscope", "torch", "python") if h.get(k)),
        ),
    ]
    notes = []
    if run.truncated:
        notes.append(
            "The records file ends in a line cut short: the run was cut short, and the report "
            "shows what was written before."
        )
    elif _is_number(h.get("steps")) and steps_done and last + 1 < h["steps"]:
        notes.append(
            f"The records stop at step {_fmt(last)} of {_fmt(h['steps'])}: the run did not finish."
        )
    if run.findings_note:
        notes.append(run.findings_note)

    by_challenge: dict[str, dict[str, Any]] = {}
    for finding in run.findings:
        by_challenge.setdefault(finding["challenge"], finding)
    from optiscope.diagnosis.detectors import CHALLENGES

    order = list(by_challenge) + [c for c in CHALLENGES if c not in by_challenge]

    rows = []
    for c in order:
        f = by_challenge.get(c)
        rows.append(
            f'<tr><td><a href="#{esc(_section_id(c))}">{esc(c)}</a></td>'
            f"<td>{_severity(f.get('severity') if f else 'none')}</td>"
            f"<td>{esc(f.get('summary', '') if f else 'no verdict recorded')}</td></tr>"
        )
    overview = r.figure(_OVERVIEW)
    sections = [_finding_section(r, c, by_challenge.get(c)) for c in order]
    if not r.plots:
        notes.append(
            "matplotlib is not installed, so the figures are left out: "
            'pip install "optiscope[report]".'
        )

    body = [
        f"<header><h1>optiscope report: {esc(name)}</h1>",
        f'<p class="desc">{esc(h.get("description", ""))}</p>' if h.get("description") else "",
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


def write_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    save_findings: bool = False,
) -> Path:
    """Write the HTML report of the run folder ``run_dir`` to ``out`` (default
    ``run_dir/report.html``); its path. With ``save_findings``, a missing
    ``run_dir/findings.json`` (a run cut short) is recomputed from the records and written."""
    text = render_report(run_dir, save_findings=save_findings)
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise ReportError(
            f"cannot write the report to {str(path)!r}: {err.strerror or err}. Expected a "
            "writable place; pass another --out"
        ) from err
    return path
