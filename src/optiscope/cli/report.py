"""``optiscope report``: the HTML report of a run folder (records and findings, figures inline)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from optiscope.records import schema
from optiscope.runner.report import write_report


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write the self-contained HTML report of a run folder",
        description=(
            "Read DIR/records.jsonl and DIR/findings.json (written by `optiscope diagnose` or a "
            "Monitor) and write one self-contained HTML file: the eight verdicts, their evidence "
            "and figures. Nothing in it reaches the network. A run cut short (killed before its "
            "Monitor closed) has no findings.json: the verdicts are then recomputed from the "
            "records that were written, saved to DIR/findings.json, and the report says the run "
            "was cut short."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="the run folder")
    p.add_argument("--out", default=None, help="the HTML file (default DIR/report.html)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    findings = Path(args.dir) / schema.FINDINGS_FILE
    missing = Path(args.dir).is_dir() and not findings.exists()
    path = write_report(args.dir, args.out, save_findings=True)
    if missing and findings.exists():
        print(f"the run was cut short: findings recomputed from its records, written to {findings}")
    print(f"report written to {path}")
    return 0
