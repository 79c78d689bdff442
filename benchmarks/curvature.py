"""Curvature benchmarks: optiscope side by side with its peers, in one run.

Run ``bash benchmarks/setup_env.sh`` once (``make bench`` does both), then::

    .bench-venv/bin/python benchmarks/curvature.py [--quick] [--json results.json]

Every cost is also given as a multiple of one plain gradient (the model's forward and backward
pass on the same data, timed in the same run), and the environment is recorded first
(STYLE.md, 10). Times are medians over repeats, with the competing measurements interleaved, so
that a machine shared with other work slows them alike. A peer that fails prints its error in
its cell and the run goes on.

Problems (all float32, CPU, fixed seeds):

- ``mlp``: 64-256-256-10 ReLU network, cross-entropy, all 1797 ``load_digits`` images
  (pixels / 16), after 200 SGD steps (batch 64, lr 0.05, momentum 0.9).
- ``cnn``: Conv(1,16,3)-ReLU-Conv(16,32,3)-ReLU-Conv(32,32,3)-ReLU-Flatten-Linear(2048,10)
  (padding 1), trained the same way on all images; curvature on the first 256 images as 1x8x8.
- ``tiny``: 64-16-10 ReLU network (1210 parameters) on all 1797 images, trained the same way;
  its exact trace comes from the dense float64 Hessian.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import gc
import importlib.metadata
import importlib.util
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import optiscope
from optiscope import Problem, hessian_eigenvalues, hessian_trace, spectral_density

THREADS = 2
MEMORY_LIMIT_GIB = 8.0
PEERS = {
    "PyHessian": "pyhessian",
    "hessian-eigenthings": "hessian_eigenthings",
    "curvlinops-for-pytorch": "curvlinops",
    "backpack-for-pytorch": "backpack",
}


# -- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table: optiscope's figure, the peers' figures and the target."""

    key: str
    measurement: str
    model: str
    optiscope: str = "n/a"
    peers: dict[str, str] = field(default_factory=dict)
    target: str = ""
    met: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)


def fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_err(err: float | None) -> str:
    return "n/a" if err is None or not math.isfinite(err) else f"{err:.1e}"


def error_text(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"error: {type(err).__name__}: {text[0][:160] if text else ''}"


def met_text(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "-"}[met]


# -- timing ----------------------------------------------------------------------------------


class Quiet:
    """Before a timed repeat, wait (boundedly) until other processes leave the CPUs alone.

    On a shared machine a burst of other work makes torch's OpenMP threads wait on each other,
    slowing a measurement several times over. Other processes' CPU use is the machine's busy
    time (/proc/stat) less this process's own; a repeat starts once it stays under
    ``threshold`` cores for one ``window``, or after ``max_wait`` seconds whatever it is. Then
    it keeps both cores busy for ``spin`` seconds: the first torch call after an idle pause is
    slow (measured here: a 0.8 ms gradient took 11 ms right after a 0.1 s sleep).
    """

    def __init__(
        self,
        threshold: float = 0.3,
        window: float = 0.1,
        max_wait: float = 10.0,
        spin: float = 0.02,
    ):
        self.threshold, self.window, self.max_wait, self.spin = threshold, window, max_wait, spin
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.enabled = Path("/proc/stat").exists()
        self.waited = 0.0
        self.waits = 0
        self.gave_up = 0

    def _busy(self) -> float:
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:9]]
        # user, nice, system, irq, softirq, steal
        return (sum(ticks[:3]) + sum(ticks[5:8])) / self.hz

    def wait(self) -> None:
        if not self.enabled:
            return
        start = time.perf_counter()
        while True:
            b0, p0 = self._busy(), time.process_time()
            time.sleep(self.window)
            b1, p1 = self._busy(), time.process_time()
            if ((b1 - b0) - (p1 - p0)) / self.window < self.threshold:
                break
            if time.perf_counter() - start > self.max_wait:
                self.gave_up += 1
                break
        self.waits += 1
        self.waited += time.perf_counter() - start - self.window
        block = torch.ones(256, 256)
        end = time.perf_counter() + self.spin
        while time.perf_counter() < end:
            block @ block


QUIET = Quiet()


def interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 2
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Wall times of each function, the functions run in turn within each repeat.

    The order rotates from one repeat to the next, so that no function is always the first after
    a pause. A function that raises during the warm-up is dropped and its error returned instead.
    """
    errors: dict[str, str] = {}
    live = dict(fns)
    for name, fn in list(live.items()):
        try:
            for _ in range(warmup):
                fn()
        except Exception as err:
            errors[name] = error_text(err)
            del live[name]
    times: dict[str, list[float]] = {name: [] for name in live}
    names = list(live)
    for r in range(repeats):
        QUIET.wait()
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = live[name]
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times, errors


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(ts) for name, ts in samples.items()}


def paired(samples: dict[str, list[float]], a: str, b: str) -> float:
    """Median over repeats of a's time over b's: robust to load that drifts between repeats."""
    return statistics.median(x / y for x, y in zip(samples[a], samples[b]))


def timed(fn: Callable[[], Any], wait: bool = True) -> tuple[Any, float]:
    if wait:
        QUIET.wait()
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def gradient_now(bench: Bench, n: int = 5) -> float:
    """The median time of a plain gradient measured now, under the load of the moment."""
    QUIET.wait()
    return statistics.median(timed(bench.gradient, wait=False)[1] for _ in range(n))


# -- problems --------------------------------------------------------------------------------


@dataclass
class Bench:
    """A trained model on its data, with the plain gradient's cost measured in this run."""

    name: str
    model: nn.Module
    x: Tensor
    y: Tensor
    loss: float = 0.0
    accuracy: float = 0.0
    gradient_s: float = math.nan

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.params)

    def problem(self, **kwargs: Any) -> Problem:
        return Problem(self.model, nn.CrossEntropyLoss(), (self.x, self.y), **kwargs)

    def gradient(self) -> tuple[Tensor, ...]:
        loss = nn.functional.cross_entropy(self.model(self.x), self.y)
        return torch.autograd.grad(loss, self.params)

    def float64(self) -> Bench:
        return Bench(self.name, copy.deepcopy(self.model).double(), self.x.double(), self.y)


def digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    return x, torch.tensor(data.target, dtype=torch.long)


def train(model: nn.Module, x: Tensor, y: Tensor, steps: int = 200, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval()


def make_mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    )


def build_benches() -> dict[str, Bench]:
    x, y = digits()
    images = x.reshape(-1, 1, 8, 8)
    benches = {}
    for name, ctor, inputs, n in [
        ("mlp", lambda: make_mlp([64, 256, 256, 10]), x, len(x)),
        ("cnn", make_cnn, images, 256),
        ("tiny", lambda: make_mlp([64, 16, 10]), x, len(x)),
    ]:
        torch.manual_seed(0)
        model = ctor()
        train(model, inputs, y)
        bench = Bench(name, model, inputs[:n].contiguous(), y[:n].contiguous())
        with torch.no_grad():
            out = model(bench.x)
            bench.loss = float(nn.functional.cross_entropy(out, bench.y))
            bench.accuracy = float((out.argmax(1) == bench.y).float().mean())
        benches[name] = bench
    return benches


# -- peers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def pyhessian_counter():
    """Count PyHessian's Hessian-vector products (it calls one module-level function)."""
    module = sys.modules["pyhessian.hessian"]
    original = module.hessian_vector_product
    count = [0]

    def counted(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    module.hessian_vector_product = counted
    try:
        yield count
    finally:
        module.hessian_vector_product = original


def pyhessian_of(bench: Bench):
    from pyhessian import hessian

    # PyHessian builds its graph with loss.backward(create_graph=True): a .grad left over from
    # an earlier object would be added in (2H).
    bench.model.zero_grad(set_to_none=True)
    return hessian(bench.model, nn.CrossEntropyLoss(), data=(bench.x, bench.y), cuda=False)


def release(bench: Bench) -> None:
    bench.model.zero_grad(set_to_none=True)


def eigenthings_of(bench: Bench):
    import hessian_eigenthings as he

    crit = nn.CrossEntropyLoss()
    return he.HessianOperator(bench.model, [(bench.x, bench.y)], he.supervised_loss(crit))


def curvlinops_of(bench: Bench, count: list[int] | None = None):
    from curvlinops import HessianLinearOperator

    # Its determinism check spends products; the model here is deterministic (eval mode).
    op = HessianLinearOperator(
        bench.model,
        nn.CrossEntropyLoss(),
        bench.params,
        [(bench.x, bench.y)],
        check_deterministic=False,
        num_data=len(bench.x),
    )
    if count is not None:
        original = op._matmat

        def counted(m):
            count[0] += int(m[0].shape[-1])
            return original(m)

        op._matmat = counted
    return op


# -- measurements ----------------------------------------------------------------------------


def bench_hvp(bench: Bench, repeats: int) -> Row:
    """One Hessian-vector product as a multiple of one gradient, every tool interleaved."""
    row = Row("hvp", "one Hessian-vector product / one gradient", bench.name)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(bench.num_params, generator=gen)
    cached = bench.problem()
    uncached = bench.problem(cache_graph=False)
    fns: dict[str, Callable[[], Any]] = {
        "gradient": bench.gradient,
        "optiscope": lambda: cached.hvp(v),
        "optiscope (no graph reuse)": lambda: uncached.hvp(v),
    }
    try:
        from pyhessian.utils import hessian_vector_product

        ph = pyhessian_of(bench)
        parts = [t.view_as(p) for t, p in zip(v.split([p.numel() for p in ph.params]), ph.params)]
        fns["PyHessian"] = lambda: hessian_vector_product(ph.gradsH, ph.params, parts)
    except Exception as err:
        row.peers["PyHessian"] = error_text(err)
    try:
        he_op = eigenthings_of(bench)
        fns["hessian-eigenthings"] = lambda: he_op.matvec(v)
    except Exception as err:
        row.peers["hessian-eigenthings"] = error_text(err)
    try:
        cl_op = curvlinops_of(bench)
        fns["curvlinops"] = lambda: cl_op @ v
    except Exception as err:
        row.peers["curvlinops"] = error_text(err)
    samples, errors = interleaved(fns, repeats, warmup=3)
    release(bench)
    row.peers.update(errors)
    if "gradient" in errors:
        row.optiscope = errors["gradient"]
        return row
    med = medians(samples)
    grad = med["gradient"]
    bench.gradient_s = grad
    # Ratios are medians of per-repeat ratios: each product is timed right after its gradient.
    ratios = {name: paired(samples, name, "gradient") for name in samples if name != "gradient"}
    row.data = {"gradient_s": grad, "seconds": med, "ratios": ratios}
    if "optiscope" in ratios:
        row.data["ratio"] = ratios["optiscope"]
        plain = ratios.get("optiscope (no graph reuse)", math.nan)
        row.optiscope = (
            f"{ratios['optiscope']:.2f}x ({fmt_time(med['optiscope'])} vs gradient "
            f"{fmt_time(grad)}; without graph reuse {plain:.2f}x)"
        )
    else:
        row.optiscope = errors.get("optiscope", "n/a")
    for name in ("PyHessian", "hessian-eigenthings", "curvlinops"):
        if name in ratios:
            row.peers[name] = f"{ratios[name]:.2f}x ({fmt_time(med[name])})"
    if bench.name == "mlp":
        row.target = "<= 1.7x"
        row.met = bool(row.data.get("ratio", math.inf) <= 1.7)
    else:
        row.target = "(reported)"
    return row


@dataclass
class Reference:
    values: np.ndarray
    eigsh_values: np.ndarray | None
    agreement: float | None
    hvps: int
    seconds: float


def reference_eigenvalues(bench: Bench, k: int = 5) -> Reference:
    """Top-k eigenvalues of the float64 model's Hessian: Lanczos to 1e-10, checked by eigsh."""
    from scipy.sparse.linalg import eigsh

    b64 = bench.float64()
    problem = b64.problem()
    (res, seconds) = timed(
        lambda: hessian_eigenvalues(problem, k=k, tol=1e-10, max_steps=300, seed=1)
    )
    values = res.values.numpy()
    try:
        op = problem.hessian_operator().to_scipy()
        v0 = np.random.default_rng(2).standard_normal(problem.num_params)
        check = np.sort(eigsh(op, k=k, which="LA", tol=1e-10, v0=v0, return_eigenvectors=False))
        check = check[::-1]
        agreement = float(np.max(np.abs(check - values) / np.abs(values)))
    except Exception:
        check, agreement = None, None
    return Reference(values, check, agreement, int(res.hvps), seconds)


def rel_errors(found: Any, reference: np.ndarray) -> np.ndarray:
    found = np.sort(np.asarray(found, dtype=np.float64))[::-1][: len(reference)]
    if len(found) < len(reference):
        return np.full(len(reference), np.inf)
    return np.abs(found - reference) / np.abs(reference)


def calibrate_tol(bench: Bench, reference: np.ndarray, k: int) -> tuple[float, float, int]:
    """The loosest tol whose actual relative error is <= 1e-4 on every wanted eigenvalue."""
    problem = bench.problem()
    err, res = math.inf, None
    for tol in (1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 1e-7):
        res = hessian_eigenvalues(problem, k=k, tol=tol, seed=0)
        err = float(rel_errors(res.values.numpy(), reference[:k]).max())
        if err <= 1e-4:
            return tol, err, int(res.hvps)
    assert res is not None
    return tol, err, int(res.hvps)


def bench_top1(bench: Bench, ref: Reference, repeats: int, tight: bool) -> Row:
    row = Row("top1", "top eigenvalue to 1e-4 relative", bench.name, target="")
    ref1 = ref.values[:1]
    tol, ours_err, hvps = calibrate_tol(bench, ref.values, 1)

    def ours():
        return hessian_eigenvalues(bench.problem(), k=1, tol=tol, seed=0)

    counter: list[int] = [0]
    ph_result: dict[str, Any] = {}

    def theirs():
        torch.manual_seed(0)
        with pyhessian_counter() as count:
            ph = pyhessian_of(bench)
            values, _ = ph.eigenvalues(top_n=1)
        release(bench)
        counter[0] = count[0]
        ph_result["values"] = values

    fns = {"gradient": bench.gradient, "optiscope": ours, "PyHessian": theirs}
    samples, errors = interleaved(fns, repeats, warmup=1)
    med = medians(samples)
    row.data = {"tol": tol, "error": ours_err, "hvps": hvps, "reference": ref1.tolist()}
    if "optiscope" in med:
        t = med["optiscope"]
        row.optiscope = (
            f"{fmt_time(t)} = {paired(samples, 'optiscope', 'gradient'):.0f} gradients, {hvps} "
            f"products, err {fmt_err(ours_err)} (tol={tol:g})"
        )
        row.data["seconds"] = t
    else:
        row.optiscope = errors["optiscope"]
    if "PyHessian" in med:
        t_ph = med["PyHessian"]
        ph_err = float(rel_errors(ph_result["values"], ref1).max())
        row.data.update(pyhessian_seconds=t_ph, pyhessian_hvps=counter[0], pyhessian_error=ph_err)
        text = (
            f"{fmt_time(t_ph)} = {paired(samples, 'PyHessian', 'gradient'):.0f} gradients, "
            f"{counter[0]} products, "
            f"err {fmt_err(ph_err)} (defaults: tol 1e-3, maxIter 100)"
        )
        if "optiscope" in med:
            row.data["time_ratio"] = paired(samples, "optiscope", "PyHessian")
            text += f"; optiscope/PyHessian time {row.data['time_ratio']:.2f}"
        row.peers["PyHessian"] = text
    else:
        row.peers["PyHessian"] = errors["PyHessian"]
    if tight:
        try:
            torch.manual_seed(0)
            with pyhessian_counter() as count:
                (values, _), t_tight = timed(
                    lambda: pyhessian_of(bench).eigenvalues(top_n=1, tol=1e-6, maxIter=300)
                )
            release(bench)
            tight_err = float(rel_errors(values, ref1).max())
            g = gradient_now(bench)
            row.peers["PyHessian tol=1e-6"] = (
                f"{fmt_time(t_tight)} = {t_tight / g:.0f} gradients, {count[0]} products, "
                f"err {fmt_err(tight_err)}"
            )
            row.data.update(pyhessian_tight_hvps=count[0], pyhessian_tight_error=tight_err)
        except Exception as err:
            row.peers["PyHessian tol=1e-6"] = error_text(err)
    row.target = "time <= PyHessian's, err <= 1e-4"
    row.met = bool(row.data.get("time_ratio", math.inf) <= 1.0 and ours_err <= 1e-4)
    return row


def bench_top5(bench: Bench, ref: Reference, repeats: int, scan: list[int]) -> Row:
    row = Row("top5", "top-5 eigenvalues to 1e-4 relative", bench.name)
    row.target = "<= 30 products, err <= 1e-4"
    tol, ours_err, hvps = calibrate_tol(bench, ref.values, 5)
    ph_out: dict[str, Any] = {}

    def theirs():
        torch.manual_seed(0)
        with pyhessian_counter() as count:
            ph_out["values"], _ = pyhessian_of(bench).eigenvalues(top_n=5)
        release(bench)
        ph_out["hvps"] = count[0]

    samples, errors = interleaved(
        {
            "gradient": bench.gradient,
            "optiscope": lambda: hessian_eigenvalues(bench.problem(), k=5, tol=tol, seed=0),
            "PyHessian": theirs,
        },
        repeats,
        warmup=0,
    )
    med = medians(samples)
    row.data = {"tol": tol, "error": ours_err, "hvps": hvps, "reference": ref.values.tolist()}
    if "optiscope" in med:
        t = med["optiscope"]
        row.data["seconds"] = t
        row.optiscope = (
            f"{hvps} products, err {fmt_err(ours_err)} (tol={tol:g}), {fmt_time(t)} = "
            f"{paired(samples, 'optiscope', 'gradient'):.0f} gradients"
        )
    else:
        row.optiscope = errors["optiscope"]
    if "PyHessian" in med:
        t_ph = med["PyHessian"]
        ph_err = float(rel_errors(ph_out["values"], ref.values).max())
        row.peers["PyHessian"] = (
            f"{ph_out['hvps']} products, err {fmt_err(ph_err)}, {fmt_time(t_ph)} = "
            f"{paired(samples, 'PyHessian', 'gradient'):.0f} gradients (defaults)"
        )
        row.data.update(
            pyhessian_hvps=ph_out["hvps"], pyhessian_error=ph_err, pyhessian_seconds=t_ph
        )
    else:
        row.peers["PyHessian"] = errors["PyHessian"]
    try:
        import hessian_eigenthings as he

        op = eigenthings_of(bench)
        found: dict[int, float] = {}
        took: dict[int, float] = {}
        # Its Lanczos runs a fixed number of steps (default 2k): try more until 1e-4 is reached.
        for steps in [10, *scan]:
            res, took[steps] = timed(
                partial(he.lanczos, op, k=5, max_iter=steps, which="LA", seed=0)
            )
            found[steps] = float(rel_errors(res.eigenvalues.numpy(), ref.values).max())
            if steps != 10 and found[steps] <= 1e-4:
                break
        g = gradient_now(bench)
        enough = [s for s, e in found.items() if e <= 1e-4]
        text = (
            f"default max_iter=10: err {fmt_err(found[10])}, {fmt_time(took[10])} = "
            f"{took[10] / g:.0f} gradients; "
        )
        if enough:
            s = min(enough)
            tried = ", ".join(str(t) for t in found if 10 < t < s)
            text += f"max_iter={s} reaches 1e-4: err {fmt_err(found[s])}, {fmt_time(took[s])}"
            text += f" = {took[s] / g:.0f} gradients" + (f" (not at {tried})" if tried else "")
        else:
            text += f"not 1e-4 at max_iter={max(found)} (err {fmt_err(found[max(found)])})"
        row.peers["hessian-eigenthings"] = text
        row.data["eigenthings_errors"] = found
    except Exception as err:
        row.peers["hessian-eigenthings"] = error_text(err)
    row.met = bool(hvps <= 30 and ours_err <= 1e-4)
    return row


def bench_trace(tiny: Bench, exact: float, seeds: int, budget: int) -> list[Row]:
    """Mean relative error of 200-product trace estimates over seeds, on the tiny MLP."""
    import hessian_eigenthings as he
    from curvlinops import hutchinson_trace as cl_hutchinson
    from curvlinops import hutchpp_trace as cl_hutchpp

    third = budget - budget % 3
    methods: dict[str, Callable[[int], tuple[float, int]]] = {}

    def ours(method: str) -> Callable[[int], tuple[float, int]]:
        def run(seed: int) -> tuple[float, int]:
            est = hessian_trace(tiny.problem(), budget, method=method, seed=seed)
            return est.value, est.hvps

        return run

    def pyhessian(seed: int) -> tuple[float, int]:
        torch.manual_seed(seed)
        with pyhessian_counter() as count:
            ph = pyhessian_of(tiny)
            # tol=0: run all maxIter products (its stopping test divides by the running mean).
            samples = ph.trace(maxIter=budget, tol=0.0)
        release(tiny)
        return float(np.mean(samples)), count[0]

    def curvlinops(fn: Callable, m: int) -> Callable[[int], tuple[float, int]]:
        def run(seed: int) -> tuple[float, int]:
            torch.manual_seed(seed)
            count = [0]
            op = curvlinops_of(tiny, count)
            return float(fn(op, m)), count[0]

        return run

    def eigenthings(seed: int) -> tuple[float, int]:
        count = [0]
        op = eigenthings_of(tiny)
        original = op.matvec

        def counted(v):
            count[0] += 1
            return original(v)

        op.matvec = counted
        return he.hutch_plus_plus(op, num_matvecs=budget, seed=seed).estimate, count[0]

    methods["optiscope hutch++"] = ours("hutch++")
    methods["optiscope hutchinson"] = ours("hutchinson")
    methods["optiscope krylov"] = ours("krylov")
    methods["PyHessian"] = pyhessian
    methods["curvlinops hutchinson_trace"] = curvlinops(cl_hutchinson, budget)
    methods["curvlinops hutchpp_trace"] = curvlinops(cl_hutchpp, third)
    methods["hessian-eigenthings hutch_plus_plus"] = eigenthings
    results: dict[str, dict[str, Any]] = {
        n: {"errors": [], "times": [], "gradients": []} for n in methods
    }
    for seed in range(seeds):
        g = gradient_now(tiny)
        for name, fn in methods.items():
            out = results[name]
            if "error" in out:
                continue
            try:
                (value, hvps), seconds = timed(partial(fn, seed))
            except Exception as err:
                out["error"] = error_text(err)
                continue
            out["errors"].append(abs(value - exact) / abs(exact))
            out["times"].append(seconds)
            out["gradients"].append(seconds / g)
            out["hvps"] = hvps
    summary = {}
    for name, out in results.items():
        if "error" in out:
            summary[name] = out["error"]
            continue
        mean_err = float(np.mean(out["errors"]))
        t = statistics.median(out["times"])
        out.update(mean_error=mean_err, seconds=t)
        summary[name] = (
            f"mean err {mean_err:.4f}, {out['hvps']} products, {fmt_time(t)} = "
            f"{statistics.median(out['gradients']):.0f} gradients"
        )
    ph_times = results["PyHessian"]["times"] if "error" not in results["PyHessian"] else []
    rows = []
    for i, method in enumerate(("hutch++", "hutchinson", "krylov")):
        name = f"optiscope {method}"
        out = results[name]
        row = Row(
            f"trace_{method}",
            f"trace, {budget} products, {method} (mean over {seeds} seeds)",
            f"tiny ({tiny.num_params} params)",
            target="mean err <= 0.002, time <= PyHessian's",
        )
        row.optiscope = summary[name]
        if "seconds" in out and ph_times:
            # Each seed's run is timed right next to PyHessian's run with the same seed.
            ratio = statistics.median(a / b for a, b in zip(out["times"], ph_times))
            out["time_ratio_to_pyhessian"] = ratio
            row.optiscope += f"; time / PyHessian's {ratio:.2f}"
            row.met = bool(out["mean_error"] <= 0.002 and ratio <= 1.0)
        else:
            row.met = False
        if i == 0:
            row.peers = {n: s for n, s in summary.items() if not n.startswith("optiscope")}
        else:
            row.peers = {"(peers)": "as in the first trace row"}
        row.data = {
            "exact_trace": exact,
            "results": {
                n: {k: v for k, v in o.items() if k != "times"} for n, o in results.items()
            },
        }
        rows.append(row)
    return rows


def bench_density(bench: Bench, repeats: int) -> Row:
    """spectral_density(steps=100) against 100 HVPs, and the time it spends outside its HVPs."""
    row = Row("density", "spectral density, 100 Lanczos steps / 100 HVPs", bench.name)
    row.target = "<= 1.1x" if bench.name == "mlp" else "(reported)"
    problem = bench.problem()
    gen = torch.Generator().manual_seed(0)
    vectors = [torch.randn(problem.num_params, generator=gen) for _ in range(100)]
    problem.hvp(vectors[0])  # build the graph once: both sides then reuse it
    inside = [0.0]
    hvp = problem.hvp

    def clocked_hvp(v: Tensor) -> Tensor:
        start = time.perf_counter()
        out = hvp(v)
        inside[0] += time.perf_counter() - start
        return out

    def hvps():
        for v in vectors:
            hvp(v)

    shares: list[float] = []

    def density():
        # The products inside are clocked too: the time outside them is the algorithm's own.
        inside[0] = 0.0
        problem.hvp = clocked_hvp
        try:
            start = time.perf_counter()
            spectral_density(problem, steps=100)
            shares.append((time.perf_counter() - start) / inside[0])
        finally:
            del problem.hvp

    samples, errors = interleaved({"100 HVPs": hvps, "optiscope": density}, repeats, warmup=1)
    if "optiscope" not in samples or "100 HVPs" not in samples:
        row.optiscope = "; ".join(errors.values())
        row.met = False if bench.name == "mlp" else None
        return row
    med = medians(samples)
    base = med["100 HVPs"]
    ratio = paired(samples, "optiscope", "100 HVPs")
    own = statistics.median(shares[1:])  # shares[0] is the warm-up's
    row.optiscope = (
        f"{ratio:.2f}x ({fmt_time(med['optiscope'])} vs {fmt_time(base)}); total / its own "
        f"100 HVPs {own:.2f}x"
    )
    row.data = {"ratio": ratio, "total_over_own_hvps": own, "seconds": med}
    row.met = bool(ratio <= 1.1) if bench.name == "mlp" else None
    try:
        import hessian_eigenthings as he

        op = eigenthings_of(bench)
        _, t = timed(lambda: he.spectral_density(op, num_runs=1, lanczos_steps=100, seed=0))
        _, t_base = timed(hvps)  # right after, under the same load
        row.peers["hessian-eigenthings"] = f"{t / t_base:.2f}x ({fmt_time(t)})"
        row.data["eigenthings_seconds"] = t
    except Exception as err:
        row.peers["hessian-eigenthings"] = error_text(err)
    try:
        from curvlinops import lanczos_approximate_spectrum
        from threadpoolctl import threadpool_limits

        count = [0]
        op = curvlinops_of(bench, count)
        torch.manual_seed(0)
        with threadpool_limits(1, user_api="blas"):
            _, t = timed(lambda: lanczos_approximate_spectrum(op, ncv=100))
        _, t_base = timed(hvps)
        row.peers["curvlinops"] = (
            f"{t / t_base:.2f}x ({fmt_time(t)}, {count[0]} products incl. eigsh for the "
            "spectrum's ends)"
        )
        row.data.update(curvlinops_seconds=t, curvlinops_hvps=count[0])
    except Exception as err:
        row.peers["curvlinops"] = error_text(err)
    return row


def bench_exact_trace(bench: Bench, repeats: int, dense: float | None) -> Row:
    """Exact trace from the Hessian diagonal: optiscope's hessian_trace vs BackPACK DiagHessian."""
    row = Row("exact_trace", "exact trace (Hessian diagonal)", bench.name)
    row.target = "time <= BackPACK's"
    fns: dict[str, Callable[[], Any]] = {"gradient": bench.gradient}
    values: dict[str, float] = {}
    have_ours = importlib.util.find_spec("optiscope.problem.hessdiag") is not None
    if have_ours:

        def ours():
            est = hessian_trace(bench.problem())
            values["optiscope"] = est.value
            values["optiscope_method"] = est.method

        fns["optiscope"] = ours
    try:
        from backpack import backpack, extend
        from backpack.extensions import DiagHessian

        model = extend(copy.deepcopy(bench.model))
        loss_fn = extend(nn.CrossEntropyLoss())

        def theirs():
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model(bench.x), bench.y)
            with backpack(DiagHessian()):
                loss.backward()
            values["BackPACK"] = float(sum(p.diag_h.double().sum() for p in model.parameters()))

        fns["BackPACK"] = theirs
    except Exception as err:
        row.peers["BackPACK DiagHessian"] = error_text(err)
    samples, errors = interleaved(fns, repeats, warmup=1)
    med = medians(samples)
    # A check value: the dense Hessian's trace (tiny) or a 300-product Hutch++ estimate.
    if dense is not None:
        check, check_name = dense, "dense"
    else:
        est = hessian_trace(bench.problem(), 300, method="hutch++", seed=0)
        check, check_name = est.value, f"Hutch++ 300 (+-{abs(est.std_error / est.value):.1e})"
    row.data = {"check": check, "check_name": check_name, "seconds": med, "values": values}
    if not have_ours:
        row.optiscope = "n/a (not available: no module optiscope.problem.hessdiag)"
    elif "optiscope" in med:
        t = med["optiscope"]
        diff = abs(values["optiscope"] - check) / abs(check)
        row.optiscope = (
            f"{fmt_time(t)} = {paired(samples, 'optiscope', 'gradient'):.1f} gradients, "
            f"trace {values['optiscope']:.6g} "
            f"[{values['optiscope_method']}], rel. diff vs {check_name} {diff:.1e}"
        )
    else:
        row.optiscope = errors["optiscope"]
    if "BackPACK" in med:
        t = med["BackPACK"]
        diff = abs(values["BackPACK"] - check) / abs(check)
        text = (
            f"{fmt_time(t)} = {paired(samples, 'BackPACK', 'gradient'):.1f} gradients, "
            f"trace {values['BackPACK']:.6g}, "
            f"rel. diff vs {check_name} {diff:.1e}"
        )
        if "optiscope" in values:
            both = abs(values["optiscope"] - values["BackPACK"]) / abs(values["BackPACK"])
            text += f", vs optiscope {both:.1e}"
        row.peers["BackPACK DiagHessian"] = text
    elif "BackPACK" in errors:
        row.peers["BackPACK DiagHessian"] = errors["BackPACK"]
    if "optiscope" in med and "BackPACK" in med:
        ratio = paired(samples, "optiscope", "BackPACK")
        row.data["time_ratio"] = ratio
        row.optiscope += f"; time / BackPACK's {ratio:.2f}"
        row.met = bool(ratio <= 1.0)
    else:
        row.met = False if have_ours else None
    return row


