"""The store's two databases behind one small connection API: SQLite (a file in the data
directory, the default) and PostgreSQL (``--store postgresql://...``, issue 20).

The store writes SQL once, with ``?`` placeholders and SQL both databases speak (``RETURNING``,
``ON CONFLICT``). What differs lives here:

- **Schema**: SQLite's declarations, rewritten for PostgreSQL (identity keys, double
  precision, bigint).
- **Writers**: SQLite's ``BEGIN IMMEDIATE`` makes each write transaction the only writer, so a
  read-then-write (the next trial number, a claim, a finish that checks a stop request) is
  atomic. PostgreSQL gets the same guarantee from a transaction-level advisory lock taken
  first in every write transaction; the server drops it when the transaction or the
  connection ends, as the kernel drops an ``flock``.
- **Per-study mutex** (the advance step): an ``flock`` file beside a SQLite store; a
  session-level advisory lock on PostgreSQL, so workers on machines that share no filesystem
  still take turns.
- **A dropped connection**: PostgreSQL reconnects and runs the whole transaction again when it
  failed before its commit was sent (the server rolled it back, so nothing is doubled); a read
  is retried the same way. Failing to connect at all is one clear line, at once.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

BUSY_S = 30.0
"""How long a SQLite connection waits for another writer before giving up."""

CONNECT_TIMEOUT_S = 5
"""How long connecting to PostgreSQL may take before the store fails fast."""

RETRIES = 3
"""Attempts of a PostgreSQL transaction or read whose connection dropped."""

LOCK_SPACE = 0x5C007
"""The first key of SCOOT's PostgreSQL advisory locks (the second: 0 for writers, a study id
for that study's mutex)."""


class BackendError(RuntimeError):
    """A database SCOOT cannot use: unreachable, or not a SCOOT store."""


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """One connection, as the store uses it."""

    kind: str
    where: str
    """How messages name the store: a path, or the URL without its password."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def attempts(self) -> Iterator[contextlib.AbstractContextManager[Db]]: ...

    def script(self, sql: str) -> None: ...

    def columns(self, table: str) -> set[str]: ...

    def study_mutex(
        self, study_id: int, data_dir: Path
    ) -> contextlib.AbstractContextManager[None]: ...

    def close(self) -> None: ...


class _OpCount:
    """Statements this process sent to its stores, for bench/scale.py: with
    ``$SCOOT_STORE_OPS_DIR`` set, written to ``DIR/PID`` every ``EVERY`` statements and at
    exit (a killed process loses at most ``EVERY``)."""

    EVERY = 50

    def __init__(self) -> None:
        self.n = 0
        folder = os.environ.get("SCOOT_STORE_OPS_DIR")
        self.path = Path(folder) / str(os.getpid()) if folder else None
        if self.path is not None:
            atexit.register(self.flush)

    def add(self) -> None:
        self.n += 1
        if self.path is not None and self.n % self.EVERY == 0:
            self.flush()

    def flush(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.write_text(str(self.n))


OPS = _OpCount()


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def connect(location: str | Path) -> Db:
    """A connection to the store at ``location``: a PostgreSQL URL, else a SQLite file."""
    if is_url(location):
        return PostgresDb(str(location))
    return SqliteDb(Path(location))


# -- SQLite --------------------------------------------------------------------------------------
class SqliteDb:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, timeout=BUSY_S, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        try:
            self._wal()
            self.conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise BackendError(f"{path}: not a SCOOT store SQLite can read ({exc})") from None

    def _wal(self) -> None:
        """WAL mode, once per file. Switching takes an exclusive lock that SQLite's busy
        timeout does not wait for: two processes creating one store at once (two ``scoot
        tune`` started together) retry until the other is done."""
        end = time.monotonic() + BUSY_S
        while True:
            try:
                mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > end:
                    raise
                time.sleep(0.05)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        OPS.add()
        return self.conn.execute(sql, params)

    def script(self, sql: str) -> None:
        try:
            self.conn.executescript(sql)
        except sqlite3.DatabaseError as exc:
            raise BackendError(
                f"{self.where}: not a SCOOT store SQLite can read ({exc})"
            ) from None

    def attempts(self) -> Iterator[contextlib.AbstractContextManager[Db]]:
        """One attempt: SQLite waits for the other writer (``BUSY_S``) instead of retrying."""
        yield self._tx()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Db]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def columns(self, table: str) -> set[str]:
        return {r["name"] for r in self.conn.execute(f"PRAGMA table_info({table})")}

    def study_mutex(
        self, study_id: int, data_dir: Path
    ) -> contextlib.AbstractContextManager[None]:
        from scoot.jobs.locks import study_mutex

        return study_mutex(data_dir, study_id)

    def close(self) -> None:
        self.conn.close()


# -- PostgreSQL ----------------------------------------------------------------------------------
def pg_schema(sqlite_schema: str) -> str:
    """SQLite's declarations in PostgreSQL's words."""
    out = sqlite_schema.replace(
        "INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    out = re.sub(r"\bREAL\b", "DOUBLE PRECISION", out)
    return re.sub(r"\bINTEGER\b", "BIGINT", out)


def pg_decl(decl: str) -> str:
    """A column declaration of ``ALTER TABLE ... ADD COLUMN`` for PostgreSQL."""
    return re.sub(r"\bINTEGER\b", "BIGINT", re.sub(r"\bREAL\b", "DOUBLE PRECISION", decl))


def redacted(url: str) -> str:
    """The URL without its password, for messages and the TUI."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class _Row(tuple[Any, ...]):
    """A row read by index or by column name, as ``sqlite3.Row`` is."""

    names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> _Row:
        row = super().__new__(cls, values)
        row.names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.names)


