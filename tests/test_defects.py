"""Defects of issue 14, each pinned to the behaviour (or the message) its fix gives."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from optiscope.core.errors import ProblemError
from optiscope.monitor.monitor import Monitor
from optiscope.problem import hessdiag
from optiscope.problem.problem import Problem
from optiscope.records import schema
from optiscope.records.log import RecordWriter
from optiscope.runner.report import render_run


def _data(n: int = 16, d: int = 8, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=gen), torch.randint(0, k, (n,), generator=gen)


class _Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.full((8,), 0.5))  # a parameter called p, no dropout rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.p


class _Tempered(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gate = _Gate()
        self.fc = nn.Linear(8, 3)
        self.p = torch.full((8,), 0.5)  # a plain tensor attribute called p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gate(x) * self.p)


class _Shifted(nn.Identity):
    def __init__(self) -> None:
        super().__init__()
        self.p = torch.ones(3)


def test_defect_4_an_attribute_named_p_is_not_read_as_a_dropout_rate():
    torch.manual_seed(0)
    model = _Tempered()
    x, y = _data()
    loss_fn = nn.CrossEntropyLoss()
    problem = Problem(model, loss_fn, (x, y))
    with torch.no_grad():
        expected = float(loss_fn(model(x), y))
    assert problem.loss() == pytest.approx(expected, rel=1e-6)

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, loss_fn=loss_fn, every={"noise": 1})
    for _ in range(3):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        mon.step(loss, batch=(x, y))
        opt.step()
    mon.close()
    for record in mon.history:
        values = record[schema.VALUES]
        assert math.isfinite(values[schema.TRACE_COV]) and values[schema.BATCH_SIZE] == 16

    # The exact Hessian diagonal's layer catalogue reads no rate off a module that is no dropout.
    assert hessdiag.supports(nn.Sequential(nn.Linear(8, 3), _Shifted()), loss_fn) is None


def test_defect_10_user_strings_in_figures_are_shown_literally(tmp_path):
    names = ["$x^2$", r"$\frac$ cell"]  # mathtext: one drawn as math, one it cannot parse
    header = {"experiment": "$E$", "description": "", "seed": 0, "steps": 4}
    with RecordWriter(tmp_path / "records.jsonl", header) as w:
        for s in range(4):
            values = {schema.LOSS: 1.0 / (1 + s), schema.GRAD_NORM: 0.5}
            w.write({schema.TYPE: schema.STEP_RECORD, schema.STEP: s, schema.VALUES: values})
            for name in names:
                w.write(
                    {
                        schema.TYPE: schema.HIDDEN_GRADIENTS,
                        schema.STEP: s,
                        schema.MODULE: name,
                        schema.NORMS: [0.9**t for t in range(6)],
                    }
                )
    text = render_run(tmp_path)
    assert "could not be drawn" not in text
    svgs = re.findall(r"<svg.*?</svg>", text, flags=re.DOTALL)
    for name in names:
        assert any(f"hidden-state gradient norms: {name}" in svg for svg in svgs), name
    from optiscope.report.plot import plain

    assert plain("a $b$ c") == r"a \$b\$ c"


def test_defect_12_a_model_on_the_meta_device_is_refused():
    model = nn.Linear(8, 3, device="meta")
    for check in (True, False):
        with pytest.raises(
            ProblemError,
            match=re.escape(
                "the model's parameters are on the meta device, which holds no values: expected "
                "parameters with values. Materialize them first (model.to_empty(device='cpu'), "
                "then initialize the weights)"
            ),
        ):
            Problem(model, nn.CrossEntropyLoss(), _data(), check=check)


class _Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.fc(x)
        return logits, torch.tanh(logits)


def test_defect_13_a_model_returning_a_tuple_gets_the_hint():
    hint = re.escape(
        "The model returns a tuple of 2 items: wrap the loss so that it picks the tensor to "
        "compare, e.g. loss_fn=lambda out, y: criterion(out[0], y)"
    )
    x, y = _data()
    with pytest.raises(
        ProblemError,
        match=r"^loss_fn could not take the model's outputs \(a tuple of 2 items\) and the "
        r"targets \(a tensor of shape \(4,\) and dtype torch.int64\): TypeError: .*\. " + hint,
    ):
        Problem(_Pair(), nn.CrossEntropyLoss(), (x, y))
    problem = Problem(_Pair(), nn.CrossEntropyLoss(), (x, y), check=False)
    for measure in (problem.loss, problem.gradient):
        with pytest.raises(
            ProblemError,
            match=r"^loss_fn could not take the model's outputs \(a tuple of 2 items\) and the "
            r"targets \(a tensor of shape \(16,\) and dtype torch.int64\) on batch 0: "
            r"TypeError: .*\. " + hint,
        ):
            measure()
