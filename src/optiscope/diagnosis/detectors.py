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
from typing import Any

from optiscope.core.stats import finite, log_slope, mean, median
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


def detect_cliffs(records: Sequence[Record], window: int = 20, factor: float = 10.0) -> Finding:
    """Gradient-norm spikes against the running median of the previous ``window`` steps, the loss
    jump that follows each, and non-finite values (Pascanu et al. 2013)."""
    steps, norms = series(records, schema.GRAD_NORM)
    loss_steps, losses = series(records, schema.LOSS)
    if not steps:
        return _not_measured(CLIFFS, "no gradient norms recorded", "record grad_norm")
    loss_at = dict(zip(loss_steps, losses))
    # A step a GradScaler skipped had an overflow in its scaled gradients: the scaler's own
    # calibration, not a cliff (the update never happened).
    skipped = set(series(records, schema.SKIPPED)[0])
    bad = [s for s, v in zip(steps, norms) if not math.isfinite(v) and s not in skipped]
    bad += [
        s
        for s, v in zip(loss_steps, losses)
        if not math.isfinite(v) and s not in bad and s not in skipped
    ]
    spikes = []
    for i in range(len(norms)):
        past = [v for v in norms[max(0, i - window) : i] if math.isfinite(v)]
        if len(past) < 5 or not math.isfinite(norms[i]):
            continue
        med = statistics.median(past)
        if med > 0 and norms[i] > factor * med:
            before, after = loss_at.get(steps[i]), loss_at.get(steps[i] + 1)
            jump = None
            if before is not None and after is not None and finite(before) and finite(after):
                jump = after / before if before > 0 else None
            spikes.append(
                {
                    schema.STEP: steps[i],
                    schema.GRAD_NORM: norms[i],
                    "running_median": med,
                    "ratio": norms[i] / med,
                    "loss_before": before,
                    "loss_after": after,
                    "loss_jump": jump,
                }
            )
    kept = sorted(v for v in norms if math.isfinite(v))
    clip = 2 * statistics.median(kept) if kept else None
    evidence: dict[str, Any] = {
        "steps_measured": len(steps),
        "spikes": spikes[:20],
        "spike_count": len(spikes),
        "nonfinite_steps": sorted(bad)[:20],
        "skipped_steps": len(skipped),
        "median_grad_norm": statistics.median(kept) if kept else None,
        "max_grad_norm": kept[-1] if kept else None,
        "suggested_clip_norm": clip,
        "window": window,
        "factor": factor,
    }
    remedy = (
        f"clip the gradient norm at {clip:.3g} (twice the median norm observed), e.g. "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)"
        if clip
        else "clip the gradient norm"
    )
    jumps = [s for s in spikes if s["loss_jump"] is not None and s["loss_jump"] > 2]
    if bad:
        return Finding(
            CLIFFS,
            Severity.CRITICAL,
            f"non-finite loss or gradient at step {min(bad)} ({len(bad)} steps in all)",
            evidence,
            remedy + "; lower the learning rate",
        )
    if jumps:
        s = jumps[0]
        return Finding(
            CLIFFS,
            Severity.CRITICAL,
            f"{len(jumps)} gradient spikes followed by a loss jump; at step {s[schema.STEP]} the "
            f"norm was {s['ratio']:.0f}x its running median and the loss rose "
            f"{s['loss_jump']:.1f}x",
            evidence,
            remedy,
        )
    if spikes:
        s = spikes[0]
        return Finding(
            CLIFFS,
            Severity.WARNING,
            f"{len(spikes)} gradient-norm spikes (first at step {s[schema.STEP]}, "
            f"{s['ratio']:.0f}x the running median) without a loss jump",
            evidence,
            remedy,
        )
    return Finding(
        CLIFFS,
        Severity.OK,
        f"no gradient-norm spike above {factor:g}x the running median in {len(steps)} steps",
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


def detect_long_term_dependencies(records: Sequence[Record]) -> Finding:
    """Decay or growth rate of ||dL/dh_t|| with the distance in time, and the memory horizon
    (Bengio, Simard and Frasconi 1994; Pascanu et al. 2013)."""
    latest: dict[str, Record] = {}
    for r in records:
        norms = r.get(schema.NORMS) if r.get(schema.TYPE) == schema.HIDDEN_GRADIENTS else None
        if isinstance(norms, list) and len(norms) >= 3:
            latest[str(r.get(schema.MODULE, "rnn"))] = r
    if not latest:
        return _not_measured(
            LONG_TERM_DEPENDENCIES,
            "no recurrent model (no hidden-state gradients recorded)",
            "only recurrent models are affected",
        )
    worst: tuple[float, Finding] | None = None
    for module, r in latest.items():
        norms = [float(x) if finite(x) else math.nan for x in r[schema.NORMS]]
        T = len(norms)
        slope = log_slope(norms, min_points=3)
        if slope is None:
            continue
        rate = math.exp(max(min(slope, 50.0), -50.0))
        last, first = norms[-1], norms[0]
        ratio = first / last if finite(first) and finite(last) and last > 0 else math.nan
        # Memory horizon: how far back the gradient keeps 1% of its most recent size; signals
        # from further back are swamped by recent ones.
        horizon = math.log(1e-2) / slope if slope < 0 else math.inf
        evidence = {
            "module": module,
            "step": r.get(schema.STEP),
            "time_steps": T,
            "rate_per_step": rate,
            "first_over_last": ratio,
            "memory_horizon": horizon,
            "norm_last_step": last,
            "norm_first_step": first,
        }
        if rate < 1 and horizon < T - 1:
            sev = Severity.CRITICAL if finite(ratio) and ratio < 1e-6 else Severity.WARNING
            f = Finding(
                LONG_TERM_DEPENDENCIES,
                sev,
                f"the gradient vanishes back in time in {module!r}: x{rate:.3g} per step, "
                f"1% of its last value after {horizon:.0f} of {T} steps",
                evidence,
                "use a gated cell (nn.LSTM or nn.GRU), initialize the recurrent weights "
                "orthogonal, or shorten the dependencies the task needs",
            )
            score = -math.log10(max(ratio, 1e-300)) if finite(ratio) else 0.0
        elif rate > 1 and finite(ratio) and ratio > 1e3:
            f = Finding(
                LONG_TERM_DEPENDENCIES,
                Severity.CRITICAL,
                f"the gradient explodes back in time in {module!r}: x{rate:.3g} per step, "
                f"{ratio:.3g}x larger {T - 1} steps back",
                evidence,
                "clip the gradient norm and scale the recurrent weights to a spectral radius "
                "below 1",
            )
            score = math.log10(ratio)
        else:
            f = Finding(
                LONG_TERM_DEPENDENCIES,
                Severity.OK,
                f"the gradient reaches back {T} steps in {module!r} (x{rate:.3g} per step)",
                evidence,
                "",
            )
            score = -1.0
        if worst is None or score > worst[0]:
            worst = (score, f)
    if worst is None:
        return _not_measured(
            LONG_TERM_DEPENDENCIES, "hidden-state gradients were not finite", "check the run"
        )
    return worst[1]


def detect_inexact_gradients(records: Sequence[Record]) -> Finding:
    """Gradient noise against the batch size in use (McCandlish et al. 2018)."""
    steps_b, batch = series(records, schema.BATCH_SIZE)
    _, trace_cov = series(records, schema.TRACE_COV)
    _, g2 = series(records, schema.GRAD_NORM_SQ_UNBIASED)
    _, snr = series(records, schema.SNR)
    if not batch or not trace_cov or len(g2) != len(trace_cov):
        return _not_measured(
            INEXACT_GRADIENTS, "no gradient-noise measurements", "enable the noise tier"
        )
    # A ratio of means over the later half of the run, as McCandlish et al. advise: one small
    # batch's estimate of |G|^2 is too noisy to divide by.
    half = len(trace_cov) // 2
    pairs = [(t, g) for t, g in zip(trace_cov[half:], g2[half:]) if math.isfinite(t + g)]
    size = median(batch[half:])
    s = median(snr[half:]) if snr else None
    mean_tr = mean([t for t, _ in pairs]) if pairs else None
    mean_g2 = mean([g for _, g in pairs]) if pairs else None
    bs: float | None = None
    if mean_tr is not None and mean_g2 is not None:
        bs = mean_tr / mean_g2 if mean_g2 > 0 else math.inf
    evidence = {
        "b_simple": bs,
        "batch_size": size,
        "snr": s,
        "measurements": len(pairs),
        "mean_trace_cov": mean_tr,
        "mean_grad_norm_sq": mean_g2,
        "steps": steps_b[half:][:10],
    }
    if bs is None or size is None:
        return _not_measured(INEXACT_GRADIENTS, "noise measurements were not finite", "")
    if math.isinf(bs):
        return Finding(
            INEXACT_GRADIENTS,
            Severity.WARNING,
            f"gradient noise dominates: |G|^2 is not resolved above the noise at batch {size:.0f}",
            evidence,
            "raise the batch size, or lower the learning rate",
        )
    if size < bs / 10:
        return Finding(
            INEXACT_GRADIENTS,
            Severity.WARNING,
            f"gradient noise dominates: the critical batch size B_simple is {bs:.3g}, the batch "
            f"{size:.0f}" + (f", signal-to-noise {s:.2g}" if s is not None else ""),
            evidence,
            f"raise the batch size toward {bs:.0f}, or lower the learning rate in proportion",
        )
    return Finding(
        INEXACT_GRADIENTS,
        Severity.OK,
        f"the batch of {size:.0f} is within 10x of the critical batch size {bs:.3g}",
        evidence,
        "",
    )


def detect_ill_conditioning(records: Sequence[Record]) -> Finding:
    """The book's test (g^T H g grows by more than 10x while g^T g does not shrink), steps the
    second-order model says raise the loss, and sharpness against the stability threshold."""
    steps_q, gthg = series(records, schema.GTHG)
    _, gtg = series(records, schema.GTG)
    _, pred = series(records, schema.PREDICTED_CHANGE)
    steps_s, sharp = series(records, schema.SHARPNESS)
    _, thresh = series(records, schema.STABILITY_THRESHOLD)
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
        if e_h and l_h and e_g and l_g and e_h > 0 and l_h > 10 * e_h and l_g >= 0.5 * e_g:
            reasons.append(f"g^T H g grew {l_h / e_h:.3g}x while g^T g went {e_g:.3g} -> {l_g:.3g}")
    _, actual = series(records, schema.ACTUAL_CHANGE)
    rising = [
        s
        for s, p, a in zip(steps_q, pred, actual)
        if math.isfinite(p) and math.isfinite(a) and p > 0 and a > 0
    ]
    if pred and actual:
        evidence.update(steps_raising_loss=len(rising), first_rises=rising[:10])
    # The book's criterion on the gradient itself: a step along g raises the loss once
    # lr^2/2 g^T H g > lr g^T g, i.e. once g^T H g / g^T g passes the stability threshold.
    steps_c, along = series(records, schema.CURVATURE_ALONG_GRADIENT)
    _, th_c = series(records, schema.GRADIENT_THRESHOLD)
    over_g = [
        (s, c, t)
        for s, c, t in zip(steps_c, along, th_c)
        if math.isfinite(c) and math.isfinite(t) and c >= t
    ]
    if along and th_c:
        evidence.update(
            curvature_along_gradient_last=along[-1],
            gradient_threshold=th_c[-1],
            steps_gradient_above_threshold=[s for s, _, _ in over_g][:10],
        )
        if len(over_g) > 0.1 * len(along):
            s0, c0, t0 = over_g[0]
            reasons.append(
                f"in {len(over_g)} of {len(along)} measured steps the curvature along the "
                f"gradient, g^T H g / g^T g, reached the stability threshold (first at step {s0}: "
                f"{c0:.3g} >= {t0:.3g}), so a gradient step there raises the loss"
            )
    if sharp and thresh:
        over = [
            (s, v, t)
            for s, v, t in zip(steps_s, sharp, thresh)
            if math.isfinite(v) and math.isfinite(t) and v >= t
        ]
        evidence.update(
            sharpness_last=sharp[-1],
            stability_threshold=thresh[-1],
            steps_at_or_above=[s for s, _, _ in over][:10],
        )
        if over:
            s, v, t = over[0]
            reasons.append(f"sharpness {v:.3g} >= stability threshold {t:.3g} at step {s}")
    if reasons:
        top = max(
            [c / t for _, c, t in over_g if t > 0]  # c >= t holds at t <= 0 too
            + [v / t for v, t in zip(sharp, thresh) if math.isfinite(v) and finite(t) and t > 0],
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
    return Finding(
        ILL_CONDITIONING,
        Severity.OK,
        "curvature along the gradient stays in proportion to the gradient, and sharpness is "
        "below the stability threshold",
        evidence,
        "",
    )


def detect_saddle_points(records: Sequence[Record]) -> Finding:
    """Flat loss with a small gradient; with negative curvature it is a saddle (Dauphin et al.
    2014), without it a flat region."""
    steps, loss = series(records, schema.LOSS)
    _, gnorm = series(records, schema.GRAD_NORM)
    _, lmin = series(records, schema.LAMBDA_MIN)
    _, lmax = series(records, schema.SHARPNESS)
    if len(loss) < 20 or len(gnorm) != len(loss):
        return _not_measured(SADDLE_POINTS, "too few steps to judge flatness", "run longer")
    window = max(10, len(loss) // 5)
    head, tail = loss[:window], loss[-window:]
    g_head, g_tail = median(gnorm[:window]), median(gnorm[-window:])
    l_tail = median(tail)
    change = abs(tail[-1] - tail[0]) / max(abs(l_tail or 0.0), 1e-12) if l_tail else math.inf
    evidence: dict[str, Any] = {
        "window_steps": [steps[-window], steps[-1]],
        "relative_loss_change": change,
        "grad_norm_early": g_head,
        "grad_norm_late": g_tail,
        "loss_start": head[0],
        "loss_end": tail[-1],
    }
    flat = math.isfinite(change) and change < 0.01
    small = g_head is not None and g_tail is not None and g_tail < 0.1 * g_head
    negative = [v for v in lmin if math.isfinite(v)]
    scale = max((abs(v) for v in lmax if math.isfinite(v)), default=0.0)
    if negative:
        evidence.update(lambda_min_last=negative[-1], sharpness_last=scale or None)
    strong_negative = bool(negative) and negative[-1] < -0.1 * max(scale, abs(negative[-1]))
    if flat and strong_negative:
        return Finding(
            SADDLE_POINTS,
            Severity.WARNING,
            f"the loss is flat ({change:.2%} change over the last {window} steps) where the "
            f"curvature is strongly negative (lambda_min {negative[-1]:.3g} against lambda_max "
            f"{scale:.3g}): a plateau at a saddle",
            evidence,
            "escape along negative curvature: a larger initialization or learning rate, momentum, "
            "noise, or a saddle-free Newton step",
        )
    if flat and small:
        if negative and negative[-1] < -1e-3 * max(scale, abs(negative[-1])):
            return Finding(
                SADDLE_POINTS,
                Severity.WARNING,
                f"the loss is flat ({change:.2%} change over the last {window} steps) with a "
                f"small gradient and negative curvature (lambda_min {negative[-1]:.3g}): a saddle",
                evidence,
                "escape along negative curvature: a larger learning rate or momentum, noise, or "
                "a saddle-free Newton step",
            )
        return Finding(
            SADDLE_POINTS,
            Severity.INFO,
            f"the loss is flat ({change:.2%} over the last {window} steps) and the gradient "
            f"small, with no negative curvature measured: a flat minimum or a plateau",
            evidence,
            "measure the smallest eigenvalue (curvature tier) to tell them apart",
        )
    return Finding(
        SADDLE_POINTS,
        Severity.OK,
        "no flat region with a vanishing gradient at the end of the run",
        evidence,
        "",
    )


def detect_local_minima(records: Sequence[Record]) -> Finding:
    """The negative test: a stalled loss whose gradient norm does not shrink is not at a
    critical point, so not at a minimum (Goodfellow et al., Deep Learning, sec. 8.2.2)."""
    _, loss = series(records, schema.LOSS)
    _, gnorm = series(records, schema.GRAD_NORM)
    if len(loss) < 20 or len(gnorm) != len(loss):
        return _not_measured(LOCAL_MINIMA, "too few steps", "run longer")
    window = max(10, len(loss) // 5)
    tail = loss[-window:]
    l_tail = median(tail)
    change = abs(tail[-1] - tail[0]) / max(abs(l_tail or 0.0), 1e-12) if l_tail else math.inf
    g_head, g_tail = median(gnorm[:window]), median(gnorm[-window:])
    evidence = {
        "relative_loss_change_last_window": change,
        "window": window,
        "grad_norm_early": g_head,
        "grad_norm_late": g_tail,
        "loss_end": loss[-1],
    }
    if math.isfinite(change) and change < 0.01 and g_head and g_tail is not None:
        if g_tail >= 0.5 * g_head:
            return Finding(
                LOCAL_MINIMA,
                Severity.INFO,
                f"the loss stalled but the gradient norm did not shrink ({g_head:.3g} -> "
                f"{g_tail:.3g}): not a critical point, so not a local minimum",
                evidence,
                "look at ill-conditioning and cliffs, not at local minima",
            )
        return Finding(
            LOCAL_MINIMA,
            Severity.INFO,
            f"the loss stalled at {loss[-1]:.4g} with the gradient norm down to {g_tail:.3g}: "
            "a critical point; whether it is a poor local minimum needs restarts",
            evidence,
            "compare the final losses of random restarts",
        )
    return Finding(
        LOCAL_MINIMA,
        Severity.OK,
        "the loss was still decreasing at the end of the run",
        evidence,
        "",
    )


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
    if finite(barrier) and float(barrier) > 1e-3 * scale:  # type: ignore[arg-type]
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
        return [r for r in run.records if isinstance(r, Mapping)]
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
