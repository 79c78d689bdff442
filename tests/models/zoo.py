"""The supported-model matrix's models: small configs built by the real libraries (torchvision,
transformers, timm, Lightning) with random weights, on generated data; nothing is downloaded.

Each :class:`Model` builds its network, loss, batches and optimizer from fixed seeds, and trains
them for a few steps under a Monitor preset the way a user of that library would: a plain loop
for torchvision, transformers, timm, the nanoGPT-style transformer and the LSTM, the Hugging Face
``Trainer`` and ``lightning.Trainer`` with optiscope's callbacks.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from optiscope import Monitor
from optiscope.records import schema

REQUIRED = os.environ.get("OPTISCOPE_REQUIRE_MODELS") == "1"
STEPS = 3  # optimizer steps per run: each preset's tiers all come due at step 0
VOCAB, CONTEXT = 96, 16  # the language models' vocabulary and sequence length


def require(name: str) -> Any:
    """Import a library the matrix needs; skip without it, or fail under
    OPTISCOPE_REQUIRE_MODELS=1 (``make test-models`` sets it)."""
    try:
        return importlib.import_module(name)
    # torchvision beside another torch's build raises a RuntimeError, not an ImportError.
    except Exception as err:
        why = f"{name} cannot be imported ({type(err).__name__}: {str(err).splitlines()[0]})"
        if REQUIRED:
            pytest.fail(
                f"OPTISCOPE_REQUIRE_MODELS=1 but {why}: build the models environment with "
                "`make models-install` (it runs in .models-venv), or unset the variable"
            )
        pytest.skip(f"{why}; the model matrix runs in its own environment: make test-models")


@dataclass
class Built:
    """One model ready to train: the batches are (inputs, targets) as the Problem takes them."""

    model: nn.Module
    loss_fn: Callable[[Any, Any], Tensor]
    batches: list[tuple[Any, Any]]
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    clip: float | None = None
    # The loss the loop differentiates, from the model's output on a batch (default: loss_fn).
    train_loss: Callable[[nn.Module, Any, Any], Tensor] | None = None


@dataclass(frozen=True)
class Model:
    """A row of the matrix: what it is, the libraries it needs, how it is built and trained.

    ``same_function``: the tiers measure the very function whose gradient the run records (no
    active dropout, and ``monitor.step`` reads the gradient before any clipping), so g^T g equals
    the recorded squared gradient norm. ``analyse``: the mode the Problem functions see the model
    in (``"batch_stats"``: batch norm in training mode, on the batch's statistics), None where the
    row shares another row's model.
    """

    name: str
    what: str
    libraries: tuple[str, ...]
    build: Callable[[], Built]
    train: Callable[[Built, Any, str], None]
    batch_size: int
    same_function: bool = True
    analyse: str | None = "train"
    recurrent: bool = False  # holds an nn.LSTM: the recurrent tier applies


def _tokens(n: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    """Sequences with structure to learn (each token the previous plus one, from a random
    start), as (inputs, next tokens)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        start = torch.randint(0, VOCAB, (4, 1), generator=gen)
        seq = (start + torch.arange(CONTEXT + 1)) % VOCAB
        out.append((seq[:, :-1], seq[:, 1:]))
    return out


def _images(n: int, batch: int, size: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(batch, 3, size, size, generator=gen),
            torch.randint(0, 10, (batch,), generator=gen),
        )
        for _ in range(n)
    ]


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def warmup_cosine(opt: torch.optim.Optimizer, warmup: int, total: int) -> Any:
    """Linear warmup, then cosine decay (nanoGPT's schedule), from torch's own schedulers."""
    sched = torch.optim.lr_scheduler
    return sched.SequentialLR(
        opt,
        [
            sched.LinearLR(opt, start_factor=0.1, total_iters=warmup),
            sched.CosineAnnealingLR(opt, T_max=max(1, total - warmup)),
        ],
        milestones=[warmup],
    )


# -- the plain loop ------------------------------------------------------------------------------


def plain_loop(b: Built, out: Any, preset: str) -> None:
    """zero_grad, forward, backward, monitor, clip, step, schedule: ``monitor.step`` reads the
    raw gradient before clipping (what the cliffs verdict needs; README, "Watch your own
    training loop")."""
    # What the callbacks write themselves; a plain Monitor's header holds what it is given.
    header: dict[str, Any] = {schema.EXPERIMENT: type(b.model).__name__, schema.PRESET: preset}
    if b.clip is not None:
        header[schema.CLIP_GRAD_NORM] = b.clip
    if b.scheduler is not None:
        header[schema.SCHEDULER] = type(b.scheduler).__name__
    monitor = Monitor(
        b.model,
        b.optimizer,
        out=out,
        preset=preset,
        loss_fn=b.loss_fn,
        header=header,
        steps=len(b.batches),
    )
    b.model.train()
    for inputs, targets in b.batches:
        b.optimizer.zero_grad()
        if b.train_loss is not None:
            loss = b.train_loss(b.model, inputs, targets)
        else:
            loss = b.loss_fn(b.model(inputs), targets)
        loss.backward()
        monitor.step(loss, batch=(inputs, targets))
        if b.clip is not None:
            torch.nn.utils.clip_grad_norm_(b.model.parameters(), b.clip)
        b.optimizer.step()
        if b.scheduler is not None:
            b.scheduler.step()
    monitor.close()


