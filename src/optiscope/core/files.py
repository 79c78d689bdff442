"""Writing a run's outputs so that nothing is ever half-written or written through a link.

Every output but the append-only records goes through :func:`write_atomic`: the text is written
to a temporary file beside the target, flushed to disk (fsync), then renamed over it, so a reader
sees the old file or the new one, never a truncated one, and a failed write leaves the old file
(or none) in place. The target may not be a symbolic link: optiscope writes regular files only,
where the user pointed it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from optiscope.core.errors import OptiscopeError


class OutputError(OptiscopeError):
    """An output file that cannot be written where it was asked to go."""


def refuse_link(path: Path) -> None:
    """Raise :class:`OutputError` if ``path`` is a symbolic link (writing would follow it)."""
    if path.is_symlink():
        raise OutputError(
            f"cannot write {str(path)!r}: it is a symbolic link (to {os.readlink(path)!r}), and "
            "optiscope writes only regular files inside the run folder. Remove the link, or "
            "write the run elsewhere"
        )


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Replace ``path`` by ``data`` (text is UTF-8) in one step: a temporary file in the same
    folder, fsync, rename. The folder is created if missing. Raises :class:`OutputError` naming
    the file on any failure (a full disk, no permission), leaving what was there untouched.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_atomic(folder / "a.txt", "one").read_text()
    'one'
    """
    target = Path(path)
    refuse_link(target)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as err:
        raise OutputError(
            f"cannot write {str(target)!r}: {err.strerror or err}. Expected a writable folder "
            "with room for the file; free some space, fix the permissions, or write elsewhere"
        ) from err
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return target
