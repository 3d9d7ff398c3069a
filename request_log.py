"""One log line per request: method, path (never its query), status, milliseconds.

`GET /me 200 12.4 ms` on the `bot.request` logger at INFO. The line is written when
the server closes the response, after the body is produced (for a push: after the
reply is handed over), so it adds nothing to the work WeChat waits for; it takes no
lock of its own and is formatted only when INFO is on. The query string, where
codes, states and signatures travel, is never read. The path is quoted back as it
came (a control character or a space cannot forge a line) and cut to MAX_PATH.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote

log = logging.getLogger("bot.request")

MAX_PATH = 200
# Characters a path segment may carry unquoted (RFC 3986 pchar), and the slash.
PATH_SAFE = "/:@!$&'()*+,;=-._~"

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


def log_requests(app: WSGIApp) -> WSGIApp:
    """`app`, writing one line per request once its response is closed."""

    def logged(environ: dict, start_response: Callable) -> Iterable[bytes]:
        response = _Response(environ, start_response)
        try:
            response.body = app(environ, response.start)
        except BaseException:
            response.status = "500"
            response.close()
            raise
        return response

    return logged


class _Response:
    """The app's body, passed through; `close()` (the server calls it last) logs."""

    __slots__ = ("body", "environ", "start_response", "started", "status")

    def __init__(self, environ: dict, start_response: Callable) -> None:
        self.environ = environ
        self.start_response = start_response
        self.started = time.perf_counter()
        self.status = "-"
        self.body: Iterable[bytes] = ()

    def start(self, status: str, headers: list, exc_info=None):
        self.status = status[:3]
        return self.start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            getattr(self.body, "close", lambda: None)()
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %s %.1f ms",
                    self.environ.get("REQUEST_METHOD", "-")[:16],
                    _path(self.environ.get("PATH_INFO", "")),
                    self.status,
                    (time.perf_counter() - self.started) * 1000,
                )


def _path(path: str) -> str:
    """PATH_INFO as it came in: WSGI decodes it to latin-1 characters; quoted back."""
    return quote(path[:MAX_PATH].encode("latin-1", "replace"), safe=PATH_SAFE) or "/"
