"""The lab's experiments (each registers itself on import), and their order: the chapter's."""

from optiscope.lab._experiments import (  # noqa: F401
    cliffs,
    convexity,
    high_dimension,
    identifiability,
    ill_conditioning,
    index_loss,
    inexact_gradients,
    limits,
    local_global,
    long_term,
    negative_test,
    plateau,
    restarts_xor,
    saddle_newton,
)

ORDER = (
    "convexity",
    "ill-conditioning",
    "identifiability",
    "local-minima-negative-test",
    "saddle-newton",
    "index-vs-loss",
    "plateau",
    "cliffs",
    "long-term-dependencies",
    "inexact-gradients",
    "local-global-structure",
    "random-restarts",
    "high-dimension",
    "theoretical-limits",
)
