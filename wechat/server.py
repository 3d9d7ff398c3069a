"""The message endpoint WeChat pushes to, as a bare WSGI app (the hot path:
no framework between the socket and the handlers).

verify signature → read capped body → parse → dedupe → WeRoBot handlers → reply XML.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl

from werobot.robot import BaseRoBot

from wechat.dedupe import NO_REPLY, RetryGuard
from wechat.dispatch import Dispatcher
from wechat.parser import MalformedMessage, parse_fields, to_message
from wechat.signature import verify

MAX_BODY = 64 * 1024  # WeChat's pushes are a few hundred bytes

StartResponse = Callable[..., object]


class MessageServer:
    def __init__(
        self,
        robot: BaseRoBot,
        token: str,
        max_skew: int,
        guard: RetryGuard,
        max_body: int = MAX_BODY,
    ) -> None:
        self.dispatcher = Dispatcher(robot)
        self.token = token
        self.max_skew = max_skew
        self.guard = guard
        self.max_body = max_body

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        status, body, content_type = self.handle(environ)
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def handle(self, environ: dict) -> tuple[str, bytes, str]:
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "POST"):
            return "405 Method Not Allowed", b"method not allowed", "text/plain"
        if not verify(
            self.token,
            query.get("timestamp", ""),
            query.get("nonce", ""),
            query.get("signature", ""),
            self.max_skew,
        ):
            return "403 Forbidden", b"invalid or stale signature", "text/plain"
        if method == "GET":
            echostr = query.get("echostr", "")
            if not echostr:
                return "400 Bad Request", b"echostr missing", "text/plain"
            return "200 OK", echostr.encode("utf-8"), "text/plain"
        return self._post(environ)

    def _post(self, environ: dict) -> tuple[str, bytes, str]:
        body = _read_body(environ, self.max_body)
        if body is None:
            return "413 Payload Too Large", b"body too large", "text/plain"
        try:
            message = to_message(parse_fields(body))
        except MalformedMessage as exc:
            return "400 Bad Request", str(exc).encode(), "text/plain"
        answer = self.guard.run(_delivery_key(message), lambda: self.dispatcher.answer(message))
        if answer == NO_REPLY:
            return "200 OK", answer, "text/plain"
        return "200 OK", answer, "application/xml; charset=utf-8"


def _delivery_key(message) -> str:
    """WeChat's retry identity: MsgId for messages, sender + CreateTime for events."""
    msg_id = message.__dict__.get("MsgId")
    if msg_id:
        return f"m:{msg_id}"
    return f"e:{message.source}:{message.time}"


def _read_body(environ: dict, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit`."""
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > limit:
        return None
    stream = environ["wsgi.input"]
    body = stream.read(int(length)) if length.isdigit() else stream.read(limit + 1)
    return None if len(body) > limit else body
