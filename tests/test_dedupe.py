"""Copies of one delivery run the handlers once, across threads, processes and
gunicorn workers sharing one database (a SQLite file, or PostgreSQL), and every
copy gets the first answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from storage import DeliveryLedger, Store
from storage.deliveries import SLICES, delivery_id
from tests import processes
from tests.conftest import FAST, ROOT, TOKEN, free_port
from tests.processes import new_ledger
from tests.test_wire import signed_query, text_xml
from wechat.dedupe import RETRY_WINDOW, WAIT_FOR_FIRST, RetryGuard
from wechat.replies import NO_REPLY

SKEW = 300  # wechat.max_clock_skew
GIVE_UP = FAST.wait_for_first  # the tests' scaled-down wait for a first copy's answer
pytestmark = pytest.mark.backends("sqlite", "postgresql")


def test_each_delivery_is_claimed_once_among_processes(db_url):
    _claimed_once_among_processes(db_url, shared_memory=True)


def test_without_shared_memory_sqlite_claims_each_delivery_once(tmp_path):
    _claimed_once_among_processes(f"sqlite:///{tmp_path / 'claims.sqlite3'}", shared_memory=False)


def _claimed_once_among_processes(url: str, shared_memory: bool) -> None:
    Store.from_url(url).close()
    keys = [f"m:{i}" for i in range(200)]
    context = processes.context()
    barrier, results = context.Barrier(4), context.Queue()
    workers = [
        context.Process(
            target=processes.claim_all, args=(url, shared_memory, keys, barrier, results)
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    won = [key for _ in workers for key in results.get(timeout=60)]
    for worker in workers:
        worker.join(timeout=10)
    assert sorted(won) == sorted(keys)  # every key claimed exactly once


def test_an_answer_saved_in_one_process_is_read_in_another(db_url):
    first, second = new_ledger(db_url), new_ledger(db_url)
    now = int(time.time())
    assert first.claim(1, now) is None
    first.claim(2, now)
    assert second.claim(1, now + 5) == now  # when the first claimed it
    assert second.answer(1) is None  # claimed, not answered yet
    assert first.wanted(since=now) == {1}
    assert first.wanted(since=now + 1) == set()
    first.save_answers([(1, b"<xml>first</xml>")])
    assert second.answer(1) == b"<xml>first</xml>"


def test_old_deliveries_are_swept_slice_by_slice(db_url):
    ledger = new_ledger(db_url)
    now = int(time.time())
    old = [delivery_id(f"m:old{i}") for i in range(50)]
    for delivery in old:
        ledger.claim(delivery, now - 1000)
    ledger.claim(-1, now)
    assert sum(ledger.sweep(before=now - 100, part=part) for part in range(SLICES)) == 50
    assert all(ledger.claim(delivery, now) is None for delivery in old)  # claimable again
    assert ledger.claim(-1, now) == now  # still remembered


@pytest.mark.backends("sqlite")
def test_an_overgrown_write_ahead_log_is_emptied(tmp_path):
    path = tmp_path / "wal.sqlite3"
    ledger = new_ledger(f"sqlite:///{path}")
    for i in range(100):
        ledger.claim(i, int(time.time()))
        ledger.claim(i, int(time.time()))  # a copy: the database learns it is wanted
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0
    ledger.checkpoint(limit=wal.stat().st_size + 1)  # not outgrown yet
    assert wal.stat().st_size > 0
    ledger.checkpoint(limit=0)
    assert wal.stat().st_size == 0
    assert ledger.wanted(since=0) == set(range(100))  # nothing lost


@pytest.mark.backends("sqlite")
def test_with_sqlite_the_ledger_keeps_a_file_of_its_own(tmp_path, db_url):
    store = Store.from_url(db_url)
    ledger = DeliveryLedger.beside(store.engine)
    assert ledger.claim(1, int(time.time())) is None
    assert (tmp_path / "bot.deliveries.sqlite3").exists()
    with store.engine.connect() as conn:  # the followers' file holds no delivery
        tables = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        assert "deliveries" not in set(tables.scalars())


@pytest.mark.backends("sqlite")
def test_an_unreadable_ledger_file_is_replaced(tmp_path, db_url):
    store = Store.from_url(db_url)
    (tmp_path / "bot.deliveries.sqlite3").write_bytes(b"not a database, after a power cut" * 200)
    ledger = DeliveryLedger.beside(store.engine)
    assert ledger.claim(1, int(time.time())) is None
    assert ledger.claim(1, int(time.time())) is not None


@pytest.mark.backends("sqlite")
def test_workers_starting_at_once_share_one_ledger(tmp_path):
    """A ledger another worker is creating is locked, not broken: never replaced."""
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    Store.from_url(url).close()
    context = processes.context()
    barrier, results = context.Barrier(6), context.Queue()
    workers = [
        context.Process(target=processes.open_ledger, args=(url, barrier, results))
        for _ in range(6)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0] * 6
    claims = [results.get(timeout=5) for _ in workers]
    assert claims.count(None) == 1  # one first copy among all of them


def test_copies_in_one_process_wait_for_the_first_answer(db_url):
    guard = RetryGuard(new_ledger(db_url), SKEW)
    runs = []

    def produce() -> bytes:
        runs.append(1)
        time.sleep(0.3)  # the first copy is still working when the others arrive
        return b"<xml>answer</xml>"

    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: guard.run("m:7", produce), range(16)))
    finally:
        guard.close()
    assert runs == [1]
    assert answers == [b"<xml>answer</xml>"] * 16


def test_a_copy_in_another_process_gets_the_slow_first_answer(db_url):
    first, second = (
        RetryGuard(new_ledger(db_url), SKEW),
        RetryGuard(new_ledger(db_url), SKEW),
    )  # two workers' guards
    started = threading.Event()

    def slow() -> bytes:
        started.set()
        time.sleep(0.5)  # WeChat gave up on this copy and retried elsewhere
        return b"<xml>slow but first</xml>"

    try:
        with ThreadPoolExecutor(2) as pool:
            winner = pool.submit(first.run, "m:5", slow)
            started.wait(5)
            copy = pool.submit(second.run, "m:5", lambda: b"<xml>second run</xml>")
            assert copy.result() == winner.result() == b"<xml>slow but first</xml>"
    finally:
        first.close()
        second.close()


def test_a_later_copy_in_another_process_gets_the_answer(db_url):
    first, second = RetryGuard(new_ledger(db_url), SKEW), RetryGuard(new_ledger(db_url), SKEW)
    try:
        answer = first.run("m:6", lambda: b"<xml>answered a while ago</xml>")
        time.sleep(1.0)  # many flushes later: WeChat's retry after its connection broke
        assert second.run("m:6", lambda: b"<xml>second run</xml>") == answer
    finally:
        first.close()
        second.close()


def test_recent_answers_are_kept_within_a_byte_budget(db_url):
    # keeps no answer at all
    forgetful = RetryGuard(new_ledger(db_url), SKEW, memory=0, wait_for_first=GIVE_UP)
    try:
        forgetful.run("m:11", lambda: b"<xml>first</xml>")
        # the answer left memory unsaved: a later copy cannot get it, and runs nothing
        assert forgetful.run("m:11", lambda: b"<xml>second run</xml>") == NO_REPLY
    finally:
        forgetful.close()


def _drop_the_ledger_table(store: Store) -> None:
    """The database fails every ledger statement from now on."""
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE deliveries"))


def test_a_database_failure_still_answers(db_url):
    store = Store.from_url(db_url)
    guard = RetryGuard(DeliveryLedger(store.engine, shared_memory=False), SKEW)
    _drop_the_ledger_table(store)
    try:
        assert guard.run("m:1", lambda: b"<xml>still here</xml>") == b"<xml>still here</xml>"
        assert guard.run("m:1", lambda: b"<xml>again</xml>") == b"<xml>still here</xml>"
    finally:
        guard.close()


def test_without_the_database_a_copy_in_another_process_runs_nothing(tmp_path):
    """Claims in shared memory still hold; only the first answer cannot be handed on."""
    url = f"sqlite:///{tmp_path / 'broken.sqlite3'}"
    store = Store.from_url(url)
    first, second = (
        RetryGuard(DeliveryLedger(store.engine), SKEW, wait_for_first=GIVE_UP) for _ in range(2)
    )
    _drop_the_ledger_table(store)
    try:
        assert first.run("m:1", lambda: b"<xml>first</xml>") == b"<xml>first</xml>"
        assert second.run("m:1", lambda: b"<xml>second run</xml>") == NO_REPLY
    finally:
        first.close()
        second.close()


def test_a_copy_gives_up_with_success_when_the_first_never_answers(db_url):
    guard = RetryGuard(new_ledger(db_url), SKEW, wait_for_first=GIVE_UP)
    new_ledger(db_url).claim(delivery_id("m:9"), int(time.time()))  # died mid-handler
    try:
        assert guard.run("m:9", lambda: b"<xml>twice</xml>") == NO_REPLY
    finally:
        guard.close()


def test_a_replay_after_wechats_retries_gets_success_at_once(db_url):
    guard = RetryGuard(new_ledger(db_url), SKEW)
    claimed_at = int(time.time()) - RETRY_WINDOW - 1  # answered long ago, nobody wanted it
    new_ledger(db_url).claim(delivery_id("m:10"), claimed_at)
    started = time.monotonic()
    try:
        assert guard.run("m:10", lambda: b"<xml>twice</xml>") == NO_REPLY
    finally:
        guard.close()
    assert time.monotonic() - started < WAIT_FOR_FIRST  # no thread held for a replay


@pytest.fixture
def gunicorn_bot(tmp_path, db_url):
    """The bot under gunicorn: two workers, four threads each, one database."""
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[wechat]\ntoken = "{TOKEN}"\n[storage]\nurl = "{db_url}"\n', encoding="utf-8"
    )
    command = [
        sys.executable, "-m", "gunicorn", "bot:app", "--bind", f"127.0.0.1:{port}",
        "--workers", "2", "--worker-class", "gthread", "--threads", "4", "--no-control-socket",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "BOT_CONFIG": str(config)})
    url = f"http://127.0.0.1:{port}/wechat"
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def wait_until_up(url: str) -> None:
    """Until `url` answers 200 (a server just started), 60 s at most."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def _workers(process: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
    return [int(pid) for pid in children.split()]


