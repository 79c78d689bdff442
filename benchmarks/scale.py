"""Speed at scale: optiscope beside curvlinops and hessian-eigenthings on ResNet-18 and a GPT.

Run ``bash benchmarks/setup_env.sh`` once, then::

    .bench-venv/bin/python benchmarks/scale.py [--models resnet18,gpt] [--quick] [--json out.json]

The models are benchmarks/memory.py's (random weights, generated data, float32, CPU): ResNet-18
in torchvision's layout (11.2M parameters) on a CIFAR-shaped batch of 32, and a nanoGPT-style
transformer (12.2M parameters) on 8 sequences of 64 tokens. Every tool sees the same function:
batch norm normalizing with the batch's own statistics (as in training, running statistics
untouched: ``optiscope.core.modules.aside``), and attention on PyTorch's math kernel, since the
fused kernels have no double backward and the peers do not switch kernels themselves. The
gradient that every cost is divided by runs under the same settings.

Rows, per model:

- one Hessian-vector product against one gradient (medians of per-repeat ratios, the tools
  interleaved in a rotating order within each repeat);
- the top eigenvalue to 1e-3 relative: the products and seconds each tool spends, and its
  actual error against a reference (optiscope's Lanczos to 1e-7, checked against scipy's eigsh
  over curvlinops' operator to 1e-6);
- the Monitor's cost per step for each preset against the plain step: every variant trains its
  own copy of the model from the same weights on the same batches, one step of each in a
  rotating order, and the ratio is of the mean step over the run (a preset's tiers fall on some
  steps only).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))

import optiscope
from curvature import QUIET, error_text, fmt_time, interleaved, medians, paired
from memory import build
from optiscope.core.modules import aside

PRESETS = ("default", "curvature", "full")


@contextlib.contextmanager
def same_function(model: nn.Module):
    """The training function for every tool: batch statistics, dropout off, math attention."""
    with aside(model, batch_stats=True), sdpa_kernel(SDPBackend.MATH):
        yield


class LMLoss(nn.CrossEntropyLoss):
    """memory.py's language-model loss as a loss module (curvlinops reads ``reduction``)."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class Case:
    """One model on one batch, with each tool's operator built once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model, loss_fn, data, _, _ = build(name, 1)
        self.loss_fn = loss_fn if isinstance(loss_fn, nn.Module) else LMLoss()
        self.model.train()
        self.x, self.y = data[0]
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.num_params = sum(p.numel() for p in self.params)

    def gradient(self) -> Any:
        return torch.autograd.grad(self.loss_fn(self.model(self.x), self.y), self.params)

    def problem(self, **kwargs: Any) -> optiscope.Problem:
        return optiscope.Problem(
            self.model, self.loss_fn, (self.x, self.y), batch_stats=True, **kwargs
        )

    def eigenthings(self) -> Any:
        import hessian_eigenthings as he

        def loss(model: nn.Module, batch: Any) -> torch.Tensor:
            return self.loss_fn(model(batch[0]), batch[1])

        return he.HessianOperator(self.model, [(self.x, self.y)], loss)

    def curvlinops(self) -> Any:
        from curvlinops import HessianLinearOperator

        return HessianLinearOperator(
            self.model,
            self.loss_fn,
            self.params,
            [(self.x, self.y)],
            check_deterministic=False,
            num_data=len(self.x),
        )


def bench_hvp(case: Case, repeats: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(case.num_params, generator=gen)
    cached, fresh = case.problem(), case.problem(cache_graph=False)
    fns: dict[str, Any] = {
        "gradient": case.gradient,
        "optiscope": lambda: cached.hvp(v),
        "optiscope (no graph reuse)": lambda: fresh.hvp(v),
    }
    errors: dict[str, str] = {}
    for name, make, call in (
        ("hessian-eigenthings", case.eigenthings, lambda op: op.matvec(v)),
        ("curvlinops", case.curvlinops, lambda op: op @ v),
    ):
        try:
            fns[name] = partial(call, make())
        except Exception as err:
            errors[name] = error_text(err)
    samples, failed = interleaved(fns, repeats, warmup=1)
    errors.update(failed)
    med = medians(samples)
    ratios = {n: paired(samples, n, "gradient") for n in samples if n != "gradient"}
    return {"seconds": med, "ratios": ratios, "errors": errors}


def _counted(fn: Any, count: list[int]) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return fn(*args, **kwargs)

    return wrapped


def bench_top(case: Case, tol: float) -> dict[str, Any]:
    from scipy.sparse.linalg import eigsh

    out: dict[str, Any] = {}
    QUIET.wait()
    start = time.perf_counter()
    ref = optiscope.hessian_eigenvalues(case.problem(), k=1, tol=1e-7, max_steps=200, seed=1)
    out["reference"] = {
        "value": float(ref.values[0]),
        "hvps": int(ref.hvps),
        "seconds": time.perf_counter() - start,
    }
    reference = float(ref.values[0])
    gradient = statistics.median(_timed(case.gradient) for _ in range(3))
    out["gradient_s"] = gradient

    def ours() -> tuple[float, int]:
        res = optiscope.hessian_eigenvalues(case.problem(), k=1, tol=tol, seed=0)
        return float(res.values[0]), int(res.hvps)

    took = [float("nan")]

    def eigenthings() -> tuple[float, int]:
        import hessian_eigenthings as he

        # Its Lanczos runs a fixed number of steps (2k by default): the fewest of a scan that
        # reaches the tolerance, each step one product.
        for steps in (10, 20, 30, 45, 60):
            QUIET.wait()
            start = time.perf_counter()
            res = he.lanczos(case.eigenthings(), k=1, max_iter=steps, which="LA", seed=0)
            took[0] = time.perf_counter() - start  # the last attempt's time, not the scan's
            value = float(res.eigenvalues[0])
            if abs(value - reference) <= tol * abs(reference):
                break
        return value, steps

    def curvlinops() -> tuple[float, int]:
        # Its operator counts each product itself; eigsh's tolerance is on the Ritz residual.
        op = case.curvlinops().to_scipy()
        count = [0]
        op.matvec = _counted(op.matvec, count)  # type: ignore[method-assign]
        v0 = np.random.default_rng(0).standard_normal(case.num_params).astype(np.float32)
        vals = eigsh(op, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
        return float(vals[0]), count[0]

    for name, fn in (
        ("optiscope", ours),
        ("hessian-eigenthings", eigenthings),
        ("curvlinops + eigsh", curvlinops),
    ):
        try:
            QUIET.wait()
            start = time.perf_counter()
            value, hvps = fn()
            seconds = time.perf_counter() - start
            if name == "hessian-eigenthings":
                seconds = took[0]
            out[name] = {
                "value": value,
                "hvps": hvps,
                "seconds": seconds,
                "gradients": seconds / gradient,
                "error": abs(value - reference) / abs(reference),
            }
        except Exception as err:
            out[name] = {"error_text": error_text(err)}
    check = out.get("curvlinops + eigsh", {})
    if "value" in check:
        out["reference"]["eigsh_agreement"] = check["error"]
    return out


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_monitor(name: str, steps: int, presets: tuple[str, ...] = PRESETS) -> dict[str, Any]:
    """Mean wall time per step of the plain loop and of each preset, steps interleaved."""
    base, loss_fn, data, _, _ = build(name, steps)
    runs: dict[str, Any] = {}
    for variant in ("plain", *presets):
        model = copy.deepcopy(base)
        model.train()
        if name == "resnet18":
            opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
        mon = (
            None
            if variant == "plain"
            else optiscope.Monitor(model, opt, loss_fn=loss_fn, preset=variant, steps=steps)
        )
        runs[variant] = (model, opt, mon, [])
    names = list(runs)
    for i, (x, y) in enumerate(data):
        QUIET.wait()
        for variant in names[i % len(names) :] + names[: i % len(names)]:
            model, opt, mon, times = runs[variant]
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            if mon is not None:
                mon.step(loss, (x, y))
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            times.append(time.perf_counter() - start)
    plain = runs["plain"][3]
    out: dict[str, Any] = {"steps": steps}
    for variant in names:
        times = runs[variant][3]
        out[variant] = {
            "mean_s": statistics.fmean(times),
            "median_s": statistics.median(times),
            "ratio_of_means": statistics.fmean(times) / statistics.fmean(plain),
            "median_ratio": statistics.median(t / p for t, p in zip(times, plain)),
        }
        mon = runs[variant][2]
        if mon is not None:
            mon.close()
    return out


def report(name: str, hvp: dict[str, Any], top: dict[str, Any], mon: dict[str, Any]) -> None:
    print(f"\n## {name}")
    sec, ratios = hvp["seconds"], hvp["ratios"]
    print(f"one gradient: {fmt_time(sec['gradient'])} (median)")
    for tool, ratio in ratios.items():
        print(f"  HVP {tool:<28} {ratio:5.2f}x a gradient ({fmt_time(sec[tool])})")
    for tool, err in hvp["errors"].items():
        print(f"  HVP {tool:<28} {err}")
    ref = top["reference"]
    print(
        f"top eigenvalue: reference {ref['value']:.6g} ({ref['hvps']} products; eigsh agrees "
        f"to {ref.get('eigsh_agreement', float('nan')):.1e})"
    )
    for tool in ("optiscope", "hessian-eigenthings", "curvlinops + eigsh"):
        r = top.get(tool, {})
        if "value" in r:
            print(
                f"  {tool:<22} {r['hvps']:3d} products {fmt_time(r['seconds']):>9} = "
                f"{r['gradients']:5.0f} gradients, error {r['error']:.1e}"
            )
        else:
            print(f"  {tool:<22} {r.get('error_text', 'n/a')}")
    print(f"Monitor per step over {mon['steps']} steps (plain {fmt_time(mon['plain']['mean_s'])}):")
    for variant in (v for v in PRESETS if v in mon):
        r = mon[variant]
        print(
            f"  preset {variant:<10} {r['ratio_of_means']:5.2f}x the plain step (means "
            f"{fmt_time(r['mean_s'])} vs {fmt_time(mon['plain']['mean_s'])}; median of "
            f"per-step ratios {r['median_ratio']:.2f}x)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,gpt")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--quick", action="store_true", help="2 repeats, 6 steps")
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--monitor-only",
        default=None,
        metavar="PRESETS",
        help="only the Monitor's per-step cost, for these presets (comma-separated)",
    )
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.steps = 2, 6
    torch.set_num_threads(2)
    results: dict[str, Any] = {}
    if args.monitor_only:
        presets = tuple(args.monitor_only.split(","))
        for name in args.models.split(","):
            mon = bench_monitor(name, args.steps, presets)
            print(f"\n## {name}: Monitor per step over {mon['steps']} steps")
            for variant in presets:
                r = mon[variant]
                print(
                    f"  preset {variant:<10} {r['ratio_of_means']:5.3f}x the plain step (means "
                    f"{fmt_time(r['mean_s'])} vs {fmt_time(mon['plain']['mean_s'])}; median of "
                    f"per-step ratios {r['median_ratio']:.3f}x)"
                )
            results[name] = {"monitor": mon}
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        return 0
    for name in args.models.split(","):
        case = Case(name)
        print(f"{name}: {case.num_params / 1e6:.1f}M parameters", flush=True)
        with same_function(case.model):
            hvp = bench_hvp(case, args.repeats)
            top = bench_top(case, args.tol)
        mon = bench_monitor(name, args.steps)
        report(name, hvp, top, mon)
        results[name] = {"hvp": hvp, "top": top, "monitor": mon}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
