"""Small statistics on recorded numbers, shared by the detectors, the sinks and the report.

Records read back may hold anything (strings, booleans, integers beyond float range), so each
helper says what it accepts. No torch here: the pure layers use these too.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def number(x: Any) -> float | None:
    """``x`` as a float, or None where it is no number (a bool, a string, None, a list).

    A 0-d tensor or numpy scalar counts as its value. JSON holds integers of any size and a
    float none beyond 1.8e308, so a huge integer becomes an infinity of its sign.

    >>> number(3), number(True), number("nan"), number(10**400)
    (3.0, None, None, inf)
    """
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        try:
            return float(x)
        except OverflowError:
            return math.inf if x > 0 else -math.inf
    if hasattr(x, "item") and getattr(x, "ndim", None) == 0:
        return number(x.item())
    return None


def finite(x: Any) -> bool:
    """Whether ``x`` is a finite real number (not a bool).

    >>> finite(1.5), finite(float("inf")), finite(None)
    (True, False, False)
    """
    v = number(x)
    return v is not None and math.isfinite(v)


def mean(xs: Sequence[float]) -> float:
    """The mean of finite numbers; fmean's exact sum overflows where theirs passes 1.8e308."""
    try:
        return statistics.fmean(xs)
    except OverflowError:
        return math.fsum(x / len(xs) for x in xs)


def median(xs: Sequence[float]) -> float | None:
    """The median of the finite values, None without any.

    >>> median([3.0, float("nan"), 1.0, 2.0])
    2.0
    """
    kept = [x for x in xs if math.isfinite(x)]
    return statistics.median(kept) if kept else None


def log_slope(norms: Sequence[float], min_points: int = 2) -> float | None:
    """Least-squares slope of ``ln norms[t]`` against the distance back in time ``T - 1 - t``
    over the finite positive norms (negative: the gradient vanishes back in time, by
    ``exp(slope)`` per step); None with fewer than ``min_points`` of them.

    >>> round(log_slope([0.25, 0.5, 1.0]), 6) == round(math.log(0.5), 6)
    True
    """
    T = len(norms)
    pts = [(T - 1 - t, math.log(n)) for t, n in enumerate(norms) if math.isfinite(n) and n > 0]
    if len(pts) < max(min_points, 2):
        return None
    mx = statistics.fmean(d for d, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    sxx = sum((d - mx) ** 2 for d, _ in pts)
    return sum((d - mx) * (y - my) for d, y in pts) / sxx
