"""The HTML report of a run: its findings and records rendered to one self-contained page.

:func:`render_report` renders what it is given (the records and the findings as dicts) and
computes nothing but pictures: it reads no file and diagnoses nothing, and a section whose data
is missing says so instead of failing. Reading a run folder, and recomputing the findings it
lacks, is :func:`optiscope.runner.report.write_report`'s job. Figures are inline SVG drawn by
matplotlib, imported lazily; without it the report keeps its text and tables. Nothing in the
page reaches the network.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from optiscope.core.errors import OptiscopeError
from optiscope.core.stats import number
from optiscope.diagnosis.findings import (
    CHALLENGES,
    CLIFFS,
    ILL_CONDITIONING,
    INEXACT_GRADIENTS,
    LOCAL_GLOBAL_MISMATCH,
    LOCAL_MINIMA,
    LONG_TERM_DEPENDENCIES,
    SADDLE_POINTS,
    STATEMENT,
    THEORETICAL_LIMITS,
    Severity,
)
from optiscope.records import schema
from optiscope.records.log import Records, step_of
from optiscope.report import plot as _plot
from optiscope.report.figures import (
    Figure,
    NoData,
    Run,
    block_distances,
    block_entries,
    fig_b_simple,
    fig_blocks,
    fig_cliffs,
    fig_curvature,
    fig_density,
    fig_interpolation,
    fig_lambda_min,
    fig_noise,
    fig_overview,
    fig_prediction,
    fig_sharpness,
    fig_surface,
    fig_update_ratio,
    heatmap,
    hidden_modules,
)
from optiscope.report.plot import PlotUnavailable

_SEVERITY_COLOURS = {
    Severity.OK: "#2e7d32",
    Severity.INFO: "#1565c0",
    Severity.WARNING: "#ef8f00",
    Severity.CRITICAL: "#c62828",
    Severity.ERROR: "#6a1b9a",
    STATEMENT: "#546e7a",
}
_TITLES = {
    ILL_CONDITIONING: "Ill-conditioning",
    LOCAL_MINIMA: "Local minima",
    SADDLE_POINTS: "Plateaus, saddle points and flat regions",
    CLIFFS: "Cliffs and exploding gradients",
    LONG_TERM_DEPENDENCIES: "Long-term dependencies",
    INEXACT_GRADIENTS: "Inexact gradients",
    LOCAL_GLOBAL_MISMATCH: "Poor correspondence between local and global structure",
    THEORETICAL_LIMITS: "Theoretical limits of optimization",
}


class ReportError(OptiscopeError):
    """A run folder that cannot be turned into a report."""


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML, attributes included."""
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------------------------------------
# Numbers to text


