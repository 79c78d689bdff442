"""The terminal: progress bars and the verdict table with rich where a person is watching, plain
lines where the output goes to a file or a pipe, nothing extra under ``--json``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from optiscope.diagnosis.findings import STATEMENT, Severity

_STYLE = {
    Severity.OK: "green",
    Severity.INFO: "blue",
    Severity.WARNING: "yellow",
    Severity.CRITICAL: "bold red",
    Severity.ERROR: "bold magenta",
    STATEMENT: "dim",
}
_ALARMS = (Severity.WARNING, Severity.CRITICAL)


def _verdict(f: Any) -> str:
    """A finding's verdict cell: its severity, or "statement" for a fixed one."""
    return STATEMENT if getattr(f, "measured", True) is False else str(f.severity)


def _extra(f: Any) -> str:
    """What follows the summary: the remedy of an alarm, or what a failed detector means."""
    if f.severity == Severity.ERROR:
        return "no verdict: the detector failed (an optiscope bug; please report it)"
    if f.severity in _ALARMS and f.remedy:
        return f"try: {f.remedy}"
    return ""


@contextlib.contextmanager
def progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A ``show(done, total)`` callback drawing a bar on stderr, or None when disabled or
    stderr is not a terminal (a log file gets no carriage returns)."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        f"  {label}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def show(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield show


def verdicts(title: str, findings: Sequence[Any], footer: str = "") -> None:
    """The eight verdicts with their remedies: a table on a terminal, aligned lines elsewhere.
    A failed detector shows as "error" with its summary; a fixed statement (the theoretical
    limits) as "statement", not as a verdict on the run."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_lines=False, expand=False)
        table.add_column("challenge", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        table.add_column("what the numbers say, and what to try")
        for f in findings:
            # Summaries quote the user's names and the errors' messages: no markup of theirs.
            text = escape(f.summary)
            extra = _extra(f)
            if extra:
                text += f"\n[dim]{escape(extra)}[/dim]"
            verdict = _verdict(f)
            style = _STYLE.get(verdict, "")
            cell = f"[{style}]{verdict}[/{style}]" if style else verdict
            table.add_row(escape(f.challenge), cell, text)
        console = Console()
        console.print(table, markup=True, highlight=False)
        if footer:
            console.print(footer, markup=False, highlight=False)
        return
    width = max((len(f.challenge) for f in findings), default=0)
    print(title)
    for f in findings:
        print(f"  {f.challenge:<{width}}  {_verdict(f):<9}  {f.summary}")
        extra = _extra(f)
        if extra:
            print(f"  {'':<{width}}  {'':<9}  {extra}")
    if footer:
        print(footer)
