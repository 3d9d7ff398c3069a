"""The store on a real database (SQLite and PostgreSQL), hammered from several threads
and processes."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import SQLAlchemyError

from storage import Claim, Follower, StorageError, Store, StoreSessionStorage
from storage.schema import oauth_states
from storage.store import error_reason
from tests import processes
from tests.conftest import ROOT

pytestmark = pytest.mark.backends("sqlite", "postgresql")


def _follower(openid: str, nickname: str = "小明😀") -> Follower:
    now = int(time.time())
    return Follower(
        openid=openid,
        scope="snsapi_userinfo",
        access_token="AT-" + openid,
        access_expires_at=now + 7200,
        refresh_token="RT-" + openid,
        refresh_expires_at=now + 30 * 86400,
        nickname=nickname,
        profile={"nickname": nickname, "privilege": []},
        authorized_at=now,
        updated_at=now,
    )


def test_follower_round_trip_and_upsert(db_url):
    store = Store.from_url(db_url)
    store.save_follower(_follower("o1"))
    store.save_follower(_follower("o1", nickname="张三🎉"))
    assert store.get_follower("o1").nickname == "张三🎉"
    assert store.get_follower("o1").profile["nickname"] == "张三🎉"
    assert [f.openid for f in store.list_followers()] == ["o1"]
    store.mark_needs_reauth("o1")
    assert store.get_follower("o1").needs_reauth


def test_one_claim_wins_among_threads(db_url):
    store = Store.from_url(db_url)
    expires = int(time.time()) + 600
    with ThreadPoolExecutor(8) as pool:
        claims = list(
            pool.map(lambda _: store.claim_state("s" * 64, "h", expires, 120)[0], range(16))
        )
    assert claims.count(Claim.NEW) == 1
    assert set(claims) == {Claim.NEW, Claim.IN_FLIGHT}


def test_claim_outcomes(db_url):
    store = Store.from_url(db_url)
    expires = int(time.time()) + 600
    assert store.claim_state("s1", "h", expires, 120) == (Claim.NEW, None)
    assert store.claim_state("s1", "other", expires, 120) == (Claim.USED, None)
    store.release_state("s1")
    assert store.claim_state("s1", "h", expires, 120) == (Claim.NEW, None)
    store.complete_authorization("s1", _follower("o1"))
    assert store.claim_state("s1", "h", expires, 120) == (Claim.DONE, "o1")
    store.release_state("s1")  # a completed state is never given back
    assert store.claim_state("s1", "h", expires, 0)[0] in (Claim.DONE, Claim.USED)


def test_an_abandoned_claim_can_be_taken_over(db_url):
    store = Store.from_url(db_url)
    expires = int(time.time()) + 600
    assert store.claim_state("s1", "h", expires, 120)[0] is Claim.NEW
    assert store.claim_state("s1", "h2", expires, 120)[0] is Claim.USED
    with store.engine.begin() as conn:  # the first request's process died 31 s ago
        conn.execute(update(oauth_states).values(claimed_at=oauth_states.c.claimed_at - 31))
    assert store.claim_state("s1", "h2", expires, 120)[0] is Claim.NEW
    assert store.claim_state("s1", "h", expires, 120)[0] is Claim.USED


def test_one_claim_wins_among_processes(db_url):
    Store.from_url(db_url).close()
    context = processes.context()
    barrier, results = context.Barrier(4), context.Queue()
    workers = [
        context.Process(target=processes.claim_state, args=(db_url, barrier, results))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    claims = [results.get(timeout=5) for _ in workers]
    assert claims.count("new") == 1


def test_concurrent_writers_lose_nothing(db_url):
    store = Store.from_url(db_url)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.save_follower(_follower(f"o{i}")), range(64)))
    assert len(store.list_followers()) == 64


def test_a_greeting_reads_what_another_process_wrote_last(db_url):
    """Two stores on one database stand for two processes: a greeting read here is
    read again after every write there that changes it."""
    here, there = Store.from_url(db_url), Store.from_url(db_url)
    assert here.acquaintance("o1") is None  # a stranger, as far as `here` knows
    there.save_follower(_follower("o1", nickname="小明"))
    assert here.acquaintance("o1").nickname == "小明"
    follower = there.get_follower("o1")
    follower.nickname = "张三"
    there.save_profile(follower)
    assert here.acquaintance("o1").nickname == "张三"
    there.mark_needs_reauth("o1")
    assert here.acquaintance("o1").lapsed
    there.claim_state("s" * 64, "h", int(time.time()) + 600, 120)
    there.complete_authorization("s" * 64, _follower("o1", nickname="李四"))
    known = here.acquaintance("o1")
    assert known.nickname == "李四" and not known.lapsed


def test_werobot_sessions_live_in_the_store(db_url):
    sessions = StoreSessionStorage(Store.from_url(db_url))
    assert sessions[b"o1"] == {}
    sessions[b"o1"] = {"步骤": 2}
    assert StoreSessionStorage(Store.from_url(db_url)).get("o1") == {"步骤": 2}
    del sessions["o1"]
    assert sessions.get("o1") == {}


@pytest.mark.backends("postgresql")
def test_postgresql_errors_keep_the_message_but_not_the_parameters(db_url):
    store = Store.from_url(db_url)
    with store.engine.begin() as conn:  # DETAIL: Failing row contains (o6_secretive, ...)
        conn.execute(text("ALTER TABLE followers ADD CONSTRAINT refuse CHECK (false) NOT VALID"))
    with pytest.raises(StorageError) as caught:
        store.save_follower(_follower("o6_secretive"))
    message = str(caught.value)
    assert message == (
        "storage write failed: CheckViolation: "
        'new row for relation "followers" violates check constraint "refuse"'
    )
    with pytest.raises(SQLAlchemyError) as caught, store.engine.connect() as conn:
        conn.execute(text("SELECT CAST(:value AS integer)"), {"value": "RT-o6_secretive"})
    assert error_reason(caught.value, None) == (
        'InvalidTextRepresentation: invalid input syntax for type integer: "***"'
    )


def test_a_follower_shows_no_token_in_its_repr():
    shown = repr(_follower("o1"))
    assert "o1" in shown and "AT-o1" not in shown and "RT-o1" not in shown


def test_a_sqlite_store_and_its_ledger_leave_the_postgresql_dialect_unloaded(tmp_path):
    """SQLAlchemy's PostgreSQL dialect costs a process about 2 MiB: SQLite never needs it."""
    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    Store.from_url(url).close()  # migrated here: Alembic loads every dialect it knows
    probe = (
        "import sys; from storage import DeliveryLedger, Store; "
        "store = Store.from_url(sys.argv[1]); DeliveryLedger.beside(store.engine).close(); "
        "store.close(); "
        "print('sqlalchemy.dialects.postgresql' in sys.modules)"
    )
    done = subprocess.run(  # a process of its own: a fresh sys.modules
        [sys.executable, "-c", probe, url], cwd=ROOT, capture_output=True, text=True
    )
    assert done.stdout.strip() == "False", done.stderr
