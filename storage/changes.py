"""Reads kept in memory until any process on this host changes what they read.

The message path greets a follower by what the store knows of them, for every
push; a database read per push cost about as much as the rest of the bot's own
work on it. Followers change seldom (when they authorize, or their grant
lapses), so each process keeps what it read, and every write to a follower
bumps a counter that the host's processes share in memory: a file beside the
SQLite database (`bot.sqlite3` → `bot.sqlite3-changes`), mapped into each of
them. Reading the counter is a load from memory, no system call; bumping it
takes the file's flock, which only writers do.

A value read after the counter showed `n` is kept under `n` and served while
the counter still shows `n`. Writers bump after their commit, so a value read
before a write's commit was kept under an older count than the one the write
leaves: whoever reads next, in any process, reads the database again.

SQLite's processes are on one host, so this covers every writer; instances
on PostgreSQL share no memory and read the database every time.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
_COUNT = struct.Struct("<Q")
# Values a process keeps (about 100 bytes each, for a stranger's): past it, the others
# are read every time, until the next change starts afresh.
LIMIT = 16384
_MISSING = object()


class ChangeCounter:
    """A count in a file every process on this host maps: `bump` it after a write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(self._fd).st_size < _COUNT.size:
                os.ftruncate(self._fd, _COUNT.size)  # zeros; never shrinks a count in use
            self._map = mmap.mmap(self._fd, _COUNT.size)
        except BaseException:
            os.close(self._fd)
            raise

    def value(self) -> int:
        return _COUNT.unpack_from(self._map, 0)[0]

    def bump(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # processes bumping at once each count
        try:
            _COUNT.pack_into(self._map, 0, self.value() + 1)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class UntilChanged(Generic[K, V]):
    """`get(key, read)`: `read(key)`'s value, read again once the counter has moved.
    What `read` raises is passed through and nothing is kept."""

    def __init__(self, counter: ChangeCounter, limit: int = LIMIT) -> None:
        self.counter = counter
        self.limit = limit
        self._kept: tuple[int, dict[K, V]] = (-1, {})  # (the count they were read at, values)

    def get(self, key: K, read: Callable[[K], V]) -> V:
        count = self.counter.value()
        kept_at, values = self._kept
        if kept_at != count:
            values = {}
            if count > kept_at:  # a thread that read an older count leaves newer values be
                self._kept = (count, values)
        else:
            value = values.get(key, _MISSING)
            if value is not _MISSING:
                return value
        value = read(key)
        if len(values) < self.limit:
            values[key] = value
        return value

    def changed(self) -> None:
        """Every process reads again: call it after a write's commit."""
        self.counter.bump()

    def close(self) -> None:
        self.counter.close()
