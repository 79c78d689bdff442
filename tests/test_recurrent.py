"""Per-time-step hidden-state gradients against the fused PyTorch kernels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import optiscope
from optiscope.problem.recurrent import _exposed, hidden_state, hidden_state_gradients


class Seq(nn.Module):
    def __init__(self, cell: str, layers: int = 1, batch_first: bool = True) -> None:
        super().__init__()
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = cls(3, 4, num_layers=layers, batch_first=batch_first)
        self.head = nn.Linear(4, 2)
        self.batch_first = batch_first

    def forward(self, x):
        out, _ = self.rnn(x)
        last = out[:, -1] if self.batch_first else out[-1]
        return self.head(last)


CELLS = [
    (c, layers, bf) for c in ("rnn", "lstm", "gru") for layers in (1, 2) for bf in (True, False)
]


@pytest.mark.parametrize(("cell", "layers", "batch_first"), CELLS)
def test_the_unrolled_output_is_the_fused_one(cell, layers, batch_first):
    torch.manual_seed(0)
    model = Seq(cell, layers, batch_first).double()
    x = torch.randn(5, 7, 3, dtype=torch.float64)
    if not batch_first:
        x = x.transpose(0, 1)
    fused = model(x)
    with _exposed(model) as found:
        unrolled = model(x)
    torch.testing.assert_close(unrolled, fused, rtol=1e-12, atol=1e-12)
    assert len(found["rnn"]) == 7
    assert not model.rnn._forward_hooks


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_hidden_gradients_match_the_fused_kernel_run_from_h_t(cell):
    torch.manual_seed(1)
    model = Seq(cell).double()
    x = torch.randn(5, 6, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (5,))
    loss_fn = nn.CrossEntropyLoss()
    norms = hidden_state_gradients(model, loss_fn, x, y)["rnn"]
    assert len(norms) == 6
    for t in range(5):
        # Run the prefix, then restart the fused kernel from (h_t, c_t) as a leaf.
        _, state = model.rnn(x[:, : t + 1])
        if cell == "lstm":
            h = state[0].detach().requires_grad_(True)
            hx = (h, state[1].detach())
        else:
            h = state.detach().requires_grad_(True)
            hx = h
        rest, _ = model.rnn(x[:, t + 1 :], hx)
        loss = loss_fn(model.head(rest[:, -1]), y)
        (g,) = torch.autograd.grad(loss, h)
        assert norms[t] == pytest.approx(float(g.norm()), rel=1e-10)


def test_vanishing_and_exploding_rates_follow_the_recurrent_weights():
    torch.manual_seed(0)
    model = Seq("rnn").double()
    x = 0.01 * torch.randn(4, 30, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (4,))
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(0.5 * torch.eye(4))
        model.rnn.bias_hh_l0.zero_()
        model.rnn.bias_ih_l0.zero_()
    small = hidden_state_gradients(model, nn.CrossEntropyLoss(), x, y)["rnn"]
    # Near zero the tanh is linear: each step back multiplies the gradient by 0.5.
    assert small[-11] / small[-1] == pytest.approx(0.5**10, rel=0.05)
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(1.2 * torch.eye(4))
    large = hidden_state_gradients(model, nn.CrossEntropyLoss(), 1e-4 * x, y)["rnn"]
    # Spectral radius 1.2: the gradient grows going back in time, at that rate near zero.
    assert large[-11] / large[-1] == pytest.approx(1.2**10, rel=0.05)


def test_a_user_cell_reports_through_hidden_state():
    class Cell(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            h = torch.zeros(x.shape[0], 4, dtype=x.dtype)
            for t in range(x.shape[1]):
                h = hidden_state(torch.tanh(self.w(h) + x[:, t]), "mycell")
            return self.head(h)

    model = Cell().double()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (3,))
    norms = hidden_state_gradients(model, nn.CrossEntropyLoss(), x, y)
    assert list(norms) == ["mycell"] and len(norms["mycell"]) == 5
    assert hidden_state(x) is x  # outside a measurement: a no-op


def test_the_model_and_the_rng_are_left_as_they_were():
    torch.manual_seed(0)
    model = Seq("lstm").double()
    x = torch.randn(5, 6, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (5,))
    before = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    hidden_state_gradients(model, nn.CrossEntropyLoss(), x, y)
    assert torch.equal(torch.get_rng_state(), rng)
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b) and p.grad is None
    assert not model.rnn._forward_hooks


def test_unsupported_recurrent_setups_are_refused():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(optiscope.ProblemError, match="no hidden states were seen"):
        hidden_state_gradients(model, nn.MSELoss(), torch.randn(2, 3), torch.randn(2, 2))
    bi = Seq("gru")
    bi.rnn = nn.GRU(3, 2, bidirectional=True, batch_first=True)
    with pytest.raises(optiscope.ProblemError, match="'rnn' is bidirectional or projected"):
        hidden_state_gradients(bi, nn.MSELoss(), torch.randn(2, 4, 3), torch.randn(2, 2))
