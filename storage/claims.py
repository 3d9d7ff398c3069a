"""Claims on WeChat deliveries in memory shared by every process on this host:
how the ledger decides, with SQLite, which copy of a delivery runs the handlers.

Processes can share a SQLite file only on one host (its write-ahead log lives in
shared memory), so the processes that share a ledger file can share this too: a
hash table in a file beside it (`bot.deliveries.sqlite3-claims`), mapped into
every process. Robust process-shared mutexes guard it, one per stripe of its
buckets, taken by threads and processes alike; taking one that nobody holds
costs neither a system call nor the GIL, and two claims seldom meet at one. An
INSERT into SQLite cost the write-ahead log's lock, a page cache rebuilt after
every other process's write and, under load, more in context switches than in
work.

The table holds `buckets * SLOTS` deliveries, each a delivery id and the second
it was claimed. A delivery has two buckets under one mutex and goes to the one
with more room (two choices even out the buckets' loads: one choice let some
fill at four times the mean rate). Old deliveries are swept slice by slice. When
both buckets are full, the older of their oldest deliveries makes room, and a
warning says how long deliveries are remembered under that load.

The file holds claims only. After a crash it may keep some stale ones or lose
the last ones, as the ledger's SQLite file written without fsync would. Every
process holds a shared flock on it while it has it open; the first to open it
while no other has it open (after a restart, a crash, a reboot) makes its
mutexes anew, so a mutex left held by a dead process can never block anyone.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import mmap
import os
import struct
import time
from pathlib import Path

log = logging.getLogger(__name__)

SLOTS = 16  # deliveries per bucket
# 262,144 deliveries in 3 MiB: WeChat's retries (16 s) of up to 16,000 messages a second,
# or the whole replay horizon (2 × max_clock_skew + 16 s: 616 s by default) of up to 425.
# Every process that touches the table counts all of its pages in its RSS.
BUCKETS = 2**14
STRIPES = 64  # mutexes: bucket b is guarded by mutex b % STRIPES (both of a delivery's)
MUTEX_AT, MUTEX_SIZE = 4096, 64  # the mutexes fill the header's second page
HEADER = MUTEX_AT + STRIPES * MUTEX_SIZE  # the layout's magic at 0
MAGIC = b"wechat-claims/2\n"  # the layout's version: another one makes the file anew
WARN_EVERY = 60.0
_BUCKET = struct.Struct(f"<{SLOTS}q{SLOTS}I")  # the delivery ids, then when each was claimed
_TIMES = struct.Struct(f"<{SLOTS}I")
_ID = struct.Struct("<q")
_TIME = struct.Struct("<I")


class ClaimTableError(OSError):
    """The claims file cannot be used."""


class _Libc:
    """pthread's robust process-shared mutex, through ctypes: `held` calls keep the
    GIL (they never block), `releasing` calls let other threads run meanwhile."""

    def __init__(self) -> None:
        held, releasing = ctypes.PyDLL(None), ctypes.CDLL(None)
        for name in (
            "pthread_mutexattr_init",
            "pthread_mutexattr_setpshared",
            "pthread_mutexattr_setrobust",
            "pthread_mutex_init",
            "pthread_mutex_trylock",
            "pthread_mutex_unlock",
            "pthread_mutex_consistent",
        ):
            setattr(self, name, self._bind(held, name))
        self.pthread_mutex_lock = self._bind(releasing, "pthread_mutex_lock")

    @staticmethod
    def _bind(library: ctypes.CDLL, name: str):
        function = getattr(library, name)
        function.restype = ctypes.c_int
        return function


try:
    _libc: _Libc | None = _Libc()
except (AttributeError, OSError):  # no robust mutexes here (macOS): the ledger uses its database
    _libc = None
AVAILABLE = _libc is not None


class _RobustMutex:
    """A pthread mutex in the mapped file, shared by processes: when its holder
    dies, the next one to take it gets it (EOWNERDEAD), and the table with it.

    Threads of one process take it directly too: a thread that finds it held
    waits with the GIL released, so the holder can always finish."""

    def __init__(self, mapping: mmap.mmap, offset: int) -> None:
        self._memory = (ctypes.c_char * MUTEX_SIZE).from_buffer(mapping, offset)
        self._address = ctypes.c_void_p(ctypes.addressof(self._memory))

    def make(self) -> None:
        """A new, unlocked mutex: only while no other process has the file open."""
        ctypes.memset(self._address, 0, MUTEX_SIZE)
        attributes = ctypes.create_string_buffer(64)
        _libc.pthread_mutexattr_init(attributes)
        _libc.pthread_mutexattr_setpshared(attributes, 1)  # PTHREAD_PROCESS_SHARED
        _libc.pthread_mutexattr_setrobust(attributes, 1)  # PTHREAD_MUTEX_ROBUST
        _check(_libc.pthread_mutex_init(self._address, attributes))

    def acquire(self) -> None:
        result = _libc.pthread_mutex_trylock(self._address)
        if result == errno.EBUSY:
            result = _libc.pthread_mutex_lock(self._address)
        if result == errno.EOWNERDEAD:  # its holder died: each slot is whole, the table fine
            result = _libc.pthread_mutex_consistent(self._address)
        _check(result)

    def release(self) -> None:
        _libc.pthread_mutex_unlock(self._address)

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def close(self) -> None:
        del self._memory  # the mapping can only be closed once nothing points into it


def _claimed_at(slots: tuple[int, ...], delivery: int) -> int:
    """When `delivery` was claimed in this bucket, 0 if it is not there."""
    for slot in range(SLOTS):
        if slots[slot] == delivery and slots[SLOTS + slot]:
            return slots[SLOTS + slot]
    return 0


def _check(result: int) -> None:
    if result:
        raise ClaimTableError(result, f"claims mutex: {os.strerror(result)}")


class ClaimTable:
    """`claim` is None for the first copy of a delivery among every process that
    opened the same `path`; later copies get when the first was claimed."""

    def __init__(self, path: Path, buckets: int = BUCKETS) -> None:
        if _libc is None:
            raise ClaimTableError(errno.ENOSYS, "no robust process-shared mutex on this system")
        self.path = path
        self._buckets = buckets
        self._stripes = min(STRIPES, buckets)
        if buckets % self._stripes:
            raise ValueError(f"{buckets} buckets do not fill {STRIPES} stripes evenly")
        self._rows = buckets // self._stripes
        self._size = HEADER + buckets * _BUCKET.size
        self._swept_before = 0
        self._warned_at = -WARN_EVERY
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            self._map, self._mutexes = self._open()
        except BaseException:
            os.close(self._fd)
            raise

    def claim(self, delivery: int, now: int) -> int | None:
        stripe, rest = delivery % self._stripes, delivery // self._stripes
        first = HEADER + (rest % self._rows * self._stripes + stripe) * _BUCKET.size
        second = HEADER + (rest // self._rows % self._rows * self._stripes + stripe) * _BUCKET.size
        with self._mutexes[stripe]:
            one = _BUCKET.unpack_from(self._map, first)
            two = _BUCKET.unpack_from(self._map, second)  # maybe the same bucket
            if delivery in one or delivery in two:  # rare: a copy (or an id equal to a time)
                claimed_at = _claimed_at(one, delivery) or _claimed_at(two, delivery)
                if claimed_at:
                    return claimed_at
            at, slot = self._room(first, one[SLOTS:], second, two[SLOTS:], now)
            _ID.pack_into(self._map, at + 8 * slot, delivery)
            _TIME.pack_into(self._map, at + 8 * SLOTS + 4 * slot, now)
        return None

    def sweep(self, before: int, part: int, parts: int) -> int:
        """Forget the deliveries claimed before `before` in bucket slice `part` of
        `parts`; calling it for every part in turn sweeps the whole table."""
        self._swept_before = before
        part %= parts
        swept = 0
        for bucket in range(part * self._buckets // parts, (part + 1) * self._buckets // parts):
            at = HEADER + bucket * _BUCKET.size + 8 * SLOTS
            with self._mutexes[bucket % STRIPES]:
                times = _TIMES.unpack_from(self._map, at)
                if min(times) >= before:  # full of recent claims, as under load: nothing to do
                    continue
                for slot, claimed_at in enumerate(times):
                    if 0 < claimed_at < before:
                        _TIME.pack_into(self._map, at + 4 * slot, 0)
                        _ID.pack_into(self._map, at - 8 * SLOTS + 8 * slot, 0)
                        swept += 1
        return swept

    def close(self) -> None:
        for mutex in self._mutexes:
            mutex.close()
        self._map.close()
        os.close(self._fd)  # and with it this process's flock

    def _room(self, first: int, one: tuple, second: int, two: tuple, now: int) -> tuple[int, int]:
        """(bucket, slot) for a new delivery, given two buckets' claim times: a free
        slot in the bucket with more of them; when both are full, the older of their
        oldest deliveries makes room."""
        free_one, free_two = one.count(0), two.count(0)
        if free_one or free_two:
            return (first, one.index(0)) if free_one >= free_two else (second, two.index(0))
        at, times = (first, one) if min(one) <= min(two) else (second, two)
        oldest = min(times)
        if oldest >= self._swept_before:  # not old enough to be swept: forgotten early
            self._warn_full(now - oldest)
        return at, times.index(oldest)

    def _warn_full(self, remembered: int) -> None:
        if time.monotonic() - self._warned_at >= WARN_EVERY:
            self._warned_at = time.monotonic()
            log.warning(
                "the delivery claims in %s are full: at this load a delivery is remembered "
                "for about %d s only (a copy arriving later runs the handlers again)",
                self.path,
                remembered,
            )

    def _open(self) -> tuple[mmap.mmap, list[_RobustMutex]]:
        """Map the file; the first process to open it makes it ready under an
        exclusive flock, then every one holds a shared flock while it has it open."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # in use: wait for whoever is making it ready
            fcntl.flock(self._fd, fcntl.LOCK_SH)
            return self._attach()
        if not self._laid_out():
            os.ftruncate(self._fd, 0)  # another layout, or a wreck: start empty
            os.ftruncate(self._fd, self._size)
            os.pwrite(self._fd, MAGIC, 0)
        mapping, mutexes = self._map_file()
        for mutex in mutexes:
            mutex.make()
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        return mapping, mutexes

    def _attach(self) -> tuple[mmap.mmap, list[_RobustMutex]]:
        if not self._laid_out():
            raise ClaimTableError(errno.EINVAL, f"{self.path} is in use with another layout")
        return self._map_file()

    def _map_file(self) -> tuple[mmap.mmap, list[_RobustMutex]]:
        mapping = mmap.mmap(self._fd, self._size)
        stripes = range(MUTEX_AT, MUTEX_AT + STRIPES * MUTEX_SIZE, MUTEX_SIZE)
        return mapping, [_RobustMutex(mapping, offset) for offset in stripes]

    def _laid_out(self) -> bool:
        return (
            os.fstat(self._fd).st_size == self._size and os.pread(self._fd, len(MAGIC), 0) == MAGIC
        )
