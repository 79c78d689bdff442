"""The Monitor: a scheduler over probes inside a training loop, and its sinks."""
