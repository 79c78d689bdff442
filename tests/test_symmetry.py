"""Weight-space symmetry: permuted and rescaled networks compute the same function; weight
matching recovers a permutation exactly and never increases the distance between restarts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from optiscope.landscape.symmetry import (
    SymmetryError,
    align_units,
    hidden_layers,
    permute_units,
    rescale_units,
    unit_counts,
)


def _mlp(seed=0, act=nn.ReLU):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), act(), nn.Linear(16, 12), act(), nn.Linear(12, 3))


def _cnn(seed=0, norm=True):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(2, 6, 3, padding=1)]
    layers += [nn.BatchNorm2d(6)] if norm else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 5, 3, padding=1), nn.ReLU()]
    layers += [nn.Flatten(), nn.Sequential(nn.Linear(5 * 4 * 4, 7), nn.ReLU(), nn.Linear(7, 3))]
    model = nn.Sequential(*layers)
    if norm:  # statistics that are not the identity, so that permuting them matters
        with torch.no_grad():
            model[1].running_mean.uniform_(-1, 1)
            model[1].running_var.uniform_(0.5, 2)
            model[1].weight.uniform_(0.5, 1.5)
    return model.eval()


def _inputs(kind):
    gen = torch.Generator().manual_seed(3)
    shape = (32, 6) if kind == "mlp" else (32, 2, 8, 8)
    return torch.randn(shape, generator=gen)


def _random_perms(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=gen) for n in unit_counts(model)]


@pytest.mark.parametrize("kind", ["mlp", "mlp-tanh", "cnn"])
def test_permuted_networks_compute_the_same_function(kind):
    model = {"mlp": _mlp(), "mlp-tanh": _mlp(act=nn.Tanh), "cnn": _cnn()}[kind]
    x = _inputs("cnn" if kind == "cnn" else "mlp")
    y = torch.randint(0, 3, (32,))
    before = [p.detach().clone() for p in model.parameters()]
    perms = _random_perms(model)
    permuted = permute_units(model, perms)
    assert not all(torch.equal(p, q) for p, q in zip(model.parameters(), permuted.parameters()))
    with torch.no_grad():
        out, out_p = model(x), permuted(x)
    torch.testing.assert_close(out_p, out, rtol=1e-6, atol=1e-6)
    loss = nn.CrossEntropyLoss()
    assert float(loss(out_p, y)) == pytest.approx(float(loss(out, y)), rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))  # not modified


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_rescaled_relu_networks_compute_the_same_function(kind):
    model = _mlp() if kind == "mlp" else _cnn(norm=False)
    x = _inputs(kind)
    gen = torch.Generator().manual_seed(2)
    scales = [torch.exp(torch.randn(n, generator=gen)) for n in unit_counts(model)]
    rescaled = rescale_units(model, scales)
    assert (rescaled[0].weight - model[0].weight).abs().max().item() > 0.1
    with torch.no_grad():
        torch.testing.assert_close(rescaled(x), model(x), rtol=1e-6, atol=1e-6)


def test_alignment_recovers_a_random_permutation_exactly():
    for model, kind in ((_mlp(), "mlp"), (_cnn(), "cnn")):
        perms = _random_perms(model, seed=5)
        shuffled = permute_units(model, perms)
        result = align_units(model, shuffled)
        assert result.distance_before > 1.0
        assert result.distance_after == 0.0, kind
        for p, q in zip(model.parameters(), result.model.parameters()):
            assert torch.equal(p, q)
        for p, q in zip(model.buffers(), result.model.buffers()):
            assert torch.equal(p, q)
        # aligned unit i is shuffled unit perms_found[i], which was original unit i.
        for found, applied in zip(result.perms, perms):
            assert torch.equal(applied[found], torch.arange(len(found)))


def test_alignment_of_two_restarts_never_increases_the_distance():
    a, b = _mlp(seed=0), _mlp(seed=1)
    result = align_units(a, b)
    assert result.distance_after < result.distance_before
    assert all(x >= y - 1e-9 for x, y in zip(result.history, result.history[1:]))
    x = _inputs("mlp")
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), b(x), rtol=1e-6, atol=1e-6)


def test_the_count_of_equivalent_networks():
    model = _mlp()
    counts = unit_counts(model)
    assert counts == [16, 12]
    assert math.prod(math.factorial(n) for n in counts) == math.factorial(16) * math.factorial(12)


def test_what_cannot_be_permuted_or_rescaled_is_refused():
    with pytest.raises(SymmetryError, match=r"expected an nn.Sequential .* got a Linear"):
        hidden_layers(nn.Linear(3, 3))
    with pytest.raises(SymmetryError, match=r"has 1 Linear/Conv layer\(s\): expected at least 2"):
        hidden_layers(nn.Sequential(nn.Linear(3, 3), nn.ReLU()))
    with pytest.raises(SymmetryError, match=r"around a LayerNorm"):
        hidden_layers(nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)))
    with pytest.raises(SymmetryError, match=r"groups=2: expected groups=1"):
        hidden_layers(nn.Sequential(nn.Conv1d(2, 4, 1, groups=2), nn.Conv1d(4, 2, 1)))
    model = _mlp()
    with pytest.raises(SymmetryError, match=r"expected 2 permutations .* got 1"):
        permute_units(model, [list(range(16))])
    with pytest.raises(SymmetryError, match=r"expected a permutation of 0..11"):
        permute_units(model, [list(range(16)), [0] * 12])
    with pytest.raises(SymmetryError, match=r"followed by Tanh: rescaling keeps the function"):
        rescale_units(_mlp(act=nn.Tanh), [torch.ones(16), torch.ones(12)])
    with pytest.raises(SymmetryError, match=r"expected 16 finite positive scales"):
        rescale_units(model, [-torch.ones(16), torch.ones(12)])
    with pytest.raises(SymmetryError, match=r"differ in shape \(hidden units \[16, 12\]"):
        align_units(model, nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)))
