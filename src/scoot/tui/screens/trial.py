"""One trial: its full config, metrics with percentiles, the launch command, the log's tail."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from scoot.domain import Metrics
from scoot.jobs.store import TrialRow
from scoot.jobs.views import StudySpec, percentiles, value_text
from scoot.tui.context import context

LOG_LINES = 12


class TrialScreen(ModalScreen[None]):
    """Refreshes while open: a running trial's state, metrics and engine log follow it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="trial.close", tooltip="close the trial"),
        Binding("e", "export", "Export", id="trial.export", tooltip="export this config"),
    ]

    def __init__(self, trial: TrialRow, spec: StudySpec) -> None:
        super().__init__()
        self.trial = trial
        self.spec = spec

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="trial-box"):
            yield Static("", classes="title", id="trial-title", markup=False)
            yield Static("", id="trial-config", markup=False)
            yield Static("", id="trial-message", classes="failure", markup=False)
            table: DataTable[str] = DataTable(id="percentiles", show_cursor=False)
            yield table
            yield Static("", id="trial-summary", markup=False)
            yield Static("", id="engine-metrics", markup=False)
            yield Static("", id="rate-steps", markup=False)
            yield Static("", id="command", markup=False)
            yield Static("", id="engine-log", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#percentiles", DataTable).add_columns(
            "metric", "mean", "p50", "p95", "p99"
        )
        self.show(self.trial, self.log_tail(self.trial, None))
        self.set_interval(context(self).refresh_s, self.reload)

    @work(thread=True, exclusive=True, group="trial")
    def reload(self) -> None:
        store = context(self).open_store()
        try:
            trial = store.trial(self.trial.id)
            stored = store.log(trial.id)
        finally:
            store.close()
        self.app.call_from_thread(self.show, trial, self.log_tail(trial, stored))

    def show(self, t: TrialRow, log: str) -> None:
        self.trial = t
        self.query_one("#trial-title", Static).update(
            f"trial #{t.number} — {t.source} — {t.state_label}"
        )
        config = "\n".join(f"  {k} = {value_text(v)}" for k, v in t.config.as_dict().items())
        self.query_one("#trial-config", Static).update(
            f"config (GPU set {t.gpu_set or '-'}):\n{config}"
        )
        message = self.query_one("#trial-message", Static)
        lines = []
        if t.stopped_early is not None:
            lines.append(f"stopped early: {t.stopped_early} (its latencies are bounds)")
        if t.failure_message:
            lines.append(f"message: {t.failure_message}")
        message.update("\n".join(lines))
        message.display = bool(lines)
        table = self.query_one("#percentiles", DataTable)
        rows = percentiles(t)
        if table.row_count != len(rows):
            table.clear()
            for row in rows:
                table.add_row(*row)
        table.display = bool(table.row_count)
        m = t.metrics
        summary = self.query_one("#trial-summary", Static)
        summary.update(metrics_summary(m) if m is not None else "")
        summary.display = m is not None
        engine = self.query_one("#engine-metrics", Static)
        engine.update(engine_text(m) if m is not None else "")
        engine.display = m is not None
        steps = self.query_one("#rate-steps", Static)
        steps.update(rate_steps_text(m) if m is not None and m.rate_steps else "")
        steps.display = bool(m is not None and m.rate_steps)
        self.query_one("#command", Static).update(f"launch command:\n  {t.command or '-'}")
        self.query_one("#engine-log", Static).update(
            f"engine log ({t.log_path or '-'}), last lines:\n{log}"
        )

    @staticmethod
    def log_tail(t: TrialRow, stored: str | None) -> str:
        """The log's end: from the file where this machine has it, else the copy the store
        keeps (a trial run on another machine)."""
        path = Path(t.log_path) if t.log_path else None
        if path is not None and path.exists():
            with path.open("rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 64 * 1024))  # a long log: read its end only
                text = f.read().decode(errors="replace")
        elif stored is not None:
            text = stored
        else:
            return "  (no log)" if path is None else f"  (log {path} is gone)"
        lines = text.splitlines()[-LOG_LINES:]
        return "\n".join(f"  {line[:150]}" for line in lines) or "  (empty)"

    def action_export(self) -> None:
        from scoot.tui.screens.export import ExportScreen

        self.app.push_screen(ExportScreen(self.trial, self.spec, context(self).data_dir))


def metrics_summary(m: Metrics) -> str:
    """Counts, throughput, goodput and the client's lateness (a late client means the engine
    was not what limited the rate)."""
    parts = [
        f"{m.completed} completed, {m.failed} failed in {m.duration_s:.1f} s; "
        f"{m.request_throughput:.2f} req/s, {m.output_throughput:.0f} tok/s out"
    ]
    if m.goodput is not None:
        parts.append(f"goodput {m.goodput:.3g} req/s")
    parts.append(f"client lateness p99 {m.lateness_p99_ms:.0f} ms")
    return "; ".join(parts)


ENGINE_LABELS = {
    "preemptions": "preemptions",
    "kv_cache_usage_peak": "peak KV-cache use",
    "requests_waiting_peak": "peak waiting requests",
    "requests_running_peak": "peak running requests",
    "prefix_cache_hit_rate": "prefix-cache hit rate",
}


def engine_text(m: Metrics) -> str:
    """What the engine's own ``/metrics`` said, as stored."""
    if not m.engine:
        return "engine metrics: none (the engine exposes no /metrics)"
    parts = []
    for key, value in m.engine.items():
        label = ENGINE_LABELS.get(key, key.replace("_", " "))
        shown = f"{value:.1%}" if "usage" in key or "rate" in key else f"{value:.4g}"
        parts.append(f"{label} {shown}")
    return "engine: " + ", ".join(parts)


def rate_steps_text(m: Metrics) -> str:
    """A capacity trial's rate search, one line per step (issue 17: every step shown)."""
    lines = [f"capacity {m.capacity or 0:.3g} req/s; rate search, in the order run:"]
    lines += [f"  {rate:.3g} req/s -> SLO attainment {att:.1%}" for rate, att in m.rate_steps]
    return "\n".join(lines)
