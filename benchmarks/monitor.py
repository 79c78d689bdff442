"""Monitor overhead: optiscope's Monitor against a plain training step and against Cockpit.

Run ``bash benchmarks/setup_env.sh`` once, then::

    .bench-venv/bin/python benchmarks/monitor.py [--quick] [--json results.json] [--profile]

Every cost is a ratio to a plain training step (``zero_grad``, forward, loss, ``backward``,
``optimizer.step()``) of the same model on the same batches, timed in the same run. Each variant
trains its own copy of the model from the same initial weights on the same sequence of batches;
the variants run in turn (blocks of consecutive steps, the order rotated from round to round,
after waiting for the machine to be quiet) so that load which drifts slows them alike. Ratios are
medians over rounds of per-round ratios: for the quantities taken at every step, of the median
step time; for the presets with schedules, of the mean step time over whole schedule periods
(amortised).

Problems (float32, CPU, 2 threads, fixed seeds; batches of 128 drawn from all 1797
``load_digits`` images, pixels / 16; SGD, lr 0.05):

- ``mlp``: 64-256-256-10 ReLU network, cross-entropy.
- ``cnn``: Conv(1,16,3)-ReLU-Conv(16,32,3)-ReLU-Conv(32,32,3)-ReLU-Flatten-Linear(2048,10)
  (padding 1) on the images as 1x8x8.

Cockpit (cockpit-for-pytorch) runs as its documentation shows: model and loss
``backpack.extend``-ed, individual losses with ``reduction="none"``, and
``with cockpit(step, info={...}): loss.backward(create_graph=cockpit.create_graph(step))``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import optiscope
from curvature import PEERS as CURVATURE_PEERS
from curvature import Quiet, digits, make_cnn, make_mlp
from curvature import environment as curvature_environment

THREADS = 2
BATCH = 128
LR = 0.05
# Steps in one block of the amortised presets: a whole period of each preset's schedules.
PERIODS = {"curvature": 500, "full": 10}
QUIET = Quiet(max_wait=3.0)


# -- problems and training loops -------------------------------------------------------------


@dataclass
class Task:
    """A model constructor and a fixed sequence of batches (cycled)."""

    name: str
    make: Callable[[], nn.Module]
    batches: list[tuple[torch.Tensor, torch.Tensor]]

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return self.make()

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model().parameters())


def build_tasks(num_batches: int = 64) -> dict[str, Task]:
    x, y = digits()
    images = x.reshape(-1, 1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    idx = [torch.randint(0, len(x), (BATCH,), generator=gen) for _ in range(num_batches)]
    return {
        "mlp": Task("mlp", lambda: make_mlp([64, 256, 256, 10]), [(x[i], y[i]) for i in idx]),
        "cnn": Task("cnn", make_cnn, [(images[i], y[i]) for i in idx]),
    }


class Loop:
    """One variant: its own model, optimizer and (optional) monitor; ``step()`` trains one step."""

    def __init__(self, task: Task):
        self.task = task
        self.model = task.model()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.loss_fn = nn.CrossEntropyLoss()
        self.i = 0

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.task.batches[self.i % len(self.task.batches)]
        self.i += 1
        return b

    def step(self) -> None:
        x, y = self.batch()
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.opt.step()

    def summary(self) -> str:
        return ""

    def close(self) -> None:
        pass


class OptiscopeLoop(Loop):
    """The plain loop plus ``monitor.step(loss, batch=(x, y))`` before ``optimizer.step()``."""

    def __init__(self, task: Task, out: str | None = None, **kwargs: Any):
        super().__init__(task)
        self.out = out
        self.monitor = optiscope.Monitor(
            self.model, self.opt, out=out, loss_fn=self.loss_fn, **kwargs
        )

    def step(self) -> None:
        x, y = self.batch()
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.monitor.step(loss, batch=(x, y))
        self.opt.step()

    def summary(self) -> str:
        keys: set[str] = set()
        for r in self.monitor.history:
            keys.update(r.get("values", {}))
        text = f"{len(self.monitor.history)} records; quantities seen: {', '.join(sorted(keys))}"
        if self.out is not None:
            path = Path(self.out) / "records.jsonl"
            if path.exists():
                text += f"; records.jsonl {path.stat().st_size / 1024:.0f} KiB"
        return text

    def close(self) -> None:
        self.monitor.close()


class CockpitLoop(Loop):
    """Cockpit's documented loop, with one of its configurations at every step."""

    def __init__(self, task: Task, config: str):
        from backpack import extend
        from cockpit import Cockpit
        from cockpit.utils.configuration import configuration

        super().__init__(task)
        self.model = extend(self.model)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.loss_fn = extend(nn.CrossEntropyLoss())
        self.individual_loss_fn = nn.CrossEntropyLoss(reduction="none")
        self.cockpit = Cockpit(self.model.parameters(), quantities=configuration(config))
        self.global_step = 0

    def step(self) -> None:
        x, y = self.batch()
        self.opt.zero_grad()
        outputs = self.model(x)
        loss = self.loss_fn(outputs, y)
        losses = self.individual_loss_fn(outputs, y)
        info = {"batch_size": x.shape[0], "individual_losses": losses, "loss": loss}
        info["optimizer"] = self.opt
        with self.cockpit(self.global_step, info=info):
            loss.backward(create_graph=self.cockpit.create_graph(self.global_step))
        self.opt.step()
        self.global_step += 1

    def summary(self) -> str:
        out = self.cockpit.get_output()
        keys: set[str] = set()
        for v in out.values():
            keys.update(v)
        return f"{len(out)} steps of output; quantities: {', '.join(sorted(keys))}"


