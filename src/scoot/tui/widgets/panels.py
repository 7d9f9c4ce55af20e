"""The study screen's panels: the objective plot, feasibility, and what runs on each GPU set.

Attributes down: the screen sets ``view`` on each panel; each panel redraws itself from it.
"""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot

from scoot.jobs.views import StudyView, objective_label


class ObjectivePlot(PlotextPlot):
    """TTFT vs TPOT with the default's point as reference, or the objective over trials."""

    can_focus = True

    view: reactive[StudyView | None] = reactive(None, always_update=True)

    def watch_view(self, view: StudyView | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if view is None or not view.points:
            plt.title("no completed trial yet")
            self.refresh()
            return
        objs = view.spec.objectives
        if len(objs) >= 2:
            xs = [p[1][0] for p in view.points]
            ys = [p[1][1] for p in view.points]
            plt.scatter(xs, ys, marker="dot", label="trials")
            front = [t for t in view.trials if t.on_front and t.row.metrics]
            front.sort(key=lambda t: t.row.metrics.value(objs[0]) if t.row.metrics else 0.0)
            plt.plot(
                [t.row.metrics.value(objs[0]) for t in front if t.row.metrics],
                [t.row.metrics.value(objs[1]) for t in front if t.row.metrics],
                marker="braille",
                label="Pareto front",
            )
            if view.default_point:
                plt.scatter(
                    [view.default_point[0]], [view.default_point[1]], marker="x", label="default"
                )
            plt.xlabel(objective_label(objs[0]))
            plt.ylabel(objective_label(objs[1]))
            plt.title("TTFT vs TPOT")
        else:
            o = objs[0]
            numbers = [p[0] for p in view.points]
            values = [p[1][0] for p in view.points]
            best, running = [], None
            for v in values:
                running = v if running is None else (max if o.maximize else min)(running, v)
                best.append(running)
            plt.scatter(numbers, values, marker="dot", label="trial")
            plt.plot(numbers, best, marker="braille", label="best so far")
            if view.default_point:
                plt.hline(view.default_point[0])
            plt.xlabel("trial")
            plt.ylabel(objective_label(o))
            plt.title(f"{o.value} over trials (line: default)")
        self.refresh()


class TextPanel(Static):
    """A text panel redrawn from the study view it is given."""

    can_focus = True
    view: reactive[StudyView | None] = reactive(None, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 (Textual's name)
        super().__init__("", id=id, markup=False)

    def watch_view(self, view: StudyView | None) -> None:
        self.update("" if view is None else "\n".join(self.lines(view)))

    def lines(self, view: StudyView) -> list[str]:
        """What the panel shows of ``view``; each panel below says."""
        return []


class FeasibilityPanel(TextPanel):
    """Delta over time (Algorithm 1), POF of the queued trials, failures by kind, and the
    study's recent notable events (pauses, recoveries, optimizer errors)."""

    def lines(self, view: StudyView) -> list[str]:
        lines = []
        if view.deltas:
            last = view.deltas[-12:]
            recent = " ".join(f"{d:.2f}" for d in last)
            lines.append(f"Delta now {view.deltas[-1]:.2f}   (last {len(last)}: {recent})")
        else:
            lines.append("Delta 0.50 (no observation yet)")
        if view.pof_next:
            pofs = ", ".join(f"#{n} {p:.2f}" for n, p in view.pof_next)
            lines.append(f"POF of queued trials: {pofs}")
        else:
            lines.append("POF of queued trials: nothing queued")
        if view.failures:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(view.failures.items()))
            lines.append(f"failures by kind: {kinds}")
        else:
            lines.append("failures by kind: none")
        if view.events:
            lines += ["", "recent events:", *view.events]
        return lines


class GpuPanel(TextPanel):
    """One line per GPU set: the trial on it, for how long, the stress test's progress."""

    def lines(self, view: StudyView) -> list[str]:
        lines = []
        for r in view.running:
            if r.trial is None:
                busy = f"busy with {r.other}" if r.other else "idle"
                lines.append(f"GPU set {r.gpu_set:>8}: {busy}")
                continue
            filled = int(r.progress * 20)
            bar = "#" * filled + "." * (20 - filled)
            lines.append(
                f"GPU set {r.gpu_set:>8}: trial #{r.trial}  {r.elapsed_s:5.0f} s  [{bar}] "
                f"{r.progress * 100:3.0f}% of the stress test"
            )
        return lines
