"""Run an Experiment under the Monitor, analyse the final point, and diagnose (the main job)."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from optiscope.core.modules import aside
from optiscope.diagnosis import Finding
from optiscope.diagnosis.detectors import needs_larger_batch, needs_restarts
from optiscope.landscape.line import LandscapeError
from optiscope.landscape.restarts import final_loss, final_losses
from optiscope.landscape.surface import surface, trajectory_directions
from optiscope.monitor.end import analysis, final_point_and_density, straight_path
from optiscope.monitor.monitor import Monitor, spread
from optiscope.problem.problem import Problem, batch_samples, flat_parameters
from optiscope.quantities.curvature import critical_point_products
from optiscope.records import schema
from optiscope.records.log import RecordsError, read_records
from optiscope.runner.exact import exact_steps, fastest, learning_rates
from optiscope.runner.larger import FACTOR, larger_batch
from optiscope.training.experiment import Experiment
from optiscope.training.loop import train_experiment


@dataclass
class RunResult:
    """Where the run wrote its records and findings, and the findings themselves."""

    out: Path
    findings: list[Finding]
    seconds: float
    stopped: str | None = None  # why training stopped early (a non-finite loss or gradient)
    # Why some records or the findings could not be written (a full disk), if so.
    write_error: str | None = None


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


@dataclass(frozen=True)
class _Budget:
    """The end-of-run analyses sized to a budget of seconds. The final point's curvature is
    not sized: the local-minima and saddle verdicts read its smallest eigenvalue, which a
    shorter Lanczos would place nearer zero. The trajectory's plane gets what is left of the
    budget when it starts, at least a sixth of it: its grid shrinks from 21 x 21 where the
    model's loss on the analysis batch is slow."""

    seconds: float
    loss_seconds: float
    deadline: float

    @classmethod
    def of(cls, problem: Problem, seconds: float) -> _Budget:
        t0 = time.perf_counter()
        return cls(seconds, max(fastest(problem.loss), 1e-6), t0 + seconds)

    def grid(self) -> int:
        left = max(self.deadline - time.perf_counter(), self.seconds / 6)
        side = int(math.sqrt(left / self.loss_seconds))
        return max(5, min(21, side - (side + 1) % 2))  # odd: the end point at the centre


def _seconds(t: float) -> str:
    return f"{t:.0f} s" if t >= 10 else f"{t:.2g} s"


def _contained(
    monitor: Monitor, name: str, say: Callable[[str], None], measure: Callable[[], None]
) -> bool:
    """Run one end-of-run analysis; one that raises is recorded (a ``probe_error`` named after
    it, with its reason) and the others still run: it must not cost the run its findings."""
    try:
        measure()
        return True
    except Exception as err:
        text = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
        monitor.write(
            {
                schema.TYPE: schema.PROBE_ERROR,
                schema.STEP: monitor.step_count,
                schema.PROBE: name,
                schema.ERROR: reason,
            }
        )
        say(f"the {name} analysis failed ({reason}); recorded, and the others go on")
        return False


def _trajectory(
    exp: Experiment,
    monitor: Monitor,
    snapshots: list[torch.Tensor],
    problem: Any,
    budget: _Budget,
    say: Callable[[str], None],
) -> None:
    """The trajectory in the plane of its first two principal components (Li et al. 2018), and
    the loss surface of that plane around the end point with the trajectory on it."""

    if len(snapshots) < 3:
        monitor.write(analysis(schema.TRAJECTORY, {schema.ERROR: "too few snapshots"}))
        return
    try:
        traj = trajectory_directions(snapshots)
    except LandscapeError as err:
        monitor.write(analysis(schema.TRAJECTORY, {schema.ERROR: str(err)}))
        return
    monitor.write(analysis(schema.TRAJECTORY, {schema.SNAPSHOTS: len(snapshots), **traj.to_dict()}))
    coords = torch.tensor(traj.coords)
    reach = float(coords.abs().max()) * 1.2 or 1.0
    grid = budget.grid()
    say(f"the trajectory's plane: {grid} x {grid} losses")
    with aside(exp.model, batch_stats=True):
        plane = surface(problem, traj.directions, span=reach, steps=grid, trajectory=traj)
    monitor.write(
        analysis(
            schema.SURFACE,
            {
                schema.DIRECTIONS: "pca",
                schema.XS: plane.xs.tolist(),
                schema.YS: plane.ys.tolist(),
                schema.LOSSES: plane.to_dict()[schema.LOSSES],
                schema.CENTER_LOSS: plane.center_loss,
                schema.EXPLAINED: traj.explained,
            },
        )
    )


