"""``optiscope analyze``: train the embedded default (or an experiment) briefly, or load a
checkpoint, then measure the curvature at that point; with ``--out``, also write a run folder
(the training's records, the analysis of the point, findings and the HTML report)."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optiscope
from optiscope import OptiscopeError
from optiscope.core.data import digits, digits_mlp
from optiscope.monitor.end import analysis, final_point
from optiscope.records import schema
from optiscope.records.folder import fresh_folder, holds_run


def register(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="train the digits MLP for a few seconds (or load a checkpoint) and analyse the point",
        description=(
            "Train the embedded default (an MLP 64-256-256-10 on scikit-learn's bundled digits), "
            "or EXPERIMENT when given, and print the loss, gradient norm, extreme Hessian "
            "eigenvalues, trace and the critical-point verdict at the point reached. With "
            "--checkpoint nothing is trained: the weights in FILE are loaded into the model and "
            "analysed where they are. With --out DIR the training's records, the analysis, the "
            "findings and the HTML report are written to DIR as a run folder."
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
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="also write DIR as a run folder: records.jsonl (the Monitor's default preset over "
        "the training: loss, gradient and parameter norms each step, the update's size every "
        "tenth; then the analysis of the point: its critical point and, with --blocks, each "
        "layer's spectrum), findings.json and report.html, where the blockwise spectra get a "
        "section; DIR must hold no run unless --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out DIR (its records, findings and report)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=run)


def _out(args: argparse.Namespace) -> Path | None:
    """The run folder of --out, checked before anything is trained; None without --out."""
    out = getattr(args, "out", None)
    overwrite = getattr(args, "overwrite", False)
    if out is None:
        if overwrite:
            raise OptiscopeError(
                "--overwrite replaces the run in --out DIR, and no --out was given: pass --out "
                "DIR, or leave out --overwrite"
            )
        return None
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise OptiscopeError(
            f"--out {out!r} is an existing file: expected a folder (created if missing). Pass "
            "another --out"
        )
    if holds_run(folder) and not overwrite:
        raise OptiscopeError(
            f"{out!r} already holds a run (one run per folder): pass --overwrite to replace it, "
            f"or a fresh folder, e.g. --out {fresh_folder(folder)}"
        )
    return folder


def blocks_record(found: optiscope.BlockSpectra) -> dict[str, Any]:
    """The ``blockwise_spectra`` analysis record of :func:`optiscope.blockwise_spectra`'s
    result: each block's extreme eigenvalues and normalized density (on the common grid), the
    blocks' pairwise Jensen-Shannon distances, their spread and the advice they support."""
    return analysis(schema.BLOCKWISE_SPECTRA, found.as_dict(densities=True))


