"""Claims on WeChat deliveries, shared by every thread, process and instance
that uses one ledger: what makes "run the handlers once" hold across gunicorn
workers on one SQLite file and across instances on one PostgreSQL.

The claim is on the message path for every message, so it is as cheap as each
database allows. With PostgreSQL it is one INSERT … ON CONFLICT DO NOTHING per
delivery on a raw DBAPI connection in autocommit, bypassing SQLAlchemy's
per-statement machinery. With SQLite, whose processes are always on one host,
it is a table in memory those processes share (storage/claims.py), and the
message path writes nothing to the file. Either way the first copy wins; a
later copy marks the delivery `wanted` in the database, and only then does the
winner write its answer down (off the message path, in batches). Reads never
block writers (WAL on SQLite, MVCC on PostgreSQL).

The database table is clustered on its key and has no index on time: a second
index would double every claim's page writes. Old rows are swept instead, one
slice of the key space at a time, so the write lock is only ever held briefly.

Its rows matter for minutes, not forever, so it trades durability for speed.
With SQLite it lives in a file of its own beside the store's (`bot.sqlite3` →
`bot.deliveries.sqlite3`, and the shared claims in `bot.deliveries.sqlite3-claims`)
written without fsync, which the store's followers and tokens never share; an
unreadable ledger file is replaced at start, and its table is made there with
create_all, unversioned: a throwaway file needs no migration. With PostgreSQL it
is a table of the same database, committed asynchronously, and versioned with
the store's other tables (storage/migrations).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from storage.claims import AVAILABLE as SHARED_MEMORY
from storage.claims import ClaimTable
from storage.schema import ledger_metadata
from storage.store import StorageError, create_store_engine, error_reason

log = logging.getLogger(__name__)
T = TypeVar("T")
BUSY_DEADLINE = 5.0  # seconds a write waits for SQLite's lock before it fails
SLICES = 600  # the key space is swept in this many slices, one per call of sweep()
_SLICE = 2**64 // SLICES
WAL_LIMIT = 64 * 1024 * 1024  # bytes of SQLite write-ahead log before it is emptied


def delivery_id(key: str) -> int:
    """A signed 64-bit id for a delivery key: an integer key is the cheapest
    there is, and 2^64 leaves collisions out of reach."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _statements(p: str) -> dict[str, str]:
    """The ledger's SQL with the driver's placeholder `p` (constants only: S608 is moot)."""
    return {
        "claim": "INSERT INTO deliveries (id, claimed_at, wanted) "  # noqa: S608
        f"VALUES ({p}, {p}, FALSE) ON CONFLICT (id) DO NOTHING",
        "want": f"UPDATE deliveries SET wanted = TRUE WHERE id = {p} RETURNING claimed_at",  # noqa: S608
        "mark": "INSERT INTO deliveries (id, claimed_at, wanted) "  # noqa: S608
        f"VALUES ({p}, {p}, TRUE) ON CONFLICT (id) DO UPDATE SET wanted = TRUE",
        "wanted": f"SELECT id FROM deliveries WHERE wanted AND claimed_at >= {p}",  # noqa: S608
        "answer": f"SELECT answer FROM deliveries WHERE id = {p}",  # noqa: S608
        "save": f"UPDATE deliveries SET answer = {p} WHERE id = {p}",  # noqa: S608
        "sweep": "DELETE FROM deliveries "  # noqa: S608
        f"WHERE id BETWEEN {p} AND {p} AND claimed_at < {p}",
    }


