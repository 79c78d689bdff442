"""Random restarts: one experiment trained from many seeds, the spread of its final losses, and
its end points grouped into minima that are the same up to weight-space symmetry.

The negative test for local minima (Deep Learning sec. 8.2.2): restarts that end at different
losses are different minima; restarts that end at the same loss are the same minimum only if they
are joined once the symmetries of the network are taken out. Two end points ``a`` and ``b`` are
grouped together when

* their losses agree: ``|F(a) - F(b)| <= loss_tol * max(1, |F(a)|, |F(b)|)`` (an absolute
  tolerance for losses up to 1, a relative one above), and
* the straight path between them has no barrier once ``b`` is aligned to ``a``:
  ``max_t F((1 - t) a + t b) - max(F(a), F(b)) <= barrier_tol * max(1, |F(a)|)``, measured at
  11 evenly spaced points (Goodfellow, Vinyals and Saxe 2015; Frankle et al. 2020, "Linear mode
  connectivity and the lottery ticket hypothesis").

Alignment, where :func:`hidden_layers` supports the network: every end point
is first brought to a canonical form for the rescaling symmetry of positively homogeneous units
(ReLU, leaky ReLU: ``relu(a z) = a relu(z)`` for ``a > 0``), each hidden unit's incoming weights
and bias scaled to unit norm and the scale pushed into its outgoing weights, layer by layer from
the input; then its hidden units are permuted to match the other point's (weight matching,
Ainsworth, Hayase and Srinivasa 2022). The sign symmetry of odd activations (tanh) is not taken
out. Groups are formed greedily in order of loss: each restart joins the first group whose
representative (its best member) it matches, or founds a new one.

Restarts are split across the ranks of ``torch.distributed`` when a process group exists (each
rank trains every ``size``-th seed, :mod:`optiscope.core.shard`); the end points are gathered on
every rank and the grouping, which is deterministic, is computed from them on every rank.
"""

from __future__ import annotations

import copy
import math
import numbers
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from optiscope.core import shard as _shard
from optiscope.core import stats
from optiscope.core.errors import NonFiniteError, OptiscopeError
from optiscope.landscape.line import interpolate
from optiscope.landscape.symmetry import SymmetryError, _scale_hidden, align_units, hidden_layers
from optiscope.problem.problem import (
    Problem,
    _describe,
    first_line,
    flat_parameters,
    load_flat_parameters,
)
from optiscope.records.log import encode
from optiscope.training.experiment import Experiment
from optiscope.training.loading import load_experiment
from optiscope.training.loop import train_experiment

_PATH_POINTS = 11


class RestartsError(OptiscopeError):
    """Restarts that cannot be run or compared."""


