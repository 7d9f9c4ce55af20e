"""Several machines on real servers (issue 20): a PostgreSQL store and a Redis queue, two
workers playing two hosts (distinct host ids, separate data directories, no shared files).

One worker is killed (SIGKILL) while it runs a trial; the other recovers that trial once its
heartbeat is stale, signals nothing of the dead host, and finishes the study: no trial lost or
counted twice. The engine log of every trial is readable from a third data directory through
the store alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import redis_server, wait_for, worker
from pg_server import free_port, fresh_database
from scoot.domain import AbandonCause, TrialState
from scoot.jobs.store import Store, TrialRow


def rows(url: str) -> list[TrialRow]:
    store = Store(url)
    try:
        study = store.study("pg")
        return [] if study is None else store.trials(study.id)
    finally:
        store.close()


def state(url: str) -> str:
    store = Store(url)
    try:
        study = store.study("pg")
        return "" if study is None else str(study.state)
    finally:
        store.close()


@pytest.mark.slow  # ~25-30 s: `make test-slow`, which CI runs
def test_two_hosts_share_a_postgres_store_and_survive_a_killed_worker(
    make_study: Callable[..., Path], tmp_path: Path, pg_admin: str
) -> None:
    url = fresh_database(pg_admin)
    study = make_study(name="pg", budget=6, duration=2.0, gpu_sets=("hostA:0", "hostB:0"))

    def env(host: str) -> dict[str, str]:
        home = tmp_path / f"home-{host}"  # no directory is shared between the two
        return {**os.environ, "SCOOT_HOME": str(home), "SCOOT_HOST_ID": host, "SCOOT_STORE": url}

    def cli(host: str, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "scoot", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env(host),
        )
        assert done.returncode == 0, done.stderr
        return done

    with redis_server(tmp_path) as queue:
        a_args = ("--queue", queue, "--gpu-sets", "hostA:0")
        b_args = ("--queue", queue, "--gpu-sets", "hostB:0")
        with (
            worker(tmp_path, *a_args, name="a", env=env("hostA")) as a,
            worker(tmp_path, *b_args, name="b", env=env("hostB")),
        ):
            cli("control", "tune", str(study), "--detach", "--queue", queue)

            def a_runs_one() -> bool:
                return any(
                    t.state is TrialState.RUNNING and t.runner.host == "hostA" for t in rows(url)
                )

            wait_for(a_runs_one, 120, "host A to run a trial")
            a.send_signal(signal.SIGKILL)  # no clean-up: its rows stay as they were
            a.wait(timeout=10)
            killed_at = time.time()
            wait_for(lambda: state(url) == "completed", 240, "host B to finish the study")
    trials = rows(url)
    counted = [t for t in trials if t.counts]
    assert len(counted) == 6  # the budget: nothing lost, nothing counted twice
    assert len({t.number for t in trials}) == len(trials)
    lost = [t for t in trials if t.state is TrialState.ABANDONED]
    assert len(lost) == 1, [(t.number, t.state, t.failure_message) for t in trials]
    (dead,) = lost
    assert dead.runner.host == "hostA" and dead.abandon_cause is AbandonCause.INTERRUPTED
    assert dead.failure_message is not None and "on host hostA died" in dead.failure_message
    assert "was stopped" not in dead.failure_message  # host B signalled nothing of host A's
    assert dead.ended_at is not None and dead.ended_at >= killed_at
    retried = [t for t in trials if t.number > dead.number and t.config == dead.config]
    assert retried and retried[0].source in ("default", f"retry of #{dead.number}")
    # The engine logs are in the store: a machine with neither worker's files reads them.
    store = Store(url, tmp_path / "home-control")
    try:
        for t in counted:
            text = store.log(t.id)
            assert text is not None and text.strip(), f"trial {t.number}: no log in the store"
    finally:
        store.close()
    status = cli("control", "study", "status", "pg").stdout
    assert "best configuration" in status


def test_the_cli_takes_a_store_url_and_names_a_bad_one(tmp_path: Path, pg_admin: str) -> None:
    url = fresh_database(pg_admin)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scoot", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    listed = run("--store", url, "study", "list")
    assert listed.returncode == 0, listed.stderr
    bad = run("--store", "mysql://x/y", "study", "list")
    assert bad.returncode != 0
    assert "--store 'mysql://x/y': expected postgresql://" in bad.stderr
    down = run("--store", f"postgresql://u:pw@127.0.0.1:{free_port()}/d", "study", "list")
    assert down.returncode != 0
    lines = [line for line in down.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the PostgreSQL store" in lines[0], down.stderr
    assert "pw" not in down.stderr
