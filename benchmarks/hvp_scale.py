"""One Hessian-vector product against one gradient at scale, eager and under torch.compile.

    python benchmarks/hvp_scale.py [--device cuda] [--models resnet18,gpt] [--compile
        [--compiled-only]] [--repeats 20] [--resnet-batch 32] [--gpt-batch 8] [--quick]
        [--json out.json]

The models of benchmarks/memory.py (random weights, generated data, float32), in eval mode
(batch norm on its running statistics: a fixed function, as optiscope measures one): a
torchvision-layout ResNet-18 on ``--resnet-batch`` CIFAR-shaped images and the nanoGPT-style 12M
transformer on ``--gpt-batch`` sequences of 64 tokens. Timed on one batch and one vector:

- ``gradient``: ``torch.autograd.grad`` of the loss (one forward and one backward pass, as a
  training step pays it), the unit;
- ``gradient, math attention`` (the GPT): the same on PyTorch's math attention kernel, which
  every product below runs on, as optiscope's do: the fused kernels have no double backward and
  no forward-mode derivative;
- ``hvp optiscope``: ``Problem.hvp`` with the gradient's graph reused (what each Lanczos step pays
  once the graph is built);
- ``hvp double backward``: the gradient with ``create_graph=True``, then its product with v, the
  graph built anew at each call;
- ``gradient func`` and ``hvp func``: ``torch.func.grad`` of ``functional_call``, and the
  forward-over-reverse product ``jvp(grad(f))``;
- with ``--compile``: ``gradient compiled`` and ``hvp compiled``, those two functions under
  ``torch.compile`` (the first call, which compiles, timed apart).

Medians over ``--repeats`` repeats after warm-ups, the variants interleaved in each repeat (the
order rotated), CUDA synchronized around every call. Each product is given as a multiple of the
eager gradient and of the gradient of its own kind (``func`` and ``compiled`` against theirs),
ratios being medians of per-repeat ratios; on CUDA also the peak memory of one call above the
memory at rest. Each product is checked against optiscope's (relative error of the vector), so
that a fast wrong one shows. A variant that fails prints its error in its row and the run goes on.
``--quick`` is a smoke run (batch 2, a GPT of 2 layers and width 64, 3 repeats).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))

import optiscope
from curvature import error_text, fmt_time
from memory import GPT, ResNet18, _lm_loss

MATH = "gradient, math attention"
# Each product's own gradient, the unit of its "x own" ratio (the first of them timed).
OWN = {
    "hvp optiscope": (MATH, "gradient"),
    "hvp double backward": (MATH, "gradient"),
    "hvp func": ("gradient func",),
    "hvp compiled": ("gradient compiled",),
}


def build(name: str, args: argparse.Namespace, device: torch.device) -> tuple[Any, ...]:
    """The model (eval mode, on ``device``), its loss and one batch, from fixed seeds."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    if name == "resnet18":
        n = 2 if args.quick else args.resnet_batch
        model: nn.Module = ResNet18()
        x = torch.randn(n, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (n,), generator=gen)
        loss_fn: Any = nn.CrossEntropyLoss()
    elif name == "gpt":
        n = 2 if args.quick else args.gpt_batch
        vocab, context = (512, 32) if args.quick else (4096, 64)
        model = GPT(vocab, 64, 2, 2, context) if args.quick else GPT()
        seq = torch.randint(0, vocab, (n, context + 1), generator=gen)
        x, y = seq[:, :-1], seq[:, 1:]
        loss_fn = _lm_loss
    else:
        raise SystemExit(f"unknown model {name!r}: expected resnet18 or gpt")
    return model.to(device).eval(), loss_fn, x.to(device), y.to(device), n