def _final_point(
    exp: Experiment,
    monitor: Monitor,
    start: torch.Tensor,
    snapshots: list[torch.Tensor],
    seconds: float,
    say: Callable[[str], None],
) -> None:
    """Curvature at the final point, the straight path from the start to it, and the
    trajectory's plane, sized to about ``seconds``."""

    data = exp.eval_data
    if data is None:
        data = next(iter(exp.data))
    # The function being trained: batch norm on the data's own statistics, as in training.
    with aside(exp.model, batch_stats=True):
        problem = Problem(exp.model, exp.loss_fn, data, batch_stats=True)
        budget = _Budget.of(problem, seconds)
        n = problem.num_params
        probe = torch.full((n,), n**-0.5, dtype=problem.dtype, device=problem.device)
        problem.hvp(probe)  # the first product builds the gradient's graph, which the rest reuse
        each = fastest(partial(problem.hvp, probe))
        del probe
        products = critical_point_products(n)
        say(
            f"analysing the final point (a loss takes {budget.loss_seconds:.2g} s, a "
            f"Hessian-vector product {each:.2g} s): its curvature and spectral density, up to "
            f"{products} products (about {_seconds(products * each)} at most)"
        )

        def curvature() -> None:
            for record in final_point_and_density(problem):
                monitor.write(record)

        _contained(monitor, schema.FINAL_POINT, say, curvature)
        say("the straight path from the start")
        _contained(
            monitor,
            schema.INTERPOLATION,
            say,
            lambda: monitor.write(straight_path(problem, start, monitor.path_length)),
        )
    _contained(
        monitor,
        schema.TRAJECTORY,
        say,
        lambda: _trajectory(exp, monitor, snapshots, problem, budget, say),
    )


def _samples(exp: Experiment) -> int | None:
    """The training set's size where the data is a list of batches (a loader is not read)."""
    if not isinstance(exp.data, (list, tuple)):
        return None
    return sum(batch_samples(b) for b in exp.data) or None


def _records(monitor: Monitor, out: Path) -> list[dict[str, Any]]:
    """The run's records so far: the header and those written, and those the Monitor still
    holds."""
    try:
        log = read_records(out)
    except RecordsError:  # the records could not be written: those kept in memory
        return list(monitor.history)
    return [log.header, *log.records, *monitor.history]


def _restarts(
    exp: Experiment,
    monitor: Monitor,
    records: list[dict[str, Any]],
    factory: Callable[[int], Experiment],
    count: int,
    say: Callable[[str], None] | None,
) -> None:
    """When the run ended stalled at a point with no significant negative curvature, train the
    experiment from ``count`` other seeds and record their final losses beside the run's own
    (measured alike): the local-minima detector compares them."""
    if not needs_restarts(records):
        return
    with aside(exp.model):
        own = final_loss(exp)
    seeds = [exp.seed + k for k in range(1, count + 1)]
    if say is not None:
        say(f"the run stalled: training {count} restarts (seeds {seeds[0]}..{seeds[-1]})")
    fields: dict[str, Any] = {schema.SEEDS: seeds, schema.LOSS: own, schema.BUDGET: count}
    try:
        fields[schema.LOSSES] = final_losses(factory, seeds)
    except Exception as err:  # a restart that fails must not cost the run its findings
        fields[schema.ERROR] = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        if say is not None:
            say(f"the restarts failed: {fields[schema.ERROR]}")
    monitor.write(analysis(schema.RESTARTS, fields))


