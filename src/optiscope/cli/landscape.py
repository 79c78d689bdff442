"""``optiscope landscape``: train an experiment and look at the error surface it trained on.

Four kinds, each a thin layer over one library function:

- ``interpolate``: the loss along the straight line from the start of training to its end
  (:func:`optiscope.interpolate`, Goodfellow, Vinyals and Saxe 2015) and its barrier.
- ``surface``: the loss on a plane through the end point (:func:`optiscope.surface`, Li et al.
  2018), spanned by filter-normalized random directions, the top two Hessian eigenvectors, or the
  first two principal components of the training trajectory (drawn on the plane).
- ``connect``: two minima (seeds ``s`` and ``s + 1``, the second's hidden units permuted to match
  the first's where :func:`optiscope.align_units` supports the network) joined by a trained Bezier
  curve and by the straight line (:func:`optiscope.connect`, Garipov et al. 2018).
- ``restarts``: the experiment trained from N seeds, its final losses and its minima grouped up to
  symmetry (:func:`optiscope.restarts`).

The default box of a surface (``--span`` not given):

- random directions: ``[-1, 1]^2`` (each filter of a direction has its parameters' norm, so 1 is
  a step the size of the weights themselves);
- Hessian eigenvectors (unit vectors): ``[-s, s]^2`` with ``s = sqrt(2 r / lambda_1)``, where
  ``r = max(|L(c)|, 0.1)``: the quadratic model ``L(c) + lambda_1 x^2 / 2`` then rises by ``r``
  at the edge along the top eigenvector, so that the loss at least doubles there (or rises by 0.1
  where it is below 0.1). Where ``lambda_1 <= 0`` the box is ``[-1, 1]^2``;
- principal components: the box that holds the projected trajectory, widened by 20% of its
  width on each side.

``landscape(args)`` returns everything the command writes and prints as a :class:`Landscape`,
without writing, so the same numbers are reachable from Python.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optiscope
from optiscope.core import shard
from optiscope.core.files import write_atomic
from optiscope.landscape.line import LandscapeError, loss_or_nan
from optiscope.landscape.symmetry import SymmetryError
from optiscope.problem.problem import load_flat_parameters
from optiscope.records.log import encode
from optiscope.report import plot as _plot

KINDS = ("interpolate", "surface", "connect", "restarts")
DIRECTIONS = ("random", "hessian", "pca")
# Snapshots of the parameters kept along training for a surface (the trajectory's PCA).
SNAPSHOTS = 48
# The Hessian box: the quadratic model rises by max(|L(c)|, HESSIAN_RISE) at its edge.
HESSIAN_RISE = 0.1
# The PCA box: the trajectory's bounding box widened by this fraction of its width on each side.
PCA_MARGIN = 0.2


def register(sub: Any) -> None:
    p = sub.add_parser(
        "landscape",
        help="train an experiment and map the error surface: a line, a plane, a curve, restarts",
        description=(
            "Train EXPERIMENT (a built-in name, path/to/file.py:function or "
            "package.module:function) and measure the loss along the line from its start to its "
            "end (interpolate), on a plane through its end (surface), along a trained curve "
            "between two minima (connect), or at the end of N restarts (restarts). Writes "
            "OUT/landscape.json, OUT/landscape.npz (lines, curves and surfaces) and a picture."
        ),
        epilog=(
            "Default --span of a surface: 1 for random (filter-normalized) directions; for "
            "Hessian eigenvectors sqrt(2 r / lambda_1) with r = max(|loss at the end|, 0.1), "
            "where the quadratic model rises by r, so the loss at least doubles at the edge; for "
            "pca the box of the projected trajectory plus 20% of its width on each side."
        ),
    )
    p.add_argument("experiment")
    p.add_argument("--kind", required=True, choices=KINDS, help="what to measure")
    p.add_argument(
        "--out", default=None, help="output folder (default ./landscape-EXPERIMENT-KIND)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        default=None,
        help="take the end point (the line's end, the surface's center) from the weights in FILE "
        "instead of training: a state_dict saved with torch.save(model.state_dict(), FILE), read "
        "with torch.load(weights_only=True). The line starts at the experiment's initial point "
        "(--seed). For interpolate and for surfaces along random or hessian directions only",
    )
    p.add_argument(
        "--points", type=int, default=21, help="points along a line or curve (default 21)"
    )
    p.add_argument(
        "--directions",
        choices=DIRECTIONS,
        default="random",
        help="the plane of a surface (default random, filter-normalized)",
    )
    p.add_argument("--steps", type=int, default=41, help="grid points per axis (default 41)")
    p.add_argument(
        "--span",
        type=float,
        default=None,
        help="half-width of the surface's box (default: by --directions, see below)",
    )
    p.add_argument(
        "--tol",
        type=float,
        default=None,
        help="relative tolerance of the sampled fast mode, e.g. 0.01 (default: every point exact)",
    )
    p.add_argument(
        "--sample", type=int, default=None, help="samples per point in the fast mode (default auto)"
    )
    p.add_argument(
        "--curve-steps",
        type=int,
        default=300,
        help="training steps of the connecting curve (default 300)",
    )
    p.add_argument("--restarts", type=int, default=8, help="number of restarts (default 8)")
    p.add_argument("--format", choices=("png", "svg"), default="png", help="picture format")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback on an error",
    )
    p.set_defaults(run=run)


@dataclass
class Landscape:
    """What the command writes: ``payload`` (landscape.json), ``arrays`` (landscape.npz, empty
    for restarts), ``summary`` (the lines printed) and ``draw(path)`` (the picture)."""

    payload: dict[str, Any]
    arrays: dict[str, Any]
    summary: list[str]
    draw: Callable[[Path], Any]
    name: str = ""


@dataclass
class Training:
    """One plain training run: the flat trainable parameters (named order) at its start and end,
    and ``snapshots`` evenly spaced along it (start and end included) when asked for."""

    start: Any
    end: Any
    steps: int
    seconds: float
    snapshots: list[Any] = field(default_factory=list)


def _check(args: argparse.Namespace) -> None:
    """Settings the library would refuse, refused before any training, with the option's name."""
    bad = [
        (args.steps < 2, f"--steps must be at least 2 grid points per axis, got {args.steps}"),
        (
            args.span is not None and not (math.isfinite(args.span) and args.span > 0),
            f"--span must be a positive half-width of the box, got {args.span}: pass e.g. "
            "--span 1, or leave it out for the default of --directions",
        ),
        (
            args.tol is not None and not (math.isfinite(args.tol) and args.tol > 0),
            f"--tol must be a positive relative tolerance (0.01 for 1%), got {args.tol}: leave "
            "it out to evaluate every point exactly",
        ),
        (
            args.sample is not None and args.sample < 2,
            f"--sample must be at least 2 samples per point, got {args.sample}",
        ),
        (args.points < 2, f"--points must be at least 2 (the two ends), got {args.points}"),
        (args.curve_steps < 0, f"--curve-steps must be 0 or more, got {args.curve_steps}"),
        (
            getattr(args, "checkpoint", None) is not None
            and (args.kind not in ("interpolate", "surface") or args.directions == "pca"),
            f"--checkpoint gives one point, for --kind interpolate or surface with random or "
            f"hessian directions; got --kind {args.kind}"
            + (
                " with --directions pca (the plane of a training trajectory, which a checkpoint "
                "does not have)"
                if args.kind == "surface"
                else ""
            )
            + ". Leave out --checkpoint to train the experiment",
        ),
        (
            args.restarts < 2,
            f"--restarts must be at least 2 (restarts are compared with each other), got "
            f"{args.restarts}",
        ),
    ]
    for wrong, message in bad:
        if wrong:
            raise LandscapeError(message)


