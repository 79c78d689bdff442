"""Blockwise Hessian spectra against the dense Hessian's diagonal blocks (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import optiscope
from optiscope import Problem, ProblemError
from optiscope.quantities.blocks import distances, normalized_density


class TwoInputs(nn.Module):
    """Two linear blocks on two groups of features: each block's Hessian is its own features'
    covariance (under the mean squared error), so their scales are set by the features."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(30, 1, bias=False)
        self.b = nn.Linear(30, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x[:, :30]) + self.b(x[:, 30:])


def test_block_spectra_match_the_dense_hessians_blocks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(40, 3, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
    problem = Problem(model, nn.MSELoss(), (x, y))
    dense = problem.dense_hessian()
    # Many probes of full length: the quadrature's weights average to 1/n (Rademacher probes),
    # so each density is within sampling error of the exact one; 400 probes put the
    # Jensen-Shannon distance to the exact density under 0.1.
    res = optiscope.blockwise_spectra(problem, steps=16, probes=400)
    assert [b.name for b in res.blocks] == ["0", "2"] and [b.size for b in res.blocks] == [16, 10]
    exact, at = [], 0
    for block in res.blocks:
        eigs = torch.linalg.eigvalsh(dense[at : at + block.size, at : at + block.size]).numpy()
        at += block.size
        assert block.largest == pytest.approx(eigs[-1], rel=1e-3, abs=1e-9)
        assert block.smallest == pytest.approx(eigs[0], rel=1e-3, abs=1e-3 * abs(eigs[-1]))
        ref = normalized_density(eigs, np.full(len(eigs), 1 / len(eigs)), abs(eigs).max())
        assert distances([block.density, ref])[0, 1] < 0.1
        exact.append(ref)
    assert res.distances[0, 1] == pytest.approx(distances(exact)[0, 1], abs=0.1)
    tops = [b.largest for b in res.blocks]
    assert res.spread == pytest.approx(max(tops) / min(tops))


def test_blocks_that_differ_in_scale_are_heterogeneous_and_alike_ones_are_not():
    torch.manual_seed(0)
    x, y = torch.randn(200, 60, dtype=torch.float64), torch.randn(200, 1, dtype=torch.float64)
    blocks = {"a": ["a"], "b": ["b"]}
    alike = Problem(TwoInputs().double(), nn.MSELoss(), (x, y))
    res = optiscope.blockwise_spectra(alike, blocks)
    # Each block's Hessian is 2/n X_g^T X_g: the features' scales set the blocks' sharpness.
    assert res.spread < 2 and not res.heterogeneous and "a uniform learning rate" in res.advice
    scaled = x.clone()
    scaled[:, :30] *= 30
    apart = Problem(TwoInputs().double(), nn.MSELoss(), (scaled, y))
    res = optiscope.blockwise_spectra(apart, blocks)
    top_a = float(torch.linalg.eigvalsh(2 / 200 * scaled[:, :30].T @ scaled[:, :30])[-1])
    assert res.blocks[0].largest == pytest.approx(top_a, rel=1e-6)
    assert res.spread > 100 and res.heterogeneous
    assert "use Adam" in res.advice and "from b to a" in res.advice
    assert res.as_dict()["heterogeneous"] is True


def test_blockwise_spectra_refuses_what_it_cannot_measure():
    model = nn.Linear(3, 1).double()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    problem = Problem(model, nn.MSELoss(), (x, y))
    with pytest.raises(ProblemError, match=r"compare blocks, and there is 1: pass at least two"):
        optiscope.blockwise_spectra(problem)
    moved = problem.at(problem.point + 1)
    with pytest.raises(ProblemError, match=r"measured at the model's own parameters"):
        optiscope.blockwise_spectra(moved, {"w": ["weight"], "b": ["bias"]})