def _fmt(value: Any, depth: int = 0) -> str:
    """A short readable form of an evidence value (plain text, escaped later)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}"
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:197] + "..."
    if isinstance(value, Mapping):
        if depth >= 1:
            return "{...}"
        items = [f"{k}: {_fmt(v, depth + 1)}" for k, v in list(value.items())[:6]]
        more = ", ..." if len(value) > 6 else ""
        return "{" + ", ".join(items) + more + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        if depth >= 1:
            return f"[{len(value)} items]"
        shown = ", ".join(_fmt(v, depth + 1) for v in value[:8])
        return f"[{shown}{f', ... ({len(value)} in all)' if len(value) > 8 else ''}]"
    return str(value)


def _table(rows: Iterable[tuple[Any, Any]], cls: str = "kv") -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_fmt(v))}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>' if body else ""


def _missing(what: str) -> str:
    return f'<p class="missing">Not recorded in this run: {esc(what)}.</p>'


class _Renderer:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.plots = True
        self.figures = 0

    def figure(self, fig: Figure) -> str:
        if not self.plots:
            return ""

        try:
            svg = fig.draw(self.run)
        except NoData as err:
            return _missing(str(err))
        except PlotUnavailable:
            self.plots = False
            return ""
        except Exception as err:  # a figure must never cost the run its report
            why = esc(f"{type(err).__name__}: {err}")
            return f'<p class="missing">The figure could not be drawn ({why}).</p>'
        self.figures += 1
        return f"<figure>{svg}<figcaption>{esc(fig.caption)}</figcaption></figure>"


# ---------------------------------------------------------------------------------------------
# Sections


_OVERVIEW = Figure(
    "Loss and gradient norm against the step (log scale where they span decades).", fig_overview
)
_FIGURES: dict[str, list[Figure]] = {
    ILL_CONDITIONING: [
        Figure(
            "g^T g and g^T H g at each curvature measurement: ill-conditioning shows as "
            "g^T H g growing while g^T g does not shrink.",
            fig_curvature,
        ),
        Figure(
            "Sharpness (the top Hessian eigenvalue; of the preconditioned Hessian P^-1 H under "
            "Adam) against the optimizer's stability threshold (2/lr for plain SGD).",
            fig_sharpness,
        ),
        Figure(
            "The second-order prediction of each step's change against the change that came.",
            fig_prediction,
        ),
    ],
    SADDLE_POINTS: [
        Figure(
            "Hessian eigenvalue density at the final point (stochastic Lanczos quadrature); "
            "mass left of zero is negative curvature.",
            fig_density,
        ),
        Figure("The smallest Hessian eigenvalue during training.", fig_lambda_min),
    ],
    CLIFFS: [
        Figure(
            "Gradient norm against its running median; spikes above 10x the median are marked.",
            fig_cliffs,
        ),
        Figure("Update norm relative to the parameter norm.", fig_update_ratio),
    ],
    INEXACT_GRADIENTS: [
        Figure(
            "Share of the minibatch gradient's squared norm that is noise, against the batch "
            "size, from the last measurement.",
            fig_noise,
        ),
        Figure(
            "The critical batch size B_simple = tr(Σ)/|G|² over training, with the batch in use.",
            fig_b_simple,
        ),
    ],
    LOCAL_GLOBAL_MISMATCH: [
        Figure(
            "Loss on the straight line from the initial point to the final point.",
            fig_interpolation,
        ),
        Figure(
            "Loss on the plane of the trajectory's first two principal components, with the "
            "trajectory drawn on it.",
            fig_surface,
        ),
    ],
}


def _section_id(challenge: str) -> str:
    clean = "".join(c if c.isalnum() or c in "-_" else "-" for c in challenge.lower())
    return clean or "challenge"


def _label(finding: Mapping[str, Any] | None) -> str:
    """What the severity cell says: the severity, "statement" for a finding that reads nothing
    from the run, "none" where no finding was recorded."""
    if finding is None:
        return "none"
    if finding.get(schema.MEASURED) is False:
        return STATEMENT
    return str(finding.get(schema.SEVERITY))


def _badge(finding: Mapping[str, Any] | None) -> str:
    label = _label(finding)
    colour = _SEVERITY_COLOURS.get(label, "#616161")
    return f'<span class="sev" style="background:{colour}">{esc(label)}</span>'


def _finding_section(r: _Renderer, challenge: str, finding: Mapping[str, Any] | None) -> str:
    sid = _section_id(challenge)
    title = _TITLES.get(challenge, challenge)
    parts = [f'<section id="{esc(sid)}"><h2>{esc(title)} {_badge(finding)}</h2>']
    if finding is None:
        parts.append('<p class="missing">No verdict was recorded for this challenge.</p>')
    else:
        label = _label(finding)
        cls = {STATEMENT: "summary statement", Severity.ERROR: "summary error"}.get(
            label, "summary"
        )
        parts.append(f'<p class="{cls}">{esc(finding.get(schema.SUMMARY, ""))}</p>')
        if label == Severity.ERROR:
            parts.append(
                '<p class="missing">No verdict: the detector failed on these records, a bug in '
                "optiscope (please report it with the records file); the other verdicts stand.</p>"
            )
        evidence = finding.get(schema.EVIDENCE)
        if isinstance(evidence, Mapping) and evidence:
            parts.append("<h3>Evidence</h3>" + _table(evidence.items()))
        remedy = finding.get(schema.REMEDY)
        if remedy:
            parts.append(f'<p class="remedy"><b>What to try:</b> {esc(remedy)}</p>')
    parts.append(_extras(r, challenge))
    figures = "".join(r.figure(fig) for fig in _FIGURES.get(challenge, []))
    if figures:
        parts.append(f'<div class="figures">{figures}</div>')
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


_FINAL_POINT_FIELDS = (
    schema.KIND,
    schema.CURVATURE,
    schema.LOSS,
    schema.GRADIENT_NORM,
    schema.LAMBDA_MAX,
    schema.LAMBDA_MIN,
    schema.INDEX,
    schema.REASON,
)


def _extras(r: _Renderer, challenge: str) -> str:
    run = r.run
    if challenge == ILL_CONDITIONING and run.analysis(schema.BLOCKWISE_SPECTRA) is not None:
        return (
            "<p>Each layer's own curvature, and whether one learning rate suits them all, is in "
            'the <a href="#blockwise-spectra">blockwise spectra</a>.</p>'
        )
    if challenge == LOCAL_MINIMA:
        return (
            '<p>The loss and the gradient norm over the run are in the <a href="#overview">'
            "overview</a>: a stalled loss whose gradient norm does not shrink is not a minimum.</p>"
        )
    if challenge == SADDLE_POINTS:
        rec = run.analysis(schema.FINAL_POINT)
        if rec is None:
            return _missing(
                f'the "{schema.FINAL_POINT}" analysis record (curvature at the final point)'
            )
        return "<h3>Final point</h3>" + _table((k, rec[k]) for k in _FINAL_POINT_FIELDS if k in rec)
    if challenge == LONG_TERM_DEPENDENCIES:
        modules = hidden_modules(run)
        if not modules:
            return _missing(
                f'hidden-state gradients (a recurrent model\'s "{schema.HIDDEN_GRADIENTS}" records)'
            )
        out = []
        for name, rows in list(modules.items())[:4]:
            out.append(
                r.figure(
                    Figure(
                        f"Gradient norm of the loss with respect to the hidden state of {name} at "
                        "each time step (rows: training steps measured).",
                        functools.partial(heatmap, name, rows),
                    )
                )
            )
        return f'<div class="figures">{"".join(out)}</div>'
    if challenge == LOCAL_GLOBAL_MISMATCH:
        traj = run.analysis(schema.TRAJECTORY)
        if traj and traj.get(schema.ERROR):
            return _missing(f"the trajectory's plane ({traj[schema.ERROR]})")
    if challenge == THEORETICAL_LIMITS:
        return "<p>No figure: this limit is a theorem about the problem, not a measurement.</p>"
    return ""


_BLOCKS_FIGURE = Figure(
    "Left: each block's Hessian spectral density on its own scale (eigenvalues over the block's "
    "spectral radius; stochastic Lanczos quadrature). Right: the Jensen-Shannon distance between "
    "each pair of blocks' densities (0: the same shape, 1: no overlap).",
    fig_blocks,
)


def _blocks_section(r: _Renderer) -> str:
    """The ``blockwise_spectra`` analysis: one row per block, how far apart the blocks are, the
    advice the record states and its figure; nothing when the run has no such record."""
    rec = r.run.analysis(schema.BLOCKWISE_SPECTRA)
    if rec is None:
        return ""
    parts = [
        '<section id="blockwise-spectra"><h2>Blockwise spectra</h2>',
        "<p>The Hessian's diagonal block of each parameter block (a layer's weight and bias, "
        "or a named group), measured at the analysed point with the other parameters held "
        "(Zhang et al. 2024, <i>Why Transformers Need Adam: A Hessian Perspective</i>): its "
        "extreme eigenvalues, and its spectral density on its own scale, whose shapes are "
        "compared between blocks by the Jensen-Shannon distance.</p>",
    ]
    advice = rec.get(schema.ADVICE)
    if isinstance(advice, str) and advice:
        parts.append(f'<p class="remedy"><b>What it supports:</b> {esc(advice)}</p>')
    blocks = block_entries(rec)
    if not blocks:
        parts.append(_missing(f'the blocks of the "{schema.BLOCKWISE_SPECTRA}" analysis record'))
        parts.append("</section>")
        return "\n".join(parts)
    names = [str(b.get(schema.NAME, "?")) for b in blocks]
    dist = block_distances(rec, len(blocks))
    rows = []
    for i, (name, b) in enumerate(zip(names, blocks)):
        mean = None if dist is None else float(dist[i].sum() / (len(blocks) - 1))
        cells = (name, b.get(schema.SIZE), b.get(schema.SMALLEST), b.get(schema.LARGEST), mean)
        rows.append("<tr>" + "".join(f"<td>{esc(_fmt(c))}</td>" for c in cells) + "</tr>")
    parts.append(
        '<table class="blocks"><tr><th>block</th><th>parameters</th><th>smallest eigenvalue</th>'
        "<th>largest eigenvalue</th><th>mean Jensen-Shannon distance to the others</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    facts: list[tuple[str, Any]] = [("blocks", len(blocks))]
    spread = number(rec.get(schema.SPREAD))
    if spread is not None:
        facts.append(
            (
                "sharpness spread",
                f"{_fmt(spread)}x (the largest block eigenvalue over the smallest positive one)",
            )
        )
    het = number(rec.get(schema.HETEROGENEITY))
    if het is not None:
        facts.append(("mean Jensen-Shannon distance", f"{_fmt(het)} (over pairs of blocks)"))
    if dist is not None:
        upper = np.triu_indices(len(blocks), 1)
        k = int(dist[upper].argmax())
        i, j = int(upper[0][k]), int(upper[1][k])
        facts.append(("most different pair", f"{names[i]} and {names[j]}: {_fmt(dist[i, j])}"))
    else:
        facts.append(("distances", "not recorded as a matrix of one row per block"))
    if isinstance(rec.get(schema.HETEROGENEOUS), bool):
        facts.append(("heterogeneous", rec[schema.HETEROGENEOUS]))
    facts.append(("Hessian-vector products (of a block)", rec.get(schema.HVPS)))
    parts.append("<h3>Between the blocks</h3>" + _table((k, v) for k, v in facts if v is not None))
    figure = r.figure(_BLOCKS_FIGURE)
    if figure:
        parts.append(f'<div class="figures">{figure}</div>')
    parts.append("</section>")
    return "\n".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;
 max-width:1100px;margin:0 auto;padding:1.5em 2em;line-height:1.45;background:#fff}
h1{margin:0 0 .2em;font-size:1.7em}h2{margin-top:0;font-size:1.3em}
h3{font-size:1em;margin:.8em 0 .3em}
.desc{color:#555;margin:0 0 1em}
section{border-top:1px solid #ddd;padding:1.2em 0}
table{border-collapse:collapse;margin:.4em 0 .8em;font-size:.92em}
th,td{border-bottom:1px solid #eee;padding:.25em .8em .25em 0;text-align:left;vertical-align:top}
table.kv th{font-weight:normal;color:#555;font-family:ui-monospace,Menlo,Consolas,monospace}
table.kv td{font-family:ui-monospace,Menlo,Consolas,monospace}
table.verdicts td,table.verdicts th{padding:.35em .9em .35em 0}
table.verdicts th{color:#555;font-weight:600;border-bottom:2px solid #ddd}
.sev{display:inline-block;color:#fff;border-radius:3px;padding:0 .5em;font-size:.8em;
 font-weight:600;vertical-align:middle;text-transform:uppercase;letter-spacing:.03em}
.missing{color:#777;font-style:italic}
.note{background:#fff4e5;border-left:4px solid #ef8f00;padding:.5em .8em}
.remedy{background:#f3f7fb;border-left:4px solid #1565c0;padding:.5em .8em}
.statement{background:#f5f7f8;border-left:4px solid #546e7a;padding:.5em .8em}
.error{color:#6a1b9a}
.figures{display:flex;flex-wrap:wrap;gap:0 2em;align-items:flex-start}
.figures>.missing{flex-basis:100%}
figure{margin:.8em 0 1.2em;flex:1 1 460px;max-width:640px}
figure svg{max-width:100%;height:auto;display:block}
#overview figure,#blockwise-spectra figure{max-width:100%}
figcaption{color:#555;font-size:.9em}
a{color:#1565c0}footer{color:#888;font-size:.85em;border-top:1px solid #ddd;padding-top:1em}
"""


