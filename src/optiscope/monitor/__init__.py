"""The Monitor: a scheduler over probes inside a training loop, and its sinks."""

from optiscope.monitor.monitor import NEEDS_BATCH, PRESETS, TIERS, Monitor, MonitorError

__all__ = ["NEEDS_BATCH", "PRESETS", "TIERS", "Monitor", "MonitorError"]
