"""``scoot report NAME -o DIR``: one self-contained HTML page of a study for people who do not
use the terminal (issue 19): the same facts as the TUI, as static plots.

The page holds everything inline (plots as base64 PNG, no script or style from elsewhere), so it
can be mailed or opened from a file share. A small inline script marks ``<body>`` with how many
plots the browser decoded (``data-plots="6/6"``), which the headless-Chromium test reads.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scoot.domain import Objective, TrialState
from scoot.jobs.decision import Decision, decide, hypervolume_over_trials
from scoot.jobs.insight import effects, importance
from scoot.jobs.store import Store, StudyRow, TrialRow
from scoot.jobs.views import exports, objective_label
from scoot.optim.feasibility import delta_trace
from scoot.optim.space import initial_design_size
from scoot.study import StudySpec

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; }
.verdict { font-size: 1.15em; background: #eef7ee; border-left: 4px solid #3a3; padding: 0.6em; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #eee; } tr.best { background: #e5f5e5; font-weight: bold; }
tr.failed { color: #a33; } figure { display: inline-block; margin: 0.5em; }
figcaption { color: #555; font-size: 0.9em; max-width: 520px; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.plot');
  var ok = 0;
  imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) { ok += 1; } });
  document.body.setAttribute('data-plots', ok + '/' + imgs.length);
});
"""


def write_report(store: Store, study: StudyRow, folder: Path) -> Path:
    """Write ``folder/index.html`` for ``study``; returns its path."""
    spec = StudySpec.from_json(study.spec_json, study.source)
    trials = store.trials(study.id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    path.write_text(render(study, spec, trials))
    return path


def render(study: StudyRow, spec: StudySpec, trials: Sequence[TrialRow]) -> str:
    decision = decide(trials, spec)
    figures = [f for f in _figures(spec, trials, decision) if f is not None]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>SCOOT study {html.escape(study.name)}</title><style>{STYLE}</style>",
        f"<script>{SCRIPT}</script></head><body>",
        f"<h1>Study {html.escape(study.name)}</h1>",
        "<p class='meta'>"
        + html.escape(
            f"{study.state} · objectives {', '.join(o.value for o in spec.objectives)} · "
            f"engine {spec.engine.kind} {spec.engine.model} on {spec.engine.gpu} · GPU sets "
            f"{' '.join(spec.gpu_sets)} · {sum(t.counts for t in trials)}/{spec.budget} trials"
        )
        + "</p>",
        "<h2>Best vs default</h2>",
        f"<p class='verdict'>{html.escape(decision.verdict())}</p>",
    ]
    lines = decision.lines()
    if lines:
        parts.append("<pre>" + html.escape("\n".join(lines)) + "</pre>")
    if decision.best is not None and decision.command:
        parts.append(f"<h3>Deploy trial {decision.best.number}</h3>")
        parts.append(f"<pre>{html.escape(decision.command)}</pre>")
    parts.append("<h2>Plots</h2>")
    for title, caption, png in figures:
        data = base64.b64encode(png).decode()
        parts.append(
            f"<figure><img class='plot' alt='{html.escape(title)}' "
            f"src='data:image/png;base64,{data}'><figcaption><b>{html.escape(title)}</b>: "
            f"{html.escape(caption)}</figcaption></figure>"
        )
    parts.append("<h2>Trials</h2>")
    parts.append(_table(spec, trials, decision))
    if decision.best is not None:
        parts.append(f"<h2>Trial {decision.best.number} in every export form</h2>")
        for label, (_, text) in exports(decision.best, spec).items():
            parts.append(f"<p>{html.escape(label)}:</p><pre>{html.escape(text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(spec: StudySpec, trials: Sequence[TrialRow], decision: Decision) -> str:
    metrics = ("request_throughput", "p95_e2el_ms", "mean_ttft_ms", "mean_tpot_ms")
    head = ["#", "source", "state", *metrics, *(p.name for p in spec.params)]
    rows = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    best = decision.best.id if decision.best is not None else None
    for t in trials:
        cls = "best" if t.id == best else ("failed" if t.state is TrialState.FAILED else "")
        m = t.metrics.to_dict() if t.metrics is not None else {}
        shown = [
            f"{m[k]:.4g}" if k in m and t.state is TrialState.COMPLETED else "-" for k in metrics
        ]
        cfg = t.config.as_dict()
        cells = [str(t.number), t.source, t.state_label, *shown]
        cells += [_value(cfg.get(p.name)) for p in spec.params]
        rows.append(
            f"<tr class='{cls}'>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


def _done(trials: Sequence[TrialRow]) -> list[TrialRow]:
    return [
        t
        for t in trials
        if t.state is TrialState.COMPLETED and t.metrics is not None and t.retest is None
    ]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _figures(
    spec: StudySpec, trials: Sequence[TrialRow], decision: Decision
) -> list[tuple[str, str, bytes] | None]:
    import matplotlib

    matplotlib.use("Agg")
    objectives = spec.objectives
    out: list[tuple[str, str, bytes] | None] = []
    if len(objectives) >= 2:
        out.append(_front(objectives, trials, decision))
        out.append(_hypervolume(objectives, trials))
    out.append(_over_trials(objectives[0], trials, decision))
    out.append(_importance(spec, trials))
    out.append(_effects(spec, trials))
    out.append(_feasibility(spec, trials))
    return out


def _over_trials(
    o: Objective, trials: Sequence[TrialRow], decision: Decision
) -> tuple[str, str, bytes] | None:
    import matplotlib.pyplot as plt

    done = _done(trials)
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = [t.number for t in done]
    ys = [t.metrics.value(o) for t in done if t.metrics]
    ax.scatter(xs, ys, s=18, color="#888", label="trial")
    best, run = [], None
    for y in ys:
        run = y if run is None else (max if o.maximize else min)(run, y)
        best.append(run)
    ax.step(xs, best, where="post", color="#2a7", label="best so far")
    failed = [t.number for t in trials if t.state is TrialState.FAILED]
    if failed:
        low = min(ys)
        ax.scatter(failed, [low] * len(failed), marker="x", color="#c33", label="failed")
    if decision.default is not None and decision.default.metrics is not None:
        ax.axhline(decision.default.metrics.value(o), color="#c33", ls="--", lw=1, label="default")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective_label(o))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return (
        f"{o.value} over trials",
        "each completed trial, the best so far as steps, the default's run as the dashed line; "
        "failed trials (no value) marked on the bottom edge",
        _png(fig),
    )


def _front(
    objectives: Sequence[Objective], trials: Sequence[TrialRow], decision: Decision
) -> tuple[str, str, bytes] | None:
    import matplotlib.pyplot as plt

    done = _done(trials)
    if not done:
        return None
    a, b = objectives[0], objectives[1]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    xs = [t.metrics.value(a) for t in done if t.metrics]
    ys = [t.metrics.value(b) for t in done if t.metrics]
    ax.scatter(xs, ys, s=16, color="#999", label="trial")
    front = sorted((c[0].after, c[1].after, t.number) for t, c in decision.front if len(c) >= 2)
    if front:
        ax.step(
            [p[0] for p in front],
            [p[1] for p in front],
            where="post",
            color="#2a7",
            lw=1.5,
            label="Pareto front",
        )
        ax.scatter([p[0] for p in front], [p[1] for p in front], color="#2a7", s=30, zorder=3)
        for x, y, n in front:
            ax.annotate(f"#{n}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if decision.default is not None and decision.default.metrics is not None:
        dm = decision.default.metrics
        ax.scatter([dm.value(a)], [dm.value(b)], marker="X", s=80, color="#c33", label="default")
    if all(v > 0 for v in xs + ys):
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(objective_label(a))
    ax.set_ylabel(objective_label(b))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return (
        f"{a.value} vs {b.value}",
        "log axes; the front as a staircase with trial numbers, the default marked",
        _png(fig),
    )


def _hypervolume(
    objectives: Sequence[Objective], trials: Sequence[TrialRow]
) -> tuple[str, str, bytes] | None:
    import matplotlib.pyplot as plt

    hv = hypervolume_over_trials(trials, objectives)
    if not hv:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.step([n for n, _ in hv], [v for _, v in hv], where="post", color="#27a")
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (log objectives)")
    return (
        "hypervolume over trials",
        "area the completed trials dominate in log objectives, against the nadir of all of them",
        _png(fig),
    )


def _importance(spec: StudySpec, trials: Sequence[TrialRow]) -> tuple[str, str, bytes] | None:
    import matplotlib.pyplot as plt

    ranked = importance(trials, spec)
    if not ranked:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(ranked) + 1))
    names = [n for n, _ in ranked][::-1]
    ax.barh(names, [s for _, s in ranked][::-1], color="#27a")
    ax.set_xlabel("share of importance")
    return (
        "flag importance",
        f"a random forest's mean decrease in impurity for {spec.objectives[0].value}, over "
        f"{len(_done(trials))} completed trials",
        _png(fig),
    )


