"""The Lightning and Hugging Face callbacks: one record per optimizer step with the true loss and
gradient norm, the eight findings at the end, and training that ends bitwise where it would
without them."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from optiscope.records.log import read_records

# Import the libraries at collection, where installed, so that no test pays for the first import.
for _name in ("lightning.pytorch", "transformers", "accelerate"):
    try:
        __import__(_name)
    except ImportError:
        pass

# Lightning's pytree helper trips typing_extensions' deprecation of LeafSpec (lightning's own use).
LEAFSPEC = "ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning"


def test_import_optiscope_imports_neither_library():
    code = (
        "import sys, optiscope, optiscope.integrations; "
        "print([m for m in ('lightning', 'pytorch_lightning', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _steps(out) -> list[dict]:
    return list(read_records(out).of_type("step"))


def _findings(out) -> list[dict]:
    return json.loads((out / "findings.json").read_text())["findings"]


# -- Lightning -------------------------------------------------------------------------------------


def _lightning_run(tmp_path, callback=None, *, accumulate=1, seed=0):
    pl = pytest.importorskip("lightning.pytorch")

    class TinyRegression(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
            self.losses: list[float] = []
            self.grad_norms: list[float] = []

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.mse_loss(self(x), y)
            self.losses.append(float(loss.detach()))
            return loss

        def on_before_optimizer_step(self, optimizer):
            sq = sum(float(p.grad.double().pow(2).sum()) for p in self.parameters())
            self.grad_norms.append(math.sqrt(sq))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 4, generator=gen)
    y = torch.sin(x.sum(1, keepdim=True))
    torch.manual_seed(seed)
    module = TinyRegression()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True
    )
    trainer = pl.Trainer(
        max_steps=30 // accumulate,
        accumulate_grad_batches=accumulate,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback] if callback is not None else [],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, loader)
    return module


@pytest.mark.filterwarnings(LEAFSPEC)
def test_lightning_records_each_step_with_its_loss_and_gradient_norm(tmp_path):
    pytest.importorskip("lightning")
    from optiscope.integrations.lightning import OptiscopeCallback

    cb = OptiscopeCallback(tmp_path / "run")
    module = _lightning_run(tmp_path, cb)
    steps = _steps(tmp_path / "run")
    assert [r["step"] for r in steps] == list(range(30))
    assert [r["values"]["loss"] for r in steps] == pytest.approx(module.losses, rel=1e-6)
    grad_norms = [r["values"]["grad_norm"] for r in steps]
    assert grad_norms == pytest.approx(module.grad_norms, rel=1e-5)
    assert sum("update_norm" in r["values"] for r in steps) == 3  # every 10 steps by default
    header = read_records(tmp_path / "run").header
    assert header["experiment"] == "TinyRegression"
    assert header["integration"] == "lightning"
    assert header["max_steps"] == 30
    assert header["optimizer"] == "SGD"
    assert len(_findings(tmp_path / "run")) == 8
    assert cb.findings is not None and len(cb.findings) == 8
    assert cb.monitor is None  # closed at train end


@pytest.mark.filterwarnings(LEAFSPEC)
def test_lightning_curvature_preset_measures_along_the_gradient(tmp_path):
    pytest.importorskip("lightning")
    from optiscope.integrations.lightning import OptiscopeCallback

    cb = OptiscopeCallback(
        tmp_path / "run",
        preset="curvature",
        loss_fn=nn.functional.mse_loss,
        every={"curvature": 5, "sharpness": 15, "noise": 10, "recurrent": 0},
    )
    _lightning_run(tmp_path, cb)
    steps = _steps(tmp_path / "run")
    measured = [r for r in steps if "gthg" in r["values"]]
    assert [r["step"] for r in measured] == [0, 5, 10, 15, 20, 25]
    for r in measured:
        v = r["values"]
        assert v["gtg"] == pytest.approx(v["grad_norm"] ** 2, rel=1e-4)
        assert math.isfinite(v["gthg"])
        assert "predicted_change" in v and "actual_change" in v
    assert [r["step"] for r in steps if "sharpness" in r["values"]] == [0, 15]


@pytest.mark.filterwarnings(LEAFSPEC)
def test_lightning_gradient_accumulation_records_the_mean_loss_per_update(tmp_path):
    pytest.importorskip("lightning")
    from optiscope.integrations.lightning import OptiscopeCallback

    cb = OptiscopeCallback(tmp_path / "run")
    module = _lightning_run(tmp_path, cb, accumulate=2)
    assert len(module.losses) == 30
    steps = _steps(tmp_path / "run")
    assert len(steps) == 15
    means = [(a + b) / 2 for a, b in zip(module.losses[::2], module.losses[1::2])]
    assert [r["values"]["loss"] for r in steps] == pytest.approx(means, rel=1e-6)
    assert [r["values"]["grad_norm"] for r in steps] == pytest.approx(module.grad_norms, rel=1e-5)


@pytest.mark.filterwarnings(LEAFSPEC)
@pytest.mark.parametrize("preset", ["default", "curvature"])
def test_lightning_training_ends_bitwise_where_it_would_without_the_callback(tmp_path, preset):
    pytest.importorskip("lightning")
    from optiscope.integrations.lightning import OptiscopeCallback

    plain = _lightning_run(tmp_path)
    cb = OptiscopeCallback(
        tmp_path / "run",
        preset=preset,
        loss_fn=nn.functional.mse_loss,
        every={"update": 1, "noise": 3, "sharpness": 7},
    )
    watched = _lightning_run(tmp_path, cb)
    assert len(_steps(tmp_path / "run")) == 30
    for a, b in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(a, b)
    assert plain.losses == watched.losses


# -- Hugging Face ----------------------------------------------------------------------------------


class _Regression(torch.utils.data.Dataset):
    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(256, 4, generator=gen)
        self.y = torch.sin(self.x.sum(1, keepdim=True))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


class _HFNet(nn.Module):
    """Computes its own loss, Hugging Face style."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
        self.losses: list[float] = []

    def forward(self, x, labels=None):
        out = {"logits": self.net(x)}
        if labels is not None:
            out["loss"] = nn.functional.mse_loss(out["logits"], labels)
            if self.training and torch.is_grad_enabled():
                self.losses.append(float(out["loss"].detach()))
        return out


