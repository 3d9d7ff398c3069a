"""The one store: followers and their tokens, used states, where /login states
lead, sessions, the account's own tokens (and the tables of storage/deliveries.py).

SQLAlchemy Core keeps it dialect-neutral: SQLite by default (WAL, busy timeout,
writes under BEGIN IMMEDIATE so concurrent writers queue instead of failing),
PostgreSQL when several instances share it. Opening it brings the schema up to
date (storage/migrate.py).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from storage.changes import ChangeCounter, UntilChanged
from storage.migrate import UnknownRevision, Upgrade, load_if_pending, upgrade
from storage.schema import (
    account_tokens,
    declare_postgresql,
    followers,
    oauth_states,
    sessions,
    sign_in_destinations,
)

log = logging.getLogger(__name__)
SQLITE_BUSY_TIMEOUT_MS = 10_000
# A claim still open this long after it was made belongs to a request that died
# mid-exchange (WeChat calls time out well before); a new request may take it over.
ABANDONED_CLAIM = 30


class StorageError(Exception):
    """The database did not answer; the message says which operation failed."""


@dataclass
class Follower:
    """An authorized follower: tokens, the last profile, and whether to re-ask."""

    openid: str
    scope: str
    access_token: str = field(repr=False)  # secrets: never in a log line or a traceback
    access_expires_at: int
    refresh_token: str = field(repr=False)
    refresh_expires_at: int
    unionid: str | None = None
    nickname: str | None = None
    headimgurl: str | None = None
    profile: dict = field(default_factory=dict)
    needs_reauth: bool = False
    authorized_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True)
class Acquaintance:
    """What a chat reply knows of a follower who has authorized: read by the message
    path, so a single primary-key lookup and nothing that needs a write."""

    nickname: str | None
    needs_reauth: bool
    refresh_expires_at: int

    @property
    def lapsed(self) -> bool:
        """The grant is gone (revoked, or the refresh token's life is over)."""
        return self.needs_reauth or self.refresh_expires_at <= time.time()


# Compiled once per store: the message path runs it for every push.
_ACQUAINTANCE = select(
    followers.c.nickname, followers.c.needs_reauth, followers.c.refresh_expires_at
).where(followers.c.openid == bindparam("openid"))


# A follower's row as Follower holds it (the refresh's bookkeeping stays in storage).
_FOLLOWERS = select(*(followers.c[f.name] for f in fields(Follower)))


@dataclass(frozen=True)
class AccountToken:
    """A token of the account as a whole (e.g. its basic access_token) and its expiry."""

    value: str = field(repr=False)
    expires_at: int


class Claim(Enum):
    """What claiming a state found."""

    NEW = "new"  # first use: go ahead
    DONE = "done"  # already completed for this client (a refresh, a double redirect)
    IN_FLIGHT = "in_flight"  # the same code is being exchanged right now
    USED = "used"  # used by another client or with another code, or too long ago


def create_store_engine(url: str, base_dir: Path | None = None) -> Engine:
    """An engine whose SQLite connections are safe across threads and processes."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(parsed, pool_pre_ping=True)
        declare_postgresql()
        return engine
    database = Path(parsed.database)
    if not database.is_absolute() and base_dir is not None:
        database = base_dir / database
    database.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed.set(database=str(database)),
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A deferred transaction that later writes can fail with SQLITE_BUSY at
    # once, whatever the busy timeout; IMMEDIATE takes the write lock up front.
    write = connection.get_execution_options().get("write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # INSERT … ON CONFLICT is the dialect's own: its module, loaded with the engine
        self._insert = importlib.import_module(f"sqlalchemy.dialects.{engine.dialect.name}").insert
        self._acquaintance = _ACQUAINTANCE.compile(dialect=engine.dialect)
        self._reader = threading.local()  # each thread's own connection for acquaintance()
        self._readers: list = []
        self._readers_lock = threading.Lock()
        try:
            with self._read() as conn:
                load_if_pending(conn)  # outside the lock that upgrade() holds
            with self._write() as conn:
                self.migrated: Upgrade = upgrade(conn)  # what opening it applied
        except UnknownRevision as exc:
            raise StorageError(str(exc)) from None
        self._known = _acquaintances(engine)
        if self._known is not None and self.migrated.applied:  # a step may rewrite rows
            self._known.changed()

    @classmethod
    def from_url(cls, url: str, base_dir: Path | None = None) -> Store:
        try:
            engine = create_store_engine(url, base_dir)
        except (SQLAlchemyError, ImportError, OSError, ValueError) as exc:
            reason = error_reason(exc, unquote(urlsplit(url).password or ""))
            raise StorageError(f"cannot use storage.url: {reason}") from None
        return cls(engine)

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            with contextlib.suppress(Exception):  # broken already: nothing left to release
                reader.close()
        if self._known is not None:
            self._known.close()
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # SQLAlchemy reports an INSERT's rowcount (a claim's outcome) only when asked
        # to: SQLite's driver happens to keep it, psycopg's cursor is gone by then.
        options = {"write": True, "preserve_rowcount": True}
        try:
            with self.engine.connect().execution_options(**options) as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            reason = error_reason(exc, self.engine.url.password)
            raise StorageError(f"storage write failed: {reason}") from None

    @contextmanager
    def _write_follower(self) -> Iterator[Connection]:
        """A write to followers' rows (but their refresh lease): every process's
        greetings read them again once it is committed."""
        with self._write() as conn:
            yield conn
        if self._known is not None:
            self._known.changed()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            reason = error_reason(exc, self.engine.url.password)
            raise StorageError(f"storage read failed: {reason}") from None

    def ping(self) -> bool:
        try:
            with self._read() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except StorageError:
            return False

    # -- followers ---------------------------------------------------------

    def get_follower(self, openid: str) -> Follower | None:
        with self._read() as conn:
            row = conn.execute(_FOLLOWERS.where(followers.c.openid == openid)).first()
        return _follower(row) if row else None

    def acquaintance(self, openid: str) -> Acquaintance | None:
        """The little a reply needs about `openid`, None for a follower never authorized.

        The message path runs this for every push: with SQLite, each process keeps
        what it read until a write to any follower (storage/changes.py)."""
        if self._known is None:
            return self._read_acquaintance(openid)
        return self._known.get(openid, self._read_acquaintance)

    def _read_acquaintance(self, openid: str) -> Acquaintance | None:
        """One statement on the thread's own DBAPI connection in autocommit:
        SQLAlchemy's Connection (events, BEGIN, ROLLBACK) would cost several times
        the lookup itself (about 50 µs against 8 µs on SQLite), and a pool's checkout
        and reset per push, under gunicorn's threads, about as much as the rest of
        the bot's message path."""
        args = (openid,) if self._acquaintance.positional else {"openid": openid}
        try:
            cursor = self._thread_reader().cursor()
            try:
                cursor.execute(self._acquaintance.string, args)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
            self._drop_thread_reader()  # a broken connection is replaced on the next read
            reason = error_reason(exc, self.engine.url.password)
            raise StorageError(f"storage read failed: {reason}") from None
        if row is None:
            return None
        nickname, needs_reauth, refresh_expires_at = row
        return Acquaintance(nickname, bool(needs_reauth), refresh_expires_at)

    def _thread_reader(self):
        """This thread's connection, taken from the pool once and detached from it
        (a pool of a few connections cannot lend one to every thread for good)."""
        reader = getattr(self._reader, "connection", None)
        if reader is None:
            reader = self.engine.raw_connection()
            reader.detach()  # closing it now closes the DBAPI connection
            if self.engine.dialect.name != "sqlite":  # SQLite's are in autocommit already
                reader.dbapi_connection.autocommit = True  # never leave a read's transaction open
            with self._readers_lock:
                self._readers.append(reader)
            self._reader.connection = reader
        return reader.dbapi_connection

    def _drop_thread_reader(self) -> None:
        reader = getattr(self._reader, "connection", None)
        self._reader.connection = None
        if reader is not None:
            with self._readers_lock:
                self._readers.remove(reader)
            with contextlib.suppress(Exception):
                reader.close()

    def list_followers(self) -> list[Follower]:
        with self._read() as conn:
            rows = conn.execute(_FOLLOWERS.order_by(followers.c.authorized_at)).all()
        return [_follower(row) for row in rows]

    def save_follower(self, follower: Follower) -> None:
        with self._write_follower() as conn:
            self._upsert_follower(conn, follower)

    def begin_refresh(self, follower: Follower, until: int) -> bool:
        """Take the refresh of the follower's tokens until `until` (Unix seconds), if
        the stored access token is still the one `follower` holds (same token, same
        expiry) and no one holds the refresh: whether this caller may ask WeChat."""
        now = int(time.time())
        with self._write() as conn:
            taken = conn.execute(
                update(followers)
                .where(_holds(follower))
                .where(
                    or_(followers.c.refreshing_until.is_(None), followers.c.refreshing_until < now)
                )
                .values(refreshing_until=until)
            )
        return taken.rowcount == 1

    def end_refresh(self, openid: str) -> None:
        """Give up a refresh taken with begin_refresh (WeChat failed): others may try."""
        with self._write() as conn:
            conn.execute(
                update(followers).where(followers.c.openid == openid).values(refreshing_until=None)
            )

    def update_token(self, follower: Follower, replacing: Follower) -> None:
        """Store the tokens (and scope) WeChat just issued in place of the access token
        `replacing` holds, and end the refresh; the rest of the row stays as it is.
        Tokens stored since (a new authorization) are newer and stay."""
        with self._write_follower() as conn:
            conn.execute(
                update(followers)
                .where(_holds(replacing))
                .values(
                    scope=follower.scope,
                    access_token=follower.access_token,
                    access_expires_at=follower.access_expires_at,
                    refresh_token=follower.refresh_token,
                    updated_at=follower.updated_at,
                    refreshing_until=None,
                )
            )

    def save_profile(self, follower: Follower) -> None:
        """Store the profile WeChat just answered (nickname, avatar, unionid); the
        tokens and the re-authorization mark stay as stored, whoever changed them since."""
        with self._write_follower() as conn:
            conn.execute(
                update(followers)
                .where(followers.c.openid == follower.openid)
                .values(
                    unionid=follower.unionid,
                    nickname=follower.nickname,
                    headimgurl=follower.headimgurl,
                    profile=json.dumps(follower.profile, ensure_ascii=False),
                    updated_at=follower.updated_at,
                )
            )

    def mark_needs_reauth(self, openid: str) -> None:
        with self._write_follower() as conn:
            conn.execute(
                update(followers)
                .where(followers.c.openid == openid)
                .values(needs_reauth=True, updated_at=int(time.time()))
            )

    def _upsert_follower(self, conn: Connection, follower: Follower) -> None:
        values = asdict(follower)
        values["profile"] = json.dumps(follower.profile, ensure_ascii=False)
        statement = self._insert(followers).values(**values)
        updates = {k: v for k, v in values.items() if k not in ("openid", "authorized_at")}
        updates["refreshing_until"] = None  # these tokens supersede a refresh in flight
        conn.execute(statement.on_conflict_do_update(index_elements=["openid"], set_=updates))

    # -- OAuth states --------------------------------------------------------

    def claim_state(
        self,
        state: str,
        code_hash: str,
        expires_at: int,
        grace: int,
        signed_in: str | None = None,
    ) -> tuple[Claim, str | None]:
        """Mark `state` used by `code_hash`, atomically; say what an earlier use left.

        `code_hash` stands for the code and the client that sent it. An earlier use
        is DONE for this request (with the openid it authorized) when it completed
        within `grace` seconds and either had the same `code_hash`, or authorized the
        follower this client is already `signed_in` as.
        """
        now = int(time.time())
        values = {"code_hash": code_hash, "claimed_at": now, "expires_at": expires_at}
        claim = self._insert(oauth_states).values(state=state, **values)
        takeover = (
            update(oauth_states)
            .where(oauth_states.c.state == state, oauth_states.c.completed_at.is_(None))
            .where(oauth_states.c.claimed_at < now - ABANDONED_CLAIM)
            .values(**values)
        )
        with self._write() as conn:
            if conn.execute(claim.on_conflict_do_nothing()).rowcount == 1:
                conn.execute(delete(oauth_states).where(oauth_states.c.expires_at < now - grace))
                return Claim.NEW, None
            if conn.execute(takeover).rowcount == 1:
                return Claim.NEW, None
            row = conn.execute(select(oauth_states).where(oauth_states.c.state == state)).one()
        same = row.code_hash == code_hash
        if row.completed_at is None:
            return (Claim.IN_FLIGHT if same else Claim.USED), None
        holder = signed_in is not None and row.openid == signed_in
        if now - row.completed_at <= grace and (same or holder):
            return Claim.DONE, row.openid
        return Claim.USED, None

    def release_state(self, state: str) -> None:
        """Forget a claim whose exchange failed for a passing reason, so a retry may work."""
        with self._write() as conn:
            conn.execute(
                delete(oauth_states).where(
                    oauth_states.c.state == state, oauth_states.c.completed_at.is_(None)
                )
            )

    def complete_authorization(self, state: str, follower: Follower) -> None:
        """Store the follower and close the state in one transaction: all or nothing."""
        with self._write_follower() as conn:
            self._upsert_follower(conn, follower)
            conn.execute(
                update(oauth_states)
                .where(oauth_states.c.state == state)
                .values(openid=follower.openid, completed_at=int(time.time()))
            )

    # -- where /login states lead ---------------------------------------------

    def remember_destination(self, state: str, destination: str, keep_until: int) -> None:
        """Store where `state` leads until `keep_until` (Unix seconds); rows past theirs go."""
        now = int(time.time())
        row = {"state": state, "destination": destination, "expires_at": keep_until}
        with self._write() as conn:
            conn.execute(
                delete(sign_in_destinations).where(sign_in_destinations.c.expires_at < now)
            )
            conn.execute(self._insert(sign_in_destinations).values(**row))

    def destination(self, state: str) -> str | None:
        """Where `state` leads, None when nothing (or nothing any more) is stored for it."""
        table = sign_in_destinations
        query = select(table.c.destination).where(
            table.c.state == state, table.c.expires_at >= int(time.time())
        )
        with self._read() as conn:
            return conn.execute(query).scalar()

    # -- the account's tokens ------------------------------------------------

    def account_token(self, kind: str) -> AccountToken | None:
        """The stored token of `kind`, expired or not; None when there is none yet."""
        with self._read() as conn:
            row = conn.execute(select(account_tokens).where(account_tokens.c.kind == kind)).first()
        return AccountToken(row.value, row.expires_at) if row and row.value else None

    def renew_account_token(
        self, kind: str, renew: Callable[[AccountToken | None], AccountToken]
    ) -> AccountToken:
        """`renew(stored)` while holding the one lock every instance takes for `kind`, and
        its answer stored when it differs. Concurrent callers, in any process, queue here:
        each sees what the one before it stored (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
        row, locked FOR UPDATE). What `renew` raises rolls back and passes through."""
        placeholder = {"kind": kind, "value": "", "expires_at": 0, "updated_at": 0}
        locked = select(account_tokens).where(account_tokens.c.kind == kind).with_for_update()
        with self._write() as conn:
            conn.execute(self._insert(account_tokens).values(placeholder).on_conflict_do_nothing())
            row = conn.execute(locked).one()
            stored = AccountToken(row.value, row.expires_at) if row.value else None
            fresh = renew(stored)
            if fresh != stored:
                values = {"value": fresh.value, "expires_at": fresh.expires_at}
                conn.execute(
                    update(account_tokens)
                    .where(account_tokens.c.kind == kind)
                    .values(**values, updated_at=int(time.time()))
                )
        return fresh

    # -- WeRoBot sessions ----------------------------------------------------

    def get_session(self, session_id: str) -> dict:
        with self._read() as conn:
            data = conn.execute(select(sessions.c.data).where(sessions.c.id == session_id)).scalar()
        return json.loads(data) if data else {}

    def set_session(self, session_id: str, value: dict) -> None:
        values = {
            "id": session_id,
            "data": json.dumps(value, ensure_ascii=False),
            "updated_at": int(time.time()),
        }
        statement = self._insert(sessions).values(**values)
        with self._write() as conn:
            conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=values))

    def delete_session(self, session_id: str) -> None:
        with self._write() as conn:
            conn.execute(delete(sessions).where(sessions.c.id == session_id))


