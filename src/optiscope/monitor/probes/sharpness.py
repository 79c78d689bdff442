"""Sharpness: the top Hessian eigenvalue (of ``P^-1 H`` under a preconditioner) against the
optimizer's stability threshold (Cohen et al. 2021), and the smallest eigenvalue where the
scheduler's plateau decision asks for it (a plateau: a minimum or a saddle?)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optiscope.linalg.lanczos import lanczos
from optiscope.monitor.context import StepContext
from optiscope.monitor.probes.base import Probe, Setup
from optiscope.quantities.step import (
    adam_preconditioner,
    group_preconditioner,
    sharpness,
    stability_threshold,
)
from optiscope.records import schema

# Lanczos vectors kept during a measurement: each is a copy of the parameters, and warm-started
# from the last eigenvectors the top pair converges in a few products.
_BASIS = 6


class Sharpness(Probe):
    """Lanczos warm-started from the last measurement's eigenvectors: the spectrum moves little
    between measurements, and a warm start converges in a few products."""

    name = "sharpness"
    needs = frozenset({"batch", "loss_fn"})
    asks = ("plateau",)
    writes = (
        schema.SHARPNESS,
        schema.LAMBDA_MIN,
        schema.SHARPNESS_HVPS,
        schema.STABILITY_THRESHOLD,
        schema.THRESHOLD_PRECONDITIONED,
        schema.HVP_METHOD,
    )

    def __init__(self, every: int, setup: Setup) -> None:
        super().__init__(every, setup)
        self._warm: dict[str, Tensor] = {}  # the last eigenvectors, to start Lanczos from

    def measure(self, ctx: StepContext) -> None:
        values = ctx.values
        problem = ctx.problem()
        prec = None
        if ctx.optimizer is not None:
            th = stability_threshold(ctx.optimizer)
            if th.preconditioned:
                prec = adam_preconditioner(ctx.optimizer, ctx.params)
            else:
                prec = group_preconditioner(ctx.optimizer, ctx.params)
            # Before Adam's first step there is no preconditioner yet: the raw Hessian's
            # sharpness is measured, and its threshold (of P^-1 H) would not apply.
            if prec is not None or not th.preconditioned:
                values[schema.STABILITY_THRESHOLD] = th.value
                values[schema.THRESHOLD_PRECONDITIONED] = prec is not None
        bottom = ctx.decisions.get("plateau", False)
        hessian = problem.hessian_operator()
        start = problem.hvp_count
        if prec is None:
            which = "both" if bottom else "largest"
            # The top eigenvalue to 1% (an error bound: against 2/lr that is plenty); both ends
            # to 0.1% of it, as the smallest is judged against a small fraction of the largest.
            tol = 1e-3 if bottom else 1e-2
            # The start vector goes straight to Lanczos, which drops it once copied: a local
            # here would keep a parameter-sized vector through every product.
            res = lanczos(
                hessian,
                1,
                which,
                tol=tol,
                max_steps=30,
                v0=self._start(problem, which, ctx.step),
                basis=_BASIS,
            )
            self._warm.update(zip(("largest", "smallest"), res.vectors.T))
            values[schema.SHARPNESS] = float(res.values[0])
            if bottom:
                values[schema.LAMBDA_MIN] = float(res.values[-1])
        else:
            top = sharpness(
                problem,
                preconditioner=prec,
                tol=1e-2,
                v0=self._start(problem, "preconditioned", ctx.step),
                basis=_BASIS,
            )
            self._warm["preconditioned"] = top["vector"]
            values[schema.SHARPNESS] = top["value"]
            if bottom:
                low = lanczos(
                    hessian,
                    1,
                    "smallest",
                    tol=1e-3,
                    max_steps=30,
                    v0=self._start(problem, "smallest", ctx.step),
                    basis=_BASIS,
                )
                self._warm["smallest"] = low.vectors[:, 0]
                values[schema.LAMBDA_MIN] = float(low.values[0])
        values[schema.SHARPNESS_HVPS] = problem.hvp_count - start
        if problem.hvp_method != "exact":
            values[schema.HVP_METHOD] = problem.hvp_method
        # The curvature tier keeps this problem through the optimizer's step: not its graph.
        problem.release_graph()

    def _start(self, problem: Any, which: str, step: int) -> Tensor | None:
        """The last eigenvectors plus a random part, which keeps Lanczos from missing a new
        extreme direction orthogonal to the old ones."""
        keys = ("largest", "smallest") if which == "both" else (which,)
        old = [self._warm[k] for k in keys if k in self._warm]
        if not old or any(v.shape != (problem.num_params,) for v in old):
            return None
        gen = torch.Generator().manual_seed(step)
        r = torch.randn(problem.num_params, generator=gen, dtype=problem.dtype)
        v = sum(u.to(problem.dtype) / u.norm() for u in old)
        return v + 0.5 * len(old) ** 0.5 * r.to(problem.device) / r.norm()

    def close(self) -> None:
        self._warm = {}
