"""End-of-run analyses of the point a run reached, as records: its critical-point verdict and
the straight path from the start to it (Goodfellow, Vinyals and Saxe 2015). The runner and
``Monitor(end_batch=...)`` both write them, so ``diagnose`` and a Monitor in a user's own loop
give the same local-minima and local-global verdicts.

Cost: the critical point takes Lanczos at both ends of the spectrum (up to 200 Hessian-vector
products) and 60 steps of stochastic Lanczos quadrature for its index, whose nodes also give the
spectral density; the path 21 loss evaluations; all on the batch given.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from optiscope.core.modules import aside
from optiscope.landscape.line import interpolate
from optiscope.problem.problem import Problem
from optiscope.quantities.curvature import CriticalPoint, critical_point
from optiscope.records import schema


def analysis(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """An ``analysis`` record called ``name``."""
    return {schema.TYPE: schema.ANALYSIS, schema.NAME: name, **fields}


def final_point(problem: Any) -> dict[str, Any]:
    """The ``final_point`` record of the problem's point: its kind (minimum, saddle...), its
    extreme Hessian eigenvalues and index, the loss and the gradient norm there."""
    return _final_point_record(critical_point(problem))


def final_point_and_density(problem: Any, grid_size: int = 200) -> list[dict[str, Any]]:
    """The ``final_point`` record and the ``spectral_density`` one from the quadrature its index
    came from (on ``grid_size`` points): the density costs no product of its own."""
    cp = critical_point(problem)
    records = [_final_point_record(cp)]
    if cp.density is not None:
        found = cp.density.on_grid(grid_size)
        # Clearly negative: below a thousandth of the spectrum's reach, so that a bulk of
        # near-zero eigenvalues, whose sign is rounding, does not count as negative.
        reach = float(max(abs(found.grid[0]), abs(found.grid[-1])))
        records.append(
            analysis(
                schema.SPECTRAL_DENSITY,
                {
                    schema.GRID: found.grid.tolist(),
                    schema.DENSITY: found.density.tolist(),
                    schema.SIGMA: found.sigma,
                    schema.FRACTION_NEGATIVE: found.fraction_below(-1e-3 * reach),
                    schema.HVPS: found.hvps,
                    schema.SHARED: schema.FINAL_POINT,
                },
            )
        )
    return records


def _final_point_record(cp: CriticalPoint) -> dict[str, Any]:
    return analysis(
        schema.FINAL_POINT,
        {
            schema.KIND: cp.kind,
            schema.CURVATURE: cp.curvature,
            schema.LOSS: cp.loss,
            schema.GRADIENT_NORM: cp.gradient_norm,
            schema.LAMBDA_MAX: cp.lambda_max,
            schema.LAMBDA_MIN: cp.lambda_min,
            schema.INDEX: cp.index,
            schema.HVPS: cp.hvps,
            schema.REASON: cp.reason,
        },
    )


def straight_path(problem: Any, start: Tensor, path_length: float) -> dict[str, Any]:
    """The ``interpolation`` record: the loss on the line from ``start`` to the problem's point,
    its barrier, and the length of the path training took (``path_length``)."""
    line = interpolate(problem, start, problem.point)
    return analysis(schema.INTERPOLATION, {**line.to_dict(), schema.PATH_LENGTH: path_length})


def end_records(
    module: nn.Module,
    params: list[Tensor],
    loss_fn: Any,
    batch: Any,
    start: Tensor,
    path_length: float,
) -> list[dict[str, Any]]:
    """The final point (with the spectral density its index's quadrature gives) and the
    straight path from ``start`` on ``batch``, for the trainable ``params`` of ``module``,
    measured on the function being trained (batch norm on the batch's statistics, dropout off;
    the module's modes and random generators left as they were)."""
    ids = {id(p) for p in params}
    with aside(module, batch_stats=True):
        problem = Problem(
            module, loss_fn, batch, params=lambda _, p: id(p) in ids, batch_stats=True
        )
        return [*final_point_and_density(problem), straight_path(problem, start, path_length)]
