"""``optiscope diagnose``: train an experiment under the monitor and name its challenges."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import optiscope
from optiscope import OptiscopeError
from optiscope.cli import _term
from optiscope.monitor import PRESETS, MonitorError
from optiscope.records.folder import fresh_folder, holds_run
from optiscope.training.builtins import BUILTINS


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diagnose",
        help="train an experiment under the monitor and give a verdict on each challenge",
        description=(
            "Train EXPERIMENT (a built-in name, path/to/file.py:function or "
            "package.module:function; default digits-mlp) under the monitor, analyse the final "
            "point, write OUT/records.jsonl, OUT/findings.json and the HTML report "
            "OUT/report.html, and print the eight verdicts."
        ),
    )
    p.add_argument("experiment", nargs="?", default="digits-mlp")
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default runs/EXPERIMENT, or runs/EXPERIMENT-2, -3, ... when it "
        "already holds a run)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in the output folder (its records, findings and report)",
    )
    p.add_argument("--preset", default="curvature", help="default, curvature or full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument(
        "--tensorboard",
        metavar="DIR",
        default=None,
        help="also write every quantity as TensorBoard events into DIR",
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=3,
        metavar="N",
        help="when the run ends stalled at a minimum, train N restarts from the next seeds to "
        "tell a poor local minimum from an equivalent one (about N times the training's cost; "
        "0 skips them; default 3)",
    )
    p.add_argument(
        "--no-end-analysis",
        dest="end_analysis",
        action="store_false",
        help="skip the end-of-run analyses (the final point's curvature, the straight path from "
        "the start, the trajectory's plane, restarts): on a large model they can cost more than "
        "the training; the verdicts that read them then say they were not measured",
    )
    p.add_argument(
        "--end-seconds",
        type=float,
        default=None,
        metavar="S",
        help="size the end-of-run analyses to about S seconds (default: as long as the training "
        "took, at least 30): where the model is slow, the trajectory's plane and the spectral "
        "density use fewer points",
    )
    p.add_argument("--list", action="store_true", help="list the built-in experiments")
    p.set_defaults(run=run)


def _say(line: str) -> None:
    print(f"optiscope: {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:

    if args.list:
        for name, fn in BUILTINS.items():
            doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
            print(f"{name:<28} {doc}")
        return 0
    if args.preset not in PRESETS:
        raise MonitorError(f"unknown preset {args.preset!r}: expected one of {list(PRESETS)}")
    if args.restarts < 0:
        raise OptiscopeError(f"--restarts must be 0 or more, got {args.restarts}")
    if args.end_seconds is not None and not args.end_seconds > 0:
        raise OptiscopeError(
            f"--end-seconds must be a positive number of seconds, got {args.end_seconds}: use "
            "--no-end-analysis to skip the end-of-run analyses"
        )
    exp = optiscope.load_experiment(args.experiment, seed=args.seed)
    exp.check()  # a batch the model cannot take fails here, before anything is written
    out = Path(args.out or f"runs/{exp.name}")
    if holds_run(out) and not args.overwrite:
        if args.out is not None:
            raise OptiscopeError(
                f"{str(out)!r} already holds a run (one run per folder): pass --overwrite to "
                f"replace it, or a fresh folder, e.g. --out {fresh_folder(out)}"
            )
        out = fresh_folder(out)  # the default folder is taken: the next free one
    with _term.progress("training", not args.json) as show:
        result = optiscope.run_experiment(
            exp,
            out,
            preset=args.preset,
            progress=show,
            tensorboard=args.tensorboard,
            overwrite=args.overwrite,
            factory=lambda seed: optiscope.load_experiment(args.experiment, seed=seed),
            restarts=args.restarts,
            say=None if args.json else _say,
            end_analysis=args.end_analysis,
            end_seconds=args.end_seconds,
        )
    optiscope.write_report(result.out)
    if args.json:
        json.dump(json.loads((result.out / "findings.json").read_text()), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    footer = f"records, findings and report.html in {result.out}/"
    if result.write_error:
        footer = f"{footer}\nnot everything could be written: {result.write_error}"
    if result.stopped:
        footer = f"training stopped: {result.stopped}\n{footer}"
    _term.verdicts(
        f"{exp.name}: {exp.steps} steps, preset {args.preset}, {result.seconds:.1f} s",
        result.findings,
        footer,
    )
    return 0
