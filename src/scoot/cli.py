"""``scoot``: the command line. Input is validated here, once, before anything starts.

Commands: ``demo`` (a short study on the embedded engine), ``tune STUDY.toml``, ``study
list|status``, ``export``. A study runs in the foreground and can be killed at any time: run the
same command again and it continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoot.domain import Objective, OutcomeConstraint, StudyState, TrialState
from scoot.jobs.backends import redacted
from scoot.jobs.store import Store, StoreError, StudyRow
from scoot.stress.formats import FORMATS
from scoot.stress.traces import TraceError
from scoot.study import StudyError, StudySpec, load_study

if TYPE_CHECKING:
    from rich.console import Console

    from scoot.engine.catalog import Catalog
    from scoot.jobs.worker import Queue
    from scoot.stress.formats import TraceLoad

# `scoot --help` imports neither rich, nor the optimizers, nor aiohttp: each command imports
# what it uses (bench/cli.py measures the help's start-up).
_console: list[Console] = []


def out() -> Console:
    """The console, made on first use. Piped output (CI logs, `make demo | tee`) gets a wide
    table instead of an 80-column squeeze."""
    if not _console:
        from rich.console import Console

        _console.append(Console(highlight=False, width=None if sys.stdout.isatty() else 160))
    return _console[0]


QUEUE_HELP = "redis://HOST:PORT/DB to share workers across machines (default: SQLite queue)"


def escape(text: str) -> str:
    """``text`` shown as itself in rich markup (a stored name may hold ``[/]``)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def data_dir(explicit: str | None = None) -> Path:
    """Where the store and engine logs live: ``--data-dir``, ``$SCOOT_HOME``, or XDG data."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get("SCOOT_HOME"):
        return Path(os.environ["SCOOT_HOME"]).expanduser().resolve()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "scoot"


def store_url(ns: argparse.Namespace) -> str | None:
    """``--store`` or ``$SCOOT_STORE``: a PostgreSQL URL (None: the SQLite file)."""
    url = getattr(ns, "store", None) or os.environ.get("SCOOT_STORE") or None
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise StoreError(
            f"--store {url!r}: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (leave it "
            "out for the SQLite file in the data folder)"
        )
    return url


def open_store(ns: argparse.Namespace, *, existing: bool = False) -> Store:
    """The store the command line names; ``existing``: a SQLite file must be there already."""
    root = data_dir(ns.data_dir)
    url = store_url(ns)
    if url is None and existing and not (root / "scoot.db").exists():
        raise StoreError(
            f"no store at {root / 'scoot.db'}; run `scoot demo` or `scoot tune` first"
        )
    return Store(url or root / "scoot.db", root)


def demo_study_path() -> Path:
    """The packaged demo study (its trace sits beside it)."""
    return Path(str(resources.files("scoot") / "data" / "demo.toml"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scoot`` console script."""
    parser = _parser()
    ns = parser.parse_args(argv)
    if not getattr(ns, "func", None):
        parser.print_help()
        return 2
    try:
        return int(ns.func(ns))
    except (StudyError, TraceError, StoreError) as exc:
        print(f"scoot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "scoot: interrupted; run the same command again to continue (a study's running "
            "trials were abandoned, never counted, and queued again)",
            file=sys.stderr,
        )
        return 130
    except OSError as exc:  # a file the command was told to read or write
        print(f"scoot: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scoot", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="store and logs folder (default: $SCOOT_HOME or XDG data)")
    p.add_argument(
        "--store",
        help="a PostgreSQL store, postgresql://USER@HOST/DB (default: $SCOOT_STORE, else the "
        "SQLite file scoot.db in the data folder)",
    )
    sub = p.add_subparsers(dest="command")

    d = sub.add_parser("demo", help="tune the embedded engine on a sample trace (~8 evaluations)")
    d.add_argument("--new", action="store_true", help="start the demo study over")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("tune", help="run (or continue) the study a TOML file describes")
    t.add_argument("study", help="study file (TOML)")
    t.add_argument("--new", action="store_true", help="keep old results aside and start over")
    t.add_argument(
        "--detach",
        action="store_true",
        help="hand the study to `scoot worker` processes and return (survives a closed terminal)",
    )
    t.add_argument("--queue", help=QUEUE_HELP)
    t.add_argument(
        "--resume", action="store_true", help="continue a paused study here, in the foreground"
    )
    t.set_defaults(func=cmd_tune)

    ui = sub.add_parser("tui", help="watch and steer studies in a terminal UI (keyboard only)")
    ui.add_argument("--queue", help=QUEUE_HELP)
    ui.set_defaults(func=cmd_tui)

    w = sub.add_parser("worker", help="run queued trials on this machine's GPU sets")
    w.add_argument("--queue", help=QUEUE_HELP)
    w.add_argument(
        "--gpu-sets",
        nargs="+",
        metavar="SET",
        help='GPU sets this worker serves, e.g. "0,1" "2,3" (default: every set a study names)',
    )
    w.add_argument("--threads", type=int, help="concurrent trials (default: one per GPU set)")
    w.set_defaults(func=cmd_worker)

    s = sub.add_parser("study", help="inspect studies in the store")
    ssub = s.add_subparsers(dest="study_command")
    sl = ssub.add_parser("list", help="every study with its progress")
    sl.set_defaults(func=cmd_study_list)
    ss = ssub.add_parser("status", help="a study's trials and best configuration")
    ss.add_argument("name")
    ss.set_defaults(func=cmd_study_status)
    sp = ssub.add_parser("pause", help="start no new trials (running ones finish, or --now)")
    sp.add_argument("name")
    sp.add_argument("--now", action="store_true", help="stop running trials too (abandoned)")
    sp.set_defaults(func=cmd_study_pause)
    sr = ssub.add_parser("resume", help="hand a paused study back to the workers")
    sr.add_argument("name")
    sr.add_argument("--queue", help=QUEUE_HELP)
    sr.set_defaults(func=cmd_study_resume)
    sc = ssub.add_parser("cancel", help="stop everything; every result is kept")
    sc.add_argument("name")
    sc.set_defaults(func=cmd_study_cancel)

    tr = sub.add_parser("trace", help="look at request traces")
    trsub = tr.add_subparsers(dest="trace_command")
    ti = trsub.add_parser("inspect", help="counts and length percentiles of a trace")
    ti.add_argument("file")
    ti.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tc = trsub.add_parser("convert", help="write a public trace in SCOOT's JSONL format")
    tc.add_argument("file")
    tc.add_argument("-o", "--output", required=True, help="the JSONL file to write")
    for t in (ti, tc):
        t.add_argument("--format", choices=FORMATS, default="auto", help="input format")
        t.add_argument(
            "--skip-bad", action="store_true", help="skip malformed records and count them"
        )
    ti.set_defaults(func=cmd_trace_inspect)
    tc.set_defaults(func=cmd_trace_convert)

    en = sub.add_parser("engine", help="engine parameter catalogs")
    ensub = en.add_subparsers(dest="engine_command")
    ec = ensub.add_parser(
        "catalog", help="show a shipped catalog, or regenerate one from an installed engine"
    )
    ec.add_argument("--show", metavar="NAME", help="print a shipped catalog (e.g. vllm-0.32)")
    ec.add_argument("--from", dest="from_engine", choices=("vllm", "sglang"))
    ec.add_argument(
        "--python",
        help="the engine's Python (default: the interpreter behind the `vllm` command, or "
        "`python3` for sglang)",
    )
    ec.add_argument("--write", action="store_true", help="write it into the shipped catalogs")
    ec.set_defaults(func=cmd_engine_catalog)
    ep = ensub.add_parser(
        "profile",
        help="measure a running engine's step times into a step table (the embedded format)",
    )
    ep.add_argument("url", help="the engine's base URL, e.g. http://127.0.0.1:8000")
    ep.add_argument("-o", "--output", required=True, help="the table file (JSON) to write")
    ep.add_argument("--model", required=True, help="the model name the engine serves")
    for name, default in (("batches", "1,4,16"), ("contexts", "128,512,2048")):
        ep.add_argument(f"--{name}", default=default, help=f"decode {name} (default {default})")
    ep.add_argument("--prompts", default="128,512,2048", help="prefill lengths")
    ep.add_argument("--output-tokens", type=int, default=32, help="tokens per decode request")
    ep.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="BxS",
        help="a decode point off the grid (batch x context, e.g. 2x256), measured with the "
        "grid and kept out of the table: the table's interpolation error there is printed "
        "and recorded (repeatable)",
    )
    ep.add_argument(
        "--profile",
        default="",
        help="the engine profile it was launched with (vllm-cpu): its defaults and start-up "
        "refusals go into the table, so the embedded engine can serve it as a twin",
    )
    ep.add_argument(
        "--max-num-seqs", type=int, help="the engine's max-num-seqs (default: the profile's)"
    )
    ep.add_argument(
        "--max-num-batched-tokens",
        type=int,
        help="the engine's max-num-batched-tokens (default: the profile's)",
    )
    ep.add_argument(
        "--startup-seconds",
        type=float,
        default=3.0,
        help="how long the engine took to become ready (the twin's start-up; default 3)",
    )
    ep.add_argument(
        "--engine-flags", default="", help="the flags the engine was launched with (provenance)"
    )
    ep.add_argument(
        "--settle-cv",
        type=float,
        default=0.05,
        help="a point is settled when its two fastest repeats' coefficient of variation is "
        "at most this (default 0.05; vLLM-CPU's run-to-run noise wants about 0.1)",
    )
    ep.add_argument(
        "--max-repeats", type=int, default=6, help="repeats of a point before it fails"
    )
    ep.set_defaults(func=cmd_engine_profile)
    ecal = ensub.add_parser(
        "calibrate",
        help="calibrate a profiled table on a trial a real study ran (its default config)",
    )
    ecal.add_argument("table", help="the table `scoot engine profile` wrote")
    ecal.add_argument("--study", required=True, help="the real study whose trial calibrates it")
    ecal.add_argument("--trial", type=int, help="the trial (default: the default config's run)")
    ecal.add_argument("--model", help="the model in the table (default: the study's)")
    ecal.add_argument("-o", "--output", required=True, help="the calibrated table to write")
    ecal.set_defaults(func=cmd_engine_calibrate)

    e = sub.add_parser("export", help="print a trial's configuration as a command or JSON")
    e.add_argument("name", help="study name")
    e.add_argument("--trial", type=int, help="trial number (default: the best)")
    e.add_argument(
        "--format",
        choices=("vllm", "yaml", "docker", "sglang", "command", "k8s", "json"),
        default=None,
        help="vllm serve command, its --config YAML, docker run, SGLang command, the study's "
        "own command, Kubernetes container args, or JSON (default: the engine's launch line)",
    )
    e.set_defaults(func=cmd_export)

    rp = sub.add_parser(
        "report", help="write a study's report as one self-contained HTML page, to share"
    )
    rp.add_argument("name", help="study name")
    rp.add_argument("-o", "--output", required=True, help="the folder to write index.html into")
    rp.set_defaults(func=cmd_report)
    return p


