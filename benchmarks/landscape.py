"""Loss surfaces: optiscope's grid evaluation against the floor and against loss-landscapes.

Run ``bash benchmarks/setup_env.sh`` once, then::

    .bench-venv/bin/python benchmarks/landscape.py [--quick] [--json results.json]

For each problem, a 41 x 41 surface on filter-normalized random directions, four ways, timed in
the same run in rounds whose order rotates (after waiting for the machine to be quiet):

- ``floor``: one plain no-grad forward pass of the whole data (and the loss) per grid point, with
  the parameters left in place (what any evaluation must at least do);
- ``exact``: ``optiscope.surface(problem, directions, steps=41)``, every point on all the data;
- ``sampled``: the same with ``tol=0.01`` (coarse-to-fine, a sampled correction with its bound,
  the rest completed on all the data);
- ``loss-landscapes``: ``random_plane(model, Loss(criterion, X, y), distance, steps=41,
  normalization="filter", deepcopy_model=True)`` (loss-landscapes 3.0.6).

Times are medians over rounds. The sampled surface is checked point by point against the exact
one of the same run: the largest relative error, and how many points are off by more than 1%.

Problems (float32, CPU, 2 threads; ``load_digits`` pixels / 16; trained 200 SGD steps with
momentum from seed 0, as in benchmarks/curvature.py):

- ``mlp``: 64-256-256-10 ReLU network, all 1797 images;
- ``cnn``: Conv(1,16,3)-ReLU-Conv(16,32,3)-ReLU-Conv(32,32,3)-ReLU-Flatten-Linear(2048,10)
  (padding 1) on the first 512 images as 1x8x8.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

import optiscope
from curvature import Quiet, digits, make_cnn, make_mlp, train
from curvature import environment as curvature_environment

THREADS = 2
STEPS = 41
TOL = 0.01
QUIET = Quiet(max_wait=3.0)


def problems() -> dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    x, y = digits()
    out = {}
    torch.manual_seed(0)
    mlp = make_mlp([64, 256, 256, 10])
    train(mlp, x, y)
    out["mlp"] = (mlp.eval(), x, y)
    torch.manual_seed(0)
    cnn = make_cnn()
    images = x.reshape(-1, 1, 8, 8)[:512]
    train(cnn, images, y[:512])
    out["cnn"] = (cnn.eval(), images, y[:512])
    return out


def floor(model: nn.Module, x: torch.Tensor, y: torch.Tensor, points: int) -> float:
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(points):
            float(loss_fn(model(x), y))
    return time.perf_counter() - t0


def loss_landscapes_plane(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    import loss_landscapes
    import loss_landscapes.metrics

    metric = loss_landscapes.metrics.Loss(nn.CrossEntropyLoss(), x, y)
    return loss_landscapes.random_plane(
        model, metric, distance=2.0, steps=STEPS, normalization="filter", deepcopy_model=True
    )


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    QUIET.wait()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rounds: int) -> dict:
    problem = optiscope.Problem(model, nn.CrossEntropyLoss(), (x, y))
    dirs = optiscope.random_directions(problem, seed=0)
    variants: dict[str, Callable[[], Any]] = {
        "floor": lambda: floor(model, x, y, STEPS * STEPS),
        "exact": lambda: optiscope.surface(problem, dirs, steps=STEPS),
        "sampled": lambda: optiscope.surface(problem, dirs, steps=STEPS, tol=TOL),
        "loss-landscapes": lambda: loss_landscapes_plane(model, x, y),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    results: dict[str, Any] = {}
    order = list(variants)
    for r in range(rounds):
        for key in order[r % len(order) :] + order[: r % len(order)]:
            seconds, out = timed(variants[key])
            times[key].append(seconds)
            results[key] = out
    med = {k: statistics.median(v) for k, v in times.items()}
    exact, sampled = results["exact"], results["sampled"]
    err = np.abs(sampled.losses - exact.losses) / np.abs(exact.losses)
    rel_bound = sampled.relative_bounds()
    row = {
        "model": name,
        "samples": len(y),
        "parameters": problem.num_params,
        "seconds": med,
        "ms_per_point": {k: 1e3 * v / STEPS**2 for k, v in med.items()},
        "exact_over_floor": med["exact"] / med["floor"],
        "exact_over_loss_landscapes": med["exact"] / med["loss-landscapes"],
        "sampled_over_floor": med["sampled"] / med["floor"],
        "sampled_over_exact": med["sampled"] / med["exact"],
        "sampled_over_loss_landscapes": med["sampled"] / med["loss-landscapes"],
        "sampled_max_error": float(err.max()),
        "sampled_points_over_1pct": int((err > TOL).sum()),
        "sampled_max_relative_bound": float(rel_bound.max()),
        "sampled_cost": sampled.cost,
        "sampled_exact_fraction": float(sampled.exact.mean()),
        "sample": sampled.sample,
        "first_layer_reused": exact.first_layer,
        "loss_range": [float(exact.losses.min()), float(exact.losses.max())],
        "rounds": rounds,
    }
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | floor ms/pt | exact | loss-landscapes | sampled (tol 1%) | sampled max error | "
        "points > 1% | sampled cost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms = r["ms_per_point"]
        lines.append(
            f"| {r['model']} | {ms['floor']:.2f} | {r['exact_over_floor']:.2f}x floor | "
            f"{ms['loss-landscapes'] / ms['floor']:.2f}x floor (exact is "
            f"{r['exact_over_loss_landscapes']:.2f}x its time) | "
            f"{r['sampled_over_floor']:.3f}x floor, {r['sampled_over_exact']:.3f}x exact | "
            f"{100 * r['sampled_max_error']:.2f}% | {r['sampled_points_over_1pct']} | "
            f"{r['sampled_cost']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round: a smoke run")
    parser.add_argument("--json", help="write the rows and the environment to this file")
    parser.add_argument("--only", choices=["mlp", "cnn"], help="one problem")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    rounds = 1 if args.quick else 3
    print("# optiscope landscape benchmark" + (" (--quick)" if args.quick else ""))
    env = curvature_environment()
    try:
        import importlib.metadata

        env["loss-landscapes"] = importlib.metadata.version("loss-landscapes")
    except Exception:
        env["loss-landscapes"] = "not installed"
    print(json.dumps(env))
    rows = []
    for name, (model, x, y) in problems().items():
        if args.only and name != args.only:
            continue
        row = bench(name, model, x, y, rounds)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"environment": env, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
