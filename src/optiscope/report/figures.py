"""The report's figures: each draws one picture of a run's records as inline SVG.

A figure function takes the run as given to the report (:class:`Run`) and returns the SVG text,
or raises :class:`NoData` naming what the run did not record. matplotlib is imported lazily (by
:mod:`optiscope.report.plot`); long series are thinned by :func:`decimate` so spikes survive.
"""

from __future__ import annotations

import io
import itertools
import math
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optiscope.core.stats import finite, number
from optiscope.diagnosis.findings import CLIFFS, SADDLE_POINTS
from optiscope.records import schema
from optiscope.records.log import series, step_of
from optiscope.report import plot as _plot
from optiscope.report.plot import _spans_decades

# A line of more points than this is thinned to min/max buckets (a pixel cannot show more).
MAX_POINTS = 1000

# ---------------------------------------------------------------------------------------------
# What is rendered


@dataclass
class Run:
    """What the report is given: the header, the records, whether they were cut short, the
    findings as dicts, and a note on where the findings came from."""

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
# Figures


class NoData(Exception):
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
class Figure:
    """A caption and the function that draws the figure from a run."""

    caption: str
    draw: Callable[[Run], str]  # the SVG text; raises NoData when the run lacks the data


def _new(width: float = 6.4, height: float = 3.4) -> Any:

    return _plot._figure(width, height)


def _need(run: Run, *names: str) -> list[tuple[np.ndarray, np.ndarray]]:
    out = [run.series(n) for n in names]
    absent = [n for n, (_, y) in zip(names, out) if not _has(y)]
    if len(absent) == len(names):
        raise NoData(", ".join(f'"{n}"' for n in names) + " in the step records")
    return out


def _evidence(run: Run, challenge: str) -> Mapping[str, Any]:
    for f in run.findings:
        if f.get(schema.CHALLENGE) == challenge and isinstance(f.get(schema.EVIDENCE), Mapping):
            return f[schema.EVIDENCE]
    return {}


def episodes(run: Run) -> tuple[list[tuple[float, float]], list[float]]:
    """What the findings name on the time axis: the plateaus (first and last step) of the
    saddle-points finding, and the steps of the cliffs finding (spikes that hit a cliff, updates
    that threw the point away). Read from the findings' evidence: nothing is recomputed."""
    spans = []
    for p in _evidence(run, SADDLE_POINTS).get("plateaus") or []:
        a, b = number(p.get("first_step")), number(p.get("last_step"))
        if isinstance(p, Mapping) and a is not None and b is not None:
            spans.append((a, b))
    cliffs = _evidence(run, CLIFFS)
    # "cliffs" holds every spike the verdict rests on; "spikes" only the run's first 20.
    judged = [*(cliffs.get("spikes") or []), *(cliffs.get("cliffs") or [])]
    marks = [
        float(v)
        for sp in judged
        if isinstance(sp, Mapping)
        and ((number(sp.get("loss_jump")) or 0) > 1.5 or sp.get("outsized_update"))
        and (v := number(sp.get(schema.STEP))) is not None
    ]
    marks += [float(v) for v in cliffs.get("outsized_updates") or [] if number(v) is not None]
    return spans, sorted(set(marks))


def _mark_episodes(ax: Any, run: Run) -> None:
    spans, marks = episodes(run)
    for i, (a, b) in enumerate(spans):
        ax.axvspan(a, b, color="C4", alpha=0.15, label="plateau" if i == 0 else None)
    for i, m in enumerate(marks[:50]):
        ax.axvline(m, color="C3", linewidth=0.8, alpha=0.7, label="cliff" if i == 0 else None)


def fig_overview(run: Run) -> str:
    """The loss and the gradient norm against the step, with the episodes the findings name
    (plateaus shaded, cliffs marked)."""
    (s_l, loss), (s_g, gnorm) = _need(run, schema.LOSS, schema.GRAD_NORM)
    fig = _new(10.0, 3.4)
    ax1, ax2 = fig.subplots(1, 2)
    if _has(loss):
        _line(ax1, s_l, loss, color="C0", linewidth=1)
    _mark_episodes(ax1, run)
    ax1.set(xlabel="step", ylabel="loss", title="training loss")
    spans, marks = episodes(run)
    _finish(ax1, log_of=[loss], legend=bool(spans or marks))
    if _has(gnorm):
        _line(ax2, s_g, gnorm, color="C1", linewidth=1)
    _mark_episodes(ax2, run)
    ax2.set(xlabel="step", ylabel="|g|", title="gradient norm")
    _finish(ax2, log_of=[gnorm], legend=False)
    return _svg(fig)


def fig_curvature(run: Run) -> str:
    """g^T g and g^T H g at each curvature measurement."""
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