def tiers() -> tuple[str, ...]:
    return tuple(getattr(sys.modules["optiscope.monitor.monitor"], "TIERS", ()))


def every_step(*names: str) -> dict[str, int]:
    """A schedule with the named tiers (those this optiscope has) at every step, others off."""
    return {t: int(t in names) for t in tiers()}


# -- timing ----------------------------------------------------------------------------------


def rounds_of(
    loops: dict[str, Loop], rounds: int, steps: dict[str, int], warmup: dict[str, int]
) -> dict[str, list[list[float]]]:
    """Per-step wall times: ``times[name][round]`` lists the steps of that round's block."""
    for name, loop in loops.items():
        for _ in range(warmup[name]):
            loop.step()
    times: dict[str, list[list[float]]] = {name: [] for name in loops}
    names = list(loops)
    for r in range(rounds):
        gc.collect()
        QUIET.wait()
        for name in names[r % len(names) :] + names[: r % len(names)]:
            step = loops[name].step
            block = []
            for _ in range(steps[name]):
                start = time.perf_counter()
                step()
                block.append(time.perf_counter() - start)
            times[name].append(block)
    return times


@dataclass
class Stat:
    """One variant's timing against the plain step of the same rounds."""

    name: str
    median_step_s: float
    mean_step_s: float
    ratio: float  # median over rounds of the per-round ratio (median or mean, see `how`)
    how: str
    steps: int
    spread: tuple[float, float] = (math.nan, math.nan)  # quartiles of the per-round ratios
    summary: str = ""

    @property
    def overhead(self) -> float:
        return self.ratio - 1.0


def stat(name: str, times: dict[str, list[list[float]]], how: str, base: str = "plain") -> Stat:
    agg = statistics.median if how == "median" else statistics.fmean
    per_round = [agg(v) / agg(b) for v, b in zip(times[name], times[base])]
    flat = [t for block in times[name] for t in block]
    q = statistics.quantiles(per_round, n=4) if len(per_round) >= 2 else [math.nan] * 3
    return Stat(
        name,
        statistics.median(flat),
        statistics.fmean(flat),
        statistics.median(per_round),
        how,
        len(flat),
        (q[0], q[2]),
    )


def fmt_us(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


# -- the measurements ------------------------------------------------------------------------


@dataclass
class Row:
    measurement: str
    model: str
    optiscope: str
    cockpit: str = "-"
    target: str = ""
    met: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)