# -- memory (each measurement in a fresh process) --------------------------------------------


def _status_kib(field_name: str, pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_child(mode: str, path: str) -> None:
    """Run one measurement and print its peak memory growth (KiB) as JSON."""
    import resource

    torch.set_num_threads(THREADS)
    saved = torch.load(path, weights_only=True)
    model = make_cnn()
    model.load_state_dict(saved["state"])
    model.eval()
    bench = Bench("cnn", model, saved["x"], saved["y"])
    problem = bench.problem()
    v = torch.randn(problem.num_params)
    count: list[int] = [0]
    op = curvlinops_of(bench, count) if mode.startswith("curvlinops") else None
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak (VmHWM) to the current RSS
        base, how = _status_kib("VmRSS"), "VmHWM"
    except OSError:
        base, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    start = time.perf_counter()
    if mode == "one":
        problem.hvp(v)
    elif mode == "trace200":
        hessian_trace(problem, 200, method="hutch++", seed=0)
    elif mode == "hutchinson200":
        hessian_trace(problem, 200, method="hutchinson", seed=0)
    elif mode.startswith("curvlinops:"):
        from curvlinops import hutchinson_trace

        columns = int(mode.split(":")[1])
        assert op is not None
        if columns == 1:
            _ = op @ v
        else:
            hutchinson_trace(op, columns)
    seconds = time.perf_counter() - start
    if how == "VmHWM":
        peak = _status_kib("VmHWM")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_kib": base, "peak_kib": peak, "how": how, "seconds": seconds}))


def run_memory_child(mode: str, path: str, limit_gib: float) -> dict[str, Any]:
    """Run a child, killing it if its RSS passes the limit."""
    cmd = [sys.executable, __file__, "--memory-child", mode, "--memory-file", path]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, max_seen = False, 0
    while True:
        try:
            out, err = proc.communicate(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            rss = _status_kib("VmRSS", proc.pid) or 0
            max_seen = max(max_seen, rss)
            if rss > limit_gib * 2**20:
                proc.kill()
                killed = True
    if killed:
        return {"error": f"killed at {max_seen / 2**20:.1f} GiB RSS (limit {limit_gib} GiB)"}
    if proc.returncode != 0:
        lines = err.strip().splitlines()
        return {"error": f"exit {proc.returncode}: {lines[-1] if lines else ''}"}
    result = json.loads(out.strip().splitlines()[-1])
    result["growth_kib"] = max(result["peak_kib"] - result["base_kib"], 1)
    return result


def bench_memory(bench: Bench, quick: bool) -> Row:
    row = Row("memory", "peak memory: 200 trace products / one product", bench.name)
    row.target = "<= 2x"
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "cnn.pt")
        torch.save({"state": bench.model.state_dict(), "x": bench.x, "y": bench.y}, path)
        one = run_memory_child("one", path, MEMORY_LIMIT_GIB)
        trace = run_memory_child("trace200", path, MEMORY_LIMIT_GIB)
        hutch = {} if quick else run_memory_child("hutchinson200", path, MEMORY_LIMIT_GIB)
        row.data = {"one": one, "trace200": trace, "hutchinson200": hutch}
        if "error" in one or "error" in trace:
            row.optiscope = f"one: {one.get('error', 'ok')}; trace: {trace.get('error', 'ok')}"
            row.met = False
        else:
            ratio = trace["growth_kib"] / one["growth_kib"]
            row.data["ratio"] = ratio
            row.optiscope = (
                f"{ratio:.2f}x (Hutch++ 200: +{trace['growth_kib'] / 1024:.0f} MiB over the "
                f"process at rest, one product: +{one['growth_kib'] / 1024:.0f} MiB"
            )
            if hutch and "error" not in hutch:
                row.optiscope += f"; Hutchinson 200: {hutch['growth_kib'] / one['growth_kib']:.2f}x"
            row.optiscope += ")"
            row.met = bool(ratio <= 2.0)
        try:
            row.peers["curvlinops hutchinson_trace"] = curvlinops_memory(path, row.data)
        except Exception as err:
            row.peers["curvlinops hutchinson_trace"] = error_text(err)
    return row


def curvlinops_memory(path: str, data: dict[str, Any]) -> str:
    """curvlinops multiplies all probes at once (vmap): extrapolate before running 200."""
    single = run_memory_child("curvlinops:1", path, MEMORY_LIMIT_GIB)
    small = run_memory_child("curvlinops:4", path, MEMORY_LIMIT_GIB)
    larger = run_memory_child("curvlinops:16", path, MEMORY_LIMIT_GIB)
    data["curvlinops"] = {"1": single, "4": small, "16": larger}
    for r in (single, small, larger):
        if "error" in r:
            return r["error"]
    per_column = max(larger["growth_kib"] - small["growth_kib"], 0) / 12
    predicted = larger["growth_kib"] + per_column * (200 - 16)
    data["curvlinops"]["predicted_200_kib"] = predicted
    base = single["growth_kib"]
    head = (
        f"one product +{base / 1024:.0f} MiB; 16 probes +{larger['growth_kib'] / 1024:.0f} MiB "
        f"({larger['growth_kib'] / base:.1f}x)"
    )
    if predicted > MEMORY_LIMIT_GIB * 2**20:
        return (
            f"{head}; 200 probes skipped: predicted +{predicted / 2**20:.1f} GiB "
            f"({predicted / base:.0f}x) > {MEMORY_LIMIT_GIB:g} GiB"
        )
    full = run_memory_child("curvlinops:200", path, MEMORY_LIMIT_GIB)
    data["curvlinops"]["200"] = full
    if "error" in full:
        return f"{head}; 200 probes: {full['error']}"
    growth = full["growth_kib"]
    return f"{head}; 200 probes +{growth / 2**20:.2f} GiB = {growth / base:.1f}x"


# -- environment and report ------------------------------------------------------------------


def environment() -> dict[str, Any]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    commit = "unknown"
    with contextlib.suppress(Exception):
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "scipy": version("scipy"),
        "optiscope": f"{optiscope.__version__} ({commit})",
        "optiscope.problem.hessdiag": importlib.util.find_spec("optiscope.problem.hessdiag")
        is not None,
        **{dist: version(dist) for dist in PEERS},
    }