def render_report(
    records: Records,
    findings: Sequence[Mapping[str, Any]],
    note: str = "",
    name_hint: str = "",
) -> str:
    """The HTML text of the report of a run: its ``records`` and its ``findings`` (the dicts of
    ``findings.json``, in any order; a challenge without one says so), with ``note`` shown at the
    top (say, where the findings came from). The title is the header's experiment, else
    ``name_hint`` (the run folder's name). Reads no file and diagnoses nothing."""
    header = records.header if isinstance(records.header, dict) else {}
    kept = [rec for rec in records.records if isinstance(rec, dict)]
    run = Run(
        header, kept, records.truncated, [f for f in findings if isinstance(f, Mapping)], note
    )
    r = _Renderer(run)
    try:
        _plot._figure(1, 1)
    except OptiscopeError:
        r.plots = False

    h = run.header
    name = h.get(schema.EXPERIMENT) or name_hint or "run"
    run_id = h.get(schema.RUN_ID) or "unnamed"
    steps_done = [float(step) for step in map(step_of, run.records) if step is not None]
    last = max(steps_done) if steps_done else math.nan
    planned = number(h.get(schema.STEPS))
    facts = [
        (schema.STEPS, h.get(schema.STEPS)),
        (
            "steps recorded",
            f"{len(steps_done)} (last step {_fmt(last)})" if steps_done else "none",
        ),
        (schema.SEED, h.get(schema.SEED)),
        (schema.OPTIMIZER, h.get(schema.OPTIMIZER)),
        (schema.PRESET, h.get(schema.PRESET)),
        (schema.CONFIG, h.get(schema.CONFIG)),
        (schema.DEVICE, h.get(schema.DEVICE)),
        ("versions", ", ".join(f"{k} {h[k]}" for k in schema.VERSIONS if h.get(k))),
    ]
    notes = []
    if run.truncated:
        notes.append(
            "The records file ends in a line cut short: the run was cut short, and the report "
            "shows what was written before."
        )
    elif planned is not None and steps_done and last + 1 < planned:
        notes.append(
            f"The records stop at step {_fmt(last)} of {_fmt(h[schema.STEPS])}: the run did not "
            "finish."
        )
    if run.findings_note:
        notes.append(run.findings_note)

    by_challenge: dict[str, Mapping[str, Any]] = {}
    for finding in run.findings:
        challenge = finding.get(schema.CHALLENGE)
        if isinstance(challenge, str):
            by_challenge.setdefault(challenge, finding)
    order = list(by_challenge) + [c for c in CHALLENGES if c not in by_challenge]

    rows = []
    for c in order:
        f = by_challenge.get(c)
        rows.append(
            f'<tr><td><a href="#{esc(_section_id(c))}">{esc(c)}</a></td>'
            f"<td>{_badge(f)}</td>"
            f"<td>{esc(f.get(schema.SUMMARY, '') if f else 'no verdict recorded')}</td></tr>"
        )
    overview = r.figure(_OVERVIEW)
    sections = [_finding_section(r, c, by_challenge.get(c)) for c in order]
    sections.append(_blocks_section(r))
    if not r.plots:
        notes.append(
            "matplotlib is not installed, so the figures are left out: "
            'pip install "optiscope[report]".'
        )

    description = h.get(schema.DESCRIPTION)
    body = [
        f"<header><h1>optiscope report: {esc(name)}</h1>",
        f'<p class="desc">{esc(description)}</p>' if description else "",
        _table(((k, v) for k, v in facts if v not in (None, "")), cls="kv"),
        "".join(f'<p class="note">{esc(n)}</p>' for n in notes),
        "</header>",
        '<section id="verdicts"><h2>Verdicts</h2><table class="verdicts">',
        "<tr><th>challenge</th><th>severity</th><th>summary</th></tr>",
        "".join(rows),
        "</table></section>",
        f'<section id="overview"><h2>Overview</h2>{overview}</section>',
        *sections,
        f"<footer>Written by optiscope from the records.jsonl of run {esc(run_id)} up to step "
        f"{esc(_fmt(last))} and their findings; self-contained, no network needed.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # The run and its last step: which records this page shows, for a reader to compare.
        f'<meta name="optiscope-run" content="{esc(run_id)}">'
        f'<meta name="optiscope-last-step" content="{esc(_fmt(last))}">'
        f"<title>optiscope report: {esc(name)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(b for b in body if b)
        + "\n</body></html>\n"
    )
