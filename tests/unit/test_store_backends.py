"""The store on both back ends (issue 20): SQLite and a real PostgreSQL server.

The same tests run against each (the ``store_at`` fixture): concurrent writers never double a
trial number or a claim, the per-study mutex excludes across connections, and workers and
events read back alike. PostgreSQL's own: a dropped connection mid-study is retried without
losing or doubling a row, and a server that cannot be reached is one clear line, at once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from scoot.domain import Config, EventKind, Metrics, TrialState
from scoot.engine.launcher import ProcessRef
from scoot.jobs.store import Store, StoreError

RUNNER = ProcessRef("host-a", 4321, "boot/1")


def test_concurrent_writers_never_double_a_number_or_a_claim(store_at: str | Path) -> None:
    setup = Store(store_at)
    study, _ = setup.open_study("s", "{}")
    setup.close()
    numbers: list[int] = []
    errors: list[BaseException] = []

    def add(k: int) -> None:
        store = Store(store_at)
        try:
            for i in range(5):
                t = store.add_trial(study.id, Config.of({"max_num_seqs": k * 10 + i}), "sobol")
                numbers.append(t.number)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(numbers) == list(range(20))  # consecutive, none twice
    store = Store(store_at)
    target = store.trials(study.id)[0]
    won: list[bool] = []

    def claim(k: int) -> None:
        mine = Store(store_at)
        try:
            won.append(mine.claim(target.id, str(k), ProcessRef("h", k, "b")))
        finally:
            mine.close()

    claimers = [threading.Thread(target=claim, args=(k,)) for k in range(4)]
    for t in claimers:
        t.start()
    for t in claimers:
        t.join()
    assert sorted(won) == [False, False, False, True]  # exactly one claim lands
    assert store.trial(target.id).state is TrialState.RUNNING
    store.close()


def test_the_study_mutex_excludes_across_connections(store_at: str | Path) -> None:
    first, second = Store(store_at), Store(store_at)
    study, _ = first.open_study("s", "{}")
    inside = threading.Event()
    entered_second = threading.Event()

    def hold() -> None:
        with first.study_mutex(study.id):
            inside.set()
            assert not entered_second.wait(0.5)  # the other section cannot begin meanwhile

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    with second.study_mutex(study.id):
        entered_second.set()
    holder.join()
    with first.study_mutex(study.id + 1), second.study_mutex(study.id + 2):
        pass  # another study's mutex is another lock
    first.close()
    second.close()


def test_workers_events_and_states_read_back_alike(store_at: str | Path) -> None:
    store = Store(store_at)
    study, _ = store.open_study("s", '{"a": 1}')
    t = store.add_trial(study.id, Config.of({"max_num_seqs": 8, "x": 0.5}), "default")
    assert store.claim(t.id, "0", RUNNER)
    store.mark_running(t.id, "0", RUNNER, "vllm serve m", "/logs/t.log")
    store.mark_ready(t.id)
    store.heartbeat(t.id)
    store.finish(t.id, TrialState.COMPLETED, metrics=Metrics.of(p95_e2el_ms=12.5, completed=3))
    row = store.trial(t.id)
    assert row.config.as_dict() == {"max_num_seqs": 8, "x": 0.5}
    assert row.metrics is not None and row.metrics.p95_e2el_ms == 12.5
    assert row.ready_at is not None and row.runner == RUNNER and row.command == "vllm serve m"
    assert [e["kind"] for e in store.events(study.id)] == ["queued", "completed"]
    store.event(study.id, None, EventKind.PAUSED, "paused by the operator")
    assert store.notable_events(study.id)[-1].endswith("paused: paused by the operator")
    store.worker_seen(RUNNER, ("0", "1"))
    store.worker_seen(RUNNER, ("0",))
    (w,) = store.workers()
    assert (w.host, w.pid, w.gpu_sets) == ("host-a", 4321, ("0",))
    store.worker_gone(RUNNER)
    assert store.workers() == []
    assert store.running_anywhere() == []
    store.close()


def test_a_dropped_postgres_connection_is_retried_without_doubling(pg_admin: str) -> None:
    from pg_server import drop_connections, fresh_database

    url = fresh_database(pg_admin)
    store = Store(url)
    study, _ = store.open_study("s", "{}")
    first = store.add_trial(study.id, Config.of({"max_num_seqs": 8}), "default")
    assert store.claim(first.id, "0", RUNNER)
    assert drop_connections(url) >= 1  # as a server restart or a failover would
    # The next write reconnects and runs its transaction once.
    store.finish(first.id, TrialState.COMPLETED, metrics=Metrics.of(p95_e2el_ms=5.0))
    assert drop_connections(url) >= 1
    second = store.add_trial(study.id, Config.of({"max_num_seqs": 16}), "sobol")
    assert drop_connections(url) >= 1
    rows = store.trials(study.id)  # a read reconnects too
    assert [(t.number, t.state) for t in rows] == [
        (0, TrialState.COMPLETED),
        (1, TrialState.QUEUED),
    ]
    assert second.number == 1
    kinds = [e["kind"] for e in store.events(study.id)]
    assert kinds == ["queued", "completed", "queued"]  # no event twice
    store.close()


def test_an_unreachable_postgres_store_fails_fast_in_one_line() -> None:
    from pg_server import free_port

    start = time.monotonic()
    with pytest.raises(StoreError) as err:
        Store(f"postgresql://scoot:secret@127.0.0.1:{free_port()}/scoot")
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "\n" not in message and "cannot reach the PostgreSQL store" in message
    assert "secret" not in message and "scoot:***@127.0.0.1" in message


def test_a_transaction_cut_off_midway_runs_again_once(pg_admin: str) -> None:
    """The connection drops inside a write transaction, before its commit: the server rolled
    it back, so the store runs the whole transaction again on a new connection."""
    from pg_server import drop_connections, fresh_database

    url = fresh_database(pg_admin)
    store = Store(url)
    study, _ = store.open_study("s", "{}")
    runs = 0
    for attempt in store.db.attempts():
        with attempt as c:
            runs += 1
            c.execute(
                "INSERT INTO events (study_id, trial_id, ts, kind, message) VALUES (?,?,?,?,?)",
                (study.id, None, 0.0, "paused", f"run {runs}"),
            )
            if runs == 1:
                drop_connections(url)
                c.execute("SELECT 1")  # the dropped link shows here, before the commit
    assert runs == 2
    assert [e["message"] for e in store.events(study.id)] == ["run 2"]  # run 1 rolled back
    store.close()
