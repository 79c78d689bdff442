"""``optiscope analyze``: train the embedded default (or an experiment) briefly, or load a
checkpoint, then measure the curvature at that point."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import optiscope
from optiscope import OptiscopeError
from optiscope.core.data import digits, digits_mlp


def register(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="train the digits MLP for a few seconds (or load a checkpoint) and analyse the point",
        description=(
            "Train the embedded default (an MLP 64-256-256-10 on scikit-learn's bundled digits), "
            "or EXPERIMENT when given, and print the loss, gradient norm, extreme Hessian "
            "eigenvalues, trace and the critical-point verdict at the point reached. With "
            "--checkpoint nothing is trained: the weights in FILE are loaded into the model and "
            "analysed where they are."
        ),
    )
    p.add_argument(
        "experiment",
        nargs="?",
        default=None,
        help="a built-in name, path/to/file.py:function or package.module:function (default: "
        "the embedded digits MLP); trained with its own optimizer, data and steps",
    )
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        default=None,
        help="analyse the weights in FILE (a state_dict saved with torch.save(model."
        "state_dict(), FILE), or a dict holding one under 'state_dict', 'model_state_dict' or "
        "'model') instead of training: --steps, --lr and --batch-size are then ignored. FILE is "
        "read with torch.load(weights_only=True): a file holding other Python objects is refused",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default 300 for the embedded default, the experiment's own for "
        "EXPERIMENT)",
    )
    p.add_argument(
        "--lr", type=float, default=0.05, help="SGD learning rate of the default (default 0.05)"
    )
    p.add_argument(
        "--batch-size", type=int, default=64, help="minibatch size of the default (default 64)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    p.add_argument("-k", type=int, default=3, help="eigenvalues at each end (default 3)")
    p.add_argument(
        "--blocks",
        action="store_true",
        help="also the Hessian's spectrum per layer (each layer's diagonal block): its extreme "
        "eigenvalues, how far apart the layers' sharpness is and how their spectra's shapes "
        "differ (Jensen-Shannon distance), and whether one learning rate suits them all",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=run)


def _setup(args: argparse.Namespace) -> tuple[Any, Any, Any, str, dict[str, Any]]:
    """The model at the point to analyse, its loss, the data, its name, and how it got there:
    trained (the embedded default or EXPERIMENT) or loaded from --checkpoint."""
    import torch

    steps = 300 if args.steps is None and args.experiment is None else args.steps
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is None and (
        (steps is not None and steps < 0) or args.batch_size < 1 or args.lr <= 0
    ):
        raise OptiscopeError(
            f"expected --steps >= 0, --batch-size >= 1 and --lr > 0, got --steps {steps}, "
            f"--batch-size {args.batch_size}, --lr {args.lr}"
        )
    torch.manual_seed(args.seed)
    if args.experiment is not None:
        exp = optiscope.load_experiment(args.experiment, seed=args.seed)
        model, loss_fn, name = exp.model, exp.loss_fn, exp.name
        # Without evaluation data, the first batch, as the end-of-run analysis of diagnose:
        # every training batch would make each product a pass over the whole data set.
        data: Any = exp.eval_data if exp.eval_data is not None else next(iter(exp.data))
    else:
        model, loss_fn = digits_mlp(), torch.nn.CrossEntropyLoss()
        data, name = digits(), "digits-mlp 64-256-256-10"
    t0 = time.perf_counter()
    if checkpoint is not None:
        optiscope.load_checkpoint(model, checkpoint)
        how: dict[str, Any] = {"checkpoint": str(checkpoint), "seed": args.seed}
    elif args.experiment is not None:
        model.train()
        batches = exp.batches() if steps is None else itertools.islice(exp.batches(), steps)
        done = optiscope.train(model, loss_fn, batches, exp.optimizer).steps
        how = {"steps": done, "optimizer": type(exp.optimizer).__name__, "seed": args.seed}
    else:
        x, y = data
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        optiscope.train(model, loss_fn, _minibatches(x, y, args.batch_size, steps, args.seed), opt)
        how = {"steps": steps, "lr": args.lr, "seed": args.seed}
    model.eval()
    how["seconds"] = time.perf_counter() - t0
    return model, loss_fn, data, name, how


def _minibatches(x: Any, y: Any, size: int, steps: int, seed: int) -> Iterator[tuple[Any, Any]]:
    """The embedded default's ``steps`` minibatches: a seeded permutation read in order, drawn
    anew when too few samples are left for a whole batch."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    pos = 0
    for _ in range(steps):
        if pos + size > len(x):
            perm, pos = torch.randperm(len(x), generator=gen), 0
        idx = perm[pos : pos + size]
        pos += size
        yield x[idx], y[idx]


def _accuracy(model: Any, data: Any) -> float | None:
    """The accuracy of a classifier on one (inputs, integer labels) batch; None otherwise."""
    import torch

    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        return None
    x, y = data
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or y.dtype != torch.long:
        return None
    with torch.no_grad():
        out = model(x)
    if not (isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == y.shape[0]):
        return None
    return float((out.argmax(1) == y).float().mean())


def analyze(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the command prints, as plain data (reachable from Python)."""
    model, loss_fn, data, name, how = _setup(args)
    problem = optiscope.Problem(model, loss_fn, data)
    accuracy = _accuracy(model, data)
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
    blocks = None
    if getattr(args, "blocks", False):
        t = time.perf_counter()
        found = optiscope.blockwise_spectra(problem)
        blocks = {**found.as_dict(), "seconds": time.perf_counter() - t}
    return {
        "blocks": blocks,
        "model": name,
        "parameters": problem.num_params,
        "samples": problem.num_samples,
        "train": how,
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
    tr = r["train"]
    if "checkpoint" in tr:
        how = f"none: weights loaded from {tr['checkpoint']} ({tr['seconds']:.1f} s)"
    else:
        by = f"SGD steps, lr {tr['lr']}" if "lr" in tr else f"steps of {tr['optimizer']}"
        how = f"{tr['steps']} {by}, seed {tr['seed']} ({tr['seconds']:.1f} s)"
    acc = "" if r["accuracy"] is None else f" (accuracy {r['accuracy']:.3f})"
    trace = f"{r['trace']:.6g}"
    if r["trace_std_error"] > 0:
        trace += f" +/- {r['trace_std_error']:.2g}"
    rows = [
        ("model", f"{r['model']} ({r['parameters']} parameters, {r['samples']} samples)"),
        ("training", how),
        ("loss", f"{r['loss']:.6g}" + acc),
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
    b = r.get("blocks")
    if b:
        rows.append(
            (
                "blocks",
                f"{len(b['blocks'])} layers, {b['hvps']} block products, {b['seconds']:.2f} s",
            )
        )
        for block in b["blocks"]:
            rows.append(
                (
                    f"  {block['name']}",
                    f"{block['size']} parameters, eigenvalues {block['smallest']:.4g} .. "
                    f"{block['largest']:.4g}",
                )
            )
        rows.append(("  verdict", b["advice"]))
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
