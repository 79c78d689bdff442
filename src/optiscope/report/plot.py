"""Pictures of the error surface: losses along a line, on a plane, along a curve, per restart.

Each function takes plain numbers (lists or arrays, as the results' ``to_dict()`` give them) and
writes one file, PNG or SVG by its suffix. matplotlib is imported inside the functions, so that
``import optiscope`` never loads it, and the figures are drawn on their own Agg canvas: no pyplot,
no change to the process's matplotlib backend or state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optiscope.core.errors import OptiscopeError
from optiscope.core.files import write_atomic

FORMATS = ("png", "svg")
# Colours switch to a log scale when the largest positive loss is this many times the smallest.
_DECADES = 100.0


class PlotUnavailable(OptiscopeError):
    """matplotlib, which draws the pictures, is not installed."""


def plain(text: str) -> str:
    """``text`` as matplotlib shows it literally: a ``$`` in a user's name (a module, an
    experiment) would otherwise start mathtext, which draws it as math or fails the figure."""
    return text.replace("$", r"\$")


def _figure(width: float = 6.4, height: float = 4.4) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise PlotUnavailable(
            'the picture needs matplotlib, which is not installed: pip install "optiscope[report]"'
        ) from err
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise OptiscopeError(
            f"cannot write a picture to {str(path)!r}: expected a name ending in .png or .svg"
        )
    buf = io.BytesIO()  # drawn whole first: a failed write leaves no half picture
    fig.savefig(buf, format=fmt, dpi=120 if fmt == "png" else None)
    return write_atomic(path, buf.getvalue())


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def _spans_decades(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return v.size > 1 and float(v.min()) > 0 and float(v.max()) >= _DECADES * float(v.min())


def interpolation(
    path: str | Path,
    alphas: Sequence[float],
    losses: Sequence[float | None],
    barrier: float,
    *,
    title: str = "",
) -> Path:
    """Loss against alpha along ``(1 - alpha) a + alpha b``, with the barrier marked: a dashed
    line at the higher end's loss and an arrow up to the path's peak."""
    fig = _figure()
    ax = fig.add_subplot()
    x, y = np.asarray(alphas, dtype=np.float64), _finite(losses)
    ax.plot(x, y, "o-", color="C0", markersize=3, label="loss along the line")
    ax.plot([x[0], x[-1]], [y[0], y[-1]], "s", color="C3", markersize=7, label="start, end")
    if _spans_decades(y):
        ax.set_yscale("log")
    ends = max(y[0], y[-1])
    if math.isfinite(barrier) and barrier > 0 and np.isfinite(y).any():
        peak = int(np.nanargmax(y))
        ax.axhline(ends, color="0.5", linestyle="--", linewidth=1)
        ax.annotate(
            "",
            xy=(x[peak], y[peak]),
            xytext=(x[peak], ends),
            arrowprops={"arrowstyle": "<->", "color": "C3"},
        )
        ax.annotate(
            f"barrier {barrier:.4g}",
            xy=(x[peak], (y[peak] + ends) / 2),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            color="C3",
        )
    else:
        text = "no barrier" if math.isfinite(barrier) else "barrier undefined (loss not finite)"
        ax.text(0.5, 0.95, text, transform=ax.transAxes, ha="center", va="top", color="C3")
    ax.set_xlabel("alpha (0: start, 1: end)")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def surface(
    path: str | Path,
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    losses: Any,
    *,
    trajectory: Sequence[Sequence[float]] | None = None,
    xlabel: str = "direction 1",
    ylabel: str = "direction 2",
    title: str = "",
) -> Path:
    """Filled contours of ``losses[j][i]`` at ``(xs[i], ys[j])`` (None or NaN: not finite, left
    blank), log-scaled colours when the losses span two decades or more, the center ``(0, 0)``
    marked and, when given, the trajectory's points ``(x, y)`` drawn from the first to the last."""
    from matplotlib import colors

    fig = _figure(6.4, 5.2)
    ax = fig.add_subplot()
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    z = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in np.asarray(losses).tolist()]
    )
    finite = z[np.isfinite(z)]
    if finite.size and float(finite.max()) > float(finite.min()):
        masked = np.ma.masked_invalid(z)
        lo, hi = float(finite.min()), float(finite.max())
        log = _spans_decades(finite)
        if log:
            levels = np.geomspace(lo, hi, 25)
            norm: Any = colors.LogNorm(vmin=lo, vmax=hi)
        else:
            levels = np.linspace(lo, hi, 25)
            norm = colors.Normalize(vmin=lo, vmax=hi)
        filled = ax.contourf(x, y, masked, levels=levels, norm=norm, cmap="viridis")
        ax.contour(x, y, masked, levels=levels[::4], norm=norm, colors="white", linewidths=0.4)
        bar = fig.colorbar(filled, ax=ax, label="loss" + (" (log scale)" if log else ""))
        ticks = np.geomspace(lo, hi, 7) if log else np.linspace(lo, hi, 7)
        bar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
        bar.minorticks_off()
    else:
        msg = "no finite loss" if not finite.size else f"flat: loss {float(finite[0]):.4g}"
        ax.text(0.5, 0.5, msg, transform=ax.transAxes, ha="center", va="center")
    if trajectory is not None and len(trajectory):
        t = np.asarray(trajectory, dtype=np.float64)
        ax.plot(t[:, 0], t[:, 1], ".-", color="C1", markersize=4, linewidth=1, label="training")
        ax.plot(t[0, 0], t[0, 1], "o", color="C1", markersize=7, label="start")
    ax.plot(0.0, 0.0, "*", color="C3", markersize=14, markeredgecolor="white", label="center")
    ax.set_xlim(float(x[0]), float(x[-1]))
    ax.set_ylim(float(y[0]), float(y[-1]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def connection(
    path: str | Path,
    ts: Sequence[float],
    curve_losses: Sequence[float | None],
    line_losses: Sequence[float | None],
    curve_barrier: float,
    line_barrier: float,
    *,
    title: str = "",
) -> Path:
    """Loss against t along the trained curve and along the straight line between two points."""
    fig = _figure()
    ax = fig.add_subplot()
    t, curve, line = np.asarray(ts, dtype=np.float64), _finite(curve_losses), _finite(line_losses)
    ax.plot(t, line, "o-", color="C0", markersize=3, label=f"line (barrier {line_barrier:.4g})")
    ax.plot(t, curve, "o-", color="C2", markersize=3, label=f"curve (barrier {curve_barrier:.4g})")
    if _spans_decades(np.concatenate([curve, line])):
        ax.set_yscale("log")
    ax.set_xlabel("t (0: first minimum, 1: second)")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def restarts(
    path: str | Path,
    seeds: Sequence[int],
    losses: Sequence[float | str | None],
    groups: Sequence[Sequence[int]],
    *,
    title: str = "",
) -> Path:
    """The final loss of each restart against its seed, coloured by group (one minimum up to
    symmetry per group, best first); a restart whose loss is not finite is marked at the top."""
    fig = _figure()
    ax = fig.add_subplot()
    values = np.array(
        [float(v) if isinstance(v, (int, float)) else math.nan for v in losses], dtype=np.float64
    )
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 1.0
    for k, group in enumerate(groups):
        idx = list(group)
        g = values[idx]
        ok = np.isfinite(g)
        colour = f"C{k % 10}"
        label = f"group {k + 1}: {len(idx)} restart{'s' if len(idx) != 1 else ''}"
        if ok.any():
            label += f", mean loss {float(np.mean(g[ok])):.4g}"
        if ok.any():
            xs = [seeds[i] for i, f in zip(idx, ok) if f]
            ax.scatter(xs, g[ok], s=60, color=colour, label=label)
        if (~ok).any():
            ax.scatter(
                [seeds[i] for i, f in zip(idx, ok) if not f],
                [top] * int((~ok).sum()),
                s=60,
                marker="x",
                color=colour,
                label=f"group {k + 1}: loss not finite",
            )
    if _spans_decades(finite):
        ax.set_yscale("log")
    elif finite.size and float(finite.min()) >= 0:
        ax.set_ylim(bottom=0)  # differences read against the losses themselves
    if len(seeds) <= 20:
        ax.set_xticks(list(seeds))
    ax.set_xlabel("seed")
    ax.set_ylabel("final loss")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small", ncols=2 if len(groups) > 6 else 1)
    return _save(fig, path)