def _effects(spec: StudySpec, trials: Sequence[TrialRow]) -> tuple[str, str, bytes] | None:
    import matplotlib.pyplot as plt

    done = _done(trials)
    o = spec.objectives[0]
    if not done or not spec.params:
        return None
    n = len(spec.params)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, p in zip(axes.flat, spec.params, strict=False):
        values = [t.config.as_dict().get(p.name) for t in done]
        ys = [t.metrics.value(o) for t in done if t.metrics]
        labels = sorted({str(v) for v in values if not _is_number(v)})
        xs = [float(v) if _is_number(v) else float(labels.index(str(v))) for v in values]  # type: ignore[arg-type]
        ax.scatter(xs, ys, s=12, color="#27a")
        best = [e.label for e in effects(trials, spec, p.name)]
        ax.set_title(f"{p.name} ({len(best)} groups)", fontsize=8)
        if labels:
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.supylabel(objective_label(o), fontsize=8)
    fig.tight_layout()
    return (
        "objective against each flag",
        f"{o.value} of each completed trial against each flag's value",
        _png(fig),
    )


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _feasibility(spec: StudySpec, trials: Sequence[TrialRow]) -> tuple[str, str, bytes] | None:
    import matplotlib.pyplot as plt

    observed = [t for t in trials if t.observation() is not None]
    if not observed:
        return None
    feasible = [t.state is TrialState.COMPLETED for t in observed]
    k = len(spec.gpu_sets)
    deltas = delta_trace(feasible, k, initial_design_size(spec.space()))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    numbers = [t.number for t in observed]
    ax.step(numbers, deltas, where="post", color="#27a", label="Delta")
    ok = [n for n, f in zip(numbers, feasible, strict=True) if f]
    bad = [n for n, f in zip(numbers, feasible, strict=True) if not f]
    ax.scatter(ok, [1.02] * len(ok), marker="|", color="#2a7", label="ran")
    ax.scatter(bad, [1.02] * len(bad), marker="x", color="#c33", label="failed")
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("trial")
    ax.set_ylabel("Delta")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return (
        "feasibility and Delta",
        "Delta: the least probability of running a suggestion needs (paper Algorithm 1); it "
        "rises after failures and falls after successes",
        _png(fig),
    )