# -- commands ------------------------------------------------------------------------------------
def cmd_demo(ns: argparse.Namespace) -> int:
    return _tune(load_study(demo_study_path()), ns, set_aside_changed=True)


def changed_since_recorded(store: Store, spec: StudySpec) -> bool:
    """Whether the store holds a study of this name with another definition.

    For the demo, such a study (recorded by an earlier SCOOT) is set aside as ``--new`` does
    rather than refused: the operator asked to see the demo, and nothing is deleted."""
    old = store.study(spec.name)
    return old is not None and old.spec_json != spec.to_json()


def cmd_tune(ns: argparse.Namespace) -> int:
    return _tune(load_study(ns.study), ns)


def _tune(spec: StudySpec, ns: argparse.Namespace, *, set_aside_changed: bool = False) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from scoot.jobs.evaluate import build_workload
    from scoot.jobs.foreground import Progress as StudyProgress
    from scoot.jobs.foreground import run_foreground
    from scoot.stress.formats import read_trace
    from scoot.study import warnings_of

    # A stop (SIGTERM) or a dropped session (SIGHUP) ends a foreground run as Ctrl-C does:
    # running trials abandoned and queued again, their engines stopped, nothing left behind.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    read_trace(spec.trace.file)  # a broken trace stops here, before any engine starts
    build_workload(spec)  # so does one unusable as the study replays it (too long, no times)
    _preflight(spec)  # so do flags the engine's own parser refuses
    for warning in warnings_of(spec):
        print(f"scoot: warning: {warning}", file=sys.stderr)
    root = data_dir(ns.data_dir)
    store = open_store(ns)
    try:
        new = ns.new or (set_aside_changed and changed_since_recorded(store, spec))
        if new and (old := store.study(spec.name)) is not None:
            from scoot.jobs import control

            aside = f"{spec.name}@{time.strftime('%Y%m%d-%H%M%S')}"
            if old.state in (StudyState.ACTIVE, StudyState.RUNNING):
                control.cancel(store, old.id)  # nobody goes on running what is set aside
            store.rename_study(old.id, aside)
            out().print(f"earlier results of '{spec.name}' kept as study '{aside}'")
        study, created = store.open_study(spec.name, spec.to_json(), spec.source)
        done_before = sum(t.counts for t in store.trials(study.id))
        if getattr(ns, "detach", False):
            return _detach(store, study, spec, ns, root)
        verb = "starting" if created else f"continuing ({done_before} evaluations done)"
        out().print(
            f"study [bold]{spec.name}[/] {verb}: {spec.engine.kind} engine, model "
            f"{spec.engine.model}, objectives {', '.join(o.value for o in spec.objectives)}, "
            f"budget {spec.budget}; store {store.where}"
        )
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out(),
            transient=False,
        ) as bar:
            task = bar.add_task("evaluations", total=spec.budget, completed=done_before)

            def on_progress(p: StudyProgress) -> None:
                desc = "evaluations"
                if p.trial is not None and p.phase == "running":
                    desc = f"trial {p.trial.number} ({p.trial.source})"
                elif p.trial is not None:
                    outcome = p.trial.state.value
                    if p.trial.failure_kind:
                        outcome += f": {p.trial.failure_kind.value}"
                    bar.console.print(f"  trial {p.trial.number} {outcome}", markup=False)
                bar.update(task, completed=min(p.done, spec.budget), description=desc)

            state = run_foreground(
                store,
                study.id,
                root,
                resume=getattr(ns, "resume", False),
                on_progress=on_progress,
            )
        report(store, study)
        if state is StudyState.COMPLETED:
            trials = store.trials(study.id)
            completed = any(t.state is TrialState.COMPLETED and t.retest is None for t in trials)
            return 0 if completed else 1  # every config failed: not a success
        # Paused or cancelled while it ran (by the operator, or the policy): say why, exit 2.
        events = store.notable_events(study.id, last=1)
        why = events[0].split(": ", 1)[-1] if events else "no reason recorded"
        raise StoreError(f"study '{spec.name}' is {state}: {why}")
    finally:
        store.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _preflight(spec: StudySpec) -> None:
    """Refuse a study whose launches the engine's own parser rejects (no GPU time wasted)."""
    from scoot.engine.catalog import CatalogError
    from scoot.jobs.preflight import preflight

    try:
        python, problems = preflight(spec)
    except CatalogError as exc:
        out().print(f"[yellow]could not check the flags with the engine's parser: {exc}[/]")
        return
    if problems:
        raise StudyError(
            f"{spec.source}: {spec.engine.kind}'s own argument parser refuses this study's "
            "launches:\n  " + "\n  ".join(problems)
        )
    if python is not None:
        out().print(f"flags checked with {spec.engine.kind}'s own parser ({python})")