@dataclass
class Restarts:
    """The result of :func:`restarts`; every list of restarts is in the order of ``seeds``.

    ``losses`` are the final losses (on the experiment's ``eval_data``, else on all of its data,
    model in eval mode); a restart whose loss is not finite is NaN or inf and is a group of its
    own, after the others. ``groups`` hold indices into ``seeds``, one group per minimum, best
    first, each sorted by loss (its first index is its representative); ``group_losses`` are
    their mean losses.

    ``distances_before`` and ``distances_after`` are the pairwise Euclidean distances between
    the end points, raw and after alignment (entry ``[i][j]`` aligns ``j`` to ``i`` for
    ``i < j`` and is mirrored); NaN where alignment is not supported (``symmetry`` False) or a
    point is not finite. Distances after alignment are between the canonical forms, where each
    ReLU unit's incoming weights have norm 1: for such networks their scale is not that of the
    raw distances; compare them with each other.

    ``barriers[i]`` is the barrier of the straight path from restart ``i``'s group
    representative to it, after alignment (raw without symmetry): 0 for a representative, NaN
    for a restart that is not finite. ``points`` are the final flat parameter vectors
    (trainable parameters in named order, as a :class:`~optiscope.Problem` sees them).
    ``diverged_at[i]`` is the training step whose loss was not finite, where training stopped,
    else None.
    """

    seeds: list[int]
    losses: list[float]
    groups: list[list[int]]
    group_losses: list[float]
    distances_before: list[list[float]]
    distances_after: list[list[float]]
    barriers: list[float]
    points: list[Tensor]
    symmetry: bool
    loss_tol: float = 1e-2
    barrier_tol: float = 1e-2
    diverged_at: list[int | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite numbers as the strings "nan", "inf"), with a summary of the
        losses (see :func:`summarize_losses`); no tensors."""
        return encode(
            {
                "seeds": self.seeds,
                "losses": self.losses,
                "groups": self.groups,
                "group_losses": self.group_losses,
                "distances_before": self.distances_before,
                "distances_after": self.distances_after,
                "barriers": self.barriers,
                "symmetry": self.symmetry,
                "loss_tol": self.loss_tol,
                "barrier_tol": self.barrier_tol,
                "diverged_at": self.diverged_at,
                "summary": summarize_losses(self.losses, self.loss_tol),
            }
        )


def _same_loss(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def summarize_losses(losses: Sequence[float], loss_tol: float = 1e-2) -> dict[str, Any]:
    """The distribution of final losses and what the best of ``k`` restarts buys.

    ``min``, ``median``, ``mean`` and ``max`` are over the finite losses. A restart *succeeds*
    when its loss is within ``loss_tol`` of the best (the grouping's criterion); ``failed`` is
    the fraction that does not (a non-finite loss fails). ``best_of_k[k - 1]`` is, for ``k``
    restarts drawn without replacement from these ``n``, the expected best loss
    ``sum_i L_(i) C(n - i, k - 1) / C(n, k)`` (``L_(1) <= ... <= L_(n)``, a non-finite loss
    counted as +inf) and the probability that one of them succeeds, ``1 - C(f, k) / C(n, k)``
    with ``f`` failures: ``k = 1`` is a single run (the mean loss), ``k = n`` all of them.
    """
    n = len(losses)
    finite = sorted(v for v in losses if math.isfinite(v))
    best = finite[0] if finite else math.nan
    ok = sum(1 for v in losses if math.isfinite(v) and _same_loss(v, best, loss_tol))
    ordered = sorted(v if math.isfinite(v) else math.inf for v in losses)
    best_of_k = []
    for k in range(1, n + 1):
        ways = math.comb(n, k)
        weights = [math.comb(n - 1 - i, k - 1) / ways for i in range(n)]
        expected = sum(w * v for w, v in zip(weights, ordered) if w > 0)
        best_of_k.append(
            {
                "k": k,
                "expected_loss": expected,
                "p_success": 1 - math.comb(n - ok, k) / ways,
            }
        )
    return {
        "restarts": n,
        "non_finite": n - len(finite),
        "min": best,
        "median": statistics.median(finite) if finite else math.nan,
        "mean": statistics.fmean(finite) if finite else math.nan,
        "max": finite[-1] if finite else math.nan,
        "succeeded": ok / n if n else math.nan,
        "failed": 1 - ok / n if n else math.nan,
        "best_of_k": best_of_k,
    }


# -- one restart -------------------------------------------------------------------------------


@dataclass
class _Run:
    loss: float = math.nan
    point: Tensor = field(default_factory=lambda: torch.empty(0))
    diverged_at: int | None = None
    error: str | None = None


def _builder(experiment: str | Callable[[int], Experiment]) -> Callable[[int], Experiment]:
    if isinstance(experiment, str):
        return lambda seed: load_experiment(experiment, seed)
    if not callable(experiment):
        raise RestartsError(
            "experiment must be a spec string (a built-in name, path/to/file.py:function or "
            "package.module:function) or a callable seed -> Experiment, got "
            f"{_describe(experiment)}"
        )

    def build(seed: int) -> Experiment:
        torch.manual_seed(seed)
        exp = experiment(seed)
        if not isinstance(exp, Experiment):
            raise RestartsError(
                f"experiment({seed}) returned {_describe(exp)}, expected an optiscope.Experiment: "
                "end the function with return optiscope.Experiment(model, loss_fn, data, "
                "optimizer, steps)"
            )
        return exp

    return build


def _eval_problem(exp: Experiment) -> tuple[Problem, bool]:
    """The loss on ``eval_data`` (else all the data) in eval mode, and whether it is finite at
    the model's point (a shape or dtype mistake raises here, with the Problem's message)."""
    exp.model.eval()
    data = exp.eval_data if exp.eval_data is not None else exp.data
    try:
        return Problem(exp.model, exp.loss_fn, data), True
    except NonFiniteError:
        return Problem(exp.model, exp.loss_fn, data, check=False), False


def _final_loss(exp: Experiment) -> tuple[float, Tensor]:
    problem, finite = _eval_problem(exp)
    if finite:
        try:
            return problem.loss(), problem.point
        except NonFiniteError:
            pass
    # Not finite: tell NaN from inf without raising.
    total = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for w, inputs, targets in problem.batches():
            total += w * exp.loss_fn(problem.outputs(inputs), targets).double().cpu()
    return float(total), problem.point


def _train(exp: Experiment) -> int | None:
    """The plain loop; the step whose loss is not finite (training stops there), else None."""
    result = train_experiment(exp, stop_nonfinite=True)
    return None if result.stopped is None else result.steps + 1


def _restart(build: Callable[[int], Experiment], seed: int) -> tuple[_Run, BaseException | None]:
    stage = "could not be built"
    try:
        exp = build(seed)
        stage = "failed in training"
        diverged = _train(exp)
        stage = "trained, but its final loss could not be measured"
        loss, point = _final_loss(exp)
    except Exception as err:  # reported with its seed, on every rank
        if isinstance(err, OptiscopeError):
            message = f"the restart with seed {seed} {stage}: {err}"
        else:
            message = (
                f"the restart with seed {seed} {stage}: {first_line(err)}. Run the experiment "
                "alone with this seed to see the full traceback"
            )
        return _Run(error=message), err
    return _Run(loss, point.detach().cpu(), diverged), None


# -- grouping ------------------------------------------------------------------------------------


def final_loss(exp: Experiment) -> float:
    """The loss of a trained experiment as restarts measure theirs: on its ``eval_data`` (else
    all its data), model in eval mode; NaN or inf where it is not finite."""
    return _final_loss(exp)[0]


def final_losses(
    experiment: str | Callable[[int], Experiment],
    seeds: Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> list[float]:
    """Train ``experiment`` from each seed and return the final losses (as :func:`final_loss`
    measures them), without the grouping :func:`restarts` does: the cheap question "do other
    seeds reach lower?". A restart that fails raises :class:`RestartsError` naming its seed."""
    build = _builder(experiment)
    losses = []
    for done, seed in enumerate(seeds, 1):
        run, err = _restart(build, seed)
        if run.error is not None:
            raise RestartsError(run.error) from err
        losses.append(run.loss)
        if progress is not None:
            progress(done, len(seeds))
    return losses


