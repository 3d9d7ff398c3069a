"""WeChat retries a push it got no answer to within 5 s, three tries in all, and a
copy may land on any thread, worker process or instance. The guard runs the
handlers once per delivery and gives the other copies the first answer, or
`success` when that answer cannot reach them.

- Copies inside one process meet in memory: a later one waits for the first, or
  finds its answer among the recent ones.
- Copies in different processes (gunicorn workers, instances) meet in the
  ledger: its claim decides who runs the handlers (with SQLite in memory the
  host's processes share, with PostgreSQL one INSERT). A losing copy marks the
  delivery wanted in the database and polls; the winner's flusher sees the mark
  and saves its answer. An answer nobody asked for is never written, so a
  message costs no database write with SQLite and one with PostgreSQL.

Memory holds the deliveries in flight and the answers of WeChat's retry span,
within a byte budget: flat however long the load lasts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from storage import DeliveryLedger, StorageError
from storage.deliveries import delivery_id
from wechat.replies import NO_REPLY

log = logging.getLogger(__name__)

RETRY_WINDOW = 16  # WeChat's three tries, 5 s apart: a copy older than this is a replay
WAIT_FOR_FIRST = 4.5  # a copy waits this long for the first answer, under WeChat's 5 s
POLL_EVERY = 0.05  # how often a copy in another process looks for the answer
FLUSH_EVERY = 0.1  # wanted answers and clean-up reach the database this often
CHECKPOINT_EVERY = 10  # flushes between two looks at SQLite's write-ahead log
ANSWER_MEMORY = 4 * 1024 * 1024  # bytes of recent answers a process keeps for copies
ENTRY_OVERHEAD = 200  # what a remembered answer costs besides its bytes
WARN_EVERY = 60.0


class _Answer:
    __slots__ = ("at", "body", "unsaved")

    def __init__(self, body: bytes, unsaved: bool) -> None:
        self.body = body
        self.at = time.monotonic()
        self.unsaved = unsaved  # produced here and not in the database yet


class RetryGuard:
    def __init__(
        self,
        ledger: DeliveryLedger,
        max_skew: int,
        memory: int = ANSWER_MEMORY,
        wait_for_first: float = WAIT_FOR_FIRST,
    ) -> None:
        """`max_skew`: how far a push's timestamp may be from now. A delivery is
        remembered while a copy of it can still carry a valid signature (up to
        twice that, when the clocks disagree), or a replay would run again.
        `wait_for_first`: how long a copy waits for the first one's answer."""
        self.ledger = ledger
        self.wait_for_first = wait_for_first
        self.keep = 2 * max_skew + RETRY_WINDOW
        self.memory = memory
        self._flushes = 0
        self._in_flight: set[int] = set()
        self._answers: OrderedDict[int, _Answer] = OrderedDict()  # oldest first
        self._bytes = 0
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._warned_at = -WARN_EVERY
        self._flusher = threading.Thread(target=self._flush_loop, name="dedupe-flush", daemon=True)
        self._flusher.start()

    def run(self, key: str, produce: Callable[[], bytes]) -> bytes:
        """`produce()`'s answer for the first copy of the delivery `key`; the same
        for the other copies."""
        delivery = delivery_id(key)
        with self._lock:
            if delivery in self._in_flight:  # a copy in this process: wait for the first
                self._answered.wait_for(
                    lambda: delivery not in self._in_flight, self.wait_for_first
                )
            if delivery in self._answers:
                return self._answers[delivery].body
            if delivery in self._in_flight:  # the first is still working: give up
                return NO_REPLY
            self._in_flight.add(delivery)
        answer, produced = NO_REPLY, False
        try:
            answer, produced = self._resolve(delivery, produce)
        finally:
            with self._lock:
                self._in_flight.discard(delivery)
                self._remember(delivery, _Answer(answer, unsaved=produced))
                self._answered.notify_all()
        return answer

    def close(self) -> None:
        """Stop the flusher after a last flush (answers a copy may still want)."""
        self._stop.set()
        self._flusher.join(timeout=5)
        self.ledger.close()

    def _resolve(self, delivery: int, produce: Callable[[], bytes]) -> tuple[bytes, bool]:
        """The answer, and whether this copy produced it (else it came from elsewhere)."""
        deadline = time.monotonic() + self.wait_for_first
        now = int(time.time())
        claimed_at = self._claim(delivery, now)
        if claimed_at is None:
            return produce(), True
        if claimed_at <= now - RETRY_WINDOW:
            return NO_REPLY, False
        return self._answer_from_elsewhere(delivery, deadline), False

    def _claim(self, delivery: int, now: int) -> int | None:
        """None when this copy is the first; else when the first one was claimed."""
        try:
            return self.ledger.claim(delivery, now)
        except StorageError as exc:  # answer anyway; a duplicate is the lesser harm
            self._warn("deduplicating in this process only, the database failed: %s", exc)
            return None

    def _answer_from_elsewhere(self, delivery: int, deadline: float) -> bytes:
        while True:
            try:
                answer = self.ledger.answer(delivery)
            except StorageError as exc:
                self._warn("cannot read the answer of another process: %s", exc)
                answer = None
            if answer is not None or time.monotonic() + POLL_EVERY > deadline:
                return answer or NO_REPLY
            time.sleep(POLL_EVERY)

    def _remember(self, delivery: int, answer: _Answer) -> None:
        """Keep `answer` for later copies; forget the oldest beyond WeChat's retry
        span or the byte budget. Called with the lock held."""
        self._answers[delivery] = answer
        self._bytes += len(answer.body) + ENTRY_OVERHEAD
        horizon = answer.at - RETRY_WINDOW
        while self._answers and (
            self._bytes > self.memory or next(iter(self._answers.values())).at < horizon
        ):
            _, oldest = self._answers.popitem(last=False)
            self._bytes -= len(oldest.body) + ENTRY_OVERHEAD

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Save the answers another copy asked for; sweep old deliveries."""
        now = int(time.time())
        self._flushes += 1
        try:
            wanted = self.ledger.wanted(since=now - RETRY_WINDOW)
            self.ledger.save_answers(self._take_unsaved(wanted))
            self.ledger.sweep(before=now - self.keep, part=int(time.time() / FLUSH_EVERY))
            if self._flushes % CHECKPOINT_EVERY == 0:
                self.ledger.checkpoint()
        except StorageError as exc:
            self._warn("could not hand answers to retried copies: %s", exc)

    def _take_unsaved(self, wanted: set[int]) -> list[tuple[int, bytes]]:
        """The answers produced here that `wanted` names, marked as saved."""
        taken = []
        with self._lock:
            for delivery in wanted:
                answer = self._answers.get(delivery)
                if answer is not None and answer.unsaved:
                    answer.unsaved = False
                    taken.append((delivery, answer.body))
        return taken

    def _warn(self, text: str, *args: object) -> None:
        """At most one line a minute: an outage must not flood the log."""
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(text, *args)