def _row_factory(cursor: Any) -> Any:
    names = {c.name: i for i, c in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> _Row:
        return _Row(values, names)

    return make


class PostgresDb:
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = redacted(url)
        self.in_tx = False
        self.conn = self._connect()

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                row_factory=_row_factory,
            )
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(
                f"{self.where}: cannot reach the PostgreSQL store ({first})"
            ) from None

    def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        self.conn = self._connect()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        import psycopg

        OPS.add()
        for attempt in range(RETRIES):
            try:
                cursor: Cursor = self.conn.execute(self._sql(sql), tuple(params))
                return cursor
            except psycopg.OperationalError:
                if self.in_tx or attempt == RETRIES - 1:
                    raise  # inside a transaction: the transaction's attempt retries it
                self._reconnect()
        raise AssertionError("unreachable")

    def script(self, sql: str) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_SPACE,))
            self.conn.execute(sql)

    def attempts(self) -> Iterator[contextlib.AbstractContextManager[Db]]:
        """Up to ``RETRIES`` runs of a write transaction: one that failed for a dropped
        connection before its commit was sent is rolled back by the server, so running it
        again on a new connection doubles nothing."""
        for attempt in range(RETRIES):
            tx = _PgAttempt(self, last=attempt == RETRIES - 1)
            yield tx
            if tx.done:
                return

    def columns(self, table: str) -> set[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", (table,)
        )
        return {r[0] for r in rows}

    @contextlib.contextmanager
    def study_mutex(self, study_id: int, data_dir: Path) -> Iterator[None]:
        self.execute("SELECT pg_advisory_lock(?, ?)", (LOCK_SPACE, study_id))
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self.execute("SELECT pg_advisory_unlock(?, ?)", (LOCK_SPACE, study_id))

    def close(self) -> None:
        self.conn.close()


class _PgAttempt:
    """One attempt of a write transaction (see :meth:`PostgresDb.attempts`)."""

    def __init__(self, db: PostgresDb, last: bool) -> None:
        self.db = db
        self.last = last
        self.done = False
        self._tx: Any = None

    def __enter__(self) -> Db:
        import psycopg

        for first in (True, False):
            tx = self.db.conn.transaction()
            try:
                tx.__enter__()
                self.db.conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_SPACE,))
            except psycopg.OperationalError as exc:  # a connection that dropped while idle
                with contextlib.suppress(Exception):
                    tx.__exit__(type(exc), exc, exc.__traceback__)
                if not first:
                    raise
                self.db._reconnect()
                continue
            self._tx = tx
            break
        self.db.in_tx = True
        return self.db

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        import psycopg

        self.db.in_tx = False
        try:
            self._tx.__exit__(kind, exc, tb)  # commits, or rolls back on an exception
        except psycopg.OperationalError:
            if kind is None:
                raise  # the commit itself failed: whether it landed is unknown, say so
            if not isinstance(exc, psycopg.OperationalError):
                raise
        if kind is None:
            self.done = True
            return False
        if isinstance(exc, psycopg.OperationalError) and not self.last and self.db.conn.broken:
            self.db._reconnect()
            return True  # swallowed: the next attempt runs the transaction again
        return False
