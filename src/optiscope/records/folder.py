"""The run folder contract: one run per folder, one writer at a time.

A run folder holds one run's ``records.jsonl`` and what was built from it (``findings.json``,
``report.html``). A new run refuses a folder that already holds one unless told to overwrite it
(the old run's files are then deleted; other files in the folder are left alone), so findings can
never describe another run's records. While a run writes, it holds a lock on the folder
(:class:`RunLock`, an OS-level file lock by filelock, released when the process ends, even by
SIGKILL): a second writer is refused at once, told the holder's pid.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from filelock import FileLock, Timeout

from optiscope.core.files import refuse_link, write_atomic
from optiscope.records import schema
from optiscope.records.log import RecordsError


def holds_run(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a run's records or findings."""
    base = Path(folder)
    return any((base / name).exists() for name in (schema.RECORDS_FILE, schema.FINDINGS_FILE))


def clear_run(folder: str | os.PathLike[str]) -> None:
    """Delete the run files of ``folder`` (records, findings, report); nothing else."""
    for name in schema.RUN_FILES:
        path = Path(folder) / name
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise RecordsError(
                f"cannot remove the old run's {str(path)!r}: {err.strerror or err}. Remove it "
                "yourself, or write the run elsewhere"
            ) from err


def fresh_folder(base: str | os.PathLike[str]) -> Path:
    """``base`` if it holds no run, else the first of ``base-2``, ``base-3``, ... that holds none.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "exp").mkdir(); _ = (root / "exp" / "records.jsonl").write_text("")
    >>> fresh_folder(root / "exp").name
    'exp-2'
    """
    base = Path(base)
    candidate, n = base, 1
    while holds_run(candidate):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def holder(folder: str | os.PathLike[str]) -> int | None:
    """The pid of the process writing to ``folder``, or None where no run holds its lock."""
    base = Path(folder)
    if not (base / schema.LOCK_FILE).exists():
        return None
    probe = FileLock(str(base / schema.LOCK_FILE), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return _read_pid(base)
    probe.release()
    return None


def _read_pid(base: Path) -> int:
    try:
        return int((base / f"{schema.LOCK_FILE}.pid").read_text().strip())
    except (OSError, ValueError):
        return -1  # held, by a process that has not yet written its pid


class RunLock:
    """The folder's writer lock, taken at once or refused with the holder's pid."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        path = self.folder / schema.LOCK_FILE
        refuse_link(path)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RecordsError(
                f"cannot write records to {str(self.folder / schema.RECORDS_FILE)!r}: "
                f"{err.strerror or err}. Expected a writable folder; pass another --out"
            ) from err
        self._lock = FileLock(str(path), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            pid = _read_pid(self.folder)
            for _ in range(25):  # the holder writes its pid just after taking the lock
                if pid > 0:
                    break
                time.sleep(0.02)
                pid = _read_pid(self.folder)
            who = f"process {pid}" if pid > 0 else "another process"
            raise RecordsError(
                f"{str(self.folder)!r} is being written by {who}: one run writes to a folder at "
                "a time. Wait for it to end, or write this run to another folder"
            ) from None
        except OSError as err:
            raise RecordsError(
                f"cannot write records to {str(self.folder / schema.RECORDS_FILE)!r} (its lock "
                f"would not take): {err.strerror or err}. Expected a writable folder; pass "
                "another --out"
            ) from err
        with contextlib.suppress(OSError):  # the pid only names the holder in a refusal
            write_atomic(self.folder / f"{schema.LOCK_FILE}.pid", f"{os.getpid()}\n")

    def release(self) -> None:
        if self._lock.is_locked:
            # The pid goes first: it must never name a process that no longer holds the lock.
            with contextlib.suppress(OSError):
                (self.folder / f"{schema.LOCK_FILE}.pid").unlink(missing_ok=True)
            self._lock.release()
