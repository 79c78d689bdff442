"""Decisions the scheduler takes for its probes: small functions of the run so far that answer
one question, separate from any measurement.

A decision sees every step's loss and gradient norm (``observe``); a probe names the questions it
asks (``Probe.asks``), and at a step it is due the scheduler asks the decision (``decide``) and
hands the probe the answer in ``StepContext.decisions``.
"""

from __future__ import annotations

import math
from collections import deque


class Plateau:
    """ "Is the run on a plateau, so that the bottom of the spectrum is worth measuring?"

    Yes when the smoothed loss changed by less than 5% per 100 steps over the last 5 to 100
    steps (as many as the run has), or the smoothed gradient norm fell below a tenth of its
    largest value. Both are smoothed over about ten steps (exponential averages, updated every
    finite step). The answer reads the run's own recent past, not the last time it was asked,
    so a plateau at the start of a run is seen while the run sits on it.
    """

    name = "plateau"
    SPAN = 100  # steps of history compared
    MIN_SPAN = 5

    def __init__(self) -> None:
        self.loss_ema: float | None = None
        self.grad_ema: float | None = None
        self.grad_ema_max = 0.0
        self._past: deque[float] = deque(maxlen=self.SPAN + 1)  # loss_ema, one per finite step

    def observe(self, loss: float, grad_norm: float) -> None:
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.loss_ema = loss if self.loss_ema is None else 0.9 * self.loss_ema + 0.1 * loss
            g = grad_norm
            self.grad_ema = g if self.grad_ema is None else 0.9 * self.grad_ema + 0.1 * g
            self.grad_ema_max = max(self.grad_ema_max, self.grad_ema)
            self._past.append(self.loss_ema)

    def decide(self, step: int) -> bool:
        if self.loss_ema is None or self.grad_ema is None:
            return False
        if self.grad_ema < 0.1 * self.grad_ema_max:
            return True
        span = len(self._past) - 1
        if span < self.MIN_SPAN:
            return False
        then = self._past[0]
        return abs(self.loss_ema - then) <= 5e-4 * span * max(abs(then), 1e-12)


DECISIONS = {Plateau.name: Plateau}