def _supports_symmetry(model: nn.Module) -> bool:
    """Whether the points can be aligned: a network hidden_layers() accepts, every parameter in
    the point, and no buffers (batch-norm statistics are not part of the points)."""
    try:
        hidden_layers(model)
        _canonical(copy.deepcopy(model))
    except SymmetryError:
        return False
    if not all(p.requires_grad for p in model.parameters()):
        return False
    return not any(b.is_floating_point() for b in model.buffers())


def _load(template: nn.Module, point: Tensor) -> nn.Module:
    model = copy.deepcopy(template)
    load_flat_parameters(model, point)
    return model


def _canonical(model: nn.Module) -> nn.Module:
    """``model`` (modified in place) with every positively homogeneous hidden unit's incoming
    weights and bias at unit norm, the scale moved into the next layer; layers in order, so
    that each sees the scales of the one before."""

    for h in hidden_layers(model):
        if not h.homogeneous():
            continue
        rows = [h.producer.weight.detach().reshape(h.size, -1)]
        if h.producer.bias is not None:
            rows.append(h.producer.bias.detach()[:, None])
        norm = torch.linalg.vector_norm(torch.cat(rows, 1), dim=1)
        _scale_hidden(h, torch.where(norm > 0, 1 / norm, torch.ones_like(norm)))
    return model


