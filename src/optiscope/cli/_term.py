"""The terminal: progress bars and the verdict table with rich where a person is watching, plain
lines where the output goes to a file or a pipe, nothing extra under ``--json``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

_STYLE = {"ok": "green", "info": "blue", "warning": "yellow", "critical": "bold red"}


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
    """The eight verdicts with their remedies: a table on a terminal, aligned lines elsewhere."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_lines=False, expand=False)
        table.add_column("challenge", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        table.add_column("what the numbers say, and what to try")
        for f in findings:
            text = f.summary
            if f.severity in ("warning", "critical") and f.remedy:
                text += f"\n[dim]try: {f.remedy}[/dim]"
            style = _STYLE.get(f.severity, "")
            table.add_row(f.challenge, f"[{style}]{f.severity}[/{style}]", text)
        console = Console()
        console.print(table, markup=True, highlight=False)
        if footer:
            console.print(footer, markup=False, highlight=False)
        return
    width = max((len(f.challenge) for f in findings), default=0)
    print(title)
    for f in findings:
        print(f"  {f.challenge:<{width}}  {f.severity:<8}  {f.summary}")
        if f.severity in ("warning", "critical") and f.remedy:
            print(f"  {'':<{width}}  {'':<8}  try: {f.remedy}")
    if footer:
        print(footer)
