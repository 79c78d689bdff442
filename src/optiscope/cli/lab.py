"""``optiscope lab``: the chapter's claims reproduced on small problems (see optiscope.lab)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "lab",
        help="reproduce the claims of Deep Learning sec. 8.2 on small problems",
        description=(
            "lab list: the experiments. lab run NAME|all: run them, write OUT/NAME/result.json "
            "and figures (and OUT/index.html for all), and print each claim's verdict."
        ),
    )
    p.add_argument("action", choices=["list", "run"])
    p.add_argument("name", nargs="?", help="an experiment from `optiscope lab list`, or all")
    p.add_argument("--out", default="lab", help="output folder (default ./lab)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small", action="store_true", help="the reduced size the tests run")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from optiscope import lab

    if args.action == "list":
        for name in lab.names():
            print(f"{name:28s} {lab.entry(name).title}")
        return 0
    if not args.name:
        raise lab.LabError("lab run needs an experiment name or all: see `optiscope lab list`")
    names = lab.names() if args.name == "all" else [args.name]
    results = []
    for name in names:
        if not args.json:
            print(f"{name:28s} ", end="", flush=True)
        r = lab.run(name, out=args.out, seed=args.seed, small=args.small)
        results.append(r)
        if not args.json:
            verdict = "reproduced" if r.reproduced else "NOT reproduced"
            print(f"{verdict:15s} {r.seconds:6.1f} s  {r.criterion}")
    if args.name == "all":
        from pathlib import Path

        lab.write_index(Path(args.out), results)
    if args.json:
        json.dump([r.to_dict() for r in results], sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.name == "all":
        print(
            f"{sum(r.reproduced for r in results)} of {len(results)} reproduced; see "
            f"{args.out}/index.html"
        )
    return 0