def params_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def cheap_tier(task: Task, quick: bool, log: Callable[[str], None]) -> tuple[list[Row], dict]:
    """The default preset at every step, in memory and writing records, against plain steps."""
    target = 1.15 if task.name == "mlp" else 1.05
    with tempfile.TemporaryDirectory() as tmp:
        loops: dict[str, Loop] = {
            "plain": Loop(task),
            "default": OptiscopeLoop(task),
            "default, out=dir": OptiscopeLoop(task, out=tmp),
        }
        if "update" in tiers():
            loops["default, update every step"] = OptiscopeLoop(task, every={"update": 1})
        if task.name == "mlp":
            rounds, steps = (8, 10) if quick else (40, 25)
        else:
            rounds, steps = (6, 5) if quick else (30, 10)
        n = dict.fromkeys(loops, steps)
        times = rounds_of(loops, rounds, n, dict.fromkeys(loops, 20))
        stats = {k: stat(k, times, "median") for k in loops}
        for k, loop in loops.items():
            stats[k].summary = loop.summary()
            loop.close()
    unchanged = params_equal(loops["plain"].model, loops["default"].model)
    base = stats["plain"].median_step_s
    log(f"  plain step {fmt_us(base)} (median of {stats['plain'].steps})")
    rows = []
    for k in loops:
        if k == "plain":
            continue
        s = stats[k]
        log(f"  {k}: {s.ratio:.3f}x, {fmt_us(s.median_step_s)}; {s.summary}")
        label = {
            "default": "preset 'default' at every step, out=None",
            "default, out=dir": "preset 'default' at every step, records written (out=dir)",
            "default, update every step": (
                "all cheap quantities at every step (default + every={'update': 1})"
            ),
        }[k]
        text = (
            f"**{s.ratio:.3f}x** (+{fmt_us(max(s.median_step_s - base, 0.0))} on a "
            f"{fmt_us(base)} step; rounds' quartiles {s.spread[0]:.3f}-{s.spread[1]:.3f})"
        )
        if k == "default":
            text += f"; training bitwise unchanged: {'yes' if unchanged else 'NO'}"
        if k == "default, update every step":  # beyond the preset: no target
            rows.append(Row(label, task.name, text, target="(reported)"))
        else:
            rows.append(
                Row(label, task.name, text, target=f"<= {target}x", met=bool(s.ratio <= target))
            )
    data = {k: asdict(s) for k, s in stats.items()}
    data["bitwise_unchanged"] = unchanged
    return rows, data


def amortised(task: Task, quick: bool, log: Callable[[str], None]) -> tuple[list[Row], dict]:
    """The 'curvature' and 'full' presets with their schedules, over whole periods."""
    loops: dict[str, Loop] = {
        "plain": Loop(task),
        "curvature": OptiscopeLoop(task, preset="curvature"),
        "full": OptiscopeLoop(task, preset="full"),
    }
    rounds = 2 if quick else 4
    steps = {"plain": PERIODS["curvature"], **PERIODS}
    if task.name == "mlp":
        steps["full"] *= 5
    # Warm-up: a whole period, so the first (cold-started) Lanczos run is not in the timings.
    times = rounds_of(loops, rounds, steps, steps)
    stats = {k: stat(k, times, "mean") for k in loops}
    rows = []
    base = stats["plain"].mean_step_s
    for k in ("curvature", "full"):
        s = stats[k]
        s.summary = loops[k].summary()
        loops[k].close()
        log(f"  preset {k}: {s.ratio:.2f}x amortised over {s.steps} steps; {s.summary}")
        target = "<= 1.3x" if k == "curvature" else "(reported)"
        met = bool(s.ratio <= 1.3) if k == "curvature" else None
        rows.append(
            Row(
                f"preset '{k}', default schedules, amortised over {s.steps} steps",
                task.name,
                f"**{s.ratio:.2f}x** (mean step {fmt_us(s.mean_step_s)} vs {fmt_us(base)})",
                target=target,
                met=met,
            )
        )
    return rows, {k: asdict(s) for k, s in stats.items()}


# Which of optiscope's schedules is compared with which Cockpit configuration (see the docs).
# Cockpit's 'economy' is gradient and update norms, per-sample gradient statistics and the
# (first-order) Alpha: optiscope's update and noise tiers. Its 'full' adds the top Hessian
# eigenvalue and trace: optiscope adds the curvature tier (g^T H g and the second-order
# prediction) and sharpness.
MATCHES = {
    "economy": ("update", "noise"),
    "full": ("update", "curvature", "noise", "sharpness"),
}

# Each tier alone at every step: what one measurement of it costs.
SOLO = ("curvature", "noise", "sharpness")


