"""The SQLite store: the source of truth for studies, trials and events.

WAL mode, one short transaction per change, so a process killed at any instant leaves every
finished trial intact; nothing is ever recomputed from anything but these rows. Other processes
(the TUI, ``scoot study status``) read while a study runs.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoot.domain import (
    AbandonCause,
    Config,
    EventKind,
    FailureKind,
    Metrics,
    Observation,
    StudyState,
    TrialState,
)
from scoot.engine.launcher import NO_PROCESS, ProcessRef
from scoot.jobs.backends import BackendError, connect, is_url, pg_decl, pg_schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    spec_json TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'active',
    created_at REAL NOT NULL,
    state_since REAL,
    advanced_at REAL
);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    number INTEGER NOT NULL,
    config_json TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    failure_kind TEXT,
    failure_message TEXT,
    metrics_json TEXT,
    gpu_set TEXT,
    engine_pgid INTEGER,
    command TEXT,
    log_path TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    heartbeat_at REAL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    retest_seed INTEGER,
    retest_of INTEGER,
    host TEXT,
    runner_pid INTEGER,
    runner_started TEXT,
    engine_started TEXT,
    abandon_cause TEXT,
    ready_at REAL,
    UNIQUE (study_id, number)
);
CREATE INDEX IF NOT EXISTS trials_by_state ON trials (study_id, state);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL,
    trial_id INTEGER,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    trial_id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    gpu_sets TEXT NOT NULL,
    started_at REAL NOT NULL,
    seen_at REAL NOT NULL
);
"""


RETEST = "robustness "
"""Source prefix of the winner's re-tests: ``robustness 2 of 3 (#14)`` (a label; the seed and
the winner are the ``retest_seed`` and ``retest_of`` columns)."""

DEFAULT = "default"
"""Source of the baseline trials: the engine's default config."""


BEHIND = " (client behind)"
"""What a retry's source adds when its first run was invalid (the client fell behind)."""


def retry_source(t: TrialRow, why: str = "") -> str:
    """The source of a run of ``t``'s config again: a retry of the baseline is the baseline
    (the same label)."""
    return DEFAULT if t.is_default else f"retry of #{t.number}{why}"