class _Grouping:
    """Alignments and paths between end points, each computed once."""

    def __init__(self, problem: Problem, template: nn.Module, points: list[Tensor], symmetry: bool):
        self.problem = problem
        self.points = points
        self.symmetry = symmetry
        self.canonical: dict[int, nn.Module] = {}
        self.template = template
        self.aligned: dict[tuple[int, int], tuple[Tensor, float]] = {}

    def _canon(self, i: int) -> nn.Module:
        if i not in self.canonical:
            self.canonical[i] = _canonical(_load(self.template, self.points[i]))
        return self.canonical[i]

    def align(self, ref: int, other: int) -> tuple[Tensor, float]:
        """``other``'s canonical point permuted to match ``ref``'s, and their distance."""
        if (ref, other) not in self.aligned:
            result = align_units(self._canon(ref), self._canon(other))
            self.aligned[ref, other] = (flat_parameters(result.model), result.distance_after)
        return self.aligned[ref, other]

    def barrier(self, ref: int, other: int) -> float:
        if self.symmetry:
            start, end = flat_parameters(self._canon(ref)), self.align(ref, other)[0]
        else:
            start, end = self.points[ref], self.points[other]
        return interpolate(self.problem, start, end, _PATH_POINTS).barrier


def _group(
    losses: list[float],
    ok: list[bool],
    grouping: _Grouping,
    loss_tol: float,
    barrier_tol: float,
) -> tuple[list[list[int]], list[float]]:
    n = len(losses)
    order = sorted(range(n), key=lambda i: (not ok[i], losses[i] if ok[i] else 0.0, i))
    groups: list[list[int]] = []
    barriers = [math.nan] * n
    for i in order:
        if not ok[i]:
            groups.append([i])
            continue
        for group in groups:
            rep = group[0]
            if not ok[rep] or not _same_loss(losses[i], losses[rep], loss_tol):
                continue
            barrier = grouping.barrier(rep, i)
            if barrier <= barrier_tol * max(1.0, abs(losses[rep])):
                group.append(i)
                barriers[i] = barrier
                break
        else:
            groups.append([i])
            barriers[i] = 0.0
    return groups, barriers


# -- the entry point -----------------------------------------------------------------------------


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if not (_is_int(seeds) or isinstance(seeds, Sequence)):
        raise RestartsError(
            f"seeds must be a number of restarts or a list of int seeds, got {_describe(seeds)}"
        )
    if not isinstance(seeds, Sequence):
        if int(seeds) < 1:
            raise RestartsError(
                f"seeds must be a positive number of restarts (seeds 0..N-1), got {seeds}"
            )
        return list(range(int(seeds)))
    if not seeds or not all(_is_int(s) for s in seeds):
        raise RestartsError(f"seeds must be a non-empty list of ints, got {list(seeds)[:10]!r}")
    out = [int(s) for s in seeds]
    repeated = sorted({s for s in out if out.count(s) > 1})
    if repeated:
        raise RestartsError(
            f"seeds {repeated} appear more than once: a seed gives the same restart every time. "
            "Pass distinct seeds"
        )
    return out


