"""Claims on WeChat deliveries, shared by every thread, process and instance
that uses one database: the row that makes "run the handlers once" hold across
gunicorn workers on one SQLite file and across instances on one PostgreSQL.

The claim is the message path's only write, so it bypasses SQLAlchemy's
per-statement machinery: one raw DBAPI connection per process in autocommit and
one upsert per delivery. The first copy inserts the row; a later copy marks it
`wanted`, and only then does the winner write its answer down (off the message
path, in batches). Reads never block writers (WAL on SQLite, MVCC on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from storage.store import StorageError

T = TypeVar("T")
CLEANUP_BATCH = 500  # rows per DELETE, so the write lock is held briefly
BUSY_DEADLINE = 5.0  # seconds a write waits for SQLite's lock before it fails


def delivery_id(key: str) -> int:
    """A signed 64-bit id for a delivery key: an integer primary key is the
    cheapest index there is, and 2^64 leaves collisions out of reach."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _statements(p: str) -> dict[str, str]:
    """The ledger's SQL with the driver's placeholder `p` (constants only: S608 is moot)."""
    return {
        "claim": "INSERT INTO deliveries (id, expires_at, wanted) "  # noqa: S608
        f"VALUES ({p}, {p}, FALSE) ON CONFLICT (id) DO UPDATE SET wanted = TRUE "
        "RETURNING wanted, expires_at",
        "wanted": "SELECT id FROM deliveries WHERE wanted AND id IN ({})",
        "answer": f"SELECT answer FROM deliveries WHERE id = {p}",  # noqa: S608
        "save": f"UPDATE deliveries SET answer = {p} WHERE id = {p}",  # noqa: S608
        "expire": "DELETE FROM deliveries WHERE id IN "  # noqa: S608
        f"(SELECT id FROM deliveries WHERE expires_at < {p} LIMIT {CLEANUP_BATCH})",
    }


class DeliveryLedger:
    """`claim` decides which copy of a delivery runs the handlers; `wanted` and
    `save_answers` hand the winner's answer to the copies that asked for it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = _statements(self._placeholder)
        self._conn: Any = None
        self._lock = threading.Lock()

    def claim(self, key: str, expires_at: int) -> int | None:
        """None for the first copy of `key` anywhere on this database. A later
        copy marks the delivery as wanted and gets the first one's `expires_at`."""

        def upsert(cursor) -> int | None:
            cursor.execute(self._sql["claim"], (delivery_id(key), expires_at))
            wanted, first_expires_at = cursor.fetchone()
            return first_expires_at if wanted else None

        return self._run(upsert)

    def wanted(self, keys: list[str]) -> list[str]:
        """Those of `keys` whose answer a later copy is waiting for."""
        if not keys:
            return []
        ids = {delivery_id(key): key for key in keys}
        query = self._sql["wanted"].format(", ".join([self._placeholder] * len(ids)))

        def read(cursor) -> list[str]:
            cursor.execute(query, tuple(ids))
            return [ids[row[0]] for row in cursor.fetchall()]

        return self._run(read)

    def save_answers(self, answers: Iterable[tuple[str, bytes]]) -> None:
        rows = [(answer, delivery_id(key)) for key, answer in answers]
        if rows:
            self._run(lambda c: c.executemany(self._sql["save"], rows))

    def answer(self, key: str) -> bytes | None:
        """The winner's saved answer, or None while there is none (yet)."""

        def read(cursor) -> bytes | None:
            cursor.execute(self._sql["answer"], (delivery_id(key),))
            row = cursor.fetchone()
            return bytes(row[0]) if row and row[0] is not None else None

        return self._run(read)

    def forget_expired(self, now: int) -> int:
        """Delete up to CLEANUP_BATCH expired deliveries; return how many went."""
        return self._run(lambda c: c.execute(self._sql["expire"], (now,)).rowcount)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _run(self, work: Callable[[Any], T]) -> T:
        deadline = time.monotonic() + BUSY_DEADLINE
        pause = 0.00005
        with self._lock:
            while True:
                try:
                    return self._attempt(work)
                except self._engine.dialect.dbapi.OperationalError as exc:
                    if not (self._busy(exc) and time.monotonic() < deadline):
                        raise self._failure(exc) from None
                except (self._engine.dialect.dbapi.Error, SQLAlchemyError) as exc:
                    raise self._failure(exc) from None
                time.sleep(pause)  # another process holds SQLite's write lock for microseconds
                pause = min(pause * 2, 0.002)

    def _attempt(self, work: Callable[[Any], T]) -> T:
        cursor = self._connection().cursor()
        try:
            return work(cursor)
        finally:
            cursor.close()

    def _busy(self, exc: Exception) -> bool:
        """SQLite's "database is locked": retried here with short pauses, where
        SQLite's own busy handler would sleep whole milliseconds."""
        return self._sqlite and "locked" in str(exc)

    def _failure(self, exc: Exception) -> StorageError:
        self._drop()  # a broken connection is replaced on the next call
        reason = str(exc).splitlines()[0] if str(exc) else ""  # never the parameters
        return StorageError(f"delivery ledger: {type(exc).__name__}: {reason}")

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._engine.raw_connection()
            if self._sqlite:  # fail fast when locked: _run retries with finer pauses
                self._conn.driver_connection.execute("PRAGMA busy_timeout = 0")
            else:
                self._conn.driver_connection.autocommit = True
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                self._conn.invalidate()
            self._conn = None