def against_cockpit(
    task: Task, quick: bool, configs: list[str], log: Callable[[str], None]
) -> tuple[list[Row], dict]:
    """optiscope's tiers at every step against Cockpit's configurations at every step."""
    loops: dict[str, Loop] = {"plain": Loop(task)}
    for config, names in MATCHES.items():
        loops[f"optiscope ~{config}"] = OptiscopeLoop(task, every=every_step(*names))
    for tier in SOLO:
        loops[f"optiscope {tier} only"] = OptiscopeLoop(task, every=every_step(tier))
    errors: dict[str, str] = {}
    for config in configs:
        try:
            loops[f"cockpit {config}"] = CockpitLoop(task, config)
        except Exception as err:
            errors[config] = f"{type(err).__name__}: {err}"
    rounds, steps = (2, 1) if quick else (8, 3)
    n = {k: (10 if k == "plain" else steps) for k in loops}
    warm = {k: (20 if k == "plain" else 2) for k in loops}
    live = dict(loops)
    for k in list(live):
        try:
            live[k].step()  # fail fast here, not inside the timed rounds
        except Exception as err:
            errors[k.removeprefix("cockpit ")] = f"{type(err).__name__}: {err}"
            traceback.print_exc()
            del live[k]
    times = rounds_of(live, rounds, n, warm)
    stats = {k: stat(k, times, "median") for k in live}
    for k, s in stats.items():
        s.summary = live[k].summary()
        if k != "plain":
            log(f"  {k}: {s.ratio:.1f}x ({fmt_us(s.median_step_s)} a step); {s.summary}")
    rows = []
    for config in ["economy", "business", "full"]:
        if config not in configs:
            continue
        ck = stats.get(f"cockpit {config}")
        ours = stats.get(f"optiscope ~{config}") if config in MATCHES else None
        ck_text = f"**{ck.ratio:.1f}x** ({fmt_us(ck.median_step_s)} a step)" if ck else "-"
        if config in errors:
            ck_text = f"error: {errors[config][:200]}"
        row = Row(f"every step: Cockpit '{config}'", task.name, "-", ck_text)
        if ours is not None:
            names = ", ".join(f"{t}: 1" for t in MATCHES[config] if t in tiers())
            row.measurement = f"every step: optiscope default + {{{names}}} vs Cockpit '{config}'"
            row.optiscope = f"**{ours.ratio:.1f}x** ({fmt_us(ours.median_step_s)} a step)"
            # The target is on Cockpit's 'economy'; 'full' is reported beside it.
            target = config == "economy"
            row.target = "overhead <= 1/5 of Cockpit's" if target else "(reported)"
            if ck is not None:
                frac = ours.overhead / ck.overhead if ck.overhead > 0 else math.inf
                row.optiscope += f"; overhead {frac:.2f} of Cockpit's"
                row.met = bool(frac <= 0.2) if target else None
                row.data["overhead_fraction"] = frac
        else:
            row.optiscope = "(no per-step Hessian trace in the Monitor)"
            row.target = "(reported)"
        rows.append(row)
    base = stats["plain"].median_step_s
    solo = [
        f"{tier} +{fmt_us(s.median_step_s - base)} ({s.ratio:.1f}x)"
        for tier in SOLO
        if (s := stats.get(f"optiscope {tier} only")) is not None
    ]
    rows.append(
        Row(
            "every step, one tier alone (default + {tier: 1}): cost of one measurement",
            task.name,
            "; ".join(solo) + f" (plain step {fmt_us(base)})",
            target="(reported)",
        )
    )
    data: dict[str, Any] = {k: asdict(s) for k, s in stats.items()}
    data["errors"] = errors
    return rows, data


# -- profile ---------------------------------------------------------------------------------


def profile(task: Task, steps: int, every: dict[str, int] | None) -> str:
    """torch.profiler: the ops run inside Monitor.step and inside the optimizer's post-hooks."""
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    loop = Loop(task)
    open_ranges: list[Any] = []

    def enter(*_: Any) -> None:
        open_ranges.append(record_function("optiscope: step post-hook").__enter__())

    def leave(*_: Any) -> None:
        open_ranges.pop().__exit__(None, None, None)

    loop.opt.register_step_post_hook(enter)  # runs before the Monitor's own hook
    monitor = optiscope.Monitor(loop.model, loop.opt, loss_fn=loop.loss_fn, every=every)
    loop.opt.register_step_post_hook(leave)  # and this one after it

    def step() -> None:
        x, y = loop.batch()
        loop.opt.zero_grad()
        loss = loop.loss_fn(loop.model(x), y)
        loss.backward()
        with record_function("optiscope: Monitor.step"):
            monitor.step(loss, batch=(x, y))
        loop.opt.step()

    for _ in range(50):
        step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    monitor.close()
    totals: dict[tuple[str, str], list[float]] = {}
    for e in prof.events():
        parent, top = e.cpu_parent, None
        while parent is not None:
            if parent.name.startswith("optiscope:"):
                top = parent.name
            parent = parent.cpu_parent
        if e.name.startswith("optiscope:"):
            totals.setdefault((e.name, "(total, with the profiler's own cost)"), []).append(
                e.cpu_time_total
            )
        elif top is not None and not e.name.startswith("optiscope:"):
            # self time: the op's own time, not its children's
            totals.setdefault((top, e.name), []).append(e.self_cpu_time_total)
    lines = [
        f"profile of {steps} steps, every={every}: microseconds per step (self CPU time, "
        "with torch.profiler's per-op cost included)",
        "",
        "| range | op | calls/step | us/step |",
        "|---|---|---|---|",
    ]
    for (top, name), ts in sorted(totals.items(), key=lambda kv: (kv[0][0], -sum(kv[1]))):
        lines.append(f"| {top} | {name} | {len(ts) / steps:.1f} | {sum(ts) / steps:.1f} |")
    return "\n".join(lines)


