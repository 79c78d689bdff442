"""Episodes of a run: what the detectors read from its whole loss and gradient series.

Pure functions of plain lists (no torch, no I/O). A minibatch loss is noisy, so the series are
read through a running median, and departures from the run's own level through robust z-scores
(median and median absolute deviation), never through one step's value.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def smooth(values: Sequence[float], window: int) -> list[float]:
    """The running median over a centred window of ``window`` steps (the non-finite values
    left out; NaN where a window holds none)."""
    half = max(window, 1) // 2
    out = []
    for i in range(len(values)):
        part = [v for v in values[max(0, i - half) : i + half + 1] if math.isfinite(v)]
        out.append(statistics.median(part) if part else math.nan)
    return out


def window_for(n: int) -> int:
    """The smoothing window of a run of ``n`` steps: a twentieth of it, 5 to 51 steps."""
    return max(5, min(n // 20, 51))


def robust_z(value: float, past: Sequence[float]) -> float:
    """How many robust standard deviations (1.4826 MAD) ``value`` lies above the median of
    ``past``; inf when the past does not vary and the value is above it."""
    med = statistics.median(past)
    mad = 1.4826 * statistics.median([abs(v - med) for v in past])
    if mad > 0:
        return (value - med) / mad
    return math.inf if value > med else 0.0


@dataclass(frozen=True)
class Progress:
    """The run's loss at its start, its best and its end (each a smoothed level), and how much
    of the way from start to best it kept."""

    start: float
    best: float
    end: float
    middle: float

    @property
    def drop(self) -> float:
        """The fraction of the starting loss the run removed by its end (negative: it rose)."""
        return (self.start - self.end) / abs(self.start) if self.start else 0.0

    @property
    def converged(self) -> bool:
        """The end is a small fraction of the start: training has done most of its work."""
        return self.end <= 0.15 * self.start if self.start > 0 else False

    @property
    def stalled(self) -> bool:
        """The second half removed less than 5% of the middle's loss."""
        return self.middle - self.end < 0.05 * abs(self.middle)

    @property
    def rose(self) -> bool:
        """The run ended clearly above where it started, or gave back most of the progress it
        made and ended at twice its best level."""
        if not all(map(math.isfinite, (self.start, self.best, self.end))):
            return False
        above_start = self.end > 1.2 * self.start + 1e-12
        gave_back = self.start > self.best and self.end - self.best > 0.5 * (self.start - self.best)
        return above_start or (gave_back and self.end > 2 * self.best)


def progress(loss: Sequence[float]) -> Progress | None:
    """The levels of :class:`Progress` from the loss series (None when too short or not
    finite)."""
    n = len(loss)
    if n < 10:
        return None
    # Levels over a tenth of the run: the smoothed minimum of a noisy loss is biased low.
    w = max(5, min(n // 10, 101))
    s = [v for v in smooth(loss, w) if math.isfinite(v)]
    if len(s) < 10:
        return None
    k = max(1, len(s) // 10)
    mid = len(s) // 2
    return Progress(
        start=statistics.median(s[:k]),
        best=min(s),
        end=statistics.median(s[-k:]),
        middle=statistics.median(s[max(0, mid - k) : mid + k]),
    )


def mean_progress(loss: Sequence[float]) -> Progress | None:
    """The levels of :class:`Progress` as means of the loss over tenths of the run, not
    medians: a batch of a few samples has a skewed loss (most samples fit, a few do not), whose
    median lies well below the mean the training minimizes; where noise is the question, the
    mean is the level (None when too short or not finite)."""
    finite = [v for v in loss if math.isfinite(v)]
    n = len(finite)
    if n < 10:
        return None
    k = max(1, n // 10)
    means = [statistics.fmean(finite[i : i + k]) for i in range(0, n - k + 1)]
    mid = n // 2
    return Progress(
        start=statistics.fmean(finite[:k]),
        best=min(means),
        end=statistics.fmean(finite[-k:]),
        middle=statistics.fmean(finite[max(0, mid - k // 2) : mid + (k + 1) // 2]),
    )


@dataclass(frozen=True)
class Plateau:
    """Steps ``first`` to ``last`` (indices into the step list) where the smoothed loss stayed
    within ``tolerance`` of its level ``level``; ``escaped_at`` is the first later step where it
    fell clearly below (None: it never did)."""

    first: int
    last: int
    level: float
    escaped_at: int | None


def plateaus(loss: Sequence[float], min_length: int, tolerance: float = 0.02) -> list[Plateau]:
    """Stretches of at least ``min_length`` steps where the smoothed loss moves by less than
    ``tolerance`` of its level (or three times the smoothed loss's own noise, if larger), that are
    not the run's convergence: either the loss later falls
    clearly below them (an escape), or they sit at the loss the run started from (it never
    left). A flat end far below the start is convergence, not a plateau."""
    n = len(loss)
    w = window_for(n)
    s = smooth(loss, w)
    prog = progress(loss)
    if prog is None or not all(math.isfinite(v) for v in s):
        return []
    # A minibatch loss is noisy: a level stretch may wander by its smoothed value's own noise.
    # The step-to-step differences give the noise free of the trend (1.4826 MAD / sqrt 2), a
    # median of w values has about 1.25 / sqrt(w) of it.
    diffs = [b - a for a, b in itertools.pairwise(loss) if math.isfinite(a) and math.isfinite(b)]
    noise = 1.4826 * statistics.median([abs(d) for d in diffs]) / math.sqrt(2) if diffs else 0.0
    wander = 3 * 1.25 * noise / math.sqrt(w)
    span = prog.start - prog.best
    found: list[Plateau] = []
    i = 0
    while i < n - min_length:
        # Anchored on the stretch's first min_length steps, not on one smoothed value.
        level = statistics.median(s[i : i + min_length])
        band = max(tolerance * max(abs(level), 1e-12), wander)
        if abs(s[i] - level) > band:
            i += 1
            continue
        j = i
        while j + 1 < n and abs(s[j + 1] - level) <= band:
            j += 1
        if j - i + 1 >= min_length:
            level = statistics.median(s[i : j + 1])
            # Clearly below: by a tenth of the level and a quarter of the run's whole progress.
            margin = max(0.1 * abs(level), 0.25 * span)
            escaped = next((t for t in range(j + 1, n) if s[t] < level - margin), None)
            at_start = level >= prog.start - 0.1 * abs(prog.start)
            if escaped is not None or at_start:
                last = found[-1] if found else None
                near = max(tolerance * max(abs(level), 1e-12), wander)
                if last is not None and i - last.last <= w and abs(last.level - level) <= near:
                    # One plateau that a noise excursion split: joined.
                    found[-1] = Plateau(last.first, j, (last.level + level) / 2, escaped)
                else:
                    found.append(Plateau(i, j, level, escaped))
            i = j + 1
        else:
            i += 1
    return found
