"""A private PostgreSQL server for the tests, from Debian's package (tools/debian-packages
installs ``postgresql``): its own cluster in a temporary folder, on loopback, a fresh database
per test. As root the server runs as the ``postgres`` user (PostgreSQL refuses root)."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def pg_bin(name: str) -> str:
    for folder in BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    assert found, f"{name} is missing: tools/debian-packages installs postgresql"
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a cluster in a folder of its own (readable by the server's user, which pytest's
    private temporary folders are not); yields the admin URL (database ``postgres``)."""
    root = Path(tempfile.mkdtemp(prefix="scoot-pg-"))
    root.chmod(0o755)
    data = root / "pgdata"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    subprocess.run(
        _as_server_user(
            [pg_bin("initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = root / "server.log"
    subprocess.run(
        _as_server_user(
            [pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


_names = itertools.count()


def fresh_database(admin_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    import psycopg

    name = f"t{os.getpid()}_{next(_names)}_{int(time.time() * 1000) % 100000}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_connections(url: str) -> int:
    """Terminate every other connection to ``url``'s database (a dropped network link, as a
    server restart or a failover drops it); returns how many."""
    import psycopg

    db = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (db,),
        ).fetchall()
    return len(rows)
