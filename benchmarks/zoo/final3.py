"""The fourth held-out zoo split (``"final3"``): inexact gradients and small-batch controls."""

from __future__ import annotations

from . import Case

CASES: list[Case] = []