def _out_dir(args: argparse.Namespace, name: str) -> Path:
    if args.out is None:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "experiment"
        return Path(f"landscape-{safe}-{args.kind}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LandscapeError(
            f"--out {args.out!r} is an existing file: expected a folder (created if missing). "
            "Pass another --out"
        )
    return out


def train(exp: Any, snapshots: int = 0) -> Training:
    """Train ``exp`` with the one training loop (:func:`optiscope.train`), keeping
    its start and end points and, with ``snapshots > 0``, about that many points evenly spaced
    along the run. Leaves the model in eval mode."""
    import torch

    t0 = time.perf_counter()
    exp.model.train()
    start = optiscope.flat_parameters(exp.model)
    every = max(1, math.ceil(exp.steps / snapshots)) if snapshots else 0
    points = [start] if snapshots else []

    def keep(step: int, loss: Any) -> None:
        if every and (step % every == 0 or step == exp.steps):
            points.append(optiscope.flat_parameters(exp.model))

    step = optiscope.train(
        exp.model, exp.loss_fn, exp.batches(), exp.optimizer, after_step=keep
    ).steps
    exp.model.eval()
    end = optiscope.flat_parameters(exp.model)
    if not bool(torch.isfinite(end).all()):
        raise LandscapeError(
            f"training {exp.name} (seed {exp.seed}) ended with parameters that are not finite: "
            "the run diverged, and there is no surface to map around it. Lower the learning rate"
        )
    return Training(start, end, step, time.perf_counter() - t0, points)