def _setup(args: argparse.Namespace) -> tuple[Any, Any, Any, str, dict[str, Any], Any]:
    """The model at the point to analyse, its loss, the data, its name, how it got there
    (trained, the embedded default or EXPERIMENT, or loaded from --checkpoint), and the
    Monitor that recorded the training into --out (None without it; the caller closes it)."""
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
    out = _out(args)
    torch.manual_seed(args.seed)
    if args.experiment is not None:
        exp = optiscope.load_experiment(args.experiment, seed=args.seed)
        model, loss_fn, name = exp.model, exp.loss_fn, exp.name
        # Without evaluation data, the first batch, as the end-of-run analysis of diagnose:
        # every training batch would make each product a pass over the whole data set.
        data: Any = exp.eval_data if exp.eval_data is not None else next(iter(exp.data))
        opt: Any = exp.optimizer
        header: dict[str, Any] = {schema.DESCRIPTION: exp.description, schema.CONFIG: exp.config}
        planned = exp.steps if steps is None else min(steps, exp.steps)
    else:
        model, loss_fn = digits_mlp(), torch.nn.CrossEntropyLoss()
        data, name = digits(), "digits-mlp 64-256-256-10"
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        header = {
            schema.DESCRIPTION: "The embedded default: an MLP 64-256-256-10 on scikit-learn's "
            "digits, SGD with momentum, trained briefly by optiscope analyze.",
            schema.CONFIG: {"lr": args.lr, "momentum": 0.9, "batch_size": args.batch_size},
        }
        planned = steps
    if checkpoint is not None:
        opt, planned = None, 0
        header[schema.CONFIG] = {"checkpoint": str(checkpoint)}
    monitor = None
    if out is not None:
        # The Monitor leaves the training bitwise as it is: the point analysed is the same.
        header.update(
            {
                schema.EXPERIMENT: name,
                schema.SEED: args.seed,
                schema.STEPS: planned,
                schema.OPTIMIZER: type(opt).__name__ if opt is not None else None,
            }
        )
        monitor = optiscope.Monitor(
            model, opt, out=out, header=header, overwrite=getattr(args, "overwrite", False)
        )
    t0 = time.perf_counter()
    try:
        if checkpoint is not None:
            optiscope.load_checkpoint(model, checkpoint)
            how: dict[str, Any] = {"checkpoint": str(checkpoint), "seed": args.seed}
        elif args.experiment is not None:
            model.train()
            batches = exp.batches() if steps is None else itertools.islice(exp.batches(), steps)
            done = optiscope.train(model, loss_fn, batches, opt, monitor=monitor).steps
            how = {"steps": done, "optimizer": type(opt).__name__, "seed": args.seed}
        else:
            x, y = data
            batches = _minibatches(x, y, args.batch_size, steps, args.seed)
            optiscope.train(model, loss_fn, batches, opt, monitor=monitor)
            how = {"steps": steps, "lr": args.lr, "seed": args.seed}
    except BaseException:
        if monitor is not None:
            monitor.close()
        raise
    model.eval()
    how["seconds"] = time.perf_counter() - t0
    return model, loss_fn, data, name, how, monitor


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
    """Everything the command prints, as plain data (reachable from Python). With ``args.out``
    the run folder is written too (records, findings, report) and ``"out"`` names it."""
    model, loss_fn, data, name, how, monitor = _setup(args)
    try:
        result, records = _measure(args, model, loss_fn, data, name, how)
        if monitor is not None:
            for record in records:
                monitor.write(record)
    finally:
        if monitor is not None:
            monitor.close()
    result["out"] = None
    if monitor is not None:
        result["out"] = str(optiscope.write_report(args.out).parent)
    return result


def _measure(
    args: argparse.Namespace, model: Any, loss_fn: Any, data: Any, name: str, how: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The analysis of the point as the command prints it, and as analysis records."""
    problem = optiscope.Problem(model, loss_fn, data)
    accuracy = _accuracy(model, data)
    t = time.perf_counter()
    eig = optiscope.hessian_eigenvalues(problem, k=args.k, which="both", tol=1e-4)
    eig_s = time.perf_counter() - t
    t = time.perf_counter()
    trace = optiscope.hessian_trace(problem)
    trace_s = time.perf_counter() - t
    t = time.perf_counter()
    cp = final_point(problem)  # the critical point, as the record diagnose writes
    cp_s = time.perf_counter() - t
    records = [cp]
    k = args.k
    blocks = None
    if getattr(args, "blocks", False):
        t = time.perf_counter()
        found = optiscope.blockwise_spectra(problem)
        blocks = {**found.as_dict(), "seconds": time.perf_counter() - t}
        records.append(blocks_record(found))
    result = {
        "blocks": blocks,
        "model": name,
        "parameters": problem.num_params,
        "samples": problem.num_samples,
        "train": how,
        "loss": cp[schema.LOSS],
        "accuracy": accuracy,
        "gradient_norm": cp[schema.GRADIENT_NORM],
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
            "kind": cp[schema.KIND],
            "curvature": cp[schema.CURVATURE],
            "index": cp[schema.INDEX],
            "reason": cp[schema.REASON],
            "hvps": cp[schema.HVPS],
            "seconds": cp_s,
        },
    }
    return result, records


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
    if r.get("out"):
        rows.append(("run folder", f"records, findings and report.html in {r['out']}/"))
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
