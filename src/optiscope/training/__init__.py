"""Experiments, the one training loop, the built-in experiments, checkpoints."""