def _queue(ns: argparse.Namespace, root: Path) -> Queue:
    from scoot.jobs.worker import Queue, QueueError

    try:
        return Queue(getattr(ns, "queue", None), root)
    except QueueError as exc:
        raise StoreError(str(exc)) from None


def _detach(
    store: Store, study: StudyRow, spec: StudySpec, ns: argparse.Namespace, root: Path
) -> int:
    from scoot.jobs import control

    queue = _queue(ns, root)
    queued = control.start(store, study.id, queue)
    out().print(
        f"study [bold]{spec.name}[/] handed to the workers ({len(queued)} trials queued over "
        f"{len(spec.gpu_sets)} GPU sets). Run `scoot worker` if none is running; watch with "
        f"`scoot study status {spec.name}`."
    )
    return 0


def cmd_engine_catalog(ns: argparse.Namespace) -> int:
    from scoot.engine import catalog as cat

    try:
        if ns.show:
            _print_catalog(cat.load_catalog(ns.show))
            return 0
        if not ns.from_engine:
            out().print("shipped catalogs: " + ", ".join(cat.available()))
            return 0
        python = ns.python or cat.python_of((), ns.from_engine)
        if python is None:
            raise cat.CatalogError(
                f"cannot find {ns.from_engine}'s Python; pass --python /path/to/its/python"
            )
        text = cat.generate(cat.introspect(ns.from_engine, python))
        new = cat.parse_catalog_text(text)
        if new.name in cat.available():
            changes = cat.diff(cat.load_catalog(new.name), new)
            out().print(
                f"against the shipped {new.name}: "
                + ("no change" if not changes else f"{len(changes)} change(s)")
            )
            for line in changes:
                out().print(f"  {line}", markup=False)
        else:
            out().print(f"{new.name} is new (shipped: {', '.join(cat.available())})")
        if ns.write:
            path = cat.catalog_dir() / f"{new.name}.toml"
            path.write_text(text)
            out().print(f"written: {path}")
        elif not ns.write:
            print(text)
    except cat.CatalogError as exc:
        raise StoreError(str(exc)) from None
    return 0


