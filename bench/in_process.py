"""Requests a second of a WSGI app called in process: one thread, no sockets."""

from __future__ import annotations

import time
from collections.abc import Callable


def rate(app: Callable, environ: Callable[[int], dict], expect: bytes, seconds: float) -> float:
    """Call `app` with `environ(n)` for n = 0, 1, … during `seconds`; every answer
    must be a 200 whose body holds `expect`."""

    def start_response(status, headers, exc_info=None):
        assert status.startswith("200"), status

    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        assert expect in b"".join(app(environ(count), start_response))
        count += 1
    return count / seconds
