"""The study screen's panels: the objective plot, feasibility, and what runs on each GPU set.

Attributes down: the screen sets ``view`` on each panel; each panel redraws itself from it.
"""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot

from scoot.jobs.views import StudyView, objective_label


def staircase(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The steps through ``points`` sorted by x: a Pareto front (or best-so-far) drawn as
    what it is, each point holding until the next, never a straight interpolation."""
    xs: list[float] = []
    ys: list[float] = []
    for i, (x, y) in enumerate(sorted(points)):
        if i:
            xs.append(x)
            ys.append(ys[-1])
        xs.append(x)
        ys.append(y)
    return xs, ys


def plot_caption(view: StudyView) -> str:
    """The legend, kept outside the data (it hid the low-TTFT points), and what is not drawn:
    failed trials have no metrics, so they are listed beside the plot, not on it."""
    two = len(view.spec.objectives) >= 2
    legend = (
        "• trial   ◆ front (staircase, trial numbers)   x default   log axes"
        if two
        else "• trial   — best so far (steps)   ┄ default"
    )
    failed = view.failed_numbers
    if failed:
        shown = " ".join(f"#{n}" for n in failed[:12]) + (" ..." if len(failed) > 12 else "")
        legend += f"\nfailed, not drawn: {shown}"
    if view.hypervolume:
        last = view.hypervolume[-1]
        legend += f"\nhypervolume (log objectives) after #{last[0]}: {last[1]:.3g} (bar above)"
    return legend


class ObjectivePlot(PlotextPlot):
    """TTFT vs TPOT on log axes with the front as a staircase, the default marked and the
    front's points labelled; or the objective over trials with the best so far as steps."""

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
            if all(v > 0 for v in xs + ys):
                plt.xscale("log")
                plt.yscale("log")
            plt.scatter(xs, ys, marker="dot", color="gray")
            front = [
                (t.number, t.row.metrics.value(objs[0]), t.row.metrics.value(objs[1]))
                for t in view.trials
                if t.on_front and t.row.metrics
            ]
            sx, sy = staircase([(x, y) for _, x, y in front])
            if len(sx) > 1:
                plt.plot(sx, sy, marker="braille", color="cyan")
            plt.scatter([x for _, x, _ in front], [y for _, _, y in front], marker="◆")
            for number, x, y in front:
                plt.text(f"#{number}", x, y, color="cyan")
            if view.default_point:
                plt.scatter(
                    [view.default_point[0]], [view.default_point[1]], marker="x", color="red"
                )
            plt.xlabel(objective_label(objs[0]))
            plt.ylabel(objective_label(objs[1]))
            plt.title(f"{objs[0].value} vs {objs[1].value}")
        else:
            o = objs[0]
            numbers = [p[0] for p in view.points]
            values = [p[1][0] for p in view.points]
            best: list[tuple[float, float]] = []
            running: float | None = None
            for n, v in zip(numbers, values, strict=True):
                running = v if running is None else (max if o.maximize else min)(running, v)
                best.append((float(n), running))
            plt.scatter(numbers, values, marker="dot", color="gray")
            bx, by = staircase(best)
            plt.plot(bx, by, marker="braille", color="cyan")
            if view.default_point:
                plt.hline(view.default_point[0], color="red")
            plt.xlabel("trial")
            plt.ylabel(objective_label(o))
            plt.title(f"{o.value} over trials")
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


DELTA_HELP = (
    "Delta: the least probability of running (by the crash forest) a suggestion needs;"
    " it rises after failures, falls after successes (paper Algorithm 1)"
)


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
        lines.append(DELTA_HELP)
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
    """One line per GPU set (the trial on it, for how long, the stress test's progress, which
    counts from the engine's first answer, not its launch); then the workers and the queue,
    with a warning when no worker is alive to run what is queued."""

    def lines(self, view: StudyView) -> list[str]:
        lines = []
        for r in view.running:
            if r.trial is None:
                busy = f"busy with {r.other}" if r.other else "idle"
                lines.append(f"GPU set {r.gpu_set:>8}: {busy}")
                continue
            if r.starting:
                lines.append(
                    f"GPU set {r.gpu_set:>8}: trial #{r.trial}  {r.elapsed_s:5.0f} s  "
                    "starting the engine (the stress test has not begun)"
                )
                continue
            filled = int(r.progress * 20)
            bar = "#" * filled + "." * (20 - filled)
            lines.append(
                f"GPU set {r.gpu_set:>8}: trial #{r.trial}  {r.elapsed_s:5.0f} s  [{bar}] "
                f"{r.progress * 100:3.0f}% of the stress test"
            )
        lines.append("")
        lines.append(f"queued trials: {view.queued}")
        alive = [w for w in view.workers if w.alive]
        lines += [w.text() for w in view.workers[:6]]
        if not alive and (view.queued or view.summary.state.startswith("running")):
            lines.append(
                "warning: no worker is alive; start `scoot worker` (or run `scoot tune FILE`)"
            )
        return lines


class WhyPanel(TextPanel):
    """Why a config is good: each flag's share of the importance (a forest over the trials),
    and the objective per value of the flags that matter most."""

    TOP = 4

    def lines(self, view: StudyView) -> list[str]:
        o = view.spec.objectives[0]
        done = len(view.points)
        if not view.importance:
            return [f"importance needs at least 4 completed trials that differ ({done} now)"]
        lines = [f"what moves {o.value} (forest importance over {done} trials):"]
        for name, share in view.importance:
            bar = "█" * round(share * 30)
            lines.append(f"  {name:<34} {share:5.1%} {bar}")
        best = "max" if o.maximize else "min"
        for name, _ in view.importance[: self.TOP]:
            lines.append("")
            lines.append(f"{o.value} by {name} (trials, {best}, median):")
            for e in view.effects.get(name, []):
                lines.append(f"  {e.label:>14}: {e.trials:3d}  {e.best:10.4g}  {e.median:10.4g}")
        return lines
