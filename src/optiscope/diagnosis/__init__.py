"""Detectors turn records into findings: pure functions, no torch and no I/O."""