# -- torchvision ResNet-18 -----------------------------------------------------------------------


def resnet18() -> Built:
    torchvision = require("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)  # batch norm, residuals; random weights
    # Eight images: the noise tier's four groups of two keep two values per channel where
    # ResNet's last stage has a 1x1 feature map (batch norm needs more than one).
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return Built(model, nn.CrossEntropyLoss(), _images(STEPS, 8, 32, seed=1), opt)


# -- Hugging Face GPT-2 --------------------------------------------------------------------------


def _gpt2_model() -> nn.Module:
    transformers = require("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        vocab_size=VOCAB,
        n_positions=CONTEXT,
        bos_token_id=VOCAB - 1,
        eos_token_id=VOCAB - 1,
        loss_type="ForCausalLM",
    )
    return transformers.GPT2LMHeadModel(config)  # dropout 0.1 as GPT-2's default


def own_loss(outputs: Any, _targets: Any) -> Tensor:
    """The loss a Hugging Face model computes itself from ``labels``, read off its dict output."""
    return outputs["loss"]


def gpt2() -> Built:
    """GPT-2 computing its own loss: the inputs are the model's keyword arguments, labels
    included (it shifts them itself), and the loss is ``outputs["loss"]``."""
    model = _gpt2_model()
    batches = [({"input_ids": x, "labels": x}, x) for x, _ in _tokens(STEPS, seed=2)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    return Built(
        model,
        own_loss,
        batches,
        opt,
        train_loss=lambda m, inputs, targets: m(**inputs).loss,
    )


class _Sequences(torch.utils.data.Dataset):
    def __init__(self, batches: list[tuple[Tensor, Tensor]]) -> None:
        self.rows = torch.cat([x for x, _ in batches])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def gpt2_trainer() -> Built:
    model = _gpt2_model()
    require("accelerate")
    batches = [({"input_ids": x, "labels": x}, x) for x, _ in _tokens(STEPS, seed=2)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # unused: the Trainer builds its own
    return Built(model, own_loss, batches, opt)


def hf_trainer_loop(b: Built, out: Any, preset: str) -> None:
    """``transformers.Trainer`` with ``OptiscopeTrainerCallback``; the callback's batch is the
    dict of keyword arguments the Trainer passes to the model."""
    transformers = require("transformers")
    from optiscope.integrations.huggingface import OptiscopeTrainerCallback

    callback = OptiscopeTrainerCallback(
        out,
        preset=preset,
        loss_fn=own_loss,
        batch_fn=lambda batch: (batch, batch["labels"]),
    )
    args = transformers.TrainingArguments(
        output_dir=os.fspath(out) + "-trainer",
        max_steps=STEPS,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        lr_scheduler_type="cosine",
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    dataset = _Sequences([(x["input_ids"], y) for x, y in b.batches])
    trainer = transformers.Trainer(
        model=b.model, args=args, train_dataset=dataset, callbacks=[callback]
    )
    try:
        trainer.train()
    finally:
        callback.close()


# -- a nanoGPT-style causal transformer ----------------------------------------------------------


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = _Attention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class NanoGPT(nn.Module):
    """nanoGPT's layout (benchmarks/memory.py's, shrunk): token and position embeddings,
    pre-norm blocks with fused causal attention, a final LayerNorm, a head tied to the token
    embedding."""

    def __init__(self, d: int = 32, layers: int = 2, heads: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(CONTEXT, d)
        self.blocks = nn.Sequential(*(_Block(d, heads) for _ in range(layers)))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB, bias=False)
        self.head.weight = self.tok.weight  # weight tying
        for m in self.modules():  # nanoGPT's initialization: N(0, 0.02), zero biases
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx: Tensor) -> Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.head(self.ln(self.blocks(self.tok(idx) + self.pos(pos))))


def nanogpt() -> Built:
    torch.manual_seed(0)
    model = NanoGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    return Built(
        model,
        lm_loss,
        _tokens(STEPS, seed=3),
        opt,
        scheduler=warmup_cosine(opt, warmup=1, total=STEPS),
        clip=1.0,
    )


# -- timm ViT ------------------------------------------------------------------------------------


def vit() -> Built:
    timm = require("timm")
    torch.manual_seed(0)
    # pretrained=False always: nothing is downloaded.
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    return Built(model, nn.CrossEntropyLoss(), _images(STEPS, 4, 32, seed=4), opt, clip=1.0)


# -- an LSTM language model ----------------------------------------------------------------------


class LSTMLanguageModel(nn.Module):
    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.lstm = nn.LSTM(d, d, batch_first=True)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, idx: Tensor) -> Tensor:
        out, _ = self.lstm(self.embed(idx))
        return self.head(out)


def lstm() -> Built:
    torch.manual_seed(0)
    model = LSTMLanguageModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    return Built(model, lm_loss, _tokens(STEPS, seed=5), opt, clip=0.25)


# -- a LightningModule ---------------------------------------------------------------------------


def _digits(n: int, batch: int) -> list[tuple[Tensor, Tensor]]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(y)
    return [(x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]) for i in range(n)]


def _lightning_module() -> Any:
    pl = require("lightning.pytorch")

    class DigitsCNN(pl.LightningModule):
        """A small CNN on scikit-learn's digits: convolutions, batch norm, dropout."""

        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1),
                nn.BatchNorm2d(8),
                nn.ReLU(),
                nn.Conv2d(8, 8, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Flatten(),
                nn.Dropout(0.1),
                nn.Linear(8 * 4 * 4, 10),
            )

        def forward(self, x: Tensor) -> Tensor:
            return self.net(x)

        def training_step(self, batch: Any, batch_idx: int) -> Tensor:
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
            sched = {"scheduler": warmup_cosine(opt, warmup=1, total=STEPS), "interval": "step"}
            return {"optimizer": opt, "lr_scheduler": sched}

    torch.manual_seed(0)
    return DigitsCNN()


