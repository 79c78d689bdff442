"""``optiscope report``: the HTML report of a run folder (records and findings, figures inline)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write the self-contained HTML report of a run folder",
        description=(
            "Read DIR/records.jsonl and DIR/findings.json (written by `optiscope diagnose` or a "
            "Monitor) and write one self-contained HTML file: the eight verdicts, their evidence "
            "and figures. Nothing in it reaches the network."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="the run folder")
    p.add_argument("--out", default=None, help="the HTML file (default DIR/report.html)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from optiscope._report import write_report

    path = write_report(args.dir, args.out)
    print(f"report written to {path}")
    return 0