def cmd_engine_calibrate(ns: argparse.Namespace) -> int:
    from scoot.jobs.calibrate import calibrate_trial, trial_to_calibrate

    store = _open_existing(ns)
    try:
        spec, trial = trial_to_calibrate(store, ns.study, ns.trial)
    finally:
        store.close()
    assert trial.metrics is not None  # a completed trial's
    got = calibrate_trial(spec, trial, ns.table, ns.model or spec.engine.model, Path(ns.output))
    out().print(
        f"wrote {ns.output}: calibrated on trial {trial.number} of '{ns.study}' (mean TPOT "
        f"{trial.metrics.mean_tpot_ms:.2f} ms, TTFT {trial.metrics.mean_ttft_ms:.2f} ms): "
        f"step scale {got['step_scale']:.3f}, request overhead "
        f"{got['request_overhead_ms']:.2f} ms"
    )
    return 0


def cmd_engine_profile(ns: argparse.Namespace) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from scoot.engine.catalog import CatalogError, load_profile, profile_refusals
    from scoot.engine.embedded.tables import profiled_checks
    from scoot.stress.profiler import (
        ProfileError,
        ProfilePlan,
        check_engine,
        engine_facts,
        measure,
        table,
        twin_facts,
    )

    def ints(text: str, flag: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise StoreError(f"{flag} {text!r}: expected numbers such as 1,4,16") from None
        if not values or min(values) < 1:
            raise StoreError(f"{flag} {text!r}: expected positive numbers")
        return values

    def point(text: str) -> tuple[int, int]:
        b, x, s = text.partition("x")
        if not (x and b.isdigit() and s.isdigit() and int(b) > 0 and int(s) > 0):
            raise StoreError(f"--check {text!r}: expected batch x context, such as 2x256")
        return int(b), int(s)

    plan = ProfilePlan(
        ns.url,
        ns.model,
        batches=ints(ns.batches, "--batches"),
        contexts=ints(ns.contexts, "--contexts"),
        prompts=ints(ns.prompts, "--prompts"),
        checks=tuple(point(c) for c in ns.check),
        output_tokens=ns.output_tokens,
        settle_cv=ns.settle_cv,
        max_repeats=max(2, ns.max_repeats),
    )
    defaults: dict[str, int] = {}
    refusals: list[dict[str, str]] = []
    if ns.profile:
        try:
            profile = load_profile(ns.profile)
        except CatalogError as exc:
            raise StoreError(f"--profile: {exc}") from None
        refusals = profile_refusals(ns.profile)
        defaults = {
            k: int(v)
            for k, v in profile.get("defaults", {}).items()
            if k in ("max_num_seqs", "max_num_batched_tokens")
        }
    for key in ("max_num_seqs", "max_num_batched_tokens"):
        if getattr(ns, key) is not None:
            defaults[key] = getattr(ns, key)
    missing = [k for k in ("max_num_seqs", "max_num_batched_tokens") if k not in defaults]
    if missing:
        flags = " and ".join("--" + k.replace("_", "-") for k in missing)
        raise StoreError(
            f"the engine's {flags} are unknown: pass them (the values it was launched with, "
            "or picked) or --profile, so the table can serve as its twin"
        )
    points = len(plan.batches) * len(plan.contexts) + len(plan.checks) + len(plan.prompts) + 2
    try:
        engine = check_engine(ns.url, ns.model)
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out()
        ) as bar:
            task = bar.add_task("profiling", total=points)

            def step(what: str) -> None:
                bar.update(task, description=what, advance=1)

            measured = measure(plan, step)
            step("engine facts (KV capacity, vocabulary)")
            facts = engine_facts(ns.url, ns.model, engine)
    except ProfileError as exc:
        raise StoreError(str(exc)) from None
    twin = twin_facts(
        facts, measured, startup_s=ns.startup_seconds, defaults=defaults, refusals=refusals
    )
    about = {
        "models": engine,
        "version": facts.get("version"),
        "flags": ns.engine_flags,
        "profile": ns.profile,
    }
    target = Path(ns.output)
    doc = table(plan, measured, about, twin)
    target.write_text(json.dumps(doc, indent=1) + "\n")
    for where, (predicted, got) in profiled_checks(doc, ns.model).items():
        out().print(
            f"check {where}: the table predicts {predicted:.2f} ms, measured {got:.2f} ms "
            f"({predicted / got - 1:+.1%})"
        )
    out().print(
        f"wrote {target}: {points} points, {measured.repeats} repeats at most, spread "
        f"<= {max(measured.spread, default=0.0):.1%}, client overhead "
        f"{measured.overhead_ms:.1f} ms"
    )
    return 0


