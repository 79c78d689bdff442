"""Blockwise Hessian spectra (Zhang et al. 2024, "Why Transformers Need Adam: A Hessian
Perspective"): the diagonal block of the Hessian for each parameter block (a layer, or a named
group), its extreme eigenvalues and spectral density, and how much the blocks differ.

Two kinds of difference are measured. The *scale*: the blocks' largest eigenvalues, whose spread
says how far one learning rate, held below the sharpest block's stability limit, is from the rate
each flatter block could take. The *shape*: each block's density on its own scale (eigenvalues
over the block's spectral radius), compared pairwise by the Jensen-Shannon distance (base 2, in
[0, 1]); Zhang et al. average it over pairs of blocks as their measure of block heterogeneity.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import jensenshannon

from optiscope.core.errors import ProblemError
from optiscope.linalg.lanczos import lanczos
from optiscope.linalg.slq import slq_density
from optiscope.problem.problem import Problem
from optiscope.records import schema

# A block's normalized spectrum lives on [-1, 1]; its density is smoothed at a twentieth of
# that scale, coarse enough that a few Lanczos nodes of two like spectra overlap.
GRID = np.linspace(-1.1, 1.1, 221)
_SIGMA = 0.05
# Blocks differ when one learning rate must serve sharpness an order of magnitude apart, or
# their spectra's shapes are further apart than half the Jensen-Shannon range.
SPREAD_LIMIT = 10.0
SHAPE_LIMIT = 0.5


@dataclass(frozen=True)
class Block:
    """One parameter block: its name, parameters, size, extreme eigenvalues of its Hessian
    block, and its density on its own scale (``density`` over :data:`GRID`, summing to one)."""

    name: str
    params: list[str]
    size: int
    largest: float
    smallest: float
    density: np.ndarray
    hvps: int

    @property
    def radius(self) -> float:
        return max(abs(self.largest), abs(self.smallest))


@dataclass(frozen=True)
class BlockSpectra:
    """The result of :func:`blockwise_spectra`.

    ``distances[i, j]`` is the Jensen-Shannon distance between blocks i and j's normalized
    densities; ``heterogeneity`` its mean over pairs; ``spread`` the ratio of the largest to the
    smallest of the blocks' largest eigenvalues (over blocks with positive curvature).
    """

    blocks: list[Block]
    distances: np.ndarray
    heterogeneity: float
    spread: float
    hvps: int
    grid: np.ndarray

    @property
    def heterogeneous(self) -> bool:
        return self.spread >= SPREAD_LIMIT or self.heterogeneity >= SHAPE_LIMIT

    @property
    def advice(self) -> str:
        """What the blocks' difference supports, in words."""
        sharp = max(self.blocks, key=lambda b: b.largest)
        curved = [b for b in self.blocks if b.largest > 0]
        flat = min(curved, key=lambda b: b.largest, default=sharp)
        if self.heterogeneous:
            return (
                f"the blocks differ (sharpness spans {self.spread:.3g}x, from {flat.name} to "
                f"{sharp.name}; mean Jensen-Shannon distance {self.heterogeneity:.2f}): one "
                "learning rate cannot suit them all; use Adam (or AdamW), or per-block learning "
                "rates (parameter groups) scaled to each block's curvature"
            )
        return (
            f"the blocks are alike (sharpness within {self.spread:.3g}x, mean Jensen-Shannon "
            f"distance {self.heterogeneity:.2f}): a uniform learning rate suits them, and SGD "
            "with momentum is a fair choice"
        )

    def as_dict(self, densities: bool = False) -> dict[str, Any]:
        """The numbers by their record names (``records.schema``); with ``densities``, each
        block's normalized density and their common grid too (the ``blockwise_spectra``
        analysis record's fields)."""
        blocks = []
        for b in self.blocks:
            block = {
                schema.NAME: b.name,
                schema.PARAMS: b.params,
                schema.SIZE: b.size,
                schema.LARGEST: b.largest,
                schema.SMALLEST: b.smallest,
                schema.HVPS: b.hvps,
            }
            if densities:
                block[schema.DENSITY] = b.density.tolist()
            blocks.append(block)
        out: dict[str, Any] = {schema.BLOCKS: blocks}
        if densities:
            out[schema.GRID] = self.grid.tolist()
        out.update(
            {
                schema.DISTANCES: self.distances.tolist(),
                schema.HETEROGENEITY: self.heterogeneity,
                schema.SPREAD: self.spread,
                schema.HETEROGENEOUS: self.heterogeneous,
                schema.ADVICE: self.advice,
                schema.HVPS: self.hvps,
            }
        )
        return out


