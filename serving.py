"""Serving a WSGI app over HTTP with waitress, for `serve` and `sandbox`.

Tuned so that hundreds of idle or half-sent connections cannot starve WeChat's
pushes, and stopped by SIGTERM or Ctrl-C only after the requests in flight are
answered (within GRACE seconds).
"""

from __future__ import annotations

import errno
import logging
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

log = logging.getLogger(__name__)

GRACE = 5.0  # seconds the requests in flight get to finish after SIGTERM or Ctrl-C
# Open connections served at once. Waitress's default (100) stops accepting once
# 100 sockets are open, idle or not, so a hundred idle clients starve WeChat.
CONNECTIONS = 2000
SPARE_DESCRIPTORS = 100  # kept for the database, calls to WeChat, logs
TUNING = {
    "threads": 16,  # requests worked on at once; reading and writing sockets takes none
    "channel_timeout": 30,  # seconds before an idle or half-sent connection is closed
    "cleanup_interval": 5,  # how often that is checked
    "backlog": 1024,  # connections the kernel queues before accept()
    # What a half-sent request may make the server hold: WeChat's pushes are a few
    # hundred bytes and no route takes an upload (waitress answers 431 and 413).
    "max_request_header_size": 32 * 1024,
    "max_request_body_size": 1024 * 1024,
    "asyncore_use_poll": True,  # select() cannot watch descriptors above 1023
    "ident": "oauth-bot",
    "clear_untrusted_proxy_headers": True,
}


class CannotListen(Exception):
    """The address cannot be bound; the message is one line naming it and the setting."""

    def __init__(self, host: str, port: int, setting: str, error: Exception) -> None:
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            reason = "already in use by another process"
        elif isinstance(error, OSError):
            reason = error.strerror or str(error)  # e.g. "Permission denied" below 1024
        else:
            reason = "the host does not resolve to an address of this machine"
        super().__init__(f"cannot listen on {host}:{port} ({setting}): {reason}")


class Server:
    """`app` on waitress, bound at construction; `run()` serves until a stop signal."""

    def __init__(
        self, app: Callable, host: str, port: int, setting: str = "server.host, server.port"
    ) -> None:
        self._map: dict = {}
        try:
            server = waitress.create_server(
                app,
                map=self._map,
                host=host,
                port=port,
                connection_limit=connection_limit(),
                **TUNING,
            )
        except (OSError, ValueError) as exc:  # ValueError: waitress could not resolve `host`
            raise CannotListen(host, port, setting, exc) from None
        self._dispatcher = server.task_dispatcher
        # One listener per address `host` resolves to (e.g. "localhost": IPv4 and IPv6).
        self._listeners = [d for d in self._map.values() if isinstance(d, BaseWSGIServer)]
        self._stopping = threading.Event()
        self.stopped_by = ""

    def run(self, grace: float = GRACE) -> None:
        """Serve until SIGTERM or SIGINT, then answer what is in flight and return.
        Call it from the main thread: only that one receives signals."""
        with _on_signals(self.stop, signal.SIGTERM, signal.SIGINT):
            while not self._stopping.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, use_poll=True, count=1)
            log.info(
                "%s: answering the requests in flight (%.0f s at most)", self.stopped_by, grace
            )
            self._drain(grace)
        log.info("stopped")

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask `run()` to wind down; safe from a signal handler and from other threads."""
        self.stopped_by = signal.Signals(signum).name
        self._stopping.set()
        self._listeners[0].pull_trigger()  # wakes the loop out of poll()

    def _drain(self, grace: float) -> None:
        for listener in self._listeners:
            # The listening socket only: new connections are refused at once, and the
            # listener's trigger stays to wake the loop as the requests finish.
            wasyncore.dispatcher.close(listener)
        deadline = time.monotonic() + grace
        while (busy := self._close_idle()) and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.1, map=self._map, use_poll=True, count=1)
        if busy:
            log.warning("%d request(s) still running after %.0f s; stopping anyway", busy, grace)
        self._dispatcher.shutdown(timeout=1)
        wasyncore.close_all(self._map)

    def _close_idle(self) -> int:
        """Close every connection with nothing in flight (idle, or a request only half
        sent); return how many still have a request being answered."""
        busy = 0
        for channel in [d for d in self._map.values() if isinstance(d, HTTPChannel)]:
            if channel.requests or channel.total_outbufs_len:
                busy += 1
            else:
                channel.will_close = True  # the loop's next pass closes it
        return busy


def connection_limit(wanted: int = CONNECTIONS) -> int:
    """`wanted`, or as many connections as the process may open descriptors for.

    Like most servers, first raises the soft descriptor limit toward the hard one:
    a common soft limit of 1024 would otherwise cap the connections below `wanted`.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < need:
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - SPARE_DESCRIPTORS))


@contextmanager
def _on_signals(handler: Callable[[int], None], *signals: signal.Signals) -> Iterator[None]:
    """Call `handler(signum)` on `signals` (instead of dying or KeyboardInterrupt)."""
    previous = {sig: signal.signal(sig, lambda signum, _frame: handler(signum)) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