ADDED_COLUMNS = {
    "trials": (
        ("stop_requested", "INTEGER NOT NULL DEFAULT 0"),
        ("retest_seed", "INTEGER"),
        ("retest_of", "INTEGER"),
        ("host", "TEXT"),
        ("runner_pid", "INTEGER"),
        ("runner_started", "TEXT"),
        ("engine_started", "TEXT"),
        ("abandon_cause", "TEXT"),
        ("ready_at", "REAL"),
    ),
    "studies": (("state_since", "REAL"), ("advanced_at", "REAL")),
}
"""Columns later than the first stores: added on open, so an old store stays readable."""


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A ``scoot worker`` as it last reported itself (its janitor, every few seconds)."""

    id: str
    host: str
    pid: int
    gpu_sets: tuple[str, ...]
    """The GPU sets it serves; empty: every set a study names."""
    started_at: float
    seen_at: float


class StoreError(RuntimeError):
    """A store operation that cannot proceed (e.g. a study name reused with another spec)."""


@dataclass(frozen=True, slots=True)
class StudyRow:
    """A study as stored."""

    id: int
    name: str
    spec_json: str
    source: str
    state: StudyState
    created_at: float
    state_since: float | None = None
    advanced_at: float | None = None
    """When an executor last looked at what the study does next (an advance task): for a
    study handed to workers, None or an old time means no worker is serving it."""


@dataclass(frozen=True, slots=True)
class TrialRow:
    """A trial as stored."""

    id: int
    study_id: int
    number: int
    config: Config
    source: str
    state: TrialState
    failure_kind: FailureKind | None
    failure_message: str | None
    metrics: Metrics | None
    gpu_set: str | None
    engine_pgid: int | None
    command: str | None
    log_path: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    heartbeat_at: float | None = None
    stop_requested: bool = False
    retest: int | None = None
    """For a robustness re-test of the winner, its arrival-order seed (1, 2, ...)."""
    retest_of: int | None = None
    """For a re-test, the number of the trial it re-tests."""
    runner: ProcessRef = NO_PROCESS
    """The process that claimed it (a worker or a foreground ``scoot tune``)."""
    engine: ProcessRef = NO_PROCESS
    """The engine's process group (pid = pgid) and its start time, on ``runner``'s host."""
    abandon_cause: AbandonCause | None = None
    ready_at: float | None = None
    """When the engine first answered: the stress test's start (None before, or in a store
    older than the column)."""

    @property
    def is_default(self) -> bool:
        """A run of the engine's default config, the baseline every result is compared with
        (queued again, under the same label, when an earlier run of it was abandoned)."""
        return self.source == DEFAULT

    @property
    def stopped_early(self) -> str | None:
        """Why its stress test was stopped early (a censored observation), None otherwise."""
        if self.state is TrialState.COMPLETED and self.metrics is not None:
            return self.metrics.stopped_early
        return None

    @property
    def state_label(self) -> str:
        """The state as the CLI and TUI show it: ``failed (hang)``, ``stopped early``."""
        if self.stopped_early is not None:
            return "stopped early"
        why = self.failure_kind or self.abandon_cause
        return self.state.value + (f" ({why.value})" if why else "")

    @property
    def counts(self) -> bool:
        """Whether it spends the budget: a completed or failed trial that is not a re-test."""
        return self.state in (TrialState.COMPLETED, TrialState.FAILED) and self.retest is None

    def observation(self) -> Observation | None:
        """What the optimizer learns from this trial; None unless it completed or failed
        (re-tests of the winner repeat a config and are not fed back)."""
        if self.retest is not None:
            return None
        if self.state is TrialState.COMPLETED and self.metrics is not None:
            return Observation(self.config, True, self.metrics)
        if self.state is TrialState.FAILED:
            return Observation(self.config, False, None, self.failure_kind)
        return None


class Store:
    """A connection to one store: a SQLite file (the default) or a PostgreSQL database
    (``postgresql://...``, :mod:`scoot.jobs.backends`). ``data_dir`` holds what stays on the
    machine (engine logs, ``flock`` files): beside a SQLite file by default."""

    def __init__(self, location: str | Path, data_dir: Path | None = None) -> None:
        self.location: str | Path = location if is_url(location) else Path(location)
        try:
            self.db = connect(location)
        except BackendError as exc:
            raise StoreError(str(exc)) from None
        self.where = self.db.where
        if isinstance(self.location, Path):
            self.data_dir = data_dir or self.location.parent
        else:
            self.data_dir = data_dir or Path.home() / ".local" / "share" / "scoot"
        try:
            self.db.script(SCHEMA if self.db.kind == "sqlite" else pg_schema(SCHEMA))
            self._migrate()
        except BackendError as exc:
            self.db.close()
            raise StoreError(str(exc)) from None

    @property
    def path(self) -> Path:
        """The SQLite file (a PostgreSQL store has none: see ``where``)."""
        if not isinstance(self.location, Path):
            raise StoreError(f"{self.where} is a PostgreSQL store, not a file")
        return self.location

    def reopen(self) -> Store:
        """Another connection to the same store (SQLite connections are per thread)."""
        return Store(self.location, self.data_dir)

    def study_mutex(self, study_id: int) -> AbstractContextManager[None]:
        """A short exclusive section per study (deciding what to queue next), across
        processes, threads and, on PostgreSQL, machines."""
        return self.db.study_mutex(study_id, self.data_dir)

    def _migrate(self) -> None:
        """Bring a store written by an older SCOOT up to this schema, keeping every row (a
        store already current costs two reads, no write)."""
        missing = {
            table: [(n, d) for n, d in added if n not in self.db.columns(table)]
            for table, added in ADDED_COLUMNS.items()
        }
        if not any(missing.values()):
            return
        for attempt in self.db.attempts():
            with attempt as c:
                for table, added in missing.items():
                    for name, decl in added:
                        if name not in c.columns(table):  # another process may have added it
                            if c.kind != "sqlite":
                                decl = pg_decl(decl)
                            c.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                # Re-tests were once known only by their label, "robustness 2 of 3 (#14)".
                old = c.execute(
                    "SELECT id, source FROM trials WHERE retest_seed IS NULL AND source LIKE ?",
                    (RETEST + "%",),
                ).fetchall()
                for row in old:
                    words = row["source"].removeprefix(RETEST).split()
                    of = words[-1].strip("(#)") if words else ""
                    if words and words[0].isdigit() and of.isdigit():
                        c.execute(
                            "UPDATE trials SET retest_seed = ?, retest_of = ? WHERE id = ?",
                            (int(words[0]), int(of), row["id"]),
                        )

    def close(self) -> None:
        self.db.close()

    # -- studies -----------------------------------------------------------------------------
    def open_study(self, name: str, spec_json: str, source: str = "") -> tuple[StudyRow, bool]:
        """The study called ``name``, created if new; the flag says whether it was created.

        Raises:
            StoreError: if a study of that name exists with a different spec.
        """
        for attempt in self.db.attempts():
            with attempt as c:
                row = c.execute("SELECT * FROM studies WHERE name = ?", (name,)).fetchone()
                if row is None:
                    c.execute(
                        "INSERT INTO studies (name, spec_json, source, created_at) "
                        "VALUES (?,?,?,?)",
                        (name, spec_json, source, time.time()),
                    )
                    row = c.execute("SELECT * FROM studies WHERE name = ?", (name,)).fetchone()
                    created = True
                else:
                    created = False
                    if row["spec_json"] != spec_json:
                        raise StoreError(
                            f"study '{name}' already exists in {self.where} with a different "
                            "definition; give the study another name, or use --new to start over"
                        )
        return _study(row), created

    def study(self, name: str) -> StudyRow | None:
        row = self.db.execute("SELECT * FROM studies WHERE name = ?", (name,)).fetchone()
        return _study(row) if row else None

    def studies(self) -> list[StudyRow]:
        rows = self.db.execute("SELECT * FROM studies ORDER BY id").fetchall()
        return [_study(r) for r in rows]

    def rename_study(self, study_id: int, new_name: str) -> None:
        """Keep an old study's results under another name (``--new`` never deletes)."""
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute("UPDATE studies SET name = ? WHERE id = ?", (new_name, study_id))

    def set_study_state(
        self, study_id: int, state: StudyState, *, only_from: tuple[StudyState, ...] = ()
    ) -> bool:
        """Change the study's state (and when it changed); with ``only_from``, only from one of
        those states (a check and a write in one transaction). True if it changed."""
        for attempt in self.db.attempts():
            with attempt as c:
                sql = "UPDATE studies SET state = ?, state_since = ? WHERE id = ?"
                args: list[object] = [state.value, time.time(), study_id]
                if only_from:
                    sql += f" AND state IN ({','.join('?' * len(only_from))})"
                    args += [s.value for s in only_from]
                changed = c.execute(sql, args).rowcount == 1
        return changed

    def touch_advanced(self, study_id: int) -> None:
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute(
                    "UPDATE studies SET advanced_at = ? WHERE id = ?", (time.time(), study_id)
                )

    # -- trials ------------------------------------------------------------------------------
    def add_trial(
        self,
        study_id: int,
        config: Config,
        source: str,
        *,
        retest: int | None = None,
        retest_of: int | None = None,
    ) -> TrialRow:
        """Queue a new trial with the next number (a re-test: with its seed and winner)."""
        for attempt in self.db.attempts():
            with attempt as c:
                (number,) = c.execute(
                    "SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = ?",
                    (study_id,),
                ).fetchone()
                cur = c.execute(
                    "INSERT INTO trials (study_id, number, config_json, source, state, "
                    "created_at, "
                    "retest_seed, retest_of) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                    (
                        study_id,
                        number,
                        json.dumps(config.as_dict(), sort_keys=True),
                        source,
                        TrialState.QUEUED.value,
                        time.time(),
                        retest,
                        retest_of,
                    ),
                )
                trial_id = cur.fetchone()[0]
        assert trial_id is not None
        self.event(study_id, trial_id, EventKind.QUEUED, f"trial {number} queued ({source})")
        return self.trial(trial_id)

    def queued_retry(self, t: TrialRow) -> TrialRow | None:
        """The queued run of ``t``'s config that :meth:`finish` added after it, if any."""
        for u in self.trials(t.study_id):
            if (
                u.number > t.number
                and u.config == t.config
                and u.state is TrialState.QUEUED
                and u.retest is None
            ):
                return u
        return None

    def trial(self, trial_id: int) -> TrialRow:
        row = self.db.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise StoreError(f"no trial with id {trial_id}")
        return _trial(row)

    def trials(self, study_id: int) -> list[TrialRow]:
        rows = self.db.execute(
            "SELECT * FROM trials WHERE study_id = ? ORDER BY number", (study_id,)
        ).fetchall()
        return [_trial(r) for r in rows]

    def running_anywhere(self) -> list[tuple[int, str, int, str]]:
        """(study id, study name, trial number, GPU set) of every running trial."""
        rows = self.db.execute(
            "SELECT s.id, s.name, t.number, t.gpu_set FROM trials t JOIN studies s "
            "ON s.id = t.study_id WHERE t.state = ? AND t.gpu_set IS NOT NULL",
            (TrialState.RUNNING.value,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def observations(self, study_id: int) -> list[Observation]:
        """Every completed or failed trial, as the optimizer sees it."""
        return [o for t in self.trials(study_id) if (o := t.observation()) is not None]

    def claim(self, trial_id: int, gpu_set: str, runner: ProcessRef) -> bool:
        """Take a queued trial for ``gpu_set`` in the process ``runner``; False if another
        task already took it."""
        now = time.time()
        for attempt in self.db.attempts():
            with attempt as c:
                cur = c.execute(
                    "UPDATE trials SET state = ?, gpu_set = ?, started_at = ?, heartbeat_at = ?, "
                    "host = ?, runner_pid = ?, runner_started = ?, engine_pgid = NULL, "
                    "engine_started = NULL WHERE id = ? AND state = ?",
                    (
                        TrialState.RUNNING.value,
                        gpu_set,
                        now,
                        now,
                        runner.host,
                        runner.pid,
                        runner.started,
                        trial_id,
                        TrialState.QUEUED.value,
                    ),
                )
                taken = cur.rowcount == 1
        return taken

    def request_stop(self, trial_id: int) -> None:
        """Mark a trial as stopped by the operator: whatever its run concludes, it is abandoned."""
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute("UPDATE trials SET stop_requested = 1 WHERE id = ?", (trial_id,))

    def study_by_id(self, study_id: int) -> StudyRow:
        row = self.db.execute("SELECT * FROM studies WHERE id = ?", (study_id,)).fetchone()
        if row is None:
            raise StoreError(f"no study with id {study_id}")
        return _study(row)

    def mark_running(
        self, trial_id: int, gpu_set: str, engine: ProcessRef, command: str, log_path: str
    ) -> None:
        """The trial's engine is started: its process group, command line and log."""
        now = time.time()
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute(
                    "UPDATE trials SET state = ?, gpu_set = ?, engine_pgid = ?, "
                    "engine_started = ?, "
                    "host = COALESCE(host, ?), command = ?, log_path = ?, "
                    "started_at = COALESCE(started_at, ?), heartbeat_at = ? WHERE id = ?",
                    (
                        TrialState.RUNNING.value,
                        gpu_set,
                        engine.pid,
                        engine.started,
                        engine.host,
                        command,
                        log_path,
                        now,
                        now,
                        trial_id,
                    ),
                )

    def mark_ready(self, trial_id: int) -> None:
        """The trial's engine answers: its stress test starts now (the TUI's progress bar
        counts from here, not from the launch)."""
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute("UPDATE trials SET ready_at = ? WHERE id = ?", (time.time(), trial_id))

    def heartbeat(self, trial_id: int) -> None:
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute(
                    "UPDATE trials SET heartbeat_at = ? WHERE id = ?", (time.time(), trial_id)
                )

    def finish(
        self,
        trial_id: int,
        state: TrialState,
        *,
        metrics: Metrics | None = None,
        failure: FailureKind | None = None,
        message: str | None = None,
        cause: AbandonCause | None = None,
        retry: str | None = None,
    ) -> None:
        """Record a trial's outcome; only a running or queued trial can finish (no duplicates).
        An abandoned trial names its ``cause``.

        A trial the operator stopped (``pause --now``, ``cancel``) is abandoned whatever its run
        concluded: a killed engine says nothing about its config.

        ``retry``: the source of the same config queued again in the same transaction when the
        trial ends abandoned for an invalid run, so that no advance step (another worker
        thread's) sees the study between the two and queues a config of its own."""
        if state is TrialState.ABANDONED and cause is None:
            raise ValueError("an abandoned trial needs its cause")
        for attempt in self.db.attempts():
            with attempt as c:
                row = c.execute("SELECT stop_requested FROM trials WHERE id = ?", (trial_id,))
                flag = row.fetchone()
                if flag is not None and flag[0] and state is not TrialState.COMPLETED:
                    state, metrics, failure = TrialState.ABANDONED, None, None
                    message, cause = "stopped by the operator", AbandonCause.OPERATOR
                cur = c.execute(
                    "UPDATE trials SET state = ?, metrics_json = ?, failure_kind = ?, "
                    "failure_message = ?, abandon_cause = ?, ended_at = ? "
                    "WHERE id = ? AND state IN (?, ?)",
                    (
                        state.value,
                        json.dumps(metrics.to_dict()) if metrics else None,
                        failure.value if failure else None,
                        message,
                        cause.value if state is TrialState.ABANDONED and cause else None,
                        time.time(),
                        trial_id,
                        TrialState.RUNNING.value,
                        TrialState.QUEUED.value,
                    ),
                )
                if cur.rowcount != 1:
                    raise StoreError(
                        f"trial {trial_id} is not running; its outcome was not recorded"
                    )
                retried = retry is not None and cause is AbandonCause.INVALID_RUN
                if retried and state is TrialState.ABANDONED:
                    study_id, config_json = c.execute(
                        "SELECT study_id, config_json FROM trials WHERE id = ?", (trial_id,)
                    ).fetchone()
                    (number,) = c.execute(
                        "SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = ?",
                        (study_id,),
                    ).fetchone()
                    added = c.execute(
                        "INSERT INTO trials (study_id, number, config_json, source, state, "
                        "created_at) VALUES (?,?,?,?,?,?) RETURNING id",
                        (
                            study_id,
                            number,
                            config_json,
                            retry,
                            TrialState.QUEUED.value,
                            time.time(),
                        ),
                    )
                    queued = (added.fetchone()[0], number)
                else:
                    queued = None
        t = self.trial(trial_id)
        text = f"trial {t.number} {state.value}"
        if failure:
            text += f" ({failure.value})"
        self.event(t.study_id, trial_id, EventKind(state.value), text)
        if queued is not None:
            self.event(
                t.study_id, queued[0], EventKind.QUEUED, f"trial {queued[1]} queued ({retry})"
            )

    # -- engine logs -------------------------------------------------------------------------
    def put_log(self, trial_id: int, text: str) -> None:
        """Keep the end of a trial's engine log in the store, so the TUI and reports on
        another machine read it without a shared filesystem (issue 20)."""
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute(
                    "INSERT INTO logs (trial_id, text, updated_at) VALUES (?,?,?) "
                    "ON CONFLICT(trial_id) DO UPDATE SET text = excluded.text, "
                    "updated_at = excluded.updated_at",
                    (trial_id, text, time.time()),
                )

    def log(self, trial_id: int) -> str | None:
        """The end of a trial's engine log as last stored (None: nothing stored)."""
        row = self.db.execute("SELECT text FROM logs WHERE trial_id = ?", (trial_id,)).fetchone()
        return None if row is None else str(row[0])

    # -- events ------------------------------------------------------------------------------
    # -- workers -----------------------------------------------------------------------------
    def worker_seen(self, worker: ProcessRef, gpu_sets: tuple[str, ...]) -> None:
        """Record that ``worker`` is alive now (the TUI's workers panel reads it)."""
        now = time.time()
        key = f"{worker.host}/{worker.pid}/{worker.started}"
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute(
                    "INSERT INTO workers (id, host, pid, gpu_sets, started_at, seen_at) "
                    "VALUES (?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                    "seen_at = excluded.seen_at, "
                    "gpu_sets = excluded.gpu_sets",
                    (key, worker.host, worker.pid, json.dumps(list(gpu_sets)), now, now),
                )

    def worker_gone(self, worker: ProcessRef) -> None:
        """A worker that stops cleanly removes its row."""
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute(
                    "DELETE FROM workers WHERE id = ?",
                    (f"{worker.host}/{worker.pid}/{worker.started}",),
                )

    def workers(self) -> list[WorkerRow]:
        """Every worker that reported itself, the most recently seen first."""
        return [
            WorkerRow(
                r["id"],
                r["host"],
                r["pid"],
                tuple(json.loads(r["gpu_sets"])),
                r["started_at"],
                r["seen_at"],
            )
            for r in self.db.execute("SELECT * FROM workers ORDER BY seen_at DESC")
        ]

    def event(self, study_id: int, trial_id: int | None, kind: EventKind, message: str) -> None:
        for attempt in self.db.attempts():
            with attempt as c:
                c.execute(
                    "INSERT INTO events (study_id, trial_id, ts, kind, message) "
                    "VALUES (?,?,?,?,?)",
                    (study_id, trial_id, time.time(), kind.value, message),
                )

    def events(self, study_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM events WHERE study_id = ? ORDER BY id", (study_id,)
        ).fetchall()
        return [dict(r) for r in rows]

    def notable_events(self, study_id: int, last: int = 5) -> list[str]:
        """The last ``last`` events worth an operator's eye (pauses, resumes, cancels,
        recoveries, optimizer errors), one line each with its local time; a trial's own
        state changes are in the trial table already."""
        notable = {k.value for k in EventKind if k.notable}
        picked = [e for e in self.events(study_id) if e["kind"] in notable][-last:]
        return [
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e['ts']))} "
            f"{e['kind']}: {e['message']}"
            for e in picked
        ]