# -- environment and report ------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """The curvature benchmark's environment (machine, versions, commit), with Cockpit's
    versions in place of the curvature peers'."""

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    env = {k: v for k, v in curvature_environment().items() if k not in CURVATURE_PEERS}
    env.pop("optiscope.problem.hessdiag", None)
    env.update(
        {
            "optiscope presets": getattr(sys.modules["optiscope.monitor.monitor"], "PRESETS", "?"),
            "cockpit-for-pytorch": version("cockpit-for-pytorch"),
            "backpack-for-pytorch": version("backpack-for-pytorch"),
            "setuptools": version("setuptools"),
            "batch": BATCH,
            "optimizer": f"SGD(lr={LR})",
        }
    )
    return env


def markdown(rows: list[Row]) -> str:
    lines = [
        "| measurement | model | optiscope | Cockpit | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = {True: "met", False: "MISSED", None: "-"}[r.met]
        cells = [r.measurement, r.model, r.optiscope, r.cockpit, r.target, met]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--only", default="", help="comma-separated subset of: cheap,presets,cockpit"
    )
    parser.add_argument("--models", default="mlp,cnn", help="comma-separated: mlp,cnn")
    parser.add_argument(
        "--cockpit", default="economy,business,full", help="Cockpit configurations to run"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only profile the default preset's ops on the mlp (torch.profiler) and exit",
    )
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(THREADS)
    threadpool_limits(1, user_api="blas")
    # Cockpit imports pkg_resources (deprecated) and calls backward(create_graph=True); BackPACK's
    # hooks fire on inputs without grad.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    tasks = build_tasks()
    if args.profile:
        print(profile(tasks["mlp"], 300, None))
        if "update" in tiers():
            print()
            print(profile(tasks["mlp"], 300, {"update": 1}))
        return 0

    wanted = {s for s in args.only.split(",") if s} or {"cheap", "presets", "cockpit"}
    models = [m for m in args.models.split(",") if m]
    configs = [c for c in args.cockpit.split(",") if c]
    started = time.perf_counter()
    env = environment()
    print("# optiscope Monitor overhead" + (" (--quick)" if args.quick else ""))
    print()
    for k, v in env.items():
        print(f"- {k}: {v}")
    for name in models:
        print(f"- problem {name}: {tasks[name].num_params} parameters, batch {BATCH}")
    print(flush=True)

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {text}", flush=True)

    rows: list[Row] = []
    data: dict[str, Any] = {}
    for name in models:
        task = tasks[name]
        for part, fn in [
            ("cheap", cheap_tier),
            ("presets", amortised),
            ("cockpit", lambda t, q, lg: against_cockpit(t, q, configs, lg)),
        ]:
            if part not in wanted:
                continue
            log(f"{name}: {part}")
            try:
                new, d = fn(task, args.quick, log)
            except Exception as err:
                traceback.print_exc()
                new, d = [Row(part, name, f"error: {type(err).__name__}: {err}", met=False)], {}
            rows.extend(new)
            data[f"{name}/{part}"] = d

    elapsed = time.perf_counter() - started
    env["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    env["wall_seconds"] = round(elapsed, 1)
    env["waited_for_quiet_s"] = round(QUIET.waited, 1)
    env["rounds_started_under_load"] = QUIET.gave_up
    env["rounds_total"] = QUIET.waits
    print()
    print(markdown(rows))
    print()
    print(
        f"total {elapsed:.0f} s, of which {QUIET.waited:.0f} s waiting for other processes to "
        f"leave the CPUs; {QUIET.gave_up} of {QUIET.waits} rounds started under load anyway"
    )
    if args.json:
        payload = {
            "environment": env,
            "quick": args.quick,
            "rows": [asdict(r) for r in rows],
            "data": data,
        }
        args.json.write_text(json.dumps(payload, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