def _print_catalog(c: Catalog) -> None:
    from rich.table import Table

    table = Table("flag", "group", "type", "default", "range / choices", "note")
    for f in c.flags.values():
        span = (
            " ".join(map(str, f.choices))
            if f.choices
            else (
                f"{f.low:g}..{f.high:g}" + (" log" if f.log else "") if f.low is not None else ""
            )
        )
        table.add_row(
            "--" + f.name.replace("_", "-"), f.group, f.kind, str(f.default), span, f.note
        )
    out().print(f"{c.engine} {c.version} ({c.source})")
    out().print(table)
    for expr in c.constraints:
        out().print(f"constraint: {expr}", markup=False)


def cmd_tui(ns: argparse.Namespace) -> int:
    from scoot.tui.app import run_tui

    try:
        run_tui(data_dir(ns.data_dir), queue_url=ns.queue, store=store_url(ns))
    except ValueError as exc:  # a keymap file that does not parse
        raise StoreError(str(exc)) from None
    return 0


def cmd_worker(ns: argparse.Namespace) -> int:
    from scoot.jobs.worker import QueueError, run_worker

    root = data_dir(ns.data_dir)
    url = store_url(ns)
    where = redacted(url) if url else root / "scoot.db"
    out().print(
        f"scoot worker: store {where}, queue {ns.queue or root / 'queue.db'}, "
        f"GPU sets {' '.join(ns.gpu_sets) if ns.gpu_sets else 'of every study'}"
    )
    try:
        run_worker(root, queue_url=ns.queue, gpu_sets=ns.gpu_sets, threads=ns.threads, store=url)
    except QueueError as exc:
        raise StoreError(str(exc)) from None
    return 0


