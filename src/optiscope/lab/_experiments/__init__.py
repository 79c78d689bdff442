"""The lab's experiments, imported in the chapter's order (each registers itself)."""

from optiscope.lab._experiments import (
    convexity,  # noqa: F401
    ill_conditioning,  # noqa: F401
    limits,  # noqa: F401
)
