"""The report of a run folder: read its records and findings, recompute what is missing, render.

:func:`optiscope.report.page.render_report` only renders; this module finds what it renders. A
Monitor writes ``findings.json`` when it closes, so a run folder without one was cut short (killed,
or still running): its verdicts are recomputed from the records, and the report says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from optiscope.core.files import OutputError, write_atomic
from optiscope.diagnosis import diagnose
from optiscope.records import schema
from optiscope.records.folder import holder
from optiscope.records.log import (
    Records,
    RecordsError,
    last_step,
    load_findings,
    read_records,
    write_findings,
)
from optiscope.report.page import ReportError, render_report

_MISSING = "findings.json was missing: the verdicts were recomputed from the records"
_NEVER_CLOSED = (
    "The run never closed its Monitor, so it was cut short (killed, or still running): the "
    "report shows what was recorded before."
)
_UNREADABLE = "findings.json was unreadable: the verdicts were recomputed from the records."


def _findings(run_dir: Path, log: Records, save: bool) -> tuple[list[dict[str, Any]], str]:
    """The findings of the run and a note on where they came from ("" when from its file).

    ``findings.json`` is used only when it names the records' run and their last step; else
    the verdicts are recomputed, and with ``save`` written, unless a live run holds the folder.
    """
    run_id, last = log.header.get(schema.RUN_ID), last_step(log.records)
    try:
        found = load_findings(run_dir)
    except RecordsError as err:
        if not isinstance(err.__cause__, FileNotFoundError):
            return [f.to_dict() for f in diagnose(log)], _UNREADABLE  # left for a person
        why = _MISSING
    else:
        if found.run_id == run_id and found.last_step == last:
            return found.findings, ""
        if found.run_id != run_id:
            why = (
                f"findings.json described another run (run id {found.run_id}, not {run_id}): "
                "the verdicts were recomputed from the records"
            )
        else:
            why = (
                f"findings.json was built from the records up to step {found.last_step}, but "
                f"they reach step {last}: the verdicts were recomputed from the records"
            )
    findings = [f.to_dict() for f in diagnose(log)]
    live = holder(run_dir)
    if live is not None:
        return findings, (
            f"{why}. The run is still being written (process {live}): the report shows what "
            "was recorded so far, and findings.json is left to the run."
        )
    if not save:
        return findings, f"{why}. {_NEVER_CLOSED}"
    name = log.header.get(schema.EXPERIMENT)
    try:
        path = write_findings(
            run_dir,
            findings,
            name if isinstance(name, str) else None,
            run_id=run_id if isinstance(run_id, str) else None,
            last_step=last,
        )
    except RecordsError as err:
        cause = err.__cause__
        why_not = (cause.strerror if isinstance(cause, OSError) else None) or cause or err
        return findings, f"{why} (they could not be saved: {why_not}). {_NEVER_CLOSED}"
    return findings, f"{why} and written to {path}. {_NEVER_CLOSED}"


def render_run(run_dir: str | os.PathLike[str], *, save_findings: bool = False) -> str:
    """The HTML text of the report of the run folder ``run_dir``. A folder without
    ``findings.json`` (a run that never closed) has its verdicts recomputed from the records,
    and with ``save_findings`` also written to ``run_dir/findings.json``."""
    folder = Path(run_dir)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise ReportError(
            f"expected a run folder holding records.jsonl, but {str(folder)!r} {what}. Pass the "
            "folder written by `optiscope diagnose` (default runs/EXPERIMENT)"
        )
    if not (folder / schema.RECORDS_FILE).is_file():
        raise ReportError(
            f"expected {str(folder / schema.RECORDS_FILE)!r}, but the folder has no records file. "
            "Pass the folder written by `optiscope diagnose` or by a Monitor"
        )
    log = read_records(folder)
    findings, note = _findings(folder, log, save_findings)
    return render_report(log, findings, note, name_hint=folder.resolve().name)


def write_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    save_findings: bool = False,
) -> Path:
    """Write the HTML report of the run folder ``run_dir`` to ``out`` (default
    ``run_dir/report.html``); its path. With ``save_findings``, a missing
    ``run_dir/findings.json`` (a run cut short) is recomputed from the records and written."""
    text = render_run(run_dir, save_findings=save_findings)
    path = Path(out) if out is not None else Path(run_dir) / schema.REPORT_FILE
    try:
        return write_atomic(path, text)
    except OutputError as err:
        cause = err.__cause__
        why = (cause.strerror if isinstance(cause, OSError) else None) or str(err)
        raise ReportError(
            f"cannot write the report to {str(path)!r}: {why}. Expected a writable place; "
            "pass another --out"
        ) from err