def _acquaintances(engine: Engine) -> UntilChanged[str, Acquaintance | None] | None:
    """What greetings read, kept until a follower changes: with a SQLite file only."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    path = Path(f"{database}-changes")
    try:
        return UntilChanged(ChangeCounter(path))
    except OSError as exc:  # greetings read the database every time: slower, as correct
        log.warning("greetings cannot share %s (%s): reading followers for every push", path, exc)
        return None


def _holds(follower: Follower) -> ColumnElement[bool]:
    """The follower's row while it still holds `follower`'s access token: WeChat may
    renew a live token in place, so its expiry tells the renewed one apart."""
    return and_(
        followers.c.openid == follower.openid,
        followers.c.access_token == follower.access_token,
        followers.c.access_expires_at == follower.access_expires_at,
    )


def error_reason(exc: BaseException, password: str | None) -> str:
    """The database's own words ("database is locked", "password authentication failed
    for user ..."): the driver's first line only, so never the SQL or a DETAIL quoting
    row values; a parameter PostgreSQL quotes in that line ('invalid input syntax for
    type integer: "..."') and the URL's password are masked."""
    source = getattr(exc, "orig", None) or exc
    # SQLAlchemy's str() appends the statement and parameters; args[0] is the bare message.
    text = source.args[0] if isinstance(source, SQLAlchemyError) and source.args else source
    line = next(iter(str(text).strip().splitlines()), "")
    for value in _strings(getattr(exc, "params", None)):
        line = line.replace(f'"{value}"', '"***"')
    if password:
        line = line.replace(password, "***")
    return f"{type(source).__name__}: {line}" if line else type(source).__name__


def _strings(params: object) -> Iterator[str]:
    """The strings among a statement's parameters: a dict or a sequence, nested."""
    if isinstance(params, str):
        yield params
    elif isinstance(params, dict):
        for value in params.values():
            yield from _strings(value)
    elif isinstance(params, list | tuple):
        for value in params:
            yield from _strings(value)


def _follower(row) -> Follower:
    values = row._asdict()
    values["profile"] = json.loads(values["profile"] or "{}")
    return Follower(**values)
