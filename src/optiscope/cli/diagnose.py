"""``optiscope diagnose``: train an experiment under the monitor and name its challenges."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diagnose",
        help="train an experiment under the monitor and give a verdict on each challenge",
        description=(
            "Train EXPERIMENT (a built-in name, path/to/file.py:function or "
            "package.module:function; default digits-mlp) under the monitor, analyse the final "
            "point, write OUT/records.jsonl and OUT/findings.json, and print the eight verdicts."
        ),
    )
    p.add_argument("experiment", nargs="?", default="digits-mlp")
    p.add_argument("--out", default=None, help="output folder (default runs/EXPERIMENT)")
    p.add_argument("--preset", default="curvature", help="default, curvature or full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--list", action="store_true", help="list the built-in experiments")
    p.set_defaults(run=run)


def _progress(enabled: bool):
    if not enabled:
        return None

    def show(step: int, total: int) -> None:
        width = 30
        done = int(width * step / total)
        sys.stderr.write(f"\r  training [{'#' * done}{'.' * (width - done)}] {step}/{total}")
        if step == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def run(args: argparse.Namespace) -> int:
    from optiscope._builtins import BUILTINS
    from optiscope._experiment import load_experiment
    from optiscope._monitor import PRESETS, MonitorError
    from optiscope._runner import run_experiment

    if args.list:
        for name, fn in BUILTINS.items():
            doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
            print(f"{name:<28} {doc}")
        return 0
    if args.preset not in PRESETS:
        raise MonitorError(f"unknown preset {args.preset!r}: expected one of {list(PRESETS)}")
    exp = load_experiment(args.experiment, seed=args.seed)
    out = args.out or f"runs/{exp.name}"
    result = run_experiment(
        exp, out, preset=args.preset, progress=_progress(sys.stderr.isatty() and not args.json)
    )
    if args.json:
        json.dump(json.loads((result.out / "findings.json").read_text()), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max(len(f.challenge) for f in result.findings)
    print(f"{exp.name}: {exp.steps} steps, preset {args.preset}, {result.seconds:.1f} s")
    for f in result.findings:
        print(f"  {f.challenge:<{width}}  {f.severity:<8}  {f.summary}")
        if f.severity in ("warning", "critical") and f.remedy:
            print(f"  {'':<{width}}  {'':<8}  try: {f.remedy}")
    print(f"records and findings in {result.out}/")
    return 0
