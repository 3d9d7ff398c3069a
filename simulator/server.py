"""A small threaded HTTP server around one dispatch function, with full control of the wire."""

import contextlib
import json
import logging
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

log = logging.getLogger("simulator")

MAX_BODY = 1 << 20
SECRETS = re.compile(r"((?:secret|access_token|refresh_token)(?:=|%3D))[^&\s\"]*", re.IGNORECASE)


def mask(text: str) -> str:
    """Hide secrets and tokens in a logged request line."""
    return SECRETS.sub(r"\1***", text)


@dataclass
class Request:
    """What the router needs from an HTTP request."""

    method: str
    path: str
    raw_query: str
    headers: Message
    body: bytes = b""

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, decoded; the last one wins like most servers."""
        return dict(parse_qsl(self.raw_query, keep_blank_values=True))

    @property
    def form(self) -> dict[str, str]:
        """An urlencoded form body."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent by the browser."""
        jar = SimpleCookie(self.headers.get("Cookie", ""))
        return {name: morsel.value for name, morsel in jar.items()}

    def json(self) -> dict[str, Any]:
        """The JSON object in the body; ValueError when there is none."""
        data = json.loads(self.body.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data


@dataclass
class Response:
    """Exactly what goes on the wire; `reset` drops the connection with no answer, `cut`
    sends only that many bytes of the body (Content-Length still says all) and hangs up."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/plain"
    headers: list[tuple[str, str]] = field(default_factory=list)
    reset: bool = False
    cut: int | None = None


App = Callable[[Request], Response]


class _Handler(BaseHTTPRequestHandler):
    server_version = "WeChatSimulator"
    # Keep-alive, as WeChat's API servers do: a client with a connection pool reuses them.
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle kept-alive connection is closed after this many seconds
    # The head and the body go out in two writes: with Nagle's algorithm the body would
    # wait for the client's delayed ACK of the head (40 ms on Linux) on a kept-alive
    # connection. Web servers set TCP_NODELAY; so does this one.
    disable_nagle_algorithm = True
    server: "_Server"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_GET

    def _dispatch(self) -> None:
        if self.server.round_trip:  # the request's way there and the answer's way back
            time.sleep(self.server.round_trip)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        path, _, raw_query = self.path.partition("?")
        request = Request(self.command, path, raw_query, self.headers, self.rfile.read(length))
        try:
            response = self.server.app(request)
        except Exception:
            log.exception("error while handling %s", mask(self.requestline))
            response = Response(500, b"simulator error")
        if response.reset:
            self._reset()
            return
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (slow)
            self.log_message('"%s" client went away', self.requestline)
            self.close_connection = True

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.cut is None:
            self.wfile.write(response.body)
            return
        self.wfile.write(response.body[: response.cut])
        self.close_connection = True

    def _reset(self) -> None:
        """Close with RST and no status line, like a dropped upstream connection."""
        self.log_message('"%s" connection reset', self.requestline)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), mask(format % args))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of a few dozen clients would
    # wait for SYN retransmits or be reset, which WeChat's servers do not do.
    request_queue_size = 128

    def __init__(
        self, host: str, port: int, app: App, tls: ssl.SSLContext | None, round_trip: float
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self.app = app
        self.tls = tls
        self.round_trip = round_trip
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """One connection, on its own thread: the round trips of its set-up (TCP's
        handshake, and TLS's), the TLS handshake, then its requests until it closes."""
        if self.round_trip:
            time.sleep(self.round_trip * (2 if self.tls else 1))
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.info("%s TLS handshake failed: %s", client_address[0], exc)
                return
        with self._open_lock:
            self._open.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
            if self.tls is not None:
                request.close()

    def close_connections(self) -> None:
        """Hang up every open connection, kept-alive ones too: a stopped WeChat answers
        nobody, not even a client that still holds a connection from before."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):  # it closed by itself meanwhile
                connection.shutdown(socket.SHUT_RDWR)


class HTTPServerThread:
    """Serves `app` on a background thread; port 0 picks a free port. With `tls`, every
    connection speaks HTTPS; `round_trip` (seconds) is slept once per request and once
    per handshake (TCP's, and TLS's), as a distant server's network would make a client
    wait."""

    def __init__(
        self,
        host: str,
        port: int,
        app: App,
        tls: ssl.SSLContext | None = None,
        round_trip: float = 0.0,
    ) -> None:
        self._server = _Server(host, port, app, tls, round_trip)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close the socket and wait for the serving thread."""
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join()