def variants(
    name: str, model: nn.Module, loss_fn: Any, x: torch.Tensor, y: torch.Tensor, compile_: str
) -> dict[str, Callable[[], Any]]:
    """The functions timed, each computing its result from scratch but for optiscope's cached
    graph; ``compile_`` adds the compiled pair ("yes") or keeps only it, the gradient and
    optiscope's product ("only"; "" for neither)."""
    named = dict(model.named_parameters())
    leaves = list(named.values())
    gen = torch.Generator().manual_seed(2)
    v = {n: torch.randn(p.shape, generator=gen).to(p.device) for n, p in named.items()}
    v_list = list(v.values())
    params = {n: p.detach() for n, p in named.items()}
    buffers = dict(model.named_buffers())

    def gradient() -> Any:
        return torch.autograd.grad(loss_fn(model(x), y), leaves)

    def double_backward() -> Any:
        g = torch.autograd.grad(loss_fn(model(x), y), leaves, create_graph=True)
        return torch.autograd.grad(g, leaves, v_list)

    def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return loss_fn(functional_call(model, (p, buffers), (x,)), y)

    grad_f = torch.func.grad(f)

    def hvp_f(p: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> Any:
        return torch.func.jvp(grad_f, (p,), (t,))[1]

    problem = optiscope.Problem(model, loss_fn, (x, y))
    flat = problem.flatten(v[n] for n in problem.names)
    fns: dict[str, Callable[[], Any]] = {"gradient": gradient}
    if name == "gpt":
        fns[MATH] = gradient
    fns.update(
        {
            "hvp optiscope": lambda: problem.hvp(flat),
            "hvp double backward": double_backward,
            "gradient func": lambda: grad_f(params),
            "hvp func": lambda: hvp_f(params, v),
        }
    )
    if compile_ == "only":  # the other eager products are another run's
        fns = {k: fns[k] for k in ("gradient", "hvp optiscope")}
    if compile_:
        compiled_grad, compiled_hvp = torch.compile(grad_f), torch.compile(hvp_f)
        fns["gradient compiled"] = lambda: compiled_grad(params)
        fns["hvp compiled"] = lambda: compiled_hvp(params, v)
    return {k: fn if k == "gradient" else _on_math_attention(fn) for k, fn in fns.items()}


def _on_math_attention(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with sdpa_kernel(SDPBackend.MATH):
            return fn()

    return run


def measure(
    fns: dict[str, Callable[[], Any]], repeats: int, device: torch.device
) -> dict[str, dict[str, Any]]:
    """Per variant: its first call's time, its per-repeat times and, on CUDA, the peak memory
    of one call above the memory at rest; or its error."""
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def once(fn: Callable[[], Any]) -> float:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    rows: dict[str, dict[str, Any]] = {}
    live = {}
    results: dict[str, torch.Tensor] = {}
    for name, fn in fns.items():
        try:
            first = once(fn)  # for a compiled function, the compilation
            for _ in range(2):
                once(fn)
        except Exception as err:
            rows[name] = {"error": error_text(err)}
            print(f"  {name}: {rows[name]['error']}", flush=True)
            continue
        rows[name] = {"first_call_s": first, "times": []}
        live[name] = fn
        if name.startswith("hvp"):  # checked against optiscope's: a fast wrong product is no win
            results[name] = _flat(fn())
    ref = results.get("hvp optiscope")
    for name, out in results.items():
        if ref is not None:
            rows[name]["error_vs_optiscope"] = float((out - ref).norm() / ref.norm())
    results.clear()
    names = list(live)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            rows[name]["times"].append(once(live[name]))
    if cuda:
        for name, fn in live.items():
            gc.collect()
            sync()
            torch.cuda.reset_peak_memory_stats(device)
            rest = torch.cuda.memory_allocated(device)
            fn()
            sync()
            rows[name]["peak_mib"] = (torch.cuda.max_memory_allocated(device) - rest) / 2**20
    return rows


def _flat(out: Any) -> torch.Tensor:
    """A product as one float64 vector, in the parameters' order (a tensor, tuple or dict)."""
    parts = out.values() if isinstance(out, dict) else out if isinstance(out, tuple) else [out]
    return torch.cat([t.detach().reshape(-1).double() for t in parts])


def summarize(rows: dict[str, dict[str, Any]]) -> None:
    """Medians and the paired ratios, in place."""
    for name, row in rows.items():
        if "error" in row:
            continue
        row["median_s"] = statistics.median(row["times"])
        own = next((u for u in OWN.get(name, (name,)) if "times" in rows.get(u, {})), None)
        for key, unit in (("x_gradient", "gradient"), ("x_own", own)):
            if unit is not None and "times" in rows.get(unit, {}):
                base = rows[unit]["times"]
                row[key] = statistics.median(a / b for a, b in zip(row["times"], base))


def environment(device: torch.device) -> dict[str, Any]:
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "optiscope": optiscope.__version__,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--models", default="resnet18,gpt")
    ap.add_argument("--compile", action="store_true", help="also time the torch.compile'd pair")
    ap.add_argument(
        "--compiled-only",
        action="store_true",
        help="with --compile, time only the gradient, optiscope's product and the compiled pair "
        "(the other eager products in another run, so that a slow compilation cannot cost them)",
    )
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--resnet-batch", type=int, default=32)
    ap.add_argument("--gpt-batch", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="tiny shapes and 3 repeats: a smoke run")
    ap.add_argument("--json", type=Path, default=None, help="write the results here (per model)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"--device {args.device}: expected a CUDA device, but torch {torch.__version__} "
            f"(CUDA build {torch.version.cuda}) sees none. Run with --device cpu"
        )
    repeats = 3 if args.quick else args.repeats
    results: dict[str, Any] = {"environment": environment(device), "models": {}}
    print(json.dumps(results["environment"]), flush=True)
    for name in args.models.split(","):
        model, loss_fn, x, y, n = build(name, args, device)
        count = sum(p.numel() for p in model.parameters())
        print(f"\n{name}: {count / 1e6:.1f}M parameters, batch {n}, {device}", flush=True)
        try:
            mode = ("only" if args.compiled_only else "yes") if args.compile else ""
            fns = variants(name, model, loss_fn, x, y, mode)
        except Exception as err:  # a model optiscope cannot take: say so, go on
            print(f"  {error_text(err)}", flush=True)
            results["models"][name] = {"error": error_text(err)}
            continue
        rows = measure(fns, repeats, device)
        summarize(rows)
        print(
            f"{'variant':<26} {'median':>9} {'x gradient':>11} {'x own':>7} {'peak MiB':>9}"
            f" {'first call':>11} {'vs optiscope':>13}"
        )
        for variant, row in rows.items():
            if "error" in row:
                print(f"{variant:<26} {row['error']}")
                continue
            peak = f"{row['peak_mib']:9.0f}" if "peak_mib" in row else f"{'n/a':>9}"
            err = f"{row['error_vs_optiscope']:.1e}" if "error_vs_optiscope" in row else "-"
            print(
                f"{variant:<26} {fmt_time(row['median_s']):>9} "
                f"{row.get('x_gradient', float('nan')):11.2f} {row.get('x_own', float('nan')):7.2f}"
                f" {peak} {fmt_time(row['first_call_s']):>11} {err:>13}",
                flush=True,
            )
        results["models"][name] = {"parameters": count, "batch": n, "rows": rows}
        if args.json:  # after each model, so that a run cut short keeps what it measured
            args.json.write_text(json.dumps(results, indent=1))
        del fns, model, x, y
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
