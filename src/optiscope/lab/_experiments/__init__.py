"""The lab's experiments (each registers itself on import), and their order: the chapter's."""

from optiscope.lab._experiments import (  # noqa: F401
    cliffs,
    convexity,
    high_dimension,
    identifiability,
    ill_conditioning,
    limits,
    long_term,
    negative_test,
    saddle_newton,
)

ORDER = (
    "convexity",
    "ill-conditioning",
    "identifiability",
    "local-minima-negative-test",
    "saddle-newton",
    "cliffs",
    "long-term-dependencies",
    "high-dimension",
    "theoretical-limits",
)