def restarts(
    experiment: str | Callable[[int], Experiment],
    seeds: int | Sequence[int] = 8,
    *,
    loss_tol: float = 1e-2,
    barrier_tol: float = 1e-2,
    progress: Callable[[int, int], None] | None = None,
) -> Restarts:
    """Train ``experiment`` from each seed and group the end points into minima.

    Parameters
    ----------
    experiment:
        A spec for :func:`~optiscope.load_experiment` (a built-in name, ``path/to/file.py:fn``,
        ``package.module:fn``) or a callable ``seed -> Experiment`` (torch is seeded with the
        seed before it is called).
    seeds:
        ``N`` (seeds ``0..N-1``) or a list of distinct seeds.
    loss_tol, barrier_tol:
        Two end points are one minimum when their losses agree within
        ``loss_tol * max(1, |loss|)`` and the straight path between them, after alignment, rises
        at most ``barrier_tol * max(1, |loss|)`` above its higher end (see the module docstring).
    progress:
        Called as ``progress(done, share)`` after each restart this process trains, ``share``
        being the number of restarts it trains (all of them outside ``torch.distributed``).

    Each restart builds the experiment for its seed and trains it with a plain loop (zero_grad,
    ``loss_fn(model(inputs), targets).backward()``, step); a training loss that is not finite
    stops it, and its final loss is recorded as NaN or inf. Paths between end points are
    measured on the loss of the first seed's experiment (its ``eval_data``, else its data) with
    its buffers; for an experiment whose data does not depend on the seed, every restart's own
    loss.
    """
    build = _builder(experiment)
    seed_list = _seed_list(seeds)
    for name, tol in (("loss_tol", loss_tol), ("barrier_tol", barrier_tol)):
        if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
            raise RestartsError(f"{name} must be a finite number >= 0, got {tol!r}")
    # Built first on every rank, so that a wrong spec fails everywhere before any exchange.
    template = build(seed_list[0])
    problem = _eval_problem(template)[0]
    originals: dict[int, BaseException] = {}
    share = len(_shard.mine(len(seed_list)))
    done = 0

    def one(index: int) -> _Run:
        nonlocal done
        run, err = _restart(build, seed_list[index])
        if err is not None:
            originals[index] = err
        done += 1
        if progress is not None:
            progress(done, share)
        return run

    runs = _shard.map_shared(one, len(seed_list))
    for index, run in enumerate(runs):
        if run.error is not None:
            raise RestartsError(run.error) from originals.get(index)
    points = [r.point for r in runs]
    for seed, point in zip(seed_list, points):
        if point.shape != (problem.num_params,):
            raise RestartsError(
                f"the restart with seed {seed} has {point.numel()} trainable parameters and the "
                f"one with seed {seed_list[0]} has {problem.num_params}: expected one "
                "architecture for every seed"
            )
    points = [p.to(device=problem.device, dtype=problem.dtype) for p in points]
    losses = [r.loss for r in runs]
    symmetry = _supports_symmetry(template.model)
    grouping = _Grouping(problem, template.model, points, symmetry)
    ok = [stats.finite(v) and bool(torch.isfinite(p).all()) for v, p in zip(losses, points)]

    n = len(seed_list)
    nan = math.nan
    before = [[0.0 if i == j else nan for j in range(n)] for i in range(n)]
    after = [[0.0 if i == j and symmetry else nan for j in range(n)] for i in range(n)]
    for i in range(n):
        if not ok[i]:
            before[i][i] = after[i][i] = nan
            continue
        for j in range(i + 1, n):
            if not ok[j]:
                continue
            diff = (points[i] - points[j]).double()
            before[i][j] = before[j][i] = float(torch.linalg.vector_norm(diff))
            if symmetry:
                after[i][j] = after[j][i] = grouping.align(i, j)[1]
    groups, barriers = _group(losses, ok, grouping, loss_tol, barrier_tol)
    group_losses = [sum(losses[i] for i in g) / len(g) for g in groups]
    return Restarts(
        seeds=seed_list,
        losses=losses,
        groups=groups,
        group_losses=group_losses,
        distances_before=before,
        distances_after=after,
        barriers=barriers,
        points=[p.cpu() for p in points],
        symmetry=symmetry,
        loss_tol=float(loss_tol),
        barrier_tol=float(barrier_tol),
        diverged_at=[r.diverged_at for r in runs],
    )
