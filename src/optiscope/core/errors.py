"""Errors raised by optiscope. Each message says what was expected, what came, and what to do."""

from __future__ import annotations


class OptiscopeError(ValueError):
    """Base class of optiscope's own errors (a user mistake or a point it cannot analyse)."""


class ProblemError(OptiscopeError):
    """The model, loss or data cannot be seen as a function of the parameters."""


class NonFiniteError(OptiscopeError):
    """A loss or gradient that is NaN or infinite where a finite number is required."""


class TrainingModeError(ProblemError):
    """Dropout or batch norm in training mode make the loss a random or batch-dependent function."""