def _trained(args: argparse.Namespace, exp: Any, snapshots: int = 0) -> Training:
    """The run whose end point is analysed: ``exp`` trained, or its initial point and the
    weights of ``--checkpoint`` (no training)."""
    import torch

    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is None:
        return train(exp, snapshots)
    t0 = time.perf_counter()
    start = optiscope.flat_parameters(exp.model)
    optiscope.load_checkpoint(exp.model, checkpoint)
    exp.model.eval()
    end = optiscope.flat_parameters(exp.model)
    if not bool(torch.isfinite(end).all()):
        raise LandscapeError(
            f"checkpoint {checkpoint!r} holds parameters that are not finite: there is no "
            "surface to map around it. Pass a checkpoint saved before the run diverged"
        )
    return Training(start, end, 0, time.perf_counter() - t0, [start, end] if snapshots else [])


def _where(args: argparse.Namespace, tr: Training) -> str:
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is not None:
        return f"the checkpoint {checkpoint}"
    return f"the end of {tr.steps} training steps"


def _agree(training: Training) -> Training:
    """Under torchrun, every rank takes rank 0's points, so that shared work is on one run."""
    import torch.distributed as dist

    if shard.world()[1] <= 1 or not dist.is_initialized():
        return training
    device = training.end.device
    box = [[t.cpu() for t in (training.start, training.end, *training.snapshots)]]
    dist.broadcast_object_list(box, src=0)
    start, end, *snaps = (t.to(device) for t in box[0])
    return Training(start, end, training.steps, training.seconds, snaps)


def _problem(exp: Any, point: Any) -> Any:
    exp.model.eval()
    data = exp.eval_data if exp.eval_data is not None else exp.data
    return optiscope.Problem(exp.model, exp.loss_fn, data, point=point)