def _study(row: Any) -> StudyRow:
    return StudyRow(
        row["id"],
        row["name"],
        row["spec_json"],
        row["source"],
        StudyState(row["state"]),
        row["created_at"],
        row["state_since"],
        row["advanced_at"],
    )


def _trial(row: Any) -> TrialRow:
    metrics = Metrics.from_dict(json.loads(row["metrics_json"])) if row["metrics_json"] else None
    return TrialRow(
        id=row["id"],
        study_id=row["study_id"],
        number=row["number"],
        config=Config.of(json.loads(row["config_json"])),
        source=row["source"],
        state=TrialState(row["state"]),
        failure_kind=FailureKind(row["failure_kind"]) if row["failure_kind"] else None,
        failure_message=row["failure_message"],
        metrics=metrics,
        gpu_set=row["gpu_set"],
        engine_pgid=row["engine_pgid"],
        command=row["command"],
        log_path=row["log_path"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        heartbeat_at=row["heartbeat_at"],
        stop_requested=bool(row["stop_requested"]),
        retest=row["retest_seed"],
        retest_of=row["retest_of"],
        runner=ProcessRef(row["host"], row["runner_pid"], row["runner_started"]),
        engine=ProcessRef(row["host"], row["engine_pgid"], row["engine_started"]),
        abandon_cause=AbandonCause(row["abandon_cause"]) if row["abandon_cause"] else None,
        ready_at=row["ready_at"],
    )
