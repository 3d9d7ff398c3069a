"""Work for the tests that need several processes at once (workers claiming, instances
migrating together), and the context that starts those processes.

The processes come from a fork server that has imported this module, and with it the
store, once: each one starts in milliseconds, already separate (its own connections,
its own memory). A spawned process would import the test module instead, and through
it the whole bot and pytest: a second of CPU each, six at a time.

This module imports the store and nothing of the tests', so that the server stays small.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.context import BaseContext

from storage import DeliveryLedger, Store
from storage.deliveries import delivery_id


def context() -> BaseContext:
    """Where to start the processes: the fork server, with the store imported."""
    started = multiprocessing.get_context("forkserver")
    started.set_forkserver_preload([__name__])
    return started


def new_ledger(url: str, shared_memory: bool = True) -> DeliveryLedger:
    """With SQLite, claims in shared memory (the default) or in the database."""
    return DeliveryLedger(Store.from_url(url).engine, shared_memory)


def claim_all(url: str, shared_memory: bool, keys: list[str], barrier, results) -> None:
    """Claim every delivery of `keys` at once with the others; put those this one won."""
    mine = new_ledger(url, shared_memory)
    barrier.wait(timeout=60)  # a worker that failed to start must not hang the rest
    now = int(time.time())
    results.put([key for key in keys if mine.claim(delivery_id(key), now) is None])


def open_ledger(url: str, barrier, results) -> None:
    """Open the ledger beside the store at once with the others; put one claim's outcome."""
    store = Store.from_url(url)
    barrier.wait(timeout=60)
    opened = DeliveryLedger.beside(store.engine)
    results.put(opened.claim(7, int(time.time())))


def claim_state(url: str, barrier, results) -> None:
    """Claim one state at once with the others; put what the claim found."""
    store = Store.from_url(url)
    barrier.wait(timeout=60)
    results.put(store.claim_state("p" * 64, "h", int(time.time()) + 600, 120)[0].value)


def open_store(url: str, barrier, results) -> None:
    """Open the store (migrating it) at once with the others; put the steps this one
    applied, or the error."""
    try:
        barrier.wait(timeout=60)
        results.put(Store.from_url(url).migrated.applied)
    except Exception as exc:  # the test reads it from the queue
        results.put(f"{type(exc).__name__}: {exc}")
