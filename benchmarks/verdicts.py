"""The verdicts against the calibration zoo (benchmarks/zoo): recall per challenge and false
alarms on the healthy controls, as a confusion matrix for each split.

    python benchmarks/verdicts.py                 # the tuning split
    python benchmarks/verdicts.py --split held    # the held-out split (judged once, at the end)
    python benchmarks/verdicts.py --split all --markdown docs/verdicts.md
    python benchmarks/verdicts.py --split fresh   # the held-out builders at seeds never run
    python benchmarks/verdicts.py --split final   # the second held-out set (judged once)
    python benchmarks/verdicts.py --split final8  # the ninth: cliffs, ill-conditioning, controls
    python benchmarks/verdicts.py --split final9  # the tenth: the same challenges, new cases
    python benchmarks/verdicts.py --split final10  # the eleventh: inexact gradients again
    python benchmarks/verdicts.py --split final11  # the twelfth: inexact gradients, new data
    python benchmarks/verdicts.py --split final12  # the thirteenth: healthy runs only
    python benchmarks/verdicts.py --split final13  # the fourteenth: every challenge, controls
    python benchmarks/verdicts.py --split seen    # tune, held and fresh: all but final

Each case runs as ``optiscope diagnose`` runs it (``run_experiment`` with the curvature preset,
the end-of-run analyses and, for a stalled end, three restarts from the case's factory). A case
is *named* when its planted challenge gets a ``warning`` or ``critical`` verdict; a control
raises a *false alarm* when any challenge does. The matrix's rows are what was planted, its
columns what was flagged (a run may be flagged for several challenges).

``fresh`` is a second held-out draw: the held-out cases rebuilt at seeds 100 above their own,
which no threshold has seen. Local minima and the mismatch escapes are left out of it: their
construction is a trap found at one seed, and another seed is not trapped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from optiscope.diagnosis.findings import CHALLENGES, THEORETICAL_LIMITS
from optiscope.runner.run import run_experiment
from zoo import SPLITS, cases

MEASURABLE = [c for c in CHALLENGES if c != THEORETICAL_LIMITS]
SEVERE = ("warning", "critical")
SHORT = {
    "ill-conditioning": "ill-cond",
    "local-minima": "minima",
    "saddle-points": "saddle",
    "cliffs": "cliffs",
    "long-term-dependencies": "long-term",
    "inexact-gradients": "inexact",
    "local-global-mismatch": "local-global",
}


def run_case(case, folder: Path) -> dict:
    """Diagnose one case; what it planted, what was flagged, and how long it took."""
    t0 = time.perf_counter()
    torch.manual_seed(case.seed)
    exp = case.build(case.seed)
    try:
        result = run_experiment(exp, folder / case.name, factory=case.build, overwrite=True)
        verdicts = {f.challenge: f.severity.value for f in result.findings}
        summaries = {f.challenge: f.summary for f in result.findings}
        error = None
    except Exception as err:  # a case that crashes is a miss, reported with its reason
        verdicts, summaries, error = {}, {}, f"{type(err).__name__}: {err}"
    flagged = [c for c in MEASURABLE if verdicts.get(c) in SEVERE]
    return {
        "name": case.name,
        "challenge": case.challenge,
        "family": case.family,
        "optimizer": case.optimizer,
        "split": case.split,
        "seconds": time.perf_counter() - t0,
        "verdicts": verdicts,
        "summaries": summaries,
        "flagged": flagged,
        "named": case.challenge in flagged if case.challenge else None,
        "error": error,
    }


def matrix(rows: list[dict]) -> str:
    """The confusion matrix: planted (rows) against flagged (columns), in counts of runs."""
    head = ["planted \\ flagged", *(SHORT[c] for c in MEASURABLE), "none", "runs", "recall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for planted in [*MEASURABLE, None]:
        mine = [r for r in rows if r["challenge"] == planted]
        if not mine:
            continue
        counts = [sum(c in r["flagged"] for r in mine) for c in MEASURABLE]
        none = sum(not r["flagged"] for r in mine)
        if planted is None:
            score = f"{sum(bool(r['flagged']) for r in mine)} alarmed"
        else:
            score = f"{sum(r['named'] for r in mine) / len(mine):.2f}"
        label = SHORT[planted] if planted else "healthy"
        cells = [label, *map(str, counts), str(none), str(len(mine)), score]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


SEED_BOUND = ("local-minima", "local-global-mismatch")  # planted at one seed only


def fresh(found: list, offset: int = 100) -> list:
    """The held-out cases that any seed plants, at seeds ``offset`` above their own."""
    return [
        dataclasses.replace(
            c, name=f"{c.name}-s{c.seed + offset}", seed=c.seed + offset, split="fresh"
        )
        for c in found
        if c.split == "held" and c.challenge not in SEED_BOUND and c.any_seed
    ]


def summary(rows: list[dict]) -> str:
    out = []
    for split in SPLITS:  # the zoo's order
        mine = [r for r in rows if r["split"] == split]
        if not mine:
            continue
        planted = [r for r in mine if r["challenge"]]
        controls = [r for r in mine if not r["challenge"]]
        named = sum(r["named"] for r in planted)
        alarms = sum(bool(r["flagged"]) for r in controls)
        out.append(
            f"## {split}: {len(mine)} runs\n\n"
            f"named {named} of {len(planted)} planted challenges; false alarms on {alarms} of "
            f"{len(controls)} healthy controls\n\n{matrix(mine)}\n"
        )
        misses = [r for r in planted if not r["named"]] + [r for r in controls if r["flagged"]]
        if misses:
            out.append("Misses and false alarms:\n")
            for r in misses:
                got = ", ".join(f"{c}: {r['verdicts'].get(c)}" for c in r["flagged"]) or "nothing"
                what = r["challenge"] or "healthy"
                planted_verdict = (
                    f" ({r['challenge']}: {r['verdicts'].get(r['challenge'])}: "
                    f"{r['summaries'].get(r['challenge'], '')})"
                    if r["challenge"]
                    else ""
                )
                err = f" ERROR {r['error']}" if r["error"] else ""
                out.append(f"- {r['name']} [{what}] flagged {got}{planted_verdict}{err}")
            out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--split",
        choices=(*SPLITS, "seen", "all"),
        default="tune",
    )
    ap.add_argument(
        "--offset",
        type=int,
        default=100,
        help="the fresh split's seeds: this far above the held cases' own (a new draw: another)",
    )
    ap.add_argument("--only", default="", help="comma-separated case names (or name parts)")
    ap.add_argument("--json", default=None, help="write every case's result to this file")
    ap.add_argument("--markdown", default=None, help="write the tables to this file")
    ap.add_argument("--out", default=None, help="run folders (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    found = cases()
    wanted = {"all": set(SPLITS), "seen": {"tune", "held"}}.get(args.split, {args.split})
    chosen = [c for c in found if c.split in wanted]
    if args.split in ("fresh", "seen", "all"):
        chosen += fresh(found, args.offset)
    if args.only:
        parts = args.only.split(",")
        chosen = [c for c in chosen if any(p in c.name for p in parts)]
    folder = Path(args.out or tempfile.mkdtemp(prefix="optiscope-verdicts-"))
    rows = []
    for i, case in enumerate(chosen, 1):
        row = run_case(case, folder)
        rows.append(row)
        mark = "named" if row["named"] else ("missed" if row["challenge"] else "healthy")
        if not row["challenge"] and row["flagged"]:
            mark = "FALSE ALARM"
        print(
            f"[{i}/{len(chosen)}] {case.name:<44} {mark:<11} {row['seconds']:5.1f} s  "
            f"flagged: {', '.join(row['flagged']) or '-'}"
            + (f"  ERROR {row['error']}" if row["error"] else ""),
            flush=True,
        )
    text = summary(rows)
    print("\n" + text)
    total = sum(r["seconds"] for r in rows)
    print(f"{len(rows)} runs in {total:.0f} s (slowest {max(r['seconds'] for r in rows):.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
