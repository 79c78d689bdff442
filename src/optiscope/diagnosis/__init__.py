"""Diagnosis: detectors turn records into findings; pure functions, no torch.

``diagnose(run)`` gives one :class:`Finding` per challenge of :data:`CHALLENGES`, from a run
folder, a :class:`~optiscope.records.log.Records` or record dicts in memory.
"""

from optiscope.diagnosis.detectors import DETECTORS, diagnose
from optiscope.diagnosis.findings import CHALLENGES, Finding, Severity

__all__ = ["CHALLENGES", "DETECTORS", "Finding", "Severity", "diagnose"]
