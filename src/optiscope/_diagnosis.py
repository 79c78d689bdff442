"""Diagnosis: detectors turn records into findings (layer 6 of the design).

A detector is a pure function from the records of a run to one :class:`Finding` about one of the
eight challenges of Deep Learning sec. 8.2: no torch, no I/O, and it never raises (arbitrary
series, empty, constant, NaN or infinite, give a finding). A finding that is not ``ok`` carries
the numbers, and the steps they come from, that a reader can check; ``remedy`` says what to try.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

CHALLENGES = (
    "ill-conditioning",
    "local-minima",
    "saddle-points",
    "cliffs",
    "long-term-dependencies",
    "inexact-gradients",
    "local-global-mismatch",
    "theoretical-limits",
)
SEVERITIES = ("ok", "info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """One verdict: ``challenge`` and ``severity`` from fixed vocabularies, a one-line
    ``summary``, the ``evidence`` behind it and the ``remedy`` to try."""

    challenge: str
    severity: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Record = Mapping[str, Any]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def series(records: Iterable[Record], name: str) -> tuple[list[int], list[float]]:
    """Steps and values of one quantity over the ``step`` records that hold a number for it."""
    steps, values = [], []
    for r in records:
        if not isinstance(r, Mapping) or r.get("type") != "step":
            continue
        vals = r.get("values")
        if not isinstance(vals, Mapping):
            continue
        v = vals.get(name)
        step = r.get("step")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(step, int):
            steps.append(step)
            values.append(float(v))
    return steps, values


def _not_measured(challenge: str, what: str, how: str) -> Finding:
    return Finding(challenge, "info", f"not measured: {what}", {}, how)


def detect_cliffs(records: Sequence[Record], window: int = 20, factor: float = 10.0) -> Finding:
    """Gradient-norm spikes against the running median of the previous ``window`` steps, the loss
    jump that follows each, and non-finite values (Pascanu et al. 2013)."""
    steps, norms = series(records, "grad_norm")
    loss_steps, losses = series(records, "loss")
    if not steps:
        return _not_measured("cliffs", "no gradient norms recorded", "record grad_norm")
    loss_at = dict(zip(loss_steps, losses))
    bad = [s for s, v in zip(steps, norms) if not math.isfinite(v)]
    bad += [s for s, v in zip(loss_steps, losses) if not math.isfinite(v) and s not in bad]
    spikes = []
    for i in range(len(norms)):
        past = [v for v in norms[max(0, i - window) : i] if math.isfinite(v)]
        if len(past) < 5 or not math.isfinite(norms[i]):
            continue
        med = statistics.median(past)
        if med > 0 and norms[i] > factor * med:
            before, after = loss_at.get(steps[i]), loss_at.get(steps[i] + 1)
            jump = None
            if before is not None and after is not None and _finite(before) and _finite(after):
                jump = after / before if before > 0 else None
            spikes.append(
                {
                    "step": steps[i],
                    "grad_norm": norms[i],
                    "running_median": med,
                    "ratio": norms[i] / med,
                    "loss_before": before,
                    "loss_after": after,
                    "loss_jump": jump,
                }
            )
    finite = sorted(v for v in norms if math.isfinite(v))
    clip = 2 * statistics.median(finite) if finite else None
    evidence: dict[str, Any] = {
        "steps_measured": len(steps),
        "spikes": spikes[:20],
        "spike_count": len(spikes),
        "nonfinite_steps": sorted(bad)[:20],
        "median_grad_norm": statistics.median(finite) if finite else None,
        "max_grad_norm": finite[-1] if finite else None,
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
            "cliffs",
            "critical",
            f"non-finite loss or gradient at step {min(bad)} ({len(bad)} steps in all)",
            evidence,
            remedy + "; lower the learning rate",
        )
    if jumps:
        s = jumps[0]
        return Finding(
            "cliffs",
            "critical",
            f"{len(jumps)} gradient spikes followed by a loss jump; at step {s['step']} the norm "
            f"was {s['ratio']:.0f}x its running median and the loss rose {s['loss_jump']:.1f}x",
            evidence,
            remedy,
        )
    if spikes:
        s = spikes[0]
        return Finding(
            "cliffs",
            "warning",
            f"{len(spikes)} gradient-norm spikes (first at step {s['step']}, "
            f"{s['ratio']:.0f}x the running median) without a loss jump",
            evidence,
            remedy,
        )
    return Finding(
        "cliffs",
        "ok",
        f"no gradient-norm spike above {factor:g}x the running median in {len(steps)} steps",
        evidence,
        "",
    )


def detect_theoretical_limits(records: Sequence[Record]) -> Finding:
    """A run cannot show NP-hardness; the finding points to the lab's exact reproductions."""
    return Finding(
        "theoretical-limits",
        "info",
        "not measurable on a run: training even a 3-node network is NP-complete (Blum and "
        "Rivest 1992), so no optimizer is guaranteed to find the global minimum",
        {},
        "compare random restarts; see the lab's exact solution of tiny networks",
    )


DETECTORS: dict[str, Callable[[Sequence[Record]], Finding]] = {
    "cliffs": detect_cliffs,
    "theoretical-limits": detect_theoretical_limits,
}


def diagnose(records: Iterable[Record]) -> list[Finding]:
    """One finding for each of the eight challenges, in the order of :data:`CHALLENGES`."""
    recs = [r for r in records if isinstance(r, Mapping)]
    findings = []
    for challenge in CHALLENGES:
        detector = DETECTORS.get(challenge)
        if detector is None:
            findings.append(_not_measured(challenge, "no detector yet", "see the issue tracker"))
            continue
        try:
            findings.append(detector(recs))
        except Exception as err:  # a detector bug must not cost the run its report
            findings.append(
                Finding(challenge, "info", f"the detector failed: {type(err).__name__}: {err}")
            )
    return findings