def fig_sharpness(run: Run) -> str:
    """Sharpness against the optimizer's stability threshold."""
    (s1, sharp), (s2, thr) = _need(run, schema.SHARPNESS, schema.STABILITY_THRESHOLD)
    if not _has(sharp):
        raise NoData(f'"{schema.SHARPNESS}" in the step records')
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


def fig_prediction(run: Run) -> str:
    """Each step's second-order predicted change against the actual change."""
    pairs: list[tuple[float, float]] = []
    for r in run.records:
        if step_of(r) is None:
            continue
        vals = r[schema.VALUES]
        p, a = vals.get(schema.PREDICTED_CHANGE), vals.get(schema.ACTUAL_CHANGE)
        if finite(p) and finite(a):
            pairs.append((_float(p), _float(a)))
    if not pairs:
        raise NoData(
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


def fig_density(run: Run) -> str:
    """The Hessian's spectral density at the final point."""
    rec = run.analysis(schema.SPECTRAL_DENSITY)
    if (
        rec is None
        or not isinstance(rec.get(schema.GRID), list)
        or not isinstance(rec.get(schema.DENSITY), list)
    ):
        raise NoData(
            f'the "{schema.SPECTRAL_DENSITY}" analysis record (Hessian spectrum at the final point)'
        )
    grid = np.array([_float(v) for v in rec[schema.GRID]], dtype=np.float64)
    dens = np.array([_float(v) for v in rec[schema.DENSITY]], dtype=np.float64)
    n = min(grid.size, dens.size)
    grid, dens = grid[:n], dens[:n]
    keep = np.isfinite(grid) & np.isfinite(dens)
    if not keep.any():
        raise NoData("a finite Hessian spectral density")
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
    label = f"clearly negative mass {_float(frac):.2%}" if finite(frac) else ""
    sigma = rec.get(schema.SIGMA)
    title = "Hessian spectral density at the final point"
    if finite(sigma):
        title += f" (smoothing {_float(sigma):.3g})"
    ax.set(xlabel="eigenvalue", ylabel="density", title=title)
    if label:
        ax.text(0.98, 0.95, label, transform=ax.transAxes, ha="right", va="top", color="C3")
    _finish(ax)
    return _svg(fig)


def fig_lambda_min(run: Run) -> str:
    """The smallest Hessian eigenvalue during training."""
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


def fig_cliffs(run: Run) -> str:
    """The gradient norm against its running median, spikes marked."""
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


def fig_update_ratio(run: Run) -> str:
    """The update's norm relative to the parameters'."""
    ((s, r),) = _need(run, schema.UPDATE_RATIO)
    fig = _new(6.4, 3.0)
    ax = fig.add_subplot()
    _line(ax, s, r, color="C4", linewidth=1)
    ax.set(xlabel="step", ylabel="|update| / |params|", title="size of each update")
    _finish(ax, log_of=[r], legend=False)
    return _svg(fig)


def hidden_modules(run: Run) -> dict[str, list[tuple[float, list[float]]]]:
    """Per recurrent module, its ``(step, norms over time)`` rows in order."""
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


def heatmap(name: str, rows: list[tuple[float, list[float]]], _run: Run) -> str:
    """Hidden-state gradient norms of one module: training steps by time steps."""
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
        xlabel="time step t",
        ylabel="training step",
        title=f"hidden-state gradient norms: {_plot.plain(name)}",
    )
    return _svg(fig)


