"""Diagnosis: detectors turn records into findings (layer 6 of the design).

A detector is a pure function from the records of a run to one
:class:`~optiscope.diagnosis.findings.Finding` about one of the eight challenges of Deep
Learning sec. 8.2: no torch, no I/O, and it never raises (arbitrary series, empty, constant,
NaN or infinite, give a finding). A finding that is not ``ok`` carries the numbers, and the
steps they come from, that a reader can check; ``remedy`` says what to try. :func:`diagnose`
runs them all, on records in memory or on a run folder it reads.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from optiscope.core.stats import finite, log_slope, mean, median, number
from optiscope.diagnosis.episodes import (
    mean_progress,
    plateaus,
    progress,
    robust_z,
    smooth,
    window_for,
)
from optiscope.diagnosis.findings import (
    CHALLENGES,
    CLIFFS,
    ILL_CONDITIONING,
    INEXACT_GRADIENTS,
    LOCAL_GLOBAL_MISMATCH,
    LOCAL_MINIMA,
    LONG_TERM_DEPENDENCIES,
    SADDLE_POINTS,
    SEVERITIES,
    THEORETICAL_LIMITS,
    Finding,
    Severity,
)
from optiscope.records import schema
from optiscope.records.log import Records, RecordsError, read_records, series

__all__ = [
    "CHALLENGES",
    "DETECTORS",
    "SEVERITIES",
    "Finding",
    "Severity",
    "detect_cliffs",
    "detect_ill_conditioning",
    "detect_inexact_gradients",
    "detect_local_global_mismatch",
    "detect_local_minima",
    "detect_long_term_dependencies",
    "detect_saddle_points",
    "detect_theoretical_limits",
    "diagnose",
]

Record = Mapping[str, Any]


def _not_measured(challenge: str, what: str, how: str) -> Finding:
    return Finding(challenge, Severity.INFO, f"not measured: {what}", {}, how)


def _analyses(records: Iterable[Record], name: str) -> list[Record]:
    """The ``analysis`` records called ``name``, in order (the last one is the latest)."""
    return [
        r for r in records if r.get(schema.TYPE) == schema.ANALYSIS and r.get(schema.NAME) == name
    ]


def _header(records: Sequence[Record]) -> Record:
    return next((r for r in records if r.get(schema.TYPE) == schema.HEADER), {})


def _growth_back_in_time(records: Sequence[Record]) -> tuple[str, float, float] | None:
    """The recurrent module whose hidden-state gradients grow back in time the most: its name,
    the median growth per time step over the measurements, and first/last of the latest."""
    worst = None
    for module, rows in _hidden_series(records).items():
        rates = [
            math.exp(v) for v in (log_slope(n, min_points=3) for _, n in rows) if v is not None
        ]
        if not rates:
            continue
        rate = statistics.median(rates)
        norms = rows[-1][1]
        ratio = norms[0] / norms[-1] if finite(norms[0]) and norms[-1] > 0 else math.nan
        if worst is None or rate > worst[1]:
            worst = (module, rate, ratio)
    return worst


# A cliff must matter at the run's scale: the loss that held after a spike rose by at least this
# share of the run's starting loss, or the update moved the parameters by at least this share of
# their norm. At a small batch near convergence a hard sample doubles a loss of 1e-3 and moves
# the parameters by a percent, with a gradient tens of times its running median.
MATERIAL_RISE = 0.05
THROWN = 0.05


def detect_cliffs(records: Sequence[Record], window: int = 20, factor: float = 10.0) -> Finding:
    """Cliffs and exploding gradients (Pascanu et al. 2013), read over the whole run.

    - A spike: the gradient norm ``factor`` times the running median of the previous ``window``
      steps. It is a cliff only when the loss jumps after it (in two of the next three steps
      more than 1.5 times the step's, a robust z-score above 3 against the run's recent losses,
      and a rise of at least :data:`MATERIAL_RISE` of the run's starting loss) or the update it
      made is outsized (10 times the median update/parameter ratio of the previous ``window``
      steps, and at least :data:`THROWN` of the parameters' norm); a spike that changes nothing
      is reported, not judged.
    - Persistent explosion: the loss ends well above where it started (or gives back most of its
      progress) while the gradient grew; the update/parameter ratio stays near 1 (each step
      moves the parameters by a large part of their size); or the hidden-state gradients grow
      back in time while the loss does not fall.
    - Non-finite values (a GradScaler's skipped steps excepted).
    """
    steps, norms = series(records, schema.GRAD_NORM)
    loss_steps, losses = series(records, schema.LOSS)
    if not steps:
        return _not_measured(CLIFFS, "no gradient norms recorded", "record grad_norm")
    loss_at = dict(zip(loss_steps, losses))
    ratio_steps, ratios = series(records, schema.UPDATE_RATIO)
    ratio_at = dict(zip(ratio_steps, ratios))
    finite_ratios = [v for v in ratios if math.isfinite(v)]
    median_ratio = statistics.median(finite_ratios) if finite_ratios else None
    # A step a GradScaler skipped had an overflow in its scaled gradients: the scaler's own
    # calibration, not a cliff (the update never happened).
    skipped = set(series(records, schema.SKIPPED)[0])
    bad = [s for s, v in zip(steps, norms) if not math.isfinite(v) and s not in skipped]
    bad += [
        s
        for s, v in zip(loss_steps, losses)
        if not math.isfinite(v) and s not in bad and s not in skipped
    ]
    prog = progress(losses)
    scale = abs(prog.start) if prog is not None else None
    spikes = []
    for i in range(len(norms)):
        past = [v for v in norms[max(0, i - window) : i] if math.isfinite(v)]
        if len(past) < 5 or not math.isfinite(norms[i]):
            continue
        med = statistics.median(past)
        if not (med > 0 and norms[i] > factor * med):
            continue
        s = steps[i]
        before = loss_at.get(s)
        after = [loss_at[t] for t in (s + 1, s + 2, s + 3) if t in loss_at]
        recent = [loss_at[t] for t in range(s - window, s) if t in loss_at and finite(loss_at[t])]
        jump = None
        if finite(before) and after and before > 0:  # type: ignore[operator]
            # The rise must hold over two of the next three steps: at a small batch one hard
            # batch's loss is a reading of the sample, not of where the step went.
            ranked = sorted(after, key=lambda v: v if math.isfinite(v) else math.inf)
            worst = ranked[-2] if len(ranked) >= 2 else ranked[-1]
            jump = worst / before if math.isfinite(worst) else math.inf  # type: ignore[operator]
            if jump > 1.5 and len(recent) >= 5 and robust_z(worst, recent) < 3:
                jump = None  # within the loss's own noise
            elif jump > 1.5 and scale and worst - before < MATERIAL_RISE * scale:  # type: ignore[operator]
                jump = None  # a rise too small to matter against the run's own loss
        update = ratio_at.get(s)
        # Against the updates just before it, as the norm is: a schedule or Adam's warm-up moves
        # the run's typical update by orders of magnitude, and the run's median misses that.
        near = [ratio_at[t] for t in range(s - window, s) if t in ratio_at and finite(ratio_at[t])]
        base = statistics.median(near) if len(near) >= 5 else median_ratio
        outsized = bool(
            base
            and finite(update)
            and update > 10 * base  # type: ignore[operator]
            and update >= THROWN  # type: ignore[operator]
        )
        spikes.append(
            {
                schema.STEP: s,
                schema.GRAD_NORM: norms[i],
                "running_median": med,
                "ratio": norms[i] / med,
                "loss_before": before,
                "loss_after": after[0] if after else None,
                "loss_jump": jump,
                "outsized_update": outsized,
            }
        )
    kept = [v for v in norms if math.isfinite(v)]
    early = kept[: max(5, len(kept) // 10)]
    clip = statistics.median(early) if early else None
    w = max(5, len(kept) // 10)
    growth = (
        statistics.median(kept[-w:]) / statistics.median(kept[:w])
        if len(kept) >= 2 * w and statistics.median(kept[:w]) > 0
        else None
    )
    back = _growth_back_in_time(records)
    evidence: dict[str, Any] = {
        "steps_measured": len(steps),
        "spikes": spikes[:20],
        "spike_count": len(spikes),
        "nonfinite_steps": sorted(bad)[:20],
        "skipped_steps": len(skipped),
        "median_grad_norm": statistics.median(kept) if kept else None,
        "max_grad_norm": max(kept) if kept else None,
        "grad_norm_growth": growth,
        "median_update_ratio": median_ratio,
        "suggested_clip_norm": clip,
        "window": window,
        "factor": factor,
    }
    if prog is not None:
        evidence.update(loss_start=prog.start, loss_best=prog.best, loss_end=prog.end)
    if back is not None:
        evidence.update(hidden_module=back[0], hidden_growth_per_step=back[1])
    remedy = "lower the learning rate"
    if clip:
        remedy = (
            f"clip the gradient norm at about {clip:.3g} (the median norm of the run's first "
            "steps), e.g. torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm), and "
            "lower the learning rate"
        )
    if bad:
        return Finding(
            CLIFFS,
            Severity.CRITICAL,
            f"non-finite loss or gradient at step {min(bad)} ({len(bad)} steps in all)",
            evidence,
            remedy,
        )
    cliffs = [c for c in spikes if (c["loss_jump"] or 0) > 1.5 or c["outsized_update"]]
    if cliffs:
        hit = cliffs[0]
        # The spikes the verdict rests on, whatever their place among all the spikes (the
        # list above keeps only the first 20, and at a small batch most are crossed unharmed).
        evidence["cliffs"] = cliffs[:20]
        what = (
            f"the loss rose {hit['loss_jump']:.2g}x after it"
            if (hit["loss_jump"] or 0) > 1.5
            else "the update it made was outsized"
        )
        return Finding(
            CLIFFS,
            Severity.CRITICAL,
            f"{len(cliffs)} gradient spikes hit a cliff: at step {hit[schema.STEP]} the norm was "
            f"{hit['ratio']:.0f}x its running median and {what}",
            evidence,
            remedy,
        )
    reasons = []
    rose = prog is not None and prog.rose
    if rose and prog is not None and (growth is None or growth > 1 or back is not None):
        reasons.append(
            f"the loss rose from {prog.start:.3g} to {prog.end:.3g} (best {prog.best:.3g})"
            + (f" while the gradient norm grew {growth:.3g}x" if growth and growth > 1 else "")
        )
    # An update as large as the parameters themselves, after which the loss rose: the step
    # threw the point away (an outsized step needs no gradient spike to be a cliff).
    thrown = []
    for st, v in zip(ratio_steps, ratios):
        before = loss_at.get(st)
        after = [loss_at[t] for t in (st + 1, st + 2, st + 3) if t in loss_at]
        if math.isfinite(v) and v >= 0.5 and finite(before) and after and before > 0:  # type: ignore[operator]
            if max(after) > 1.2 * before:  # type: ignore[operator]
                thrown.append((st, v, max(after) / before))  # type: ignore[operator]
    if thrown:
        st, v, rise = thrown[0]
        evidence["outsized_updates"] = [t for t, _, _ in thrown][:10]
        reasons.append(
            f"at step {st} the update was {v:.2g}x the parameters' norm and the loss rose "
            f"{rise:.2g}x after it" + (f" ({len(thrown)} such steps)" if len(thrown) > 1 else "")
        )
    if median_ratio is not None and median_ratio > 0.3 and len(finite_ratios) >= 5:
        reasons.append(
            f"each update moves the parameters by {median_ratio:.2g} of their norm (the median "
            "update/parameter ratio; a sound step moves them by a few thousandths)"
        )
    stuck = prog is None or prog.drop < 0.1
    if back is not None and back[1] > 1.05 and stuck:
        reasons.append(
            f"the hidden-state gradients of {back[0]!r} grow {back[1]:.3g}x per step back in "
            "time while the loss does not fall"
        )
    if reasons:
        return Finding(
            CLIFFS,
            Severity.CRITICAL,
            "exploding: " + "; ".join(reasons),
            evidence,
            remedy,
        )
    if spikes:
        first = spikes[0]
        return Finding(
            CLIFFS,
            Severity.INFO,
            f"{len(spikes)} gradient-norm spikes (first at step {first[schema.STEP]}, "
            f"{first['ratio']:.0f}x the running median) with no loss jump or outsized update: "
            "the steps crossed them unharmed",
            evidence,
            "",
        )
    return Finding(
        CLIFFS,
        Severity.OK,
        f"no gradient-norm spike above {factor:g}x the running median and no explosion in "
        f"{len(steps)} steps",
        evidence,
        "",
    )


def detect_theoretical_limits(records: Sequence[Record]) -> Finding:
    """A run cannot show NP-hardness; the finding points to the lab's exact reproductions."""
    return Finding(
        THEORETICAL_LIMITS,
        Severity.INFO,
        "not measurable on a run: training even a 3-node network is NP-complete (Blum and "
        "Rivest 1992), so no optimizer is guaranteed to find the global minimum",
        {},
        "compare random restarts; see the lab's exact solution of tiny networks",
        measured=False,
    )


def _windows(values: Sequence[float], frac: float = 0.25) -> tuple[list[float], list[float]]:
    k = max(1, int(len(values) * frac))
    return list(values[:k]), list(values[-k:])


def _hidden_series(records: Sequence[Record]) -> dict[str, list[tuple[Any, list[float]]]]:
    """Each recurrent module's hidden-state gradient norms, one list per measurement."""
    found: dict[str, list[tuple[Any, list[float]]]] = {}
    for r in records:
        norms = r.get(schema.NORMS) if r.get(schema.TYPE) == schema.HIDDEN_GRADIENTS else None
        if isinstance(norms, list) and len(norms) >= 3:
            clean = [float(x) if finite(x) else math.nan for x in norms]
            found.setdefault(str(r.get(schema.MODULE, "rnn")), []).append(
                (r.get(schema.STEP), clean)
            )
    return found


def _cells(records: Sequence[Record]) -> dict[str, str]:
    return {
        str(r.get(schema.MODULE)): str(r.get(schema.CELL))
        for r in records
        if r.get(schema.TYPE) == schema.HIDDEN_GRADIENTS and r.get(schema.CELL)
    }


# Layers whose gradient says nothing about depth: normalization scales and shifts.
_NORM_KINDS = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm")


def _layer_ratios(
    records: Sequence[Record], kind: str
) -> tuple[list[Any], list[int], list[tuple[Any, float]], list[float]] | None:
    """The layers of the ``kind`` records (``layer_gradients`` or ``layer_updates``), the
    indices kept (normalization layers left out), for each record its step and the geometric
    mean norm of the first quarter of its live layers over the last quarter's (layers with no
    norm at all, dead units or unused parameters, left out; at least five), and the profile:
    each live kept layer's median log norm over the records, in depth order."""
    rows = [r for r in records if r.get(schema.TYPE) == kind]
    names = next((r[schema.NAMES] for r in rows if isinstance(r.get(schema.NAMES), list)), None)
    kinds = next((r[schema.KINDS] for r in rows if isinstance(r.get(schema.KINDS), list)), None)
    if not names:
        return None
    keep = [
        i
        for i in range(len(names))
        if not (kinds and i < len(kinds) and str(kinds[i]).startswith(_NORM_KINDS))
    ]
    ratios = []
    per_layer: dict[int, list[float]] = {}
    for r in rows:
        norms = r.get(schema.NORMS)
        if not isinstance(norms, list) or len(norms) != len(names):
            continue
        live = [i for i in keep if finite(norms[i]) and float(norms[i]) > 0]
        for i in live:
            per_layer.setdefault(i, []).append(math.log(float(norms[i])))
        if len(live) < 5:
            continue
        m = max(1, len(live) // 4)
        logs = [math.log(float(norms[i])) for i in live]
        ratio = math.exp(statistics.fmean(logs[:m]) - statistics.fmean(logs[-m:]))
        ratios.append((r.get(schema.STEP), ratio))
    profile = [statistics.median(per_layer[i]) for i in keep if i in per_layer]
    return names, keep, ratios, profile


def _steady(profile: list[float]) -> tuple[float, float] | None:
    """The least-squares slope of a depth profile of log norms (per layer) and the share of its
    variance the line explains: a steady geometric change from layer to layer, the signature of
    a product of Jacobians whose scale is not one, against scatter from layers unlike the
    rest (an embedding, a head)."""
    n = len(profile)
    if n < 3:
        return None
    xs = range(n)
    mx, my = (n - 1) / 2, statistics.fmean(profile)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, profile, strict=True))
    syy = sum((y - my) ** 2 for y in profile)
    slope = sxy / sxx
    return slope, (sxy * sxy / (sxx * syy) if syy > 0 else 0.0)


def _depth(records: Sequence[Record]) -> tuple[float, Finding] | None:
    """Vanishing or exploding gradients across the layers of a deep net: the geometric mean
    gradient norm of the first quarter of the layers against the last quarter's, the median over
    the ``layer_gradients`` records. Layers that got no gradient at all (dead units, unused
    parameters) and normalization layers are left out."""
    table = _layer_ratios(records, schema.LAYER_GRADIENTS)
    if table is None or len(table[1]) < 5 or not table[2]:
        return None
    names, keep, pairs, profile = table
    k = max(1, len(keep) // 4)
    steps, ratios = [s for s, _ in pairs], [v for _, v in pairs]
    ratio = statistics.median(ratios)
    per_layer = ratio ** (1 / max(len(keep) - k, 1))
    moved = _layer_ratios(records, schema.LAYER_UPDATES)
    updates = statistics.median([v for _, v in moved[2]]) if moved and moved[2] else None
    evidence = {
        "layers": len(keep),
        "first_layers": [names[i] for i in keep[:k]],
        "last_layers": [names[i] for i in keep[-k:]],
        "first_over_last": ratio,
        "rate_per_layer": per_layer,
        "measurements": len(ratios),
        "steps": steps[:10],
        # The same ratio for the updates the optimizer made: Adam's per-parameter scaling can
        # keep the first layers moving even where their gradient vanishes.
        "updates_first_over_last": updates,
    }
    # Beyond the thousandfold: a steady geometric change through a deep stack (eight layers or
    # more, a line explaining four fifths of the profile) that compounds to tenfold, the bar the
    # recurrent verdict sets for growth in time; scatter from one unlike layer does not count.
    fit = _steady(profile) if len(profile) >= 8 else None
    steady = 0.0
    if fit is not None and fit[1] >= 0.8:
        steady = -fit[0] * (len(profile) - 1)  # the line's log first/last over the stack
        evidence["steady_per_layer"] = math.exp(-fit[0])  # toward the input, as rate_per_layer
        evidence["steady_r2"] = fit[1]
    if ratio < 1e-3 or (steady < -math.log(10) and ratio < 0.1):
        sev = Severity.CRITICAL if ratio < 1e-6 else Severity.WARNING
        return -math.log10(ratio), Finding(
            LONG_TERM_DEPENDENCIES,
            sev,
            f"the gradient vanishes across depth: the first layers get {ratio:.2g} of the last "
            f"layers' gradient norm over {len(keep)} layers (x{per_layer:.3g} per layer, median "
            f"of {len(ratios)} steps"
            + (", steadily from layer to layer)" if "steady_r2" in evidence else ")"),
            evidence,
            "use residual connections and normalization, ReLU-like activations, or an "
            "initialization that preserves the gradient's scale (He, orthogonal)",
        )
    if ratio > 1e3 or (steady > math.log(10) and ratio > 10):
        sev = Severity.CRITICAL if ratio > 1e6 else Severity.WARNING
        return math.log10(ratio), Finding(
            LONG_TERM_DEPENDENCIES,
            sev,
            f"the gradient explodes across depth: the first layers get {ratio:.3g}x the last "
            f"layers' gradient norm over {len(keep)} layers (x{per_layer:.3g} per layer"
            + (", steadily from layer to layer)" if "steady_r2" in evidence else ")"),
            evidence,
            "lower the initialization's scale (a gain that preserves the gradient's norm), add "
            "normalization, or clip the gradient norm",
        )
    return -1.0, Finding(
        LONG_TERM_DEPENDENCIES,
        Severity.OK,
        f"the gradient keeps its scale across {len(keep)} layers (first/last {ratio:.3g})",
        evidence,
        "",
    )


def _recurrent(records: Sequence[Record]) -> list[tuple[float, Finding]]:
    """Decay or growth of ||dL/dh_t|| back in time per recurrent module, the median rate over
    its measurements, and the memory horizon (Bengio, Simard and Frasconi 1994)."""
    cells = _cells(records)
    found = []
    for module, rows in _hidden_series(records).items():
        slopes = [v for v in (log_slope(n, min_points=3) for _, n in rows) if v is not None]
        if not slopes:
            continue
        slope = statistics.median(slopes)
        norms = rows[-1][1]
        T = len(norms)
        rate = math.exp(max(min(slope, 50.0), -50.0))
        total = rate ** (T - 1)  # the median rate over the whole sequence: first / last
        horizon = math.log(1e-2) / slope if slope < 0 else math.inf
        cell = cells.get(module, "")
        evidence = {
            "module": module,
            "cell": cell or None,
            "measurements": len(slopes),
            "steps": [s for s, _ in rows][:10],
            "time_steps": T,
            "rate_per_step": rate,
            "first_over_last": total,
            "memory_horizon": horizon,
            "norm_last_step": norms[-1],
            "norm_first_step": norms[0],
        }
        if rate < 1 and horizon < T - 1:
            sev = Severity.CRITICAL if total < 1e-6 else Severity.WARNING
            gated = cell in ("LSTM", "GRU")
            remedy = (
                "the cell is gated already: shorten the dependencies the task needs, add "
                "attention or skip connections over time, or initialize the forget gate's bias "
                "high (1 to 2)"
                if gated
                else "use a gated cell (nn.LSTM or nn.GRU), initialize the recurrent weights "
                "orthogonal, or shorten the dependencies the task needs"
            )
            found.append(
                (
                    -math.log10(max(total, 1e-300)),
                    Finding(
                        LONG_TERM_DEPENDENCIES,
                        sev,
                        f"the gradient vanishes back in time in {module!r}: x{rate:.3g} per step "
                        f"(median of {len(slopes)} measurements), 1% of its last value after "
                        f"{horizon:.0f} of {T} steps",
                        evidence,
                        remedy,
                    ),
                )
            )
        elif rate > 1 and total > 10:
            sev = Severity.CRITICAL if total > 1e3 else Severity.WARNING
            found.append(
                (
                    math.log10(total),
                    Finding(
                        LONG_TERM_DEPENDENCIES,
                        sev,
                        f"the gradient explodes back in time in {module!r}: x{rate:.3g} per step, "
                        f"{total:.3g}x larger {T - 1} steps back (median of {len(slopes)} "
                        "measurements)",
                        evidence,
                        "clip the gradient norm and scale the recurrent weights to a spectral "
                        "radius below 1 (orthogonal initialization)",
                    ),
                )
            )
        else:
            found.append(
                (
                    -1.0,
                    Finding(
                        LONG_TERM_DEPENDENCIES,
                        Severity.OK,
                        f"the gradient reaches back {T} steps in {module!r} (x{rate:.3g} per step)",
                        evidence,
                        "",
                    ),
                )
            )
    return found


def detect_long_term_dependencies(records: Sequence[Record]) -> Finding:
    """Gradients that vanish or explode over long paths: back in time in recurrent modules
    (hidden-state gradients) and across the layers of deep feed-forward nets (per-layer gradient
    norms); the worst of them."""
    found = _recurrent(records)
    depth = _depth(records)
    if depth is not None:
        found.append(depth)
    if not found:
        return _not_measured(
            LONG_TERM_DEPENDENCIES,
            "no hidden-state gradients (no recurrent model) and no per-layer gradients of a net "
            "of five layers or more",
            "record layer_gradients (the curvature or full preset) for a deep net",
        )
    return max(found, key=lambda pair: pair[0])[1]


# The exact-steps test (steps from the end on the exact gradient against as many on the run's
# own minibatches): noise holds the run up where the exact steps regain a share of all the run
# gained and beat the minibatch steps by a margin; exact steps that regain almost nothing clear
# the noise of the charge.
EXACT_SHARE = 0.08
EXACT_OVER_MINIBATCH = 1.5
EXACT_CLEARS = 0.02
# ... and regain at least this share of the starting loss: a run that gained nothing (a plateau)
# makes any share of its gain large.
EXACT_FLOOR = 0.005


def _exact_steps(records: Sequence[Record], evidence: dict[str, Any]) -> tuple[bool, bool, str]:
    """What the ``exact_steps`` analysis says, where it ran: whether noise holds the run up,
    whether it clears the noise, and the arms in words."""
    found = _analyses(records, schema.EXACT_STEPS)
    if not found:
        return False, False, ""
    r = found[-1]
    if r.get(schema.ERROR):
        evidence["exact_steps_error"] = r.get(schema.ERROR)
        return False, False, ""
    start, end = number(r.get(schema.LOSS_START)), number(r.get(schema.LOSS))
    exact = number(r.get(schema.LOSS_EXACT))
    own_all = [float(v) for v in (r.get(schema.LOSS_MINIBATCH) or []) if finite(v)]
    steps = number(r.get(schema.STEPS))
    if start is None or end is None or exact is None or not own_all or steps is None:
        return False, False, ""
    own = mean(own_all)
    assert own is not None
    gained = start - end
    exact_gain, own_gain = end - exact, end - own
    evidence.update(
        exact_steps=steps,
        exact_steps_samples=r.get(schema.SAMPLES),
        loss_at_start=start,
        loss_at_end=end,
        loss_after_exact_steps=exact,
        loss_after_minibatch_steps=own,
    )
    # A run that ended no lower than it started has all its way still to go.
    share = exact_gain / gained if gained > 0 else math.inf
    evidence["exact_share_of_run_gain"] = share
    held = (
        share >= EXACT_SHARE
        and exact_gain >= EXACT_OVER_MINIBATCH * max(own_gain, 0.0)
        and exact_gain >= EXACT_FLOOR * abs(start)
    )
    clears = share < EXACT_CLEARS or exact_gain < EXACT_OVER_MINIBATCH * max(own_gain, 0.0)
    of_run = (
        f"{share:.0%} of all the run gained, {start:.3g} -> {end:.3g}"
        if gained > 0
        else f"the run itself gained nothing, {start:.3g} -> {end:.3g}"
    )
    rate, last = number(r.get(schema.ARMS_LR)), number(r.get(schema.LAST_LR))
    at = ""
    if rate is not None and last is not None and rate != last:
        evidence.update(exact_steps_lr=rate, last_lr=last)
        at = f" at the run's median learning rate {rate:.3g} (it ended at {last:.3g})"
    arms = (
        f"{steps:.0f} steps from the end{at} on the exact gradient of {r.get(schema.SAMPLES)} "
        f"samples take the training loss {end:.3g} -> {exact:.3g} ({of_run}), as many on the "
        f"run's own minibatches {end:.3g} -> {own:.3g}"
    )
    return held, clears, arms


# The larger-batch rerun (the run again on batches FACTOR times larger, same steps): noise held
# the run up where the rerun ends lower by a share of all the run gained and by an amount that
# matters at the run's scale (MATERIAL_RISE of the starting loss, as for a cliff); a rerun
# that regains almost nothing, or less than that, clears the noise; between, it does not decide.
LARGER_SHARE = 0.15
LARGER_CLEARS = 0.02


def _larger_batch(records: Sequence[Record], evidence: dict[str, Any]) -> tuple[bool, bool, str]:
    """What the ``larger_batch`` rerun says, where it ran: whether noise held the run up,
    whether it clears the noise, and the rerun in words."""
    found = _analyses(records, schema.LARGER_BATCH)
    if not found:
        return False, False, ""
    r = found[-1]
    if r.get(schema.ERROR):
        evidence["larger_batch_error"] = r.get(schema.ERROR)
        return False, False, ""
    start, end = number(r.get(schema.LOSS_START)), number(r.get(schema.LOSS))
    other, size = number(r.get(schema.LOSS_LARGER)), number(r.get(schema.BATCH_LARGER))
    steps = number(r.get(schema.STEPS))
    if start is None or end is None or other is None or size is None or steps is None:
        return False, False, ""
    gained, regained = start - end, end - other
    share = regained / gained if gained > 0 else math.inf
    evidence.update(
        larger_batch=size,
        loss_larger_batch=other,
        larger_batch_share_of_run_gain=share,
        larger_batch_loss_at_end=end,
    )
    held = share >= LARGER_SHARE and regained >= MATERIAL_RISE * abs(start)
    # What the noise costs must matter at the run's scale whichever measurement charges it.
    clears = share < LARGER_CLEARS or regained < MATERIAL_RISE * abs(start)
    of_run = (
        f"{share:.{1 if abs(share) < 0.01 else 0}%} of all the run gained, {start:.3g} -> {end:.3g}"
        if gained > 0
        else f"the run itself gained nothing, {start:.3g} -> {end:.3g}"
    )
    words = (
        f"the same {steps:.0f} steps on batches of {size:.0f} from the run's first parameters "
        f"end at a training loss of {other:.3g} against the run's {end:.3g} "
        f"({'a further ' + format(regained, '.3g') if regained > 0 else 'no lower'}: {of_run})"
    )
    return held, clears, words


class _NoiseScale(NamedTuple):
    """The noise tier's reading over the later half of the run."""

    b_simple: float | None  # the critical batch size (inf: |G|^2 not resolved above the noise)
    batch: float | None  # the batch in use
    snr: float | None
    measurements: int  # the (tr Sigma, |G|^2) pairs B_simple rests on
    mean_trace_cov: float | None
    mean_grad_norm_sq: float | None
    steps: list[int]


def _noise_scale(records: Sequence[Record]) -> _NoiseScale | None:
    """The critical batch size B_simple, the batch in use and what they rest on; None where the
    noise tier did not measure."""
    steps_b, batch = series(records, schema.BATCH_SIZE)
    _, trace_cov = series(records, schema.TRACE_COV)
    _, g2 = series(records, schema.GRAD_NORM_SQ_UNBIASED)
    _, snr = series(records, schema.SNR)
    if not batch or not trace_cov or len(g2) != len(trace_cov):
        return None
    # A ratio of means over the later half of the run, as McCandlish et al. advise: one small
    # batch's estimate of |G|^2 is too noisy to divide by.
    half = len(trace_cov) // 2
    pairs = [(t, g) for t, g in zip(trace_cov[half:], g2[half:]) if math.isfinite(t + g)]
    mean_tr = mean([t for t, _ in pairs]) if pairs else None
    mean_g2 = mean([g for _, g in pairs]) if pairs else None
    bs: float | None = None
    if mean_tr is not None and mean_g2 is not None:
        bs = mean_tr / mean_g2 if mean_g2 > 0 else math.inf
    return _NoiseScale(
        bs,
        median(batch[half:]),
        median(snr[half:]) if snr else None,
        len(pairs),
        mean_tr,
        mean_g2,
        steps_b[half:],
    )


def needs_larger_batch(records: Sequence[Record]) -> bool:
    """Whether a run calls for the ``larger_batch`` rerun to judge its noise: the noise tier
    measured a batch under the critical batch size B_simple (or |G|^2 not resolved above the
    noise), and the batch is not the whole training set."""
    noise = _noise_scale(records)
    if noise is None:
        return False
    bs, size = noise.b_simple, noise.batch
    samples = number(_header(records).get(schema.SAMPLES))
    if bs is None or size is None or (samples and size >= samples):
        return False
    return math.isinf(bs) or size < bs


def detect_inexact_gradients(records: Sequence[Record]) -> Finding:
    """Gradient noise against the batch size in use (McCandlish et al. 2018), judged against
    the run's progress: noise that dominates the minibatch gradient where the loss stalls far
    from where training got it to (the start) is a finding; noise that dominates at convergence
    is how a minimum looks through a minibatch, and is not.

    Where ``diagnose`` measured it (the ``exact_steps`` analysis: steps from the end on the exact
    gradient against as many on the run's own minibatches), what the noise costs decides: exact
    steps that regain a share of the run's gain and beat the minibatch steps charge it; exact
    steps that regain almost nothing clear it. Elsewhere the run's own records decide."""
    scale = _noise_scale(records)
    if scale is None:
        return _not_measured(
            INEXACT_GRADIENTS, "no gradient-noise measurements", "enable the noise tier"
        )
    bs, size, s = scale.b_simple, scale.batch, scale.snr
    _, losses = series(records, schema.LOSS)
    prog = mean_progress(losses)
    samples = number(_header(records).get(schema.SAMPLES))
    evidence: dict[str, Any] = {
        "b_simple": bs,
        "batch_size": size,
        "snr": s,
        "measurements": scale.measurements,
        "mean_trace_cov": scale.mean_trace_cov,
        "mean_grad_norm_sq": scale.mean_grad_norm_sq,
        "steps": scale.steps[:10],
        "training_samples": samples,
    }
    # The run's first steps, against which it can also count as converged: a run that did its
    # work within its first tenth starts its levels already low.
    opening = [v for v in losses[:5] if math.isfinite(v)]
    first = mean(opening) if opening else None
    if prog is not None:
        evidence.update(
            loss_start=prog.start,
            loss_middle=prog.middle,
            loss_end=prog.end,
            converged=prog.converged,
            stalled=prog.stalled,
            loss_first_steps=first,
        )
    if bs is None or size is None:
        return _not_measured(INEXACT_GRADIENTS, "noise measurements were not finite", "")
    if samples and size >= samples:
        return Finding(
            INEXACT_GRADIENTS,
            Severity.OK,
            f"each step takes the whole training set ({size:.0f} samples): the gradient is exact",
            evidence,
            "",
        )
    # Noise larger than the signal at this batch (B < B_simple): the minibatch gradient's
    # direction is mostly noise.
    dominates = math.isinf(bs) or size < bs
    noise = (
        f"|G|^2 is not resolved above the noise at batch {size:.0f}"
        if math.isinf(bs)
        else f"the critical batch size B_simple is {bs:.3g} against the batch of {size:.0f}"
    )
    if s is not None:
        noise += f", signal-to-noise {s:.2g}"
    target = bs if math.isfinite(bs) else 10 * size
    if samples:
        target = min(target, samples)
    remedy = (
        f"raise the batch size toward {target:.0f}"
        + (f" (the training set has {samples:.0f} samples)" if samples else "")
        + ", or lower the learning rate (or decay it) so that steps average the noise"
    )
    held, clears, arms = _exact_steps(records, evidence)
    # The rerun on larger batches is the direct measurement: where it charges or clears the
    # noise, it decides; the exact-steps arms and the run's own records judge what it leaves
    # open (a share between the two, or a regain too small at the run's scale).
    larger_held, larger_clears, larger = _larger_batch(records, evidence)
    if larger and dominates and larger_held:
        tried = evidence["larger_batch"]
        return Finding(
            INEXACT_GRADIENTS,
            Severity.WARNING,
            f"gradient noise holds the run up: {larger} ({noise})" + (f"; {arms}" if arms else ""),
            evidence,
            f"raise the batch size to {tried:.0f} or more (the rerun's), or lower the learning "
            "rate (or decay it) so that steps average the noise",
        )
    if larger and dominates and larger_clears:
        small = evidence["larger_batch_share_of_run_gain"] >= LARGER_CLEARS
        return Finding(
            INEXACT_GRADIENTS,
            Severity.OK,
            f"gradient noise dominates ({noise}) "
            + (
                f"at a cost too small for the run's scale (under {MATERIAL_RISE:.0%} of its "
                "starting loss)"
                if small
                else "without holding the run up"
            )
            + f": {larger}"
            + (f"; {arms}" if arms else ""),
            evidence,
            "",
        )
    if larger:  # between clearing and charging: the arms and the run's records judge
        arms = f"{larger}; {arms}" if arms else larger
    if held and dominates:
        return Finding(
            INEXACT_GRADIENTS,
            Severity.WARNING,
            f"gradient noise holds the run up: {arms} ({noise})",
            evidence,
            remedy,
        )
    if not dominates:
        return Finding(
            INEXACT_GRADIENTS,
            Severity.OK,
            f"the batch of {size:.0f} is above the critical batch size {bs:.3g}: the minibatch "
            "gradient is mostly signal",
            evidence,
            "",
        )
    early = prog is not None and first is not None and prog.end <= 0.15 * first
    if prog is None or prog.converged or early:
        begin = first if early and first is not None else prog.start if prog else None
        return Finding(
            INEXACT_GRADIENTS,
            Severity.OK,
            f"the gradient noise dominates ({noise}) where the loss has converged "
            + (f"({begin:.3g} -> {prog.end:.3g})" if prog and begin is not None else "")
            + ": near a minimum the mean gradient vanishes and the noise remains, as expected"
            + (f"; {arms}" if arms else ""),
            evidence,
            "",
        )
    # What the steps gain on their own batch (the curvature tier's actual change) against what
    # the run keeps: noise undoes progress when each step fits its batch and the loss stays.
    a_steps, actual = series(records, schema.ACTUAL_CHANGE)
    late = [-a for st, a in zip(a_steps, actual) if math.isfinite(a) and st >= len(losses) // 2]
    gain = statistics.median(late) if len(late) >= 3 else None
    kept = (prog.middle - prog.end) / max(len(losses) - len(losses) // 2, 1)
    evidence.update(own_batch_gain_per_step=gain, kept_per_step=kept)
    undone = (
        gain is not None
        and gain > 0
        and gain * (len(losses) / 2) > 0.05 * abs(prog.end)
        and kept < 0.1 * gain
    )
    if undone and clears:
        return Finding(
            INEXACT_GRADIENTS,
            Severity.OK,
            f"gradient noise dominates ({noise}) without holding the run up: {arms}",
            evidence,
            "",
        )
    if undone:
        assert gain is not None
        return Finding(
            INEXACT_GRADIENTS,
            Severity.WARNING,
            f"gradient noise dominates ({noise}) and undoes the steps' progress: each step lowers "
            f"its own batch's loss by {gain:.3g} (median over the second half), the run keeps "
            f"{max(kept, 0.0):.2g} per step ({prog.middle:.3g} -> {prog.end:.3g} over the second "
            f"half, {prog.end / prog.start:.0%} of its start)" + (f"; {arms}" if arms else ""),
            evidence,
            remedy,
        )
    if prog.stalled:
        why = (
            "the steps gain little even on their own batch, so the noise is not what stalls it"
            if gain is not None
            else "the curvature tier's actual change, which tells noise from a flat region, was "
            "not measured"
        )
        return Finding(
            INEXACT_GRADIENTS,
            Severity.INFO,
            f"gradient noise dominates ({noise}) where the loss stalls; {why}"
            + (f"; {arms}" if arms else ""),
            evidence,
            remedy if gain is None else "",
        )
    return Finding(
        INEXACT_GRADIENTS,
        Severity.INFO,
        f"gradient noise dominates ({noise}), but the loss is still falling "
        f"({prog.middle:.3g} -> {prog.end:.3g} over the second half)"
        + (f"; {arms}" if arms else ""),
        evidence,
        remedy,
    )


def detect_ill_conditioning(records: Sequence[Record]) -> Finding:
    """Curvature judged on the step the optimizer actually takes (Deep Learning sec. 8.2.1):

    - the second-order model of the actual update d, g^T d + 1/2 d^T H d, predicts a rise of
      the loss (and the step's own batch loss did rise) in a fifth of the measured steps or more;
    - sharpness at or above the optimizer's stability threshold (of P^-1 H for Adam) in a third
      of the measurements or more, not one;
    - for a step along the gradient, g^T H g / g^T g at or above the threshold (the book's
      criterion lr/2 g^T H g > g^T g) in a tenth of the measured steps.

    The book's other sign, g^T H g growing tenfold while g^T g does not shrink, is evidence, not
    a verdict: a sharpening network that trains well shows it too.
    """
    _, gthg = series(records, schema.GTHG)
    _, gtg = series(records, schema.GTG)
    steps_p, pred = series(records, schema.PREDICTED_CHANGE)
    _, actual = series(records, schema.ACTUAL_CHANGE)
    steps_s, sharp = series(records, schema.SHARPNESS)
    steps_t, thresh = series(records, schema.STABILITY_THRESHOLD)
    if not gthg and not sharp:
        return _not_measured(
            ILL_CONDITIONING, "no curvature measurements", "enable the curvature tier"
        )
    evidence: dict[str, Any] = {"curvature_measurements": len(gthg)}
    reasons = []
    if len(gthg) >= 4 and len(gtg) == len(gthg):
        e_h, l_h = (median(w) for w in _windows(gthg))
        e_g, l_g = (median(w) for w in _windows(gtg))
        evidence.update(gthg_early=e_h, gthg_late=l_h, gtg_early=e_g, gtg_late=l_g)
    measured = [
        (s, p, a) for s, p, a in zip(steps_p, pred, actual) if math.isfinite(p) and math.isfinite(a)
    ]
    # Once the loss is nine tenths of the way down, an optimizer bouncing in the basin's floor
    # is how training ends (Adam's noise floor, the edge of stability): only the steps taken
    # before count.
    loss_steps, losses = series(records, schema.LOSS)
    prog = progress(losses)
    loss_at = dict(zip(loss_steps, losses))
    if prog is not None and prog.start > 0:
        floor = prog.best + 0.1 * (prog.start - prog.best)
        measured = [m for m in measured if finite(loss_at.get(m[0])) and loss_at[m[0]] > floor]
    # The curvature is at fault only where it overturns a first-order decrease (g^T d < 0): an
    # update that climbs its batch's loss from the start (g^T d > 0) carries momentum or Adam's
    # memory of other batches, which at a small batch is the noise, not the step's length.
    slope_at = dict(zip(*series(records, schema.UPDATE_SLOPE)))
    uphill = {s for s, _, _ in measured if finite(slope_at.get(s)) and slope_at[s] >= 0}
    rising = [s for s, p, a in measured if p > 0 and a > 0 and s not in uphill]
    if measured:
        evidence.update(
            steps_predicted=len(measured),
            steps_raising_loss=len(rising),
            first_rises=rising[:10],
            steps_uphill_first_order=len(uphill),
        )
        if len(rising) >= 3 and len(rising) >= 0.2 * len(measured):
            reasons.append(
                f"in {len(rising)} of {len(measured)} measured steps the optimizer's own update "
                "raised the loss of its batch, as the second-order model g^T d + 1/2 d^T H d "
                f"predicted (first at step {rising[0]}): the step is too long for the curvature "
                "along it"
            )
    steps_c, along = series(records, schema.CURVATURE_ALONG_GRADIENT)
    steps_g, th_c = series(records, schema.GRADIENT_THRESHOLD)
    th_at = dict(zip(steps_g, th_c))
    paired = [(s, c, th_at[s]) for s, c in zip(steps_c, along) if s in th_at]
    over_g = [(s, c, t) for s, c, t in paired if math.isfinite(c) and math.isfinite(t) and c >= t]
    if paired:
        evidence.update(
            curvature_along_gradient_last=paired[-1][1],
            gradient_threshold=paired[-1][2],
            steps_gradient_above_threshold=[s for s, _, _ in over_g][:10],
        )
        if len(over_g) >= 2 and len(over_g) > 0.1 * len(paired):
            s0, c0, t0 = over_g[0]
            reasons.append(
                f"in {len(over_g)} of {len(paired)} measured steps the curvature along the "
                f"gradient, g^T H g / g^T g, reached the stability threshold (first at step {s0}: "
                f"{c0:.3g} >= {t0:.3g}), so a gradient step there raises the loss"
            )
    t_at = dict(zip(steps_t, thresh))
    judged = [
        (s, v, t_at[s])
        for s, v in zip(steps_s, sharp)
        if s in t_at and math.isfinite(v) and math.isfinite(t_at[s])
    ]
    over = [(s, v, t) for s, v, t in judged if v >= t]
    if sharp:
        evidence.update(
            sharpness_max=max((v for v in sharp if math.isfinite(v)), default=None),
            sharpness_measurements=len(judged),
            stability_threshold=judged[-1][2] if judged else None,
            steps_at_or_above=[s for s, _, _ in over][:10],
        )
        # Training at the edge of stability still makes progress (Cohen et al. 2021): sharpness
        # at the threshold is a verdict only where the steps also fail, raising their batch's loss
        # or stalling far from the end.
        failing = bool(rising) and len(rising) >= 0.1 * max(len(measured), 1)
        stuck = prog is not None and prog.stalled and not prog.converged
        evidence["edge_of_stability"] = bool(over) and len(over) >= len(judged) / 3
        if (
            judged
            and len(over) >= 1
            and len(over) >= len(judged) / 3
            and len(judged) >= 2
            and (failing or stuck)
        ):
            s, v, t = over[0]
            reasons.append(
                f"sharpness at or above the stability threshold in {len(over)} of "
                f"{len(judged)} measurements (first at step {s}: {v:.3g} >= {t:.3g})"
            )
    if reasons:
        top = max(
            [c / t for _, c, t in over_g if t > 0] + [v / t for _, v, t in judged if t > 0],
            default=0.0,
        )
        remedy = "lower the learning rate, or use a preconditioned optimizer or normalization"
        if top > 1:
            remedy = (
                f"scale the learning rate by {0.9 / top:.3g} or less (to bring the measured "
                "curvature under the stability threshold), or use a preconditioned optimizer "
                "(Adam) or normalization"
            )
        return Finding(ILL_CONDITIONING, Severity.WARNING, "; ".join(reasons), evidence, remedy)
    if evidence.get("edge_of_stability"):
        summary = (
            "sharpness reached the stability threshold (the edge of stability) while the steps "
            "kept lowering the loss: how gradient descent often trains, not a fault"
        )
    else:
        summary = (
            "the optimizer's steps lower the loss the curvature lets them, and sharpness stays "
            "below the stability threshold"
        )
    return Finding(ILL_CONDITIONING, Severity.OK, summary, evidence, "")


def _final_point(records: Sequence[Record]) -> Record | None:
    found = _analyses(records, schema.FINAL_POINT)
    return found[-1] if found else None


def detect_saddle_points(records: Sequence[Record]) -> Finding:
    """Plateaus anywhere in the run: stretches of a flat loss that are not its convergence (the
    loss later escapes them, or never left its start), their share of the run, the smallest
    Hessian eigenvalue measured on them, and layers that get no gradient (dead units). Negative
    curvature there makes a saddle (Dauphin et al. 2014); none, a flat region."""
    steps, loss = series(records, schema.LOSS)
    g_steps, gnorm = series(records, schema.GRAD_NORM)
    if len(loss) < 20:
        return _not_measured(SADDLE_POINTS, "too few steps to judge flatness", "run longer")
    n = len(loss)
    found = plateaus(loss, min_length=max(10, n // 10))
    smoothed = smooth(loss, window_for(n))
    l_steps, lmin = series(records, schema.LAMBDA_MIN)
    _, lmax = series(records, schema.SHARPNESS)
    a_steps, actual = series(records, schema.ACTUAL_CHANGE)
    scale = max((abs(v) for v in lmax if math.isfinite(v)), default=0.0)
    final = _final_point(records)
    g_at = dict(zip(g_steps, gnorm))
    peak = max((v for v in gnorm if math.isfinite(v)), default=0.0)
    evidence: dict[str, Any] = {"steps": n, "plateaus": []}
    dead = _dead_layers(records)
    if dead:
        evidence["layers_without_gradient"] = dead[:10]
    worst: dict[str, Any] | None = None
    for p in found:
        first, last = steps[p.first], steps[p.last]
        on = [v for s, v in zip(l_steps, lmin) if first <= s <= last and math.isfinite(v)]
        if final is not None and p.escaped_at is None and finite(final.get(schema.LAMBDA_MIN)):
            on.append(float(final[schema.LAMBDA_MIN]))
        g_on = [g_at[s] for s in steps[p.first : p.last + 1] if s in g_at and finite(g_at[s])]
        episode: dict[str, Any] = {
            "first_step": first,
            "last_step": last,
            "share": (p.last - p.first + 1) / n,
            "loss_level": p.level,
            "escape_step": steps[p.escaped_at] if p.escaped_at is not None else None,
            "smallest_eigenvalue": min(on) if on else None,
            "grad_norm_median": statistics.median(g_on) if g_on else None,
            "grad_norm_peak": peak,
        }
        # Where the optimizer's own steps raise their batch's loss, the loss is level because
        # the steps overshoot (ill-conditioning), not because the region is flat.
        rises = [
            a > 0 for st, a in zip(a_steps, actual) if first <= st <= last and math.isfinite(a)
        ]
        if len(rises) >= 3 and sum(rises) > 0.3 * len(rises):
            continue
        # An escaped plateau is one where the gradient was small: on the way down it grew. A
        # stretch of slow progress at a steady gradient (ill-conditioning) is not flat.
        if p.escaped_at is not None:
            # The descent: from the plateau's end until the loss has come half the way down to
            # the lowest level after it, where leaving a saddle the gradient grows the most;
            # its smoothed peak, so that one steep step does not count.
            w = window_for(n)
            low = min(smoothed[p.escaped_at :])
            half = next(
                t for t in range(p.escaped_at, n) if smoothed[t] <= p.level - 0.5 * (p.level - low)
            )
            around = steps[p.last + 1 : half + w + 1]
            g_down = [g_at[s] for s in around if s in g_at and finite(g_at[s])]
            if g_on and g_down:
                episode["grad_norm_descent"] = max(smooth(g_down, w))
                if statistics.median(g_on) > 0.5 * episode["grad_norm_descent"]:
                    continue
        evidence["plateaus"].append(episode)
        if worst is None or episode["share"] > worst["share"]:
            worst = episode
    evidence["share_on_plateaus"] = sum(e["share"] for e in evidence["plateaus"])
    if worst is None:
        return Finding(
            SADDLE_POINTS,
            Severity.OK,
            f"no plateau in {n} steps: wherever the loss is flat it has converged",
            evidence,
            "",
        )
    where = f"steps {worst['first_step']}-{worst['last_step']}"
    escape = (
        f", escaped at step {worst['escape_step']}"
        if worst["escape_step"] is not None
        else ", never escaped"
    )
    summary = (
        f"the loss sat on a plateau at {worst['loss_level']:.3g} for {worst['share']:.0%} of the "
        f"run ({where}{escape})"
    )
    lam = worst["smallest_eigenvalue"]
    ref = max(scale, abs(lam) if lam is not None else 0.0)
    if lam is not None and lam < -1e-3 * max(ref, 1e-12):
        kind = "a saddle"
        summary += f" with negative curvature (lambda_min {lam:.3g}): {kind}"
        remedy = (
            "escape along negative curvature: a larger initialization or learning rate, "
            "momentum, or noise; a saddle-free Newton step"
        )
    else:
        kind = "a flat region"
        summary += (
            f" with no negative curvature (lambda_min {lam:.3g}): {kind}"
            if lam is not None
            else f", curvature not measured there: {kind} or a saddle"
        )
        remedy = (
            "a flat region: check for dead units (ReLU biases, a learning rate that killed them), "
            "saturated activations or a too-small initialization; a larger learning rate or "
            "momentum crosses it faster"
        )
    if dead:
        summary += f"; {len(dead)} layers get no gradient at all (dead units)"
    # A brief plateau the run escaped by itself asks for nothing: reported, not alarmed. One
    # that holds a fifth of the run, or that the run never left, costs it.
    costly = worst["share"] >= 0.2 or worst["escape_step"] is None or bool(dead)
    if not costly:
        return Finding(
            SADDLE_POINTS,
            Severity.INFO,
            summary + ", brief and escaped by the run itself",
            evidence,
            "",
        )
    return Finding(SADDLE_POINTS, Severity.WARNING, summary, evidence, remedy)


def _dead_layers(records: Sequence[Record]) -> list[str]:
    """The layers whose gradient was exactly zero in at least 90% of the measured steps."""
    rows = [r for r in records if r.get(schema.TYPE) == schema.LAYER_GRADIENTS]
    names = next((r[schema.NAMES] for r in rows if isinstance(r.get(schema.NAMES), list)), None)
    if not names or len(rows) < 5:
        return []
    zero = [0] * len(names)
    counted = 0
    for r in rows:
        norms = r.get(schema.NORMS)
        if isinstance(norms, list) and len(norms) == len(names):
            counted += 1
            for i, v in enumerate(norms):
                if finite(v) and float(v) == 0.0:
                    zero[i] += 1
    if not counted:
        return []
    return [str(names[i]) for i, z in enumerate(zero) if z >= 0.9 * counted]


def needs_restarts(records: Sequence[Record]) -> bool:
    """Whether a run's end calls for restarts to judge it: the loss stalled in its last fifth
    (not still falling, not converged to near zero) at a point with no significant negative
    curvature (the final point's smallest eigenvalue, where it was measured)."""
    _, loss = series(records, schema.LOSS)
    if len(loss) < 20:
        return False
    prog = progress(loss)
    if prog is None or prog.rose:
        return False
    tail = loss[-max(10, len(loss) // 5) :]
    level = median(tail)
    k = max(1, len(tail) // 4)
    head, end = median(tail[:k]), median(tail[-k:])
    if level is None or head is None or end is None or level <= 1e-3 * max(abs(prog.start), 1):
        return False
    if head - end > 0.02 * abs(level):
        # Still falling, unless slowly and with the gradient an order of magnitude below where
        # it started: settling into the minimum it has found, which restarts can judge.
        _, gnorm = series(records, schema.GRAD_NORM)
        g_head = median(gnorm[: len(tail)]) if len(gnorm) == len(loss) else None
        g_end = median(gnorm[-len(tail) :]) if len(gnorm) == len(loss) else None
        settling = g_head is not None and g_end is not None and g_end <= 0.1 * g_head
        if not settling or head - end > 0.1 * abs(level):
            return False
    final = _final_point(records)
    if final is not None and finite(final.get(schema.LAMBDA_MIN)):
        lmin, lmax = float(final[schema.LAMBDA_MIN]), abs(number(final.get(schema.LAMBDA_MAX)) or 0)
        if lmin < -0.01 * max(lmax, abs(lmin)):
            return False  # a saddle, not a minimum
    return True


def detect_local_minima(records: Sequence[Record]) -> Finding:
    """A stalled end judged against restarts (Deep Learning sec. 8.2.2): restarts of the same
    experiment from other seeds that reach a clearly lower loss show a poor local minimum; the
    same loss, equivalent minima. Without restarts, the negative test: a stalled loss whose
    gradient norm does not shrink is not at a critical point, so not at a minimum."""
    _, loss = series(records, schema.LOSS)
    _, gnorm = series(records, schema.GRAD_NORM)
    if len(loss) < 20 or len(gnorm) != len(loss):
        return _not_measured(LOCAL_MINIMA, "too few steps", "run longer")
    window = max(10, len(loss) // 5)
    g_head, g_tail = median(gnorm[:window]), median(gnorm[-window:])
    prog = progress(loss)
    stalled = needs_restarts(records)
    evidence: dict[str, Any] = {
        "stalled": stalled,
        "window": window,
        "grad_norm_early": g_head,
        "grad_norm_late": g_tail,
        "loss_end": loss[-1],
    }
    found = _analyses(records, schema.RESTARTS)
    if found:
        r = found[-1]
        own = number(r.get(schema.LOSS))
        others = [float(v) for v in (r.get(schema.LOSSES) or []) if finite(v)]
        evidence.update(
            restart_seeds=r.get(schema.SEEDS), restart_losses=r.get(schema.LOSSES), final_loss=own
        )
        if own is not None and math.isfinite(own) and others:
            # Clearly lower: by a tenth of the run's loss and a twentieth of what it gained, so
            # that the spread of seeds about one good minimum does not make it a poor one.
            gained = max(prog.start - own, 0.0) if prog is not None else 0.0
            margin = max(0.1 * abs(own), 0.05 * gained, 1e-3)
            evidence["margin"] = margin
            lower = [v for v in others if v < own - margin]
            evidence["restarts_lower"] = len(lower)
            if len(lower) * 2 >= len(others):
                return Finding(
                    LOCAL_MINIMA,
                    Severity.WARNING,
                    f"a poor local minimum: the run stalled at loss {own:.4g}, and {len(lower)} "
                    f"of {len(others)} restarts from other seeds reached lower (best "
                    f"{min(others):.4g})",
                    evidence,
                    "keep the best of several restarts, or change what makes this seed's start "
                    "poor (a wider network, another initialization scale, a larger learning "
                    "rate early)",
                )
            same = [v for v in others if abs(v - own) <= margin]
            return Finding(
                LOCAL_MINIMA,
                Severity.INFO if stalled else Severity.OK,
                f"restarts from other seeds end at the same loss ({len(same)} of {len(others)} "
                f"within {margin:.2g} of {own:.4g}): equivalent minima, not a poor local one",
                evidence,
                "",
            )
    failed = found[-1].get(schema.ERROR) if found else None
    if failed:
        evidence["restarts_error"] = failed
    if stalled and g_head and g_tail is not None and g_tail >= 0.5 * g_head:
        return Finding(
            LOCAL_MINIMA,
            Severity.INFO,
            f"the loss stalled but the gradient norm did not shrink ({g_head:.3g} -> "
            f"{g_tail:.3g}): not a critical point, so not a local minimum",
            evidence,
            "look at ill-conditioning, noise and cliffs, not at local minima",
        )
    if stalled:
        return Finding(
            LOCAL_MINIMA,
            Severity.INFO,
            f"the loss stalled at {loss[-1]:.4g} with the gradient norm down to {g_tail:.3g}: a "
            "critical point; whether it is a poor local minimum needs restarts, "
            + (
                f"which failed ({failed})"
                if failed
                else "which were not run (no experiment factory: optiscope diagnose runs them "
                "from an experiment)"
            ),
            evidence,
            "compare the final losses of random restarts (optiscope landscape --kind restarts)",
        )
    if prog is not None and prog.rose:
        state = f"the loss rose ({prog.start:.3g} -> {prog.end:.3g}): no minimum was reached"
    elif prog is not None and prog.converged:
        state = f"the loss converged ({prog.start:.3g} -> {prog.end:.3g})"
    else:
        state = "the loss was still decreasing at the end of the run"
    return Finding(LOCAL_MINIMA, Severity.OK, state, evidence, "")


def detect_local_global_mismatch(records: Sequence[Record]) -> Finding:
    """A barrier on the straight path from the start to the end, and a trajectory much longer
    than the distance it covers (Goodfellow, Vinyals and Saxe 2015); the share of the
    trajectory's variance in its first two principal components (Li et al. 2018) says whether
    the plane of the picture shows the path taken."""
    found = _analyses(records, schema.INTERPOLATION)
    if not found:
        return _not_measured(
            LOCAL_GLOBAL_MISMATCH,
            "no interpolation from the start to the end of the run",
            "run the end-of-run interpolation",
        )
    r = found[-1]
    barrier, length = r.get(schema.BARRIER), r.get(schema.PATH_LENGTH)
    distance = r.get(schema.DISTANCE)
    evidence: dict[str, Any] = {"barrier": barrier, "path_length": length, "distance": distance}
    ratio = None
    if finite(length) and finite(distance) and distance:
        ratio = float(length) / float(distance)  # type: ignore[arg-type]
    evidence["length_over_distance"] = ratio
    traj = _analyses(records, schema.TRAJECTORY)
    plane = ""
    if traj and isinstance(traj[-1].get(schema.EXPLAINED), list):
        explained = [float(v) for v in traj[-1][schema.EXPLAINED] if finite(v)]
        evidence["trajectory_explained"] = explained
        evidence["trajectory_ratio"] = traj[-1].get(schema.RATIO)
        if len(explained) == 2:
            plane = f"; two directions hold {sum(explained):.0%} of the trajectory's variance"
    losses = r.get(schema.LOSSES)
    losses = losses if isinstance(losses, list) else []  # a record read back may hold anything
    ends = [v for v in losses[:1] + losses[-1:] if finite(v)]
    scale = max([abs(float(v)) for v in ends] + [1e-12])
    gained = abs(float(ends[0]) - float(ends[-1])) if len(ends) == 2 else 0.0
    evidence["loss_gained"] = gained
    # A barrier that matters: a tenth of what training gained from the start to the end (and
    # above rounding); a bump far smaller than the descent is the path's texture.
    if finite(barrier) and float(barrier) > max(0.1 * gained, 1e-3 * scale):  # type: ignore[arg-type]
        return Finding(
            LOCAL_GLOBAL_MISMATCH,
            Severity.WARNING,
            f"a barrier of {barrier:.3g} on the straight path from the start to the end{plane}",
            evidence,
            "the path taken is not the straight one: try other initializations",
        )
    if ratio is not None and ratio > 10:
        return Finding(
            LOCAL_GLOBAL_MISMATCH,
            Severity.INFO,
            f"the trajectory is {ratio:.3g}x longer than the distance it covers{plane}",
            evidence,
            "a larger learning rate early, or a schedule, may shorten the path",
        )
    return Finding(
        LOCAL_GLOBAL_MISMATCH,
        Severity.OK,
        f"no barrier on the straight path from the start to the end{plane}",
        evidence,
        "",
    )


DETECTORS: dict[str, Callable[[Sequence[Record]], Finding]] = {
    ILL_CONDITIONING: detect_ill_conditioning,
    LOCAL_MINIMA: detect_local_minima,
    SADDLE_POINTS: detect_saddle_points,
    CLIFFS: detect_cliffs,
    LONG_TERM_DEPENDENCIES: detect_long_term_dependencies,
    INEXACT_GRADIENTS: detect_inexact_gradients,
    LOCAL_GLOBAL_MISMATCH: detect_local_global_mismatch,
    THEORETICAL_LIMITS: detect_theoretical_limits,
}


def _records_of(run: Any) -> list[Record]:
    if isinstance(run, Records):
        return [run.header, *(r for r in run.records if isinstance(r, Mapping))]
    if isinstance(run, (str, os.PathLike)):
        return _records_of(read_records(run))
    if isinstance(run, Iterable) and not isinstance(run, (bytes, bytearray, Mapping)):
        # What is not a record (a stray line of junk) is skipped, as the detectors skip it.
        return [r for r in run if isinstance(r, Mapping)]
    hint = {
        "dict": "; for one record, pass [record]",
        "bytes": "; for the bytes of a records file, pass parse_records(data)",
    }.get(type(run).__name__, "")
    raise RecordsError(
        "diagnose expected a run: its folder (or its records.jsonl) as a str or a path, the "
        "Records that read_records returns, or an iterable of record dicts; got "
        f"{type(run).__name__}. Pass the run's folder, e.g. diagnose('runs/digits-mlp'){hint}"
    )


def diagnose(run: str | os.PathLike[str] | Records | Iterable[Record]) -> list[Finding]:
    """One finding for each of the eight challenges, in the order of :data:`CHALLENGES`.

    ``run`` is a run folder (the one holding ``records.jsonl``, or that file's path), read with
    :func:`~optiscope.records.log.read_records`; the :class:`~optiscope.records.log.Records` it
    returns; or the records themselves, an iterable of dicts (what is not a dict is skipped).
    Anything else raises :class:`~optiscope.records.log.RecordsError`. A detector that fails
    gives a finding of severity ``error`` saying why; the others still answer.

    >>> records = [
    ...     {"type": "step", "step": i, "values": {"loss": 1.0 / (i + 1), "grad_norm": 1.0}}
    ...     for i in range(30)
    ... ]
    >>> findings = diagnose(records)  # or diagnose("runs/digits-mlp"), a run's folder
    >>> [(f.challenge, f.severity.value) for f in findings][3]
    ('cliffs', 'ok')
    """
    recs = _records_of(run)
    findings = []
    for challenge in CHALLENGES:
        detector = DETECTORS.get(challenge)
        if detector is None:
            findings.append(_not_measured(challenge, "no detector yet", "see the issue tracker"))
            continue
        try:
            findings.append(detector(recs))
        except Exception as err:  # a detector bug must not cost the run its report
            why = f"the detector failed: {type(err).__name__}: {err}"
            findings.append(Finding(challenge, Severity.ERROR, why))
    return findings