def assert_copies_run_once(urls: list[str], deliveries: int, copies: int) -> None:
    """Send `copies` of each of `deliveries` deliveries at once, copy i to
    urls[i % len(urls)], each on a connection of its own as WeChat's retries; every
    copy of a delivery must get the same answer, with a link: the handlers ran once."""

    def deliver(msg_id: str) -> list[str]:
        body = text_xml(msg_id=msg_id).encode("utf-8")
        query = signed_query()
        barrier = threading.Barrier(copies)

        def send(copy: int) -> str:
            with requests.Session() as session:
                barrier.wait(timeout=30)
                answer = session.post(urls[copy % len(urls)], params=query, data=body, timeout=10)
            assert answer.status_code == 200
            return answer.text

        with ThreadPoolExecutor(copies) as pool:
            return list(pool.map(send, range(copies)))

    replies = [deliver(f"77{i:014d}") for i in range(deliveries)]
    for answers in replies:
        # each run mints a new state: identical answers mean the handlers ran once
        assert len(set(answers)) == 1, answers
        assert "<a href=" in answers[0]
    assert len({answers[0] for answers in replies}) == deliveries


def test_simultaneous_copies_on_gunicorn_workers_run_the_handlers_once(gunicorn_bot):
    url, process = gunicorn_bot
    assert len(_workers(process)) == 2
    assert_copies_run_once([url], deliveries=20, copies=6)
