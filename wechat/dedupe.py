"""WeChat retries a push it got no answer to within 5 s, three tries in all.
The guard runs the handlers once per delivery and answers every retry with the
first answer (waiting for it if the first is still being worked on).

The message path only touches memory. Seen keys reach the store in batches from
a background thread, and a restarted process loads the recent ones back, so a
retry that straddles a restart still does not run the handlers twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from storage import StorageError, Store

log = logging.getLogger(__name__)

KEEP_SECONDS = 120  # well past WeChat's last retry (~15 s after the first try)
WAIT_FOR_FIRST = 4.5  # a retry waits this long for the first answer, under WeChat's 5 s
FLUSH_EVERY = 0.5
NO_REPLY = b"success"


class _Delivery:
    __slots__ = ("answer", "done", "expires_at")

    def __init__(self, expires_at: float, answer: bytes | None = None) -> None:
        self.expires_at = expires_at
        self.answer = answer
        self.done = threading.Event()
        if answer is not None:
            self.done.set()


class RetryGuard:
    def __init__(self, store: Store, keep: int = KEEP_SECONDS) -> None:
        self.store = store
        self.keep = keep
        self._deliveries: OrderedDict[str, _Delivery] = OrderedDict()
        self._lock = threading.Lock()
        self._unsaved: list[tuple[str, int]] = []
        self._stop = threading.Event()
        for key, expires_at in store.recent_seen():
            self._deliveries[key] = _Delivery(expires_at, NO_REPLY)
        self._flusher = threading.Thread(target=self._flush_loop, name="seen-flusher", daemon=True)
        self._flusher.start()

    def run(self, key: str, produce: Callable[[], bytes]) -> bytes:
        """`produce()`'s answer for the first delivery of `key`; the same for retries."""
        now = time.time()
        with self._lock:
            self._evict(now)
            delivery = self._deliveries.get(key)
            first = delivery is None
            if first:
                delivery = self._deliveries[key] = _Delivery(now + self.keep)
                self._unsaved.append((key, int(now + self.keep)))
        if not first:
            delivery.done.wait(WAIT_FOR_FIRST)
            return delivery.answer or NO_REPLY
        try:
            delivery.answer = produce()
        finally:
            delivery.done.set()
        return delivery.answer

    def close(self) -> None:
        """Stop the flusher after one last flush."""
        self._stop.set()
        self._flusher.join(timeout=5)

    def _evict(self, now: float) -> None:
        while self._deliveries:
            key, oldest = next(iter(self._deliveries.items()))
            if oldest.expires_at > now:
                return
            del self._deliveries[key]

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            self.flush()
        self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._unsaved = self._unsaved, []
        if not batch:
            return
        try:
            self.store.record_seen(batch)
        except StorageError as exc:
            log.warning("could not persist %d seen message ids: %s", len(batch), exc)
            with self._lock:
                self._unsaved[:0] = batch