def run_experiment(
    exp: Experiment,
    out: str | os.PathLike[str],
    *,
    preset: str = "curvature",
    progress: Callable[[int, int], None] | None = None,
    tensorboard: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    factory: Callable[[int], Experiment] | None = None,
    restarts: int = 3,
    say: Callable[[str], None] | None = None,
    end_analysis: bool = True,
    end_seconds: float | None = None,
) -> RunResult:
    """Train ``exp`` under a :class:`~optiscope.Monitor`, analyse the point it reaches, and
    diagnose the run.

    Writes into the folder ``out`` (created if missing):

    - ``records.jsonl``: a header (the experiment's name, description, seed, steps, the preset,
      the optimizer's class and ``exp.config``), one ``step`` record per optimizer step with the
      quantities of ``preset`` (``"default"``, ``"curvature"`` or ``"full"``), and, at the end,
      ``analysis`` records of the final point: its critical-point verdict (``final_point``), the
      Hessian's spectral density (``spectral_density``), the loss on the straight line from the
      start (``interpolation``, with the length of the path training took), the trajectory's
      principal plane (``trajectory``) and the loss surface on it (``surface``);
    - ``findings.json``: the verdict on each challenge (written by the Monitor as it closes).

    ``out`` must hold no run unless ``overwrite`` (one run per folder; see :class:`Monitor`).
    With ``tensorboard``, every quantity is also written there as TensorBoard events.
    ``progress(done, total)`` is called after each step. Torch is seeded with ``exp.seed``.

    With ``factory`` (``seed -> Experiment``, the function that built ``exp``), a run that ends
    stalled at a point with no significant negative curvature is judged against ``restarts``
    runs of the experiment from the seeds after ``exp.seed`` (trained without the Monitor: about
    ``restarts`` times the training's cost), recorded as a ``restarts`` analysis; ``restarts=0``
    skips them. Where the gradient noise dominates (the batch under the critical batch size),
    the factory's run is also trained again from the run's first parameters on batches
    ``FACTOR`` (8) times larger for the same steps (``larger_batch``, within the analysis's
    budget of seconds): what a larger batch reaches, which the inexact-gradients verdict reads.
    ``say(line)`` hears what the end-of-run analyses are doing;
    ``end_analysis=False`` skips them all (the final point, the straight path, the plane and the
    restarts: on a large model they can cost more than the training), and the verdicts that read
    them say they were not measured. They are sized to about ``end_seconds`` (default: as long
    as the training took, at least 30 s): where a loss on the analysis batch is slow, the
    plane's grid shrinks (from 21 x 21), and the exact-steps arms run at their full length
    or not at all (projected past the budget); the final point's curvature (up to 260 Hessian-vector
    products, whose quadrature also gives the spectral density) and the restarts are not
    counted in it.

    A loss or gradient that is not finite stops training at that step: an ``event`` record
    (``stopped``) says why, the records up to it are diagnosed, the end point is not analysed,
    and :attr:`RunResult.stopped` holds the reason.
    """
    t0 = time.perf_counter()
    out = Path(out)
    torch.manual_seed(exp.seed)
    start = flat_parameters(exp.model)
    header = {
        schema.EXPERIMENT: exp.name,
        schema.DESCRIPTION: exp.description,
        schema.SEED: exp.seed,
        schema.STEPS: exp.steps,
        schema.PRESET: preset,
        schema.OPTIMIZER: type(exp.optimizer).__name__,
        schema.CONFIG: exp.config,
        schema.SAMPLES: _samples(exp),
        schema.SCHEDULER: type(exp.scheduler).__name__ if exp.scheduler is not None else None,
        schema.CLIP_GRAD_NORM: exp.clip_grad_norm,
        schema.ACCUMULATE: exp.accumulate,
    }
    # Every update is measured (the trajectory's length sums them); with the curvature preset the
    # tiers are spread so that a run of any length gets enough measurements of each.
    every = {"update": 1}
    if preset == "curvature":
        every.update(spread(exp.steps, batch_samples(next(iter(exp.data))) or 32))
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
        overwrite=overwrite,
    )
    keep = _snapshot_steps(exp)
    snapshots = [start.clone()] if 0 in keep else []

    # Each group's learning rate at every step: where a schedule annealed it, the exact-steps
    # arms step at the run's median rate.
    first = learning_rates(exp.optimizer)
    rates: list[list[float]] | None = None if first is None else [first]

    def after_step(step: int, loss: torch.Tensor) -> None:
        nonlocal rates
        if rates is not None:
            now = learning_rates(exp.optimizer)  # the next step's
            if now is None or len(now) != len(rates[0]):
                rates = None  # a rate that is not a number: the arms keep the last one
            elif step < exp.steps:  # steps count from 1; the last one's next rate is unused
                rates.append(now)
        if step in keep:
            snapshots.append(flat_parameters(exp.model))
        if progress is not None:
            progress(step, exp.steps)

    stopped = None
    try:
        trained = train_experiment(exp, monitor=monitor, after_step=after_step)
        if trained.stopped is not None:
            stopped = trained.stopped.split(":")[0] + f" (of {exp.steps} steps)"
            monitor.write(
                {
                    schema.TYPE: schema.EVENT,
                    schema.NAME: schema.STOPPED,
                    schema.STEP: trained.steps,  # the step that was not finite, from 0
                    schema.REASON: stopped,
                }
            )
        elif end_analysis:
            seconds = (
                end_seconds if end_seconds is not None else max(30.0, time.perf_counter() - t0)
            )
            tell = say or (lambda _: None)
            _contained(
                monitor,
                "final point",
                tell,
                lambda: _final_point(exp, monitor, start, snapshots, seconds, tell),
            )
            tell("steps on exact gradients against the run's own minibatches")
            typical = None
            if rates:  # each group's median rate over the run's steps
                typical = [statistics.median(r[i] for r in rates) for i in range(len(rates[0]))]
            _contained(
                monitor,
                schema.EXACT_STEPS,
                tell,
                lambda: monitor.write(exact_steps(exp, seconds, start, typical)),
            )
            if factory is not None:
                # Read once: both reruns ask of the records as training left them.
                records = _records(monitor, out)
                if needs_larger_batch(records):
                    if say is not None:
                        say(f"the noise dominates: the run again on batches {FACTOR}x larger")
                    monitor.write(larger_batch(factory, exp, start, seconds))
                if restarts > 0:
                    _restarts(exp, monitor, records, factory, restarts, say)
    finally:
        findings = monitor.close()
    seconds = time.perf_counter() - t0
    return RunResult(out, findings, seconds, stopped, monitor.write_error)