def markdown(rows: list[Row]) -> str:
    lines = [
        "| measurement | model | optiscope | peers | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        peers = "; ".join(f"**{k}**: {v}" for k, v in r.peers.items()) or "-"
        cells = [r.measurement, r.model, r.optiscope, peers, r.target, met_text(r.met)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and seeds: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated subset of: hvp,top1,top5,trace,density,memory,exact",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--memory-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.memory_file)
        return 0

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(THREADS)
    # SciPy's and NumPy's OpenBLAS threads would compete with torch's on a 2-core machine.
    threadpool_limits(1, user_api="blas")
    # PyHessian calls backward(create_graph=True); BackPACK's hooks fire on inputs without grad.
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    quick = args.quick
    wanted = {s for s in args.only.split(",") if s} or {
        "hvp",
        "top1",
        "top5",
        "trace",
        "density",
        "memory",
        "exact",
    }
    started = time.perf_counter()
    env = environment()
    print("# optiscope curvature benchmarks" + (" (--quick)" if quick else ""))
    print()
    for k, v in env.items():
        print(f"- {k}: {v}")
    if env["load_average"][0] > 0.5:
        print(
            f"- note: the machine is busy before this run starts (load {env['load_average'][0]}):"
            " absolute times are noisy; the ratios pair measurements taken back to back"
        )
    for name in PEERS.values():
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    benches = build_benches()
    for b in benches.values():
        print(
            f"- problem {b.name}: {b.num_params} parameters, {len(b.x)} samples, "
            f"loss {b.loss:.3f}, accuracy {b.accuracy:.3f}"
        )
    print(flush=True)

    rows: list[Row] = []

    def run(label: str, fn: Callable[[], Row | list[Row]], model: str) -> None:
        t0 = time.perf_counter()
        try:
            out = fn()
        except Exception as err:
            traceback.print_exc()
            out = Row(label, label, model, optiscope=error_text(err), met=False)
        new = out if isinstance(out, list) else [out]
        rows.extend(new)
        for r in new:
            print(f"[{time.perf_counter() - t0:6.1f} s] {r.key} {r.model}: {r.optiscope}")
            for k, v in r.peers.items():
                print(f"           {k}: {v}")
        sys.stdout.flush()

    reps = 8 if quick else 30
    # The gradient's cost is measured in the HVP rows and used by every later row.
    for name in ("mlp", "cnn", "tiny"):
        b = benches[name]
        if name == "tiny" or "hvp" not in wanted:
            samples, _ = interleaved({"g": b.gradient}, reps)
            b.gradient_s = statistics.median(samples["g"])
        else:
            run("hvp", partial(bench_hvp, b, reps), name)

    if {"top1", "top5"} & wanted:
        refs = {}
        for name in ("mlp", "cnn"):
            refs[name] = ref = reference_eigenvalues(benches[name])
            print(
                f"reference {name}: top-5 {np.array2string(ref.values, precision=6)} "
                f"({ref.hvps} float64 products, {fmt_time(ref.seconds)}); eigsh agrees to "
                f"{fmt_err(ref.agreement)}"
            )
        for name in ("mlp", "cnn"):
            if "top1" in wanted:
                top1 = partial(bench_top1, benches[name], refs[name], 2 if quick else 5, not quick)
                run("top1", top1, name)
            if "top5" in wanted:
                scan = [30, 60] if quick else [20, 30, 40, 60, 80]
                top5 = partial(bench_top5, benches[name], refs[name], 1 if quick else 3, scan)
                run("top5", top5, name)

    tiny = benches["tiny"]
    dense = float(tiny.float64().problem().dense_hessian().trace())
    print(f"tiny MLP exact trace (dense float64 Hessian): {dense:.8g}")
    if "trace" in wanted:
        run("trace", lambda: bench_trace(tiny, dense, 3 if quick else 10, 200), "tiny")
    if "density" in wanted:
        for name in ("mlp", "cnn"):
            run("density", partial(bench_density, benches[name], 1 if quick else 5), name)
    if "memory" in wanted:
        run("memory", lambda: bench_memory(benches["cnn"], quick), "cnn")
    if "exact" in wanted:
        for name in ("tiny", "mlp", "cnn"):
            check = dense if name == "tiny" else None
            run("exact", partial(bench_exact_trace, benches[name], 3 if quick else 9, check), name)

    elapsed = time.perf_counter() - started
    env["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    env["wall_seconds"] = round(elapsed, 1)
    env["waited_for_quiet_s"] = round(QUIET.waited, 1)
    env["repeats_started_under_load"] = QUIET.gave_up
    env["repeats_total"] = QUIET.waits
    print()
    print(markdown(rows))
    print()
    print(
        f"total {elapsed:.0f} s, of which {QUIET.waited:.0f} s waiting for other processes to "
        f"leave the CPUs; {QUIET.gave_up} of {QUIET.waits} timed repeats started under load "
        f"anyway; load average at the end {env['load_average_end']}"
    )
    if args.json:
        payload = {
            "environment": env,
            "quick": quick,
            "problems": {
                b.name: {
                    "parameters": b.num_params,
                    "samples": len(b.x),
                    "loss": b.loss,
                    "accuracy": b.accuracy,
                    "gradient_s": b.gradient_s,
                }
                for b in benches.values()
            },
            "rows": [asdict(r) for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
