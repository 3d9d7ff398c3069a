"""The SQLite ledger's claims in shared memory: one winner among processes, and
nothing a dead process or a reboot leaves behind can block or mislead the others."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from storage import DeliveryLedger, StorageError, Store
from storage.claims import MAGIC, SLOTS, ClaimTable
from storage.deliveries import delivery_id


def _hold_the_mutexes(path, claim: int, ready) -> None:
    """A worker that claims `claim`, then dies (SIGKILL) while it holds every mutex."""
    table = ClaimTable(path)
    table.claim(claim, int(time.time()))
    for mutex in table._mutexes:
        mutex.acquire()
    ready.set()
    time.sleep(60)


def _killed_holding_the_mutexes(path, claim: int) -> multiprocessing.Process:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_the_mutexes, args=(path, claim, ready))
    holder.start()
    assert ready.wait(30)
    return holder


def _within(seconds: float, work):
    """`work()`'s result, failing (not hanging) the test if it blocks."""
    results = []
    thread = threading.Thread(target=lambda: results.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert results, "blocked"
    return results[0]


def test_a_worker_killed_holding_the_mutexes_blocks_nobody(tmp_path):
    path = tmp_path / "claims"
    table = ClaimTable(path)  # open before and after the holder dies: its mutex stays
    try:
        holder = _killed_holding_the_mutexes(path, 5)
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
        now = int(time.time())
        assert _within(30, lambda: table.claim(5, now)) is not None  # the dead one's claim
        assert table.claim(6, now) is None
    finally:
        table.close()


def test_a_mutex_held_when_the_host_went_down_is_made_anew(tmp_path):
    path, rebooted = tmp_path / "claims", tmp_path / "claims-after-reboot"
    holder = _killed_holding_the_mutexes(path, 5)
    try:
        shutil.copyfile(path, rebooted)  # the file as a power cut leaves it: held, owner gone
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
    table = ClaimTable(rebooted)  # nobody else has it open: its mutex is made anew
    try:
        now = int(time.time())
        assert _within(30, lambda: table.claim(5, now)) is not None  # claims are kept
        assert table.claim(6, now) is None
    finally:
        table.close()


def test_a_file_of_another_layout_is_made_anew_when_nobody_uses_it(tmp_path):
    path = tmp_path / "claims"
    path.write_bytes(b"a claims file of another version" * 100)
    table = ClaimTable(path)
    try:
        assert path.read_bytes()[: len(MAGIC)] == MAGIC
        assert table.claim(1, int(time.time())) is None
    finally:
        table.close()


def test_a_file_of_another_layout_in_use_is_refused(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    ledger = DeliveryLedger.beside(store.engine)
    claims = tmp_path / "bot.deliveries.sqlite3-claims"
    try:
        with claims.open("r+b") as file:  # another version of the bot has it open
            file.write(b"wechat-claims/9\n")
        with pytest.raises(StorageError, match="another layout"):
            DeliveryLedger.beside(store.engine)
    finally:
        ledger.close()


def test_a_full_bucket_forgets_its_oldest_delivery_and_says_so(tmp_path, caplog):
    table = ClaimTable(tmp_path / "claims", buckets=1)
    now = int(time.time())
    try:
        assert table.sweep(before=now - 1000, part=0, parts=1) == 0
        for delivery in range(1, SLOTS + 1):
            assert table.claim(delivery, now - 100 + delivery) is None
        with caplog.at_level(logging.WARNING, logger="storage.claims"):
            assert table.claim(SLOTS + 1, now) is None
        assert "remembered for about 99 s only" in caplog.text
        assert table.claim(1, now) is None  # the oldest was forgotten
        assert [table.claim(d, now) for d in range(3, SLOTS + 2)] == [
            *(now - 100 + d for d in range(3, SLOTS + 1)),
            now,
        ]
    finally:
        table.close()


def test_a_full_table_forgets_old_deliveries_first(tmp_path, caplog):
    """Two buckets to choose from keep the buckets evenly loaded: with one, some
    filled so fast that their deliveries were forgotten after 0.4 of the mean time."""
    table = ClaimTable(tmp_path / "claims", buckets=256)
    capacity = 256 * SLOTS
    deliveries = [delivery_id(f"m:{i}") for i in range(3 * capacity)]
    start = int(time.time()) - len(deliveries)
    try:
        with caplog.at_level(logging.ERROR, logger="storage.claims"):  # full, as meant
            for second, delivery in enumerate(deliveries):
                table.claim(delivery, start + second)
        recent = range(len(deliveries) - capacity // 2, len(deliveries))
        assert [table.claim(deliveries[i], start + len(deliveries)) for i in recent] == [
            start + i for i in recent
        ]
    finally:
        table.close()


def test_sweeping_frees_the_slots_of_old_deliveries(tmp_path):
    table = ClaimTable(tmp_path / "claims", buckets=4)
    now = int(time.time())
    try:
        for delivery in range(40):
            table.claim(delivery, now - 1000 if delivery % 2 else now)
        assert sum(table.sweep(before=now - 100, part=part, parts=3) for part in range(3)) == 20
        assert [table.claim(d, now) is None for d in range(40)] == [d % 2 == 1 for d in range(40)]
    finally:
        table.close()


def test_the_claims_of_an_id_that_equals_a_time_are_not_mixed_up(tmp_path):
    table = ClaimTable(tmp_path / "claims", buckets=1)
    now = int(time.time())
    try:
        assert table.claim(now, now) is None  # a delivery id equal to the time it came
        assert table.claim(0, now) is None  # and the id 0, equal to an empty slot's
        assert table.claim(now, now + 1) == now
        assert table.claim(0, now + 1) == now
    finally:
        table.close()


def test_threads_of_two_tables_on_one_file_claim_each_delivery_once(tmp_path):
    tables = [ClaimTable(tmp_path / "claims", buckets=64) for _ in range(2)]
    now = int(time.time())

    def claim_all(table: ClaimTable) -> list[int]:
        return [d for d in range(500) if table.claim(d * 7919, now) is None]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the GIL changes hands inside claims, while mutexes are held
    try:
        with ThreadPoolExecutor(16) as pool:
            won = [d for claimed in pool.map(claim_all, tables * 8) for d in claimed]
    finally:
        sys.setswitchinterval(interval)
        for table in tables:
            table.close()
    assert sorted(won) == list(range(500))
