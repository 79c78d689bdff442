"""Findings: the vocabulary of the verdicts (challenges and severities) and the verdict itself.

No torch and no I/O: :func:`optiscope.records.log.write_findings` writes what
:meth:`Finding.to_dict` gives, and the report renders those dicts.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from optiscope.records import schema

# The eight challenges of Deep Learning sec. 8.2, in the order of the book and of the report.
ILL_CONDITIONING = "ill-conditioning"
LOCAL_MINIMA = "local-minima"
SADDLE_POINTS = "saddle-points"
CLIFFS = "cliffs"
LONG_TERM_DEPENDENCIES = "long-term-dependencies"
INEXACT_GRADIENTS = "inexact-gradients"
LOCAL_GLOBAL_MISMATCH = "local-global-mismatch"
THEORETICAL_LIMITS = "theoretical-limits"
CHALLENGES = (
    ILL_CONDITIONING,
    LOCAL_MINIMA,
    SADDLE_POINTS,
    CLIFFS,
    LONG_TERM_DEPENDENCIES,
    INEXACT_GRADIENTS,
    LOCAL_GLOBAL_MISMATCH,
    THEORETICAL_LIMITS,
)


class Severity(enum.StrEnum):
    """How bad a verdict is. ``ERROR``: the detector itself failed, so there is no verdict.

    A str (StrEnum is ``(str, Enum)`` whose ``str()`` and ``format()`` give the value), so that
    ``Severity.OK == "ok"``, JSON writes ``"ok"`` and ``f"{severity}"`` reads ``ok``.
    """

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    ERROR = "error"


SEVERITIES = tuple(Severity)
# What the report and the terminal show in place of the severity of a finding that reads nothing
# from the run (measured False): a fixed statement, not a verdict.
STATEMENT = "statement"


@dataclass(frozen=True)
class Finding:
    """One verdict: ``challenge`` and ``severity`` from fixed vocabularies, a one-line
    ``summary``, the ``evidence`` behind it and the ``remedy`` to try.

    ``measured`` is False for a fixed statement that reads nothing from the run (the
    theoretical limits): shown as a statement, not as a verdict on the run.
    """

    challenge: str
    severity: Severity
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""
    measured: bool = True

    def __post_init__(self) -> None:
        # A severity given as its string ("ok") is taken; anything else is a detector's bug.
        try:
            severity = Severity(self.severity)
        except ValueError:
            raise ValueError(
                f"a finding's severity must be one of {[s.value for s in Severity]}, got "
                f"{self.severity!r}; pass a Severity"
            ) from None
        object.__setattr__(self, "severity", severity)

    def to_dict(self) -> dict[str, Any]:
        """The finding as plain JSON-able values (the severity as its string)."""
        out = asdict(self)
        out[schema.SEVERITY] = self.severity.value
        return out
