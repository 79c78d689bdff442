"""Quantities measured at a point or a step: plain numbers, no decisions."""