def _hf_loss(outputs, targets):
    return nn.functional.mse_loss(outputs["logits"], targets)


def _hf_batch(batch):
    return batch["x"], batch["labels"]


def _hf_run(tmp_path, monkeypatch, callback=None, *, accumulate=1, max_grad_norm=1.0):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")

    grad_norms: list[float] = []

    class Reference(transformers.TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            sq = sum(float(p.grad.double().pow(2).sum()) for p in model.parameters())
            grad_norms.append(math.sqrt(sq))

    torch.manual_seed(0)
    model = _HFNet()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        max_steps=20 // accumulate,
        gradient_accumulation_steps=accumulate,
        per_device_train_batch_size=8,
        learning_rate=0.05,
        max_grad_norm=max_grad_norm,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    callbacks = [callback] if callback is not None else []
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=_Regression(), callbacks=[*callbacks, Reference()]
    )
    trainer.train()
    return model, grad_norms


def test_hf_records_each_step_with_its_loss_and_gradient_norm(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from optiscope.integrations.huggingface import OptiscopeTrainerCallback

    cb = OptiscopeTrainerCallback(tmp_path / "run")
    model, grad_norms = _hf_run(tmp_path, monkeypatch, cb, max_grad_norm=0.0)
    steps = _steps(tmp_path / "run")
    assert [r["step"] for r in steps] == list(range(20))
    assert len(model.losses) == 20
    assert [r["values"]["loss"] for r in steps] == pytest.approx(model.losses, rel=1e-6)
    assert [r["values"]["grad_norm"] for r in steps] == pytest.approx(grad_norms, rel=1e-5)
    header = read_records(tmp_path / "run").header
    assert header["experiment"] == "_HFNet"
    assert header["integration"] == "transformers"
    assert header["optimizer"] == "AdamW"
    assert len(_findings(tmp_path / "run")) == 8
    assert cb.findings is not None and len(cb.findings) == 8
    assert not model._forward_hooks  # the loss hook is gone


def test_hf_gradient_accumulation_and_curvature(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from optiscope.integrations.huggingface import OptiscopeTrainerCallback

    cb = OptiscopeTrainerCallback(
        tmp_path / "run",
        preset="curvature",
        loss_fn=_hf_loss,
        batch_fn=_hf_batch,
        every={"curvature": 2, "sharpness": 5, "noise": 0, "recurrent": 0},
    )
    model, _ = _hf_run(tmp_path, monkeypatch, cb, accumulate=2)
    assert len(model.losses) == 20
    steps = _steps(tmp_path / "run")
    assert len(steps) == 10
    means = [(a + b) / 2 for a, b in zip(model.losses[::2], model.losses[1::2])]
    assert [r["values"]["loss"] for r in steps] == pytest.approx(means, rel=1e-6)
    measured = [r["step"] for r in steps if "gthg" in r["values"]]
    assert measured == [0, 2, 4, 6, 8]
    assert all(math.isfinite(r["values"]["gthg"]) for r in steps if r["step"] in measured)


def test_hf_model_without_its_own_loss_needs_loss_fn(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from optiscope.integrations.huggingface import OptiscopeTrainerCallback
    from optiscope.monitor import MonitorError

    with pytest.raises(MonitorError, match="needs the batch as \\(inputs, targets\\)"):
        _hf_run(tmp_path, monkeypatch, OptiscopeTrainerCallback(tmp_path / "run", preset="full"))


@pytest.mark.parametrize("preset", ["default", "curvature"])
def test_hf_training_ends_bitwise_where_it_would_without_the_callback(
    tmp_path, monkeypatch, preset
):
    pytest.importorskip("transformers")
    from optiscope.integrations.huggingface import OptiscopeTrainerCallback

    plain, _ = _hf_run(tmp_path, monkeypatch)
    cb = OptiscopeTrainerCallback(
        tmp_path / "run",
        preset=preset,
        loss_fn=_hf_loss,
        batch_fn=_hf_batch,
        every={"update": 1, "noise": 3, "sharpness": 7},
    )
    watched, _ = _hf_run(tmp_path, monkeypatch, cb)
    assert len(_steps(tmp_path / "run")) == 20
    for a, b in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(a, b)
    assert plain.losses == watched.losses


@pytest.mark.filterwarnings(LEAFSPEC)
def test_the_callbacks_spread_the_curvature_preset_over_the_planned_run(tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    pytest.importorskip("transformers")
    from optiscope.integrations.huggingface import OptiscopeTrainerCallback
    from optiscope.integrations.lightning import OptiscopeCallback

    # Lightning: 30 planned steps, sharpness every 30 // 6 = 5 (the fixed cadence: step 0 only).
    cb = OptiscopeCallback(tmp_path / "pl", preset="curvature", loss_fn=nn.functional.mse_loss)
    _lightning_run(tmp_path, cb)
    steps = _steps(tmp_path / "pl")
    assert len(steps) == 30
    assert [r["step"] for r in steps if "sharpness" in r["values"]] == [0, 5, 10, 15, 20, 25]
    # Hugging Face: its planned steps (state.max_steps), sharpness every sixth of them.
    hf = OptiscopeTrainerCallback(
        tmp_path / "hf", preset="curvature", loss_fn=_hf_loss, batch_fn=_hf_batch
    )
    _hf_run(tmp_path, monkeypatch, hf)
    steps = _steps(tmp_path / "hf")
    every = len(steps) // 6
    assert every > 1
    assert [r["step"] for r in steps if "sharpness" in r["values"]] == list(
        range(0, len(steps), every)
    )


def test_the_lightning_callback_asks_for_its_own_loss_fn():
    pytest.importorskip("lightning")
    from optiscope.integrations.lightning import OptiscopeCallback
    from optiscope.monitor import MonitorError

    with pytest.raises(MonitorError) as err:
        OptiscopeCallback("runs/x", preset="curvature")
    text = str(err.value)
    assert "OptiscopeCallback(out, preset='curvature', loss_fn=...)" in text
    assert "Monitor(" not in text
    with pytest.raises(MonitorError, match=r"the tiers \['noise'\]"):
        OptiscopeCallback("runs/x", every={"noise": 5})
    OptiscopeCallback("runs/x")  # the default preset needs no loss