def lightning() -> Built:
    module = _lightning_module()
    opt = torch.optim.SGD(module.parameters(), lr=0.05)  # unused: configure_optimizers builds it
    return Built(module, F.cross_entropy, _digits(STEPS, 32), opt, clip=1.0)


def lightning_loop(b: Built, out: Any, preset: str) -> None:
    """``lightning.Trainer.fit`` with ``OptiscopeCallback`` (CPU, no logger, no checkpoints);
    the callback records the raw gradient, before the Trainer's clipping."""
    pl = require("lightning.pytorch")
    from optiscope.integrations.lightning import OptiscopeCallback

    callback = OptiscopeCallback(out, preset=preset, loss_fn=b.loss_fn)
    trainer = pl.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=b.clip,
        callbacks=[callback],
        default_root_dir=os.fspath(out) + "-lightning",
    )
    x = torch.cat([x for x, _ in b.batches])
    y = torch.cat([y for _, y in b.batches])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=len(b.batches[0][1])
    )
    trainer.fit(b.model, loader)


MODELS = (
    Model(
        "resnet18",
        "torchvision resnet18 (batch norm, residuals), 8 images of 32x32, SGD with momentum",
        ("torchvision",),
        resnet18,
        plain_loop,
        batch_size=8,
        analyse="batch_stats",
    ),
    Model(
        "gpt2",
        "transformers GPT2LMHeadModel (2 layers, d 32, dropout 0.1), its own loss, AdamW",
        ("transformers",),
        gpt2,
        plain_loop,
        batch_size=4,
        same_function=False,
        analyse="eval",
    ),
    Model(
        "gpt2-trainer",
        "the same GPT-2 under transformers.Trainer (AdamW, cosine, max_grad_norm 1)",
        ("transformers", "accelerate"),
        gpt2_trainer,
        hf_trainer_loop,
        batch_size=4,
        same_function=False,
        analyse=None,
    ),
    Model(
        "nanogpt",
        "nanoGPT-style transformer (fused causal attention, LayerNorm, tied head), AdamW, "
        "warmup then cosine, clipping",
        (),
        nanogpt,
        plain_loop,
        batch_size=4,
    ),
    Model(
        "vit",
        "timm VisionTransformer (32x32, patch 8, d 32, depth 2), AdamW, clipping",
        ("timm",),
        vit,
        plain_loop,
        batch_size=4,
    ),
    Model(
        "lstm",
        "LSTM language model (embedding, nn.LSTM, linear head), SGD, clipping",
        (),
        lstm,
        plain_loop,
        batch_size=4,
        recurrent=True,
    ),
    Model(
        "lightning",
        "LightningModule (CNN, batch norm, dropout) under lightning.Trainer, clipping",
        ("lightning",),
        lightning,
        lightning_loop,
        batch_size=32,
        same_function=False,
        analyse="eval",
    ),
)
BY_NAME = {m.name: m for m in MODELS}


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