def fig_noise(run: Run) -> str:
    """The noise share of the minibatch gradient against the batch size."""
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
        raise NoData(
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


def fig_b_simple(run: Run) -> str:
    """The critical batch size B_simple over training, with the batch in use."""
    (s, bsim), (s2, batch) = _need(run, schema.B_SIMPLE, schema.BATCH_SIZE)
    if not _has(bsim):
        raise NoData(f'"{schema.B_SIMPLE}" in the step records')
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


def fig_interpolation(run: Run) -> str:
    """The loss on the straight line from the start to the end."""
    rec = run.analysis(schema.INTERPOLATION)
    alphas, losses = (
        _numbers(rec.get(schema.ALPHAS)) if rec else [],
        _numbers(rec.get(schema.LOSSES)) if rec else [],
    )
    if rec is None or len(alphas) < 2 or len(alphas) != len(losses):
        raise NoData(f'the "{schema.INTERPOLATION}" analysis record (loss on the straight path)')
    barrier = _float(rec.get(schema.BARRIER))
    return _plot_file(
        lambda p: _plot.interpolation(
            p, alphas, losses, barrier, title="loss on the straight path from the start to the end"
        )
    )


def fig_surface(run: Run) -> str:
    """The loss on the trajectory's plane, with the trajectory drawn on it."""
    rec = run.analysis(schema.SURFACE)
    if rec is None:
        raise NoData(f'the "{schema.SURFACE}" analysis record (loss on the trajectory\'s plane)')
    xs, ys = _numbers(rec.get(schema.XS)), _numbers(rec.get(schema.YS))
    losses = rec.get(schema.LOSSES)
    if len(xs) < 2 or len(ys) < 2 or not isinstance(losses, list) or len(losses) != len(ys):
        raise NoData("a complete loss surface (xs, ys and losses)")
    grid = [_numbers(row) for row in losses]
    if any(len(row) != len(xs) for row in grid):
        raise NoData("a complete loss surface (a row of losses has the wrong length)")
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


# Blockwise spectra: densities overlaid for at most this many blocks (more lines are a blur);
# the heat map of distances shows every block, named where there are few enough to read.
SHOWN_BLOCKS = 10
_NAMED_BLOCKS = 20


def block_entries(rec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The blocks of a ``blockwise_spectra`` record that are mappings (a record read back may
    hold anything)."""
    blocks = rec.get(schema.BLOCKS)
    return [b for b in blocks if isinstance(b, Mapping)] if isinstance(blocks, list) else []


def block_distances(rec: Mapping[str, Any], n: int) -> np.ndarray | None:
    """The record's ``n`` x ``n`` matrix of Jensen-Shannon distances, None where it is not one
    (wrong shape, or a value that is no number)."""
    rows = rec.get(schema.DISTANCES)
    if (
        n < 2
        or not isinstance(rows, list)
        or len(rows) != n
        or not all(isinstance(row, list) and len(row) == n for row in rows)
    ):
        return None
    matrix = np.array([[_float(v) for v in row] for row in rows], dtype=np.float64)
    return matrix if np.isfinite(matrix).all() else None


def fig_blocks(run: Run) -> str:
    """Each block's normalized spectral density, overlaid, beside the heat map of the blocks'
    pairwise Jensen-Shannon distances."""
    rec = run.analysis(schema.BLOCKWISE_SPECTRA)
    if rec is None:
        raise NoData(f'the "{schema.BLOCKWISE_SPECTRA}" analysis record (spectra per block)')
    blocks = block_entries(rec)
    grid = np.array(_numbers(rec.get(schema.GRID)), dtype=np.float64)
    curves = []
    for b in blocks:
        dens = np.array(_numbers(b.get(schema.DENSITY)), dtype=np.float64)
        if grid.size > 1 and dens.size == grid.size and np.isfinite(dens).all():
            curves.append((str(b.get(schema.NAME, "?")), dens))
    dist = block_distances(rec, len(blocks))
    if not curves and dist is None:
        raise NoData("the blocks' densities or their distances in the blockwise_spectra record")
    fig = _new(10.0, 3.8)
    ax1, ax2 = fig.subplots(1, 2)
    for i, (name, dens) in enumerate(curves[:SHOWN_BLOCKS]):
        ax1.plot(grid, dens, color=f"C{i}", linewidth=1.2, label=_plot.plain(name))
    if curves:
        shown = f" ({SHOWN_BLOCKS} of {len(curves)} blocks)" if len(curves) > SHOWN_BLOCKS else ""
        ax1.legend(loc="upper left", fontsize="small", ncols=2 if len(curves) > 5 else 1)
    else:
        shown = ""
        ax1.text(0.5, 0.5, "no density recorded", ha="center", va="center", transform=ax1.transAxes)
    peaks = [float(d.max()) for _, d in curves[:SHOWN_BLOCKS] if d.max() > 0]
    if peaks:  # most of a spectrum sits near zero: a log scale shows the tails' shapes
        ax1.set_yscale("log")
        ax1.set_ylim(max(peaks) * 1e-6, max(peaks) * 2)
    ax1.axvline(0.0, color="0.6", linestyle="--", linewidth=0.8)
    ax1.set(
        xlabel="eigenvalue / the block's spectral radius",
        ylabel="share of the block's spectrum",
        title="each block's spectrum on its own scale" + shown,
    )
    ax1.grid(True, alpha=0.3)
    if dist is None:
        ax2.text(
            0.5, 0.5, "no distances recorded", ha="center", va="center", transform=ax2.transAxes
        )
    else:
        image = ax2.imshow(dist, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        fig.colorbar(image, ax=ax2, label="Jensen-Shannon distance")
        if len(blocks) <= _NAMED_BLOCKS:
            names = [_plot.plain(str(b.get(schema.NAME, "?"))) for b in blocks]
            ax2.set_xticks(range(len(blocks)), labels=names, rotation=90, fontsize="small")
            ax2.set_yticks(range(len(blocks)), labels=names, fontsize="small")
    ax2.set(title="distance between the blocks' spectra")
    return _svg(fig)