def layer_blocks(problem: Problem) -> dict[str, list[str]]:
    """One block per module that owns parameters directly (a layer's weight and bias
    together), in the order of the problem's parameters."""
    blocks: dict[str, list[str]] = {}
    for name in problem.names:
        owner = name.rsplit(".", 1)[0] if "." in name else type(problem.model).__name__
        blocks.setdefault(owner, []).append(name)
    return blocks


def normalized_density(eigenvalues: np.ndarray, weights: np.ndarray, radius: float) -> np.ndarray:
    """A spectrum on its own scale (eigenvalues over ``radius``) smoothed on :data:`GRID`, as
    probabilities summing to one."""
    x = np.asarray(eigenvalues, dtype=float) / max(radius, 1e-300)
    k = np.exp(-0.5 * ((GRID[:, None] - x[None, :]) / _SIGMA) ** 2) @ np.asarray(weights)
    return k / k.sum()


def distances(densities: Sequence[np.ndarray]) -> np.ndarray:
    """The pairwise Jensen-Shannon distances (base 2) between probability vectors."""
    n = len(densities)
    out = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        out[i, j] = out[j, i] = float(jensenshannon(densities[i], densities[j], base=2))
    return out


def blockwise_spectra(
    problem: Problem,
    blocks: Mapping[str, Sequence[str]] | None = None,
    *,
    steps: int = 40,
    probes: int = 2,
    seed: int | None = 0,
) -> BlockSpectra:
    """The Hessian's diagonal blocks, one per parameter block, at the model's parameters.

    ``blocks`` maps a block's name to parameter or module names (default: one block per layer,
    :func:`layer_blocks`). Each block gets its extreme eigenvalues (Lanczos to 1e-3) and its
    spectral density by stochastic Lanczos quadrature (``probes`` start vectors of ``steps``
    steps, fewer on a small block), normalized by its spectral radius. The other parameters are
    held at their values. Costs about ``(steps * probes + 30)`` Hessian-vector products of a
    block per block.

    >>> import torch, optiscope
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(1, 1))
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> problem = optiscope.Problem(model, torch.nn.MSELoss(), (x, torch.zeros(2, 1)))
    >>> [b.name for b in optiscope.blockwise_spectra(problem).blocks]
    ['0', '1']
    """
    if not torch.equal(problem.point, _model_point(problem)):
        raise ProblemError(
            "blockwise spectra are measured at the model's own parameters, and this Problem's "
            "point differs from them: load the point into the model first "
            "(torch.nn.utils.vector_to_parameters) and build the Problem from it"
        )
    chosen = dict(blocks) if blocks is not None else layer_blocks(problem)
    if len(chosen) < 2:
        raise ProblemError(
            f"blockwise spectra compare blocks, and there is {len(chosen)}: pass at least two "
            "blocks (blocks={'name': [parameter or module names], ...})"
        )
    found: list[Block] = []
    for name, params in chosen.items():
        sub = Problem(
            problem.model,
            problem.loss_fn,
            problem._data,
            params=list(params),
            reduction=problem.reduction,
            cache_graph=problem.cache_graph,
            check=False,
            batch_stats=problem._batch_stats,
        )
        found.append(_block(name, sub, steps, probes, seed))
    dens = [b.density for b in found]
    dist = distances(dens)
    n = len(found)
    mean = float(dist[np.triu_indices(n, 1)].mean())
    tops = [b.largest for b in found if b.largest > 0]
    spread = max(tops) / min(tops) if len(tops) >= 2 else 1.0
    return BlockSpectra(found, dist, mean, spread, sum(b.hvps for b in found), GRID)


def _model_point(problem: Problem) -> torch.Tensor:
    params = dict(problem.model.named_parameters())
    return torch.cat([params[n].detach().reshape(-1) for n in problem.names]).to(
        device=problem.device, dtype=problem.dtype
    )


def _block(name: str, sub: Problem, steps: int, probes: int, seed: int | None) -> Block:
    op = sub.hessian_operator()
    n = sub.num_params
    if n >= 2:
        ends = lanczos(op, 1, "both", tol=1e-3, max_steps=min(n, 60), seed=seed)
        largest, smallest = float(ends.values[0]), float(ends.values[1])
    else:
        ends = lanczos(op, 1, "largest", tol=1e-3, max_steps=1, seed=seed)
        largest = smallest = float(ends.values[0])
    dens = slq_density(op, min(steps, n), probes, seed=seed, grid_size=2)
    radius = max(abs(largest), abs(smallest))
    density = normalized_density(
        np.concatenate(dens.nodes), np.concatenate(dens.weights) / probes, radius
    )
    return Block(name, list(sub.names), n, largest, smallest, density, ends.hvps + dens.hvps)