class DeliveryLedger:
    """`claim` decides which copy of a delivery runs the handlers; `wanted` and
    `save_answers` hand the winner's answer to the copies that asked for it."""

    @classmethod
    def beside(cls, store_engine: Engine) -> DeliveryLedger:
        """The ledger for a store: a SQLite file of its own, or the same PostgreSQL."""
        if store_engine.dialect.name != "sqlite":
            return cls(store_engine)
        path = Path(store_engine.url.database)
        ledger_path = path.with_name(f"{path.stem}.deliveries{path.suffix or '.sqlite3'}")
        try:
            return cls(create_store_engine(f"sqlite:///{ledger_path}"))
        except StorageError as exc:
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                raise  # locked or unreachable: another worker's ledger, not a wreck
            # Not a database any more: a crash without fsync.
            log.warning("replacing the unreadable delivery ledger %s: %s", ledger_path, exc)
            for leftover in (ledger_path, Path(f"{ledger_path}-wal"), Path(f"{ledger_path}-shm")):
                leftover.unlink(missing_ok=True)
            return cls(create_store_engine(f"sqlite:///{ledger_path}"))

    def __init__(self, engine: Engine, shared_memory: bool = SHARED_MEMORY) -> None:
        """A ledger on `engine`: on PostgreSQL its table comes with the store's
        migrations; a SQLite file of its own gets it here. With SQLite, claims go
        to a table in shared memory beside the file (unless `shared_memory` is
        False, or the system has none): see above."""
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._sql = _statements("?" if engine.dialect.paramstyle == "qmark" else "%s")
        self._conn: Any = None
        self._lock = threading.Lock()
        if self._sqlite:
            self._create_table()
        self._claims = self._claim_table() if self._sqlite and shared_memory else None

    def _create_table(self) -> None:
        """Under SQLite's write lock, so that workers starting together create it once."""
        try:
            with self._engine.connect().execution_options(write=True) as conn, conn.begin():
                ledger_metadata.create_all(conn)
        except SQLAlchemyError as exc:
            raise self._failure(exc) from None

    def claim(self, delivery: int, now: int) -> int | None:
        """None for the first copy of `delivery` (a delivery_id) anywhere on this
        ledger. A later copy marks it wanted and gets when the first claimed it."""
        if self._claims is None:
            return self._run(self._insert(delivery, now))
        claimed_at = self._claims.claim(delivery, now)
        if claimed_at is not None:
            # a copy: the winner's flusher sees the mark and saves its answer. If the
            # mark fails, the copy waits for an answer in vain and gets `success`.
            with contextlib.suppress(StorageError):
                self._run(lambda c: c.execute(self._sql["mark"], (delivery, claimed_at)))
        return claimed_at

    def _insert(self, delivery: int, now: int) -> Callable[[Any], int | None]:
        """The claim as the database decides it (PostgreSQL; SQLite without shared memory)."""

        def insert(cursor) -> int | None:
            cursor.execute(self._sql["claim"], (delivery, now))
            if cursor.rowcount == 1:  # the common case: one statement, one step
                return None
            cursor.execute(self._sql["want"], (delivery,))
            row = cursor.fetchone()
            return row[0] if row else 0  # swept in between: claimed long ago

        return insert

    def wanted(self, since: int) -> set[int]:
        """The deliveries claimed at `since` or later whose answer a later copy
        asked for: one read of a partial index that holds only wanted rows."""

        def read(cursor) -> set[int]:
            cursor.execute(self._sql["wanted"], (since,))
            return {row[0] for row in cursor.fetchall()}

        return self._run(read)

    def save_answers(self, answers: list[tuple[int, bytes]]) -> None:
        rows = [(answer, delivery) for delivery, answer in answers]
        if rows:
            self._run(lambda c: c.executemany(self._sql["save"], rows))

    def answer(self, delivery: int) -> bytes | None:
        """The winner's saved answer, or None while there is none (yet)."""

        def read(cursor) -> bytes | None:
            cursor.execute(self._sql["answer"], (delivery,))
            row = cursor.fetchone()
            return bytes(row[0]) if row and row[0] is not None else None

        return self._run(read)

    def sweep(self, before: int, part: int) -> int:
        """Delete the deliveries claimed before `before` in slice `part` (mod SLICES)
        of the key space; calling it for every part in turn sweeps the whole ledger."""
        low = -(2**63) + (part % SLICES) * _SLICE
        high = 2**63 - 1 if part % SLICES == SLICES - 1 else low + _SLICE - 1
        swept = self._claims.sweep(before, part, SLICES) if self._claims else 0
        return swept + self._run(
            lambda c: c.execute(self._sql["sweep"], (low, high, before)).rowcount
        )

    def checkpoint(self, limit: int = WAL_LIMIT) -> None:
        """SQLite: empty the write-ahead log once it has outgrown `limit` bytes.

        SQLite's own checkpoints keep it near 4 MB while writes pause now and then;
        under writes that never pause they cannot finish and the log would grow
        without end. A restart blocks writers while it copies, so it is kept for
        that case; it waits for no one and is retried at the next call."""
        wal = Path(f"{self._engine.url.database}-wal") if self._sqlite else None
        if wal and wal.exists() and wal.stat().st_size > limit:
            self._run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())

    def close(self) -> None:
        with self._lock:
            self._drop()
        if self._claims is not None:
            self._claims.close()
        if self._sqlite:
            self._engine.dispose()  # the ledger's own engine

    def _claim_table(self) -> ClaimTable:
        path = Path(f"{self._engine.url.database}-claims")
        try:
            return ClaimTable(path)
        except OSError as exc:
            raise StorageError(f"delivery ledger: cannot share claims in {path}: {exc}") from None

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
        return StorageError(f"delivery ledger: {error_reason(exc, self._engine.url.password)}")

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._engine.raw_connection()
            driver = self._conn.driver_connection
            if self._sqlite:
                driver.execute("PRAGMA busy_timeout = 0")  # _run retries with finer pauses
                driver.execute("PRAGMA synchronous = OFF")  # a file of its own: see above
            else:
                driver.autocommit = True
                driver.execute("SET synchronous_commit = off")
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                self._conn.invalidate()
            self._conn = None