def cmd_study_pause(ns: argparse.Namespace) -> int:
    from scoot.jobs import control

    store, study = _open_study(ns)
    stopped = control.pause(store, study.id, now=ns.now)
    what = f"; {len(stopped)} running trial(s) stopping" if ns.now else ""
    name = escape(study.name)
    out().print(f"study {name} paused{what}; `scoot study resume {name}` continues")
    return 0


def cmd_study_resume(ns: argparse.Namespace) -> int:
    from scoot.jobs import control

    store, study = _open_study(ns)
    queue = _queue(ns, data_dir(ns.data_dir))
    queued = control.resume(store, study.id, queue)
    out().print(f"study {escape(study.name)} resumed: {len(queued)} queued trial(s) re-sent")
    return 0


def cmd_study_cancel(ns: argparse.Namespace) -> int:
    from scoot.jobs import control

    store, study = _open_study(ns)
    stopped = control.cancel(store, study.id)
    out().print(
        f"study {escape(study.name)} cancelled ({len(stopped)} running trial(s) stopping); "
        "every result is kept"
    )
    return 0


def cmd_study_list(ns: argparse.Namespace) -> int:
    from rich.table import Table

    from scoot.jobs.policy import best_trial

    store = _open_existing(ns)
    table = Table("study", "objectives", "state", "done/budget", "failed", "best")
    for study in store.studies():
        spec = json.loads(study.spec_json)
        trials = store.trials(study.id)
        objectives = [Objective(o) for o in spec["objectives"]]
        done = sum(t.counts for t in trials)
        failed = sum(t.state is TrialState.FAILED for t in trials)
        best = best_trial(trials, objectives, _slo(spec), _robust(spec))
        table.add_row(
            escape(study.name),
            ",".join(o.value for o in objectives),
            study.state,
            f"{done}/{spec['budget']}",
            str(failed),
            f"#{best.number}" if best else "-",
        )
    out().print(table)
    return 0


