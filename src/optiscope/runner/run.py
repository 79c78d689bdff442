"""Run an Experiment under the Monitor, analyse the final point, and diagnose (the main job)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from optiscope.core.errors import NonFiniteError
from optiscope.diagnosis.detectors import Finding, diagnose
from optiscope.monitor.monitor import Monitor, _batch_size
from optiscope.problem.problem import flat_parameters
from optiscope.records.log import _encode, read_records
from optiscope.training.experiment import Experiment


@dataclass
class RunResult:
    """Where the run wrote its records and findings, and the findings themselves."""

    out: Path
    findings: list[Finding]
    seconds: float
    stopped: str | None = None  # why training stopped early (a non-finite loss or gradient)


# Parameter snapshots kept for the trajectory's principal components, and their memory cap.
_SNAPSHOTS = 41
_SNAPSHOT_BYTES = 256 * 2**20


def _snapshot_steps(exp: Experiment) -> set[int]:
    """Steps after which the parameters are kept (0: before the first), evenly spread."""
    n = sum(p.numel() for p in exp.model.parameters() if p.requires_grad)
    count = min(_SNAPSHOTS, exp.steps + 1, _SNAPSHOT_BYTES // max(4 * n, 1))
    if count < 3:
        return set()
    return {round(i * exp.steps / (count - 1)) for i in range(count)}


def _trajectory(
    exp: Experiment, monitor: Monitor, snapshots: list[torch.Tensor], problem: Any
) -> None:
    """The trajectory in the plane of its first two principal components (Li et al. 2018), and
    the loss surface of that plane around the end point with the trajectory on it."""
    from optiscope.landscape.line import LandscapeError
    from optiscope.landscape.surface import surface, trajectory_directions

    if len(snapshots) < 3:
        monitor.write({"type": "analysis", "name": "trajectory", "error": "too few snapshots"})
        return
    try:
        traj = trajectory_directions(snapshots)
    except LandscapeError as err:
        monitor.write({"type": "analysis", "name": "trajectory", "error": str(err)})
        return
    monitor.write(
        {"type": "analysis", "name": "trajectory", "snapshots": len(snapshots), **traj.to_dict()}
    )
    coords = torch.tensor(traj.coords)
    reach = float(coords.abs().max()) * 1.2 or 1.0
    with monitor._aside():
        plane = surface(problem, traj.directions, span=reach, steps=21, trajectory=traj)
    monitor.write(
        {
            "type": "analysis",
            "name": "surface",
            "directions": "pca",
            "xs": plane.xs.tolist(),
            "ys": plane.ys.tolist(),
            "losses": plane.to_dict()["losses"],
            "center_loss": plane.center_loss,
            "explained": traj.explained,
        }
    )


def _final_point(
    exp: Experiment, monitor: Monitor, start: torch.Tensor, snapshots: list[torch.Tensor]
) -> None:
    """Curvature at the final point, the straight path from the start to it, and the
    trajectory's plane."""
    from optiscope.landscape.line import interpolate
    from optiscope.problem.problem import Problem
    from optiscope.quantities.curvature import critical_point, spectral_density

    data = exp.eval_data
    if data is None:
        data = next(iter(exp.data))
    with monitor._aside():
        problem = Problem(exp.model, exp.loss_fn, data)
        cp = critical_point(problem)
        monitor.write(
            {
                "type": "analysis",
                "name": "final_point",
                "kind": cp.kind,
                "curvature": cp.curvature,
                "loss": cp.loss,
                "gradient_norm": cp.gradient_norm,
                "lambda_max": cp.lambda_max,
                "lambda_min": cp.lambda_min,
                "index": cp.index,
                "hvps": cp.hvps,
                "reason": cp.reason,
            }
        )
        density = spectral_density(problem, steps=min(60, problem.num_params), grid_size=200)
        monitor.write(
            {
                "type": "analysis",
                "name": "spectral_density",
                "grid": density.grid.tolist(),
                "density": density.density.tolist(),
                "sigma": density.sigma,
                "fraction_negative": density.fraction_below(0.0),
                "hvps": density.hvps,
            }
        )
        line = interpolate(problem, start, problem.point)
    length = monitor.path_length
    monitor.write(
        {"type": "analysis", "name": "interpolation", **line.to_dict(), "path_length": length}
    )
    _trajectory(exp, monitor, snapshots, problem)


def run_experiment(
    exp: Experiment,
    out: str | os.PathLike[str],
    *,
    preset: str = "curvature",
    progress: Callable[[int, int], None] | None = None,
    tensorboard: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Train ``exp`` under the Monitor, write records.jsonl and findings.json into ``out`` (and
    TensorBoard events into ``tensorboard``)."""
    t0 = time.perf_counter()
    out = Path(out)
    torch.manual_seed(exp.seed)
    start = flat_parameters(exp.model)
    header = {
        "experiment": exp.name,
        "description": exp.description,
        "seed": exp.seed,
        "steps": exp.steps,
        "preset": preset,
        "optimizer": type(exp.optimizer).__name__,
        "config": exp.config,
    }
    # Every update is measured (the trajectory's length sums them); with the curvature preset the
    # tiers are spread so that a run of any length gets enough measurements of each.
    every = {"update": 1}
    if preset == "curvature":
        n = exp.steps
        # Small batches give noisy noise estimates but cost little: measure them more often.
        size = _batch_size(next(iter(exp.data))) or 32
        every.update(
            curvature=max(1, n // 30),
            sharpness=max(1, n // 6),
            noise=max(1, (n // 12) * min(size, 32) // 32),
            recurrent=max(1, n // 6),
        )
    monitor = Monitor(
        exp.model,
        exp.optimizer,
        out=out,
        loss_fn=exp.loss_fn,
        preset=preset,
        header=header,
        every=every,
        tensorboard=tensorboard,
        # Policy: a non-finite loss or gradient ends training there (every later step would be
        # NaN too); the records up to it are diagnosed and the end point is not analysed.
        on_nonfinite="raise",
    )
    keep = _snapshot_steps(exp)
    snapshots = [start.clone()] if 0 in keep else []
    stopped = None
    try:
        for step, (inputs, targets) in enumerate(exp.batches()):
            exp.optimizer.zero_grad(set_to_none=True)
            loss = exp.loss_fn(exp.model(inputs), targets)
            loss.backward()
            try:
                monitor.step(loss, batch=(inputs, targets))
            except NonFiniteError as err:
                stopped = str(err).split(":")[0] + f" (of {exp.steps} steps)"
                monitor.write({"type": "event", "name": "stopped", "step": step, "reason": stopped})
                break
            exp.optimizer.step()
            if step + 1 in keep:
                snapshots.append(flat_parameters(exp.model))
            if progress is not None:
                progress(step + 1, exp.steps)
        if stopped is None:
            _final_point(exp, monitor, start, snapshots)
    finally:
        monitor.close()
    return RunResult(out, monitor.findings, time.perf_counter() - t0, stopped)


def write_findings(out: str | os.PathLike[str]) -> list[Finding]:
    """Diagnose the records in ``out`` and write ``out/findings.json``; the findings."""
    out = Path(out)
    log = read_records(out)
    findings = diagnose(log.records)
    name = log.header.get("experiment") if isinstance(log.header, dict) else None
    payload = {"experiment": name, "findings": [f.to_dict() for f in findings]}
    (out / "findings.json").write_text(json.dumps(_encode(payload), indent=2) + "\n")
    return findings
