"""The message endpoint WeChat pushes to, as a bare WSGI app (the hot path:
no framework between the socket and the handlers).

verify signature → read capped body → parse → dedupe → WeRoBot handlers → reply XML.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl

from werobot.robot import BaseRoBot

from wechat.dedupe import NO_REPLY, RetryGuard
from wechat.parser import MalformedMessage, parse_fields, to_message
from wechat.replies import text_reply
from wechat.signature import verify

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # WeChat's pushes are a few hundred bytes
APOLOGY = "抱歉，服务暂时出了点问题，请稍后再试。"

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
        self.robot = robot
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
        answer = self.guard.run(_delivery_key(message), lambda: self._answer(message))
        if answer == NO_REPLY:
            return "200 OK", answer, "text/plain"
        return "200 OK", answer, "application/xml; charset=utf-8"

    def _answer(self, message) -> bytes:
        """The first handler's non-empty text, as reply XML; `success` if none."""
        try:
            content = self._dispatch(message)
        except Exception:  # a bug of ours: the follower still gets a word, we get the trace
            log.exception("handler failed for a %s message", message.type)
            content = APOLOGY
        if not content:
            return NO_REPLY
        return text_reply(message.source, message.target, content).encode("utf-8")

    def _dispatch(self, message) -> str | None:
        for handler, argc in self.robot.get_handlers(message.type):
            reply = handler(message) if argc < 2 else self._with_session(handler, message)
            if reply:
                return reply
        return None

    def _with_session(self, handler: Callable, message) -> str | None:
        storage = self.robot.session_storage
        session = storage.get(message.source)
        reply = handler(message, session)
        storage.set(message.source, session)
        return reply


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