def cmd_study_status(ns: argparse.Namespace) -> int:
    store, study = _open_study(ns)
    report(store, study)
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    from scoot.jobs.report import write_report

    store, study = _open_study(ns)
    try:
        path = write_report(store, study, Path(ns.output))
    finally:
        store.close()
    out().print(f"wrote {path}: open it in a browser", markup=False, highlight=False)
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from scoot.engine.exporters import exports_for
    from scoot.jobs.policy import best_trial, slo_missed

    store, study = _open_study(ns)
    spec = json.loads(study.spec_json)
    trials = store.trials(study.id)
    objectives = [Objective(o) for o in spec["objectives"]]
    if ns.trial is None:
        trial = best_trial(trials, objectives, _slo(spec), _robust(spec))
        if trial is None:
            missed = slo_missed(trials, _slo(spec))
            raise StoreError(
                f"study '{ns.name}': {missed}; export one by --trial N"
                if missed
                else f"study '{ns.name}' has no completed trial yet"
            )
    else:
        found = [t for t in trials if t.number == ns.trial]
        if not found:
            raise StoreError(f"study '{ns.name}' has no trial {ns.trial}")
        trial = found[0]
    formats = {
        "vllm": "vllm serve",
        "yaml": "config YAML",
        "docker": "docker run",
        "sglang": "sglang",
        "command": "command",
        "k8s": "k8s args",
        "json": "JSON",
    }
    engine = spec["engine"]
    env = [(k, v) for k, v in engine["env"]]
    made = exports_for(
        engine["kind"],
        engine["model"],
        engine["args"],
        trial.config.as_dict(),
        env,
        engine["command"],
    )
    chosen = ns.format or next(k for k, v in formats.items() if v in made)  # the kind's own
    if formats[chosen] not in made:
        raise StoreError(
            f"--format {chosen} does not apply to a {engine['kind']} study; "
            f"use one of {', '.join(k for k, v in formats.items() if v in made)}"
        )
    if trial.state is not TrialState.COMPLETED:
        why = f" ({trial.failure_kind.value})" if trial.failure_kind else ""
        print(
            f"scoot: warning: trial {trial.number} {trial.state.value}{why}: this config was "
            "not measured serving the trace",
            file=sys.stderr,
        )
    print(made[formats[chosen]][1], end="")
    return 0


def _load_trace(ns: argparse.Namespace) -> TraceLoad:
    from scoot.stress.formats import load as load_trace

    got = load_trace(ns.file, ns.format, skip_bad=ns.skip_bad)
    if got.skipped:
        print(
            f"scoot: skipped {got.skipped} malformed record(s) of {ns.file}; first: "
            f"{got.first_errors[0]}",
            file=sys.stderr,
        )
    return got


def cmd_trace_convert(ns: argparse.Namespace) -> int:
    from scoot.stress.formats import to_jsonl

    got = _load_trace(ns)
    target = Path(ns.output)
    target.write_text(to_jsonl(got.requests), encoding="utf-8")
    print(f"wrote {len(got.requests)} requests to {target}")
    return 0


def cmd_trace_inspect(ns: argparse.Namespace) -> int:
    from rich.table import Table

    from scoot.stress.traces import summarize

    got = _load_trace(ns)
    summary = summarize(got.requests)
    summary["skipped"] = got.skipped
    if ns.json:
        print(json.dumps(summary, indent=2))
        return 0
    out().print(
        f"{ns.file}: {summary['requests']} requests, {summary['with_timestamps']} with "
        f"timestamps, {summary['with_hash_ids']} with hash_ids"
        + (f", {got.skipped} malformed skipped" if got.skipped else "")
    )
    if summary["rate_rps"]:
        out().print(f"span {summary['span_s']:.1f} s, mean rate {summary['rate_rps']:.2f} req/s")
    table = Table("tokens", "mean", "p50", "p90", "p95", "p99", "max")
    for key in ("input_length", "output_length"):
        stats = summary[key]
        assert isinstance(stats, dict)
        table.add_row(
            key, *(f"{stats[k]:.0f}" for k in ("mean", "p50", "p90", "p95", "p99", "max"))
        )
    out().print(table)
    return 0


def _open_study(ns: argparse.Namespace) -> tuple[Store, StudyRow]:
    store = _open_existing(ns)
    study = store.study(ns.name)
    if study is None:
        raise StoreError(f"no study named '{ns.name}' in {store.where}")
    return store, study


def _open_existing(ns: argparse.Namespace) -> Store:
    return open_store(ns, existing=True)