def _g(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else str(x)


def _say(args: argparse.Namespace, message: str) -> None:

    if not args.json and shard.world()[0] == 0 and sys.stderr.isatty():
        sys.stderr.write(f"  {message}\n")
        sys.stderr.flush()


def _training_dict(tr: Training, start_loss: float, end_loss: float) -> dict[str, Any]:
    return {
        "steps": tr.steps,
        "seconds": tr.seconds,
        "start_loss": start_loss,
        "end_loss": end_loss,
    }


# -- the four kinds --------------------------------------------------------------------------


def _interpolate(args: argparse.Namespace, exp: Any) -> Landscape:

    _say(args, f"training {exp.name} ({exp.steps} steps)")
    tr = _agree(_trained(args, exp))
    problem = _problem(exp, tr.end)
    result = optiscope.interpolate(problem, tr.start, tr.end, points=args.points)
    start_loss, end_loss = result.losses[0], result.losses[-1]
    barrier = (
        "no barrier (the path never rises above its higher end)"
        if result.barrier == 0
        else f"barrier {_g(result.barrier)} above the higher end"
    )
    summary = [
        f"{exp.name}: loss along the line from the start (seed {args.seed}) to "
        f"{_where(args, tr)}, {args.points} points",
        f"  start {_g(start_loss)}, end {_g(end_loss)}; {barrier}; distance {_g(result.distance)}",
    ]
    payload = {
        "training": _training_dict(tr, start_loss, end_loss),
        "result": result.to_dict(),
    }
    arrays = {"alphas": result.alphas, "losses": result.losses}

    def draw(path: Path) -> Any:
        return _plot.interpolation(
            path,
            result.alphas,
            result.losses,
            result.barrier,
            title=f"{_plot.plain(exp.name)}: start to end of training (seed {args.seed})",
        )

    return Landscape(payload, arrays, summary, draw)


def _hessian_span(center_loss: float, top: float) -> tuple[float, str]:
    rise = max(abs(center_loss), HESSIAN_RISE) if math.isfinite(center_loss) else HESSIAN_RISE
    if not (math.isfinite(top) and top > 0):
        return 1.0, f"top eigenvalue {_g(top)} is not positive: default box [-1, 1]"
    return (
        math.sqrt(2 * rise / top),
        f"sqrt(2 r / lambda_1) with r = max(|L(c)|, {HESSIAN_RISE}) = {_g(rise)}, "
        f"lambda_1 = {_g(top)}: the quadratic model rises by r at the edge",
    )


def _pca_box(coords: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    wx, wy = max(xs) - min(xs), max(ys) - min(ys)
    wx = wx if wx > 0 else (wy if wy > 0 else 1.0)
    wy = wy if wy > 0 else wx
    return (
        min(xs) - PCA_MARGIN * wx,
        max(xs) + PCA_MARGIN * wx,
        min(ys) - PCA_MARGIN * wy,
        max(ys) + PCA_MARGIN * wy,
    )


def _surface(args: argparse.Namespace, exp: Any) -> Landscape:
    import numpy as np
    import torch

    _say(args, f"training {exp.name} ({exp.steps} steps)")
    tr = _agree(_trained(args, exp, snapshots=SNAPSHOTS))
    problem = _problem(exp, tr.end)
    start_loss, end_loss = loss_or_nan(problem, tr.start), loss_or_nan(problem, tr.end)
    pts = torch.stack([p.double() for p in tr.snapshots])
    path_length = float((pts[1:] - pts[:-1]).norm(dim=1).sum())
    distance = float((pts[-1] - pts[0]).norm())
    trained = getattr(args, "checkpoint", None) is None
    trajectory = None
    span: float | tuple[float, float, float, float]
    _say(args, f"finding the {args.directions} directions")
    if args.directions == "random":
        directions = optiscope.random_directions(problem, seed=args.seed, normalization="filter")
        span = 1.0 if args.span is None else args.span
        rule = "default 1 (filter-normalized directions)" if args.span is None else "--span"
        labels = [f"random direction {k} (filter-normalized)" for k in (1, 2)]
    elif args.directions == "hessian":
        directions = optiscope.hessian_directions(problem)
        eigs = directions.info["eigenvalues"]
        if args.span is None:
            span, rule = _hessian_span(end_loss, eigs[0])
        else:
            span, rule = args.span, "--span"
        labels = [f"Hessian eigenvector {k + 1} (eigenvalue {_g(v)})" for k, v in enumerate(eigs)]
    else:
        trajectory = optiscope.trajectory_directions(tr.snapshots)
        directions = trajectory.directions
        if args.span is None:
            span = _pca_box(trajectory.coords)
            rule = f"the trajectory's box plus {PCA_MARGIN:.0%} of its width on each side"
        else:
            span, rule = args.span, "--span"
        labels = [
            f"PC{k + 1} ({v:.1%} of the trajectory's variance)"
            for k, v in enumerate(trajectory.explained)
        ]
    _say(args, f"evaluating the loss on {args.steps} x {args.steps} points")
    result = optiscope.surface(
        problem,
        directions,
        span=span,
        steps=args.steps,
        tol=args.tol,
        sample=args.sample,
        seed=args.seed,
        trajectory=trajectory,
    )
    box = (-span, span, -span, span) if isinstance(span, float) else span
    finite = result.losses[np.isfinite(result.losses)]
    lo = float(finite.min()) if finite.size else math.nan
    hi = float(finite.max()) if finite.size else math.nan
    summary = [
        f"{exp.name}: {args.steps} x {args.steps} surface around {_where(args, tr)} "
        f"(seed {args.seed}), {args.directions} directions, box "
        f"[{_g(box[0])}, {_g(box[1])}] x [{_g(box[2])}, {_g(box[3])}]",
        f"  loss min {_g(lo)}, max {_g(hi)}, at the center {_g(result.center_loss)}"
        + (
            f"; {finite.size} of {result.losses.size} points finite"
            if finite.size < result.losses.size
            else ""
        ),
        f"  cost {result.cost:.2f} full-data passes per point ({result.method}), "
        f"{result.seconds:.1f} s",
        (
            f"  training path length {_g(path_length)}, distance {_g(distance)} "
            f"(ratio {_g(path_length / distance if distance > 0 else math.inf)})"
            if trained
            # A checkpoint has no training path: only the distance from the initial point.
            else f"  no training path (a checkpoint): distance from the initial point "
            f"{_g(distance)}"
        )
        + (
            f"; the plane holds {trajectory.explained[0]:.1%} + {trajectory.explained[1]:.1%} "
            "of its variance"
            if trajectory is not None
            else ""
        ),
    ]
    payload = {
        "directions": args.directions,
        "box": list(box),
        "span_rule": rule,
        "training": {
            **_training_dict(tr, start_loss, end_loss),
            "snapshots": len(tr.snapshots),
            "path_length": path_length if trained else None,
            "distance": distance,
            "ratio": (path_length / distance if distance > 0 else math.inf) if trained else None,
        },
        "result": result.to_dict(),
    }
    if trajectory is not None:
        payload["trajectory"] = trajectory.to_dict()

    def draw(path: Path) -> Any:
        return _plot.surface(
            path,
            result.xs,
            result.ys,
            result.losses,
            trajectory=trajectory.coords if trajectory is not None else None,
            xlabel=labels[0],
            ylabel=labels[1],
            title=f"{_plot.plain(exp.name)}: loss around the end point (seed {args.seed})",
        )

    return Landscape(payload, result.arrays(), summary, draw)


def _connect(args: argparse.Namespace, exp: Any) -> Landscape:

    _say(args, f"training {exp.name} with seeds {args.seed} and {args.seed + 1}")
    first = _agree(train(exp))
    other = optiscope.load_experiment(args.experiment, args.seed + 1)
    second = _agree(train(other))
    load_flat_parameters(exp.model, first.end)  # the agreed points, under torchrun
    load_flat_parameters(other.model, second.end)
    problem = _problem(exp, first.end)
    alignment: dict[str, Any]
    try:
        aligned = optiscope.align_units(exp.model, other.model)
    except SymmetryError as err:
        b: Any = second.end
        alignment = {"aligned": False, "reason": str(err)}
        said = f"the second not aligned to the first ({err})"
    else:
        b = aligned.model
        alignment = {
            "aligned": True,
            "distance_before": aligned.distance_before,
            "distance_after": aligned.distance_after,
            "sweeps": aligned.sweeps,
        }
        said = (
            f"the second's hidden units aligned to the first's: distance "
            f"{_g(aligned.distance_before)} -> {_g(aligned.distance_after)}"
        )
    _say(args, f"training the curve ({args.curve_steps} steps)")
    result = optiscope.connect(
        problem, first.end, b, steps=args.curve_steps, points=args.points, seed=args.seed
    )
    summary = [
        f"{exp.name}: curve between the minima of seeds {args.seed} and {args.seed + 1} "
        f"({first.steps} training steps each), {args.curve_steps} curve steps, "
        f"{args.points} points",
        f"  {said}",
        f"  curve barrier {_g(result.curve_barrier)} against the line's "
        f"{_g(result.line_barrier)}; ends at loss {_g(result.line_losses[0])} and "
        f"{_g(result.line_losses[-1])}",
    ]
    payload = {
        "seeds": [args.seed, args.seed + 1],
        "alignment": alignment,
        "training": {"steps": first.steps, "seconds": first.seconds + second.seconds},
        "result": result.to_dict(),
    }
    arrays = {
        "ts": result.ts,
        "curve_losses": result.curve_losses,
        "line_losses": result.line_losses,
        "train_losses": result.train_losses,
    }

    def draw(path: Path) -> Any:
        return _plot.connection(
            path,
            result.ts,
            result.curve_losses,
            result.line_losses,
            result.curve_barrier,
            result.line_barrier,
            title=f"{_plot.plain(exp.name)}: seeds {args.seed} and {args.seed + 1}"
            + (" (aligned)" if alignment["aligned"] else " (not aligned)"),
        )

    return Landscape(payload, arrays, summary, draw)


def _restarts(args: argparse.Namespace, exp: Any) -> Landscape:

    seeds = list(range(args.seed, args.seed + args.restarts))

    def progress(done: int, share: int) -> None:
        _say(args, f"restart {done} of {share} trained")

    result = optiscope.restarts(args.experiment, seeds, progress=progress)
    d = result.to_dict()
    s = d["summary"]
    finite = [v for v in result.losses if math.isfinite(v)]
    spread = max(finite) - min(finite) if finite else math.nan
    n_groups = len(result.groups)
    symmetry = (
        "minima up to permutation and rescaling of hidden units"
        if result.symmetry
        else "minima, compared without symmetry (not supported for this network)"
    )
    summary = [
        f"{exp.name}: {len(seeds)} restarts (seeds {seeds[0]}..{seeds[-1]})",
        f"  final loss min {_g(s['min'])}, median {_g(s['median'])}, max {_g(s['max'])} "
        f"(spread {_g(spread)})" + (f"; {s['non_finite']} not finite" if s["non_finite"] else ""),
        f"  {n_groups} group{'s' if n_groups != 1 else ''} of {symmetry}: "
        + ", ".join(f"{len(g)} at {_g(v)}" for g, v in zip(result.groups, result.group_losses)),
    ]
    payload = {"seeds": seeds, "result": d}

    def draw(path: Path) -> Any:
        return _plot.restarts(
            path,
            result.seeds,
            result.losses,
            result.groups,
            title=f"{_plot.plain(exp.name)}: final loss of {len(seeds)} restarts, by group",
        )

    return Landscape(payload, {}, summary, draw)


_KINDS = {
    "interpolate": _interpolate,
    "surface": _surface,
    "connect": _connect,
    "restarts": _restarts,
}


def landscape(args: argparse.Namespace, exp: Any = None) -> Landscape:
    """Everything the command writes and prints, computed but not written: ``args`` as the
    command line parses them, ``exp`` the experiment already loaded with ``args.seed`` (default:
    loaded here)."""
    _check(args)
    if exp is None:
        exp = optiscope.load_experiment(args.experiment, seed=args.seed)
    out = _KINDS[args.kind](args, exp)
    out.name = exp.name
    out.payload = {
        "kind": args.kind,
        "experiment": args.experiment,
        "name": exp.name,
        "seed": args.seed,
        **out.payload,
    }
    if getattr(args, "checkpoint", None) is not None:
        out.payload["checkpoint"] = str(args.checkpoint)
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    _check(args)
    exp = optiscope.load_experiment(args.experiment, seed=args.seed)
    out = _out_dir(args, exp.name)  # checked before any training
    several = shard.init_from_env()
    rank = shard.world()[0]
    try:
        result = landscape(args, exp)
    finally:
        if several:
            shard.finish()
    if rank != 0:
        return 0
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LandscapeError(
            f"cannot create the output folder {str(out)!r}: {err.strerror}. Pass another --out"
        ) from err
    payload = encode(result.payload)
    files = [out / "landscape.json"]
    write_atomic(files[0], json.dumps(payload, indent=1) + "\n")
    if result.arrays:
        files.append(out / "landscape.npz")
        arrays: dict[str, Any] = {
            k: v if isinstance(v, np.ndarray) else np.asarray(v, dtype=np.float64)
            for k, v in result.arrays.items()
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_atomic(files[-1], buf.getvalue())
    picture = out / f"landscape.{args.format}"
    missing = None
    try:
        result.draw(picture)
        files.append(picture)
    except _plot.PlotUnavailable as err:
        missing = str(err)
    if args.json:
        json.dump({**payload, "files": [str(f) for f in files]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for line in result.summary:
            print(line)
        print(f"wrote {out}{os.sep}: {', '.join(f.name for f in files)}")
    if missing:
        print(f"no picture: {missing}", file=sys.stderr if args.json else sys.stdout)
    return 0
