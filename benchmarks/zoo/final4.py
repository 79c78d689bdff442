"""The fifth held-out zoo split (``"final4"``): inexact gradients and small-batch controls."""

from __future__ import annotations

from . import Case

CASES: list[Case] = []
