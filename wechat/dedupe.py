"""WeChat retries a push it got no answer to within 5 s, three tries in all, and a
copy may land on any thread, worker process or instance. The guard runs the
handlers once per delivery and gives the other copies the first answer, or
`success` when that answer cannot reach them.

- Copies inside one process meet in memory: the later ones wait for the first.
- Copies in different processes (gunicorn workers, instances) meet in the
  database: the ledger's claim, one upsert, decides who runs the handlers. A
  losing copy marks the delivery wanted and polls; the winner's flusher sees the
  mark and saves its answer. An answer nobody asked for is never written, so a
  message costs one write.

Memory holds deliveries in flight and answers of the last two flushes: flat
however long the load lasts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from storage import DeliveryLedger, StorageError

log = logging.getLogger(__name__)

RETRY_WINDOW = 16  # WeChat's three tries, 5 s apart: a copy older than this is a replay
WAIT_FOR_FIRST = 4.5  # a copy waits this long for the first answer, under WeChat's 5 s
POLL_EVERY = 0.05  # how often a copy in another process looks for the answer
FLUSH_EVERY = 0.1  # wanted answers and clean-up reach the database this often
CHECKPOINT_EVERY = 10  # flushes between two write-ahead-log checkpoints (SQLite)
WARN_EVERY = 60.0
NO_REPLY = b"success"


class RetryGuard:
    def __init__(self, ledger: DeliveryLedger, max_skew: int) -> None:
        """`max_skew`: how far a push's timestamp may be from now. A delivery is
        remembered while a copy of it can still carry a valid signature (up to
        twice that, when the clocks disagree), or a replay would run again."""
        self.ledger = ledger
        self.keep = 2 * max_skew + RETRY_WINDOW
        self._flushes = 0
        # Deliveries this process resolved lately or is resolving (answer None).
        self._slots: dict[str, bytes | None] = {}
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._produced: list[tuple[str, bytes]] = []  # answers of this process, since the flush
        self._previous: list[tuple[str, bytes]] = []  # those of the flush before: checked again
        self._finished: list[str] = []  # slots finished since the last flush
        self._retiring: list[str] = []  # finished before it: forgotten at the next flush
        self._stop = threading.Event()
        self._warned_at = -WARN_EVERY
        self._flusher = threading.Thread(target=self._flush_loop, name="dedupe-flush", daemon=True)
        self._flusher.start()

    def run(self, key: str, produce: Callable[[], bytes]) -> bytes:
        """`produce()`'s answer for the first copy of the delivery `key`; the same
        for the other copies."""
        with self._lock:
            if key in self._slots:  # a copy in this process: wait for the first
                self._answered.wait_for(lambda: self._slots.get(key) is not None, WAIT_FOR_FIRST)
                return self._slots.get(key) or NO_REPLY
            self._slots[key] = None
        answer, produced = NO_REPLY, False
        try:
            answer, produced = self._resolve(key, produce, time.monotonic() + WAIT_FOR_FIRST)
        finally:
            with self._lock:
                self._slots[key] = answer
                self._finished.append(key)
                if produced:
                    self._produced.append((key, answer))
                self._answered.notify_all()
        return answer

    def close(self) -> None:
        """Stop the flusher after a last flush (answers a copy may still want)."""
        self._stop.set()
        self._flusher.join(timeout=5)
        self.ledger.close()

    def _resolve(
        self, key: str, produce: Callable[[], bytes], deadline: float
    ) -> tuple[bytes, bool]:
        """The answer, and whether this copy produced it (else it came from elsewhere)."""
        now = int(time.time())
        claimed_at = self._claim(key, now)
        if claimed_at is None:
            return produce(), True
        if claimed_at <= now - RETRY_WINDOW:
            return NO_REPLY, False
        return self._answer_from_elsewhere(key, deadline), False

    def _claim(self, key: str, now: int) -> int | None:
        """None when this copy is the first; else when the first one was claimed."""
        try:
            return self.ledger.claim(key, now)
        except StorageError as exc:  # answer anyway; a duplicate is the lesser harm
            self._warn("deduplicating in this process only, the database failed: %s", exc)
            return None

    def _answer_from_elsewhere(self, key: str, deadline: float) -> bytes:
        while True:
            try:
                answer = self.ledger.answer(key)
            except StorageError as exc:
                self._warn("cannot read the answer of another process: %s", exc)
                answer = None
            if answer is not None or time.monotonic() + POLL_EVERY > deadline:
                return answer or NO_REPLY
            time.sleep(POLL_EVERY)

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Save the recent answers another copy asked for; sweep old deliveries.

        An answer is checked at two flushes, so a copy that marks it wanted just
        after the first check still gets it; then the process forgets it.
        """
        with self._lock:
            recent, self._previous, self._produced = (
                self._produced + self._previous,
                self._produced,
                [],
            )
            for key in self._retiring:
                del self._slots[key]
            self._retiring, self._finished = self._finished, []
        now = int(time.time())
        self._flushes += 1
        try:
            wanted = set(self.ledger.wanted([key for key, _ in recent], since=now - RETRY_WINDOW))
            self.ledger.save_answers([entry for entry in recent if entry[0] in wanted])
            self.ledger.sweep(before=now - self.keep, part=int(time.time() / FLUSH_EVERY))
            if self._flushes % CHECKPOINT_EVERY == 0:
                self.ledger.checkpoint()
        except StorageError as exc:
            self._warn("could not hand answers to retried copies: %s", exc)

    def _warn(self, text: str, *args: object) -> None:
        """At most one line a minute: an outage must not flood the log."""
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(text, *args)
