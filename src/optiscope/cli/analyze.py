"""``optiscope analyze``: train the embedded default briefly, then measure the curvature there."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from optiscope._errors import OptiscopeError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="train the digits MLP for a few seconds and analyse the point it reaches",
        description=(
            "Train the embedded default (an MLP 64-256-256-10 on scikit-learn's bundled digits) "
            "and print the loss, gradient norm, extreme Hessian eigenvalues, trace and the "
            "critical-point verdict at the point reached."
        ),
    )
    p.add_argument("--steps", type=int, default=300, help="SGD steps to train (default 300)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    p.add_argument("--batch-size", type=int, default=64, help="minibatch size (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    p.add_argument("-k", type=int, default=3, help="eigenvalues at each end (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=run)


def _train(args: argparse.Namespace):
    import torch

    from optiscope._data import digits, digits_mlp

    if args.steps < 0 or args.batch_size < 1 or args.lr <= 0:
        raise OptiscopeError(
            f"expected --steps >= 0, --batch-size >= 1 and --lr > 0, got --steps {args.steps}, "
            f"--batch-size {args.batch_size}, --lr {args.lr}"
        )
    torch.manual_seed(args.seed)
    x, y = digits()
    model = digits_mlp()
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    gen = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(x), generator=gen)
    pos = 0
    for _ in range(args.steps):
        if pos + args.batch_size > len(x):
            perm, pos = torch.randperm(len(x), generator=gen), 0
        idx = perm[pos : pos + args.batch_size]
        pos += args.batch_size
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    return model, loss_fn, x, y


def analyze(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the command prints, as plain data (reachable from Python)."""
    import torch

    import optiscope

    t0 = time.perf_counter()
    model, loss_fn, x, y = _train(args)
    train_s = time.perf_counter() - t0
    problem = optiscope.Problem(model, loss_fn, (x, y))
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    t = time.perf_counter()
    eig = optiscope.hessian_eigenvalues(problem, k=args.k, which="both", tol=1e-4)
    eig_s = time.perf_counter() - t
    t = time.perf_counter()
    trace = optiscope.hessian_trace(problem)
    trace_s = time.perf_counter() - t
    t = time.perf_counter()
    cp = optiscope.critical_point(problem)
    cp_s = time.perf_counter() - t
    k = args.k
    return {
        "model": "digits-mlp 64-256-256-10",
        "parameters": problem.num_params,
        "samples": problem.num_samples,
        "train": {"steps": args.steps, "lr": args.lr, "seed": args.seed, "seconds": train_s},
        "loss": cp.loss,
        "accuracy": accuracy,
        "gradient_norm": cp.gradient_norm,
        "top_eigenvalues": [float(v) for v in eig.values[:k]],
        "bottom_eigenvalues": [float(v) for v in eig.values[k:]],
        "eigen_errors": [float(e) for e in eig.errors],
        "eigen_converged": [bool(c) for c in eig.converged],
        "eigen_hvps": eig.hvps,
        "eigen_seconds": eig_s,
        "trace": trace.value,
        "trace_std_error": trace.std_error,
        "trace_method": trace.method,
        "trace_seconds": trace_s,
        "critical_point": {
            "kind": cp.kind,
            "curvature": cp.curvature,
            "index": cp.index,
            "reason": cp.reason,
            "hvps": cp.hvps,
            "seconds": cp_s,
        },
    }


def _table(r: dict[str, Any]) -> str:
    def fmt(vals: list[float]) -> str:
        return ", ".join(f"{v:.5g}" for v in vals)

    cp = r["critical_point"]
    trace = f"{r['trace']:.6g}"
    if r["trace_std_error"] > 0:
        trace += f" +/- {r['trace_std_error']:.2g}"
    rows = [
        ("model", f"{r['model']} ({r['parameters']} parameters, {r['samples']} samples)"),
        (
            "training",
            f"{r['train']['steps']} SGD steps, lr {r['train']['lr']}, "
            f"seed {r['train']['seed']} ({r['train']['seconds']:.1f} s)",
        ),
        ("loss", f"{r['loss']:.6g} (accuracy {r['accuracy']:.3f})"),
        ("gradient norm", f"{r['gradient_norm']:.4g}"),
        ("top eigenvalues", fmt(r["top_eigenvalues"])),
        ("bottom eigenvalues", fmt(r["bottom_eigenvalues"])),
        (
            "  Lanczos",
            f"{r['eigen_hvps']} Hessian-vector products, {r['eigen_seconds']:.2f} s, "
            f"error bound <= {max(r['eigen_errors']):.1e}, {sum(r['eigen_converged'])} of "
            f"{len(r['eigen_converged'])} converged to 1e-4",
        ),
        ("trace", f"{trace} ({r['trace_method']}, {r['trace_seconds']:.2f} s)"),
        ("critical point", f"{cp['kind']}: {cp['reason']}"),
        ("  curvature", f"{cp['curvature']}, index (negative fraction) {cp['index']:.3f}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    result = analyze(args)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_table(result))
    return 0
