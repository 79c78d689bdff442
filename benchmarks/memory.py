"""Peak memory of the Monitor's tiers against the training loop without it, at scale.

    python benchmarks/memory.py [--models resnet18,gpt] [--steps 4] [--device cpu] [--json out.json]

Each variant trains in a fresh process (so peaks do not carry over) for ``--steps`` steps from the
same initial weights on the same batches: ``plain`` (the loop alone: zero_grad, forward, loss,
backward, step), each tier alone at every step (``Monitor(every={tier: 1})``, so every tier
measures at least ``--steps`` times), and the three presets (with ``steps=`` so the curvature
preset spreads its tiers over the run). The peak is the process's VmHWM (Linux), reset after the
model, data and optimizer are built; the table gives the whole-process peak against plain's
(the issue's measure) and the growth above that reset point against plain's growth (the stricter
one: the fixed cost of the interpreter and libraries left out). With ``--device cuda`` the model
and batches move to the GPU and the peak is ``torch.cuda.max_memory_allocated`` (the tensors on
the device, reset at the same point), its base the memory allocated there.

Models (float32, CPU, random weights, generated data; nothing downloaded):

- ``resnet18``: ResNet-18 as torchvision builds it for ImageNet (BasicBlock [2, 2, 2, 2], 64-512
  channels, batch norm, 11.2M parameters) on CIFAR-shaped batches of 32 x 3 x 32 x 32, SGD with
  momentum.
- ``gpt``: a nanoGPT-style causal transformer (6 layers, d_model 384, 6 heads, vocabulary 4096,
  context 64; fused scaled_dot_product_attention, LayerNorm, tied embeddings; 12.2M parameters),
  batches of 8 sequences, AdamW with warmup and clipping.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from curvature import _status_kib

TIERS = ("update", "layer_gradients", "noise", "curvature", "sharpness")
PRESETS = ("preset:default", "preset:curvature", "preset:full")


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.down(x))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout (7x7 stem, max pool, four stages of two BasicBlocks)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages += [_Basic(cin, cout, stride), _Basic(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class _GPTBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = _Attention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """nanoGPT's layout: token and position embeddings, pre-norm blocks, a tied head."""

    def __init__(
        self, vocab: int = 4096, d: int = 384, layers: int = 6, heads: int = 6, context: int = 64
    ) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        self.blocks = nn.Sequential(*(_GPTBlock(d, heads) for _ in range(layers)))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.head(self.ln(self.blocks(self.tok(idx) + self.pos(pos))))


def _lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def build(name: str, steps: int) -> tuple[nn.Module, Any, list, torch.optim.Optimizer, Any]:
    """The model, loss, batches, optimizer and scheduler of a benchmark model, from fixed seeds."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    if name == "resnet18":
        model = ResNet18()
        data = [
            (torch.randn(32, 3, 32, 32, generator=gen), torch.randint(0, 10, (32,), generator=gen))
            for _ in range(steps)
        ]
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, nn.CrossEntropyLoss(), data, opt, None
    if name == "gpt":
        model = GPT()
        data = []
        for _ in range(steps):
            seq = torch.randint(0, 4096, (8, 65), generator=gen)
            data.append((seq[:, :-1], seq[:, 1:]))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 2))
        return model, _lm_loss, data, opt, sched
    raise SystemExit(f"unknown model {name!r}: expected resnet18 or gpt")


def _reset_peak(device: str) -> int | None:
    """Restart the peak from the memory in use now, and return that (KiB)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) // 1024
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # the peak (VmHWM) restarts from the current RSS
    return _status_kib("VmRSS")


def _peak(device: str) -> int | None:
    """The peak since :func:`_reset_peak` (KiB)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) // 1024
    return _status_kib("VmHWM")


def child(model_name: str, variant: str, steps: int, device: str = "cpu") -> None:
    """One variant in this process: print its peaks (KiB) as JSON."""
    from optiscope import Monitor
    from optiscope.training.loop import train

    torch.set_num_threads(2)
    model, loss_fn, data, opt, sched = build(model_name, steps)
    if device != "cpu":  # in place: the optimizer keeps the same parameters
        model.to(device)
        data = [(x.to(device), y.to(device)) for x, y in data]
    monitor = None
    if variant in TIERS:
        monitor = Monitor(model, opt, loss_fn=loss_fn, every={variant: 1})
    elif variant in PRESETS:
        preset = variant.split(":", 1)[1]
        monitor = Monitor(model, opt, loss_fn=loss_fn, preset=preset, steps=steps)
    gc.collect()
    base = _reset_peak(device)
    start = time.perf_counter()
    model.train()
    train(model, loss_fn, data, opt, monitor=monitor, scheduler=sched, clip_grad_norm=1.0)
    peak = _peak(device)
    seconds = time.perf_counter() - start
    measured = None
    if monitor is not None:
        kinds: dict[str, int] = {}
        for r in monitor.history:
            kinds[str(r.get("type"))] = kinds.get(str(r.get("type")), 0) + 1
        measured = kinds
        monitor.close()
    print(json.dumps({"base": base, "peak": peak, "seconds": seconds, "records": measured}))


def run(model_name: str, variant: str, steps: int, device: str = "cpu") -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", model_name, variant, "--steps", str(steps)]
    cmd += ["--device", device]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,gpt")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--variants", default=",".join(("plain", *TIERS, *PRESETS)))
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--device",
        default="cpu",
        help="cpu (peak: the process's VmHWM) or cuda (peak: torch.cuda.max_memory_allocated)",
    )
    ap.add_argument("--child", nargs=2, default=None, metavar=("MODEL", "VARIANT"))
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            f"--device {args.device}: expected a CUDA device, but torch {torch.__version__} "
            f"(CUDA build {torch.version.cuda}) sees none. Run with --device cpu"
        )
    if args.child:
        child(*args.child, args.steps, args.device)
        return 0
    results: dict[str, dict[str, Any]] = {}
    for model_name in args.models.split(","):
        model, *_ = build(model_name, 1)
        params = sum(p.numel() for p in model.parameters())
        where = "VmHWM" if args.device == "cpu" else f"{args.device} max_memory_allocated"
        print(
            f"\n{model_name}: {params / 1e6:.1f}M parameters, {args.steps} steps per variant, "
            f"peak of {where}"
        )
        print(
            f"{'variant':<18} {'peak MiB':>9} {'x plain':>8} {'growth MiB':>11} {'x plain':>8}"
            f" {'seconds':>8}"
        )
        rows: dict[str, Any] = {}
        for variant in args.variants.split(","):
            r = run(model_name, variant, args.steps, args.device)
            rows[variant] = r
            if "error" in r:
                print(f"{variant:<18} ERROR {r['error']}")
                continue
            plain = rows.get("plain", r)
            growth = r["peak"] - r["base"]
            plain_growth = max(plain["peak"] - plain["base"], 1)
            print(
                f"{variant:<18} {r['peak'] / 1024:9.0f} {r['peak'] / plain['peak']:8.2f} "
                f"{growth / 1024:11.0f} {growth / plain_growth:8.2f} {r['seconds']:8.1f}",
                flush=True,
            )
        results[model_name] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