# -- reporting -----------------------------------------------------------------------------------
def report(store: Store, study: StudyRow) -> None:
    """Print the study's trials and its best configuration as a ``vllm serve`` command."""
    from rich.table import Table

    from scoot.jobs.decision import decide
    from scoot.jobs.policy import best_trial, slo_missed
    from scoot.study import StudySpec

    study = store.study_by_id(study.id)  # its state now, not when it was opened
    spec = json.loads(study.spec_json)
    objectives = [Objective(o) for o in spec["objectives"]]
    params = list(spec["params"])
    trials = store.trials(study.id)
    best = best_trial(trials, objectives, _slo(spec), _robust(spec))
    missed = slo_missed(trials, _slo(spec))
    table = Table(title=f"study {escape(study.name)}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("source")
    for p in params:
        table.add_column(_short(p["name"]), justify="right")
    extra = [o for o in objectives if o.metric in EXTRA_COLUMNS]
    labels = [
        "req/s",
        "p95 e2e ms",
        "TTFT ms",
        "TPOT ms",
        *(EXTRA_COLUMNS[o.metric] for o in extra),
    ]
    for label in labels:
        table.add_column(label, justify="right")
    table.add_column("state")
    for t in trials:
        cells = [str(t.number), t.source]
        cfg = t.config.as_dict()
        cells += [_fmt(cfg.get(p["name"])) for p in params]
        if t.metrics is not None and t.state is TrialState.COMPLETED:
            m = t.metrics
            cells += [
                f"{m.request_throughput:.2f}",
                f"{m.p95_e2el_ms:.0f}",
                f"{m.mean_ttft_ms:.0f}",
                f"{m.mean_tpot_ms:.1f}",
            ]
            cells += [_fmt_metric(getattr(m, o.metric)) for o in extra]
        else:
            cells += ["-"] * (4 + len(extra))
        state = t.state_label
        style = "bold green" if best is not None and t.id == best.id else None
        table.add_row(*cells, state + (" *best" if style else ""), style=style)
    out().print(table)
    if line := who_runs(store, study):
        out().print(line, markup=False)
    for line in store.notable_events(study.id):
        out().print(line, markup=False, highlight=False)
    if best is None:
        done = study.state is StudyState.COMPLETED
        out().print(
            missed
            or (
                "no configuration completed its stress test" if done else "no completed trial yet"
            ),
            markup=False,
        )
        return
    if _slo(spec):
        out().print(
            "the best is chosen among trials meeting every SLO: "
            + ", ".join(str(c) for c in _slo(spec)),
            markup=False,
        )
    if best.metrics is not None and best.metrics.rate_steps:
        steps = ", ".join(f"{r:.3g} req/s -> {a:.1%}" for r, a in best.metrics.rate_steps)
        out().print(
            f"capacity of the best: {best.metrics.capacity or 0:.3g} req/s (rate search: {steps})",
            markup=False,
        )
    decision = decide(trials, StudySpec.from_json(study.spec_json, study.source))
    for line in decision.lines():
        out().print(line, markup=False, highlight=False)
    out().print(f"best configuration (trial {best.number}), ready to run:")
    print(decision.command)


def who_runs(store: Store, study: StudyRow) -> str:
    """One line: what the study's state means now, and the command that changes it."""
    from scoot.jobs.locks import foreground_lock

    name = study.name
    if study.state is StudyState.RUNNING:
        if study.advanced_at is None:
            return "handed to the workers, none has taken it yet: is `scoot worker` running?"
        ago = time.time() - study.advanced_at
        return f"run by the workers (last advanced {ago:.0f} s ago)"
    if study.state is StudyState.ACTIVE:
        lock = foreground_lock(store.data_dir, study.id)
        if not lock.acquire():
            return f"run in the foreground by `scoot tune` (process {lock.holder()})"
        lock.release()
        return "not running: `scoot tune FILE` continues it here, `--detach` on the workers"
    if study.state is StudyState.PAUSED:
        return (
            f"paused: `scoot study resume {name}` continues on the workers, "
            "`scoot tune FILE --resume` here"
        )
    return ""  # completed, cancelled: the table and the summary below say it


def _robust(spec: dict[str, Any]) -> bool:
    """Whether the winner is picked among the re-tested configs (not ``variant = "paper"``)."""
    return bool(spec.get("variant", "default") != "paper")


EXTRA_COLUMNS = {
    "goodput": "goodput/s",
    "capacity": "capacity/s",
    "cost_per_mtok": "$/Mtok",
    "throughput_per_gpu": "tok/s/GPU",
}
"""Status-table columns of the objectives beyond the four it always shows."""


def _fmt_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _slo(spec: dict[str, Any]) -> tuple[OutcomeConstraint, ...]:
    """A stored study's outcome constraints (none in a study recorded before they existed)."""
    return tuple(OutcomeConstraint(**c) for c in spec.get("slo", []))


def _short(name: str) -> str:
    return "".join(w[0] for w in name.split("_")) if len(name) > 12 else name


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


if __name__ == "__main__":
    sys.exit(main())
