"""The message endpoint WeChat pushes to, as a bare WSGI app (the hot path:
no framework between the socket and the handlers).

verify signature → read capped body → (decrypt) → parse → dedupe → WeRoBot
handlers → reply XML (encrypted when the push was). Every refusal is a
`MessageRejected` raised on the way and answered in one place, with its status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl

from werobot.robot import BaseRoBot

from wechat.crypto import AESKey, MessageCrypto
from wechat.dedupe import RetryGuard
from wechat.dispatch import Dispatcher
from wechat.errors import (
    BadSignature,
    BodyTooLarge,
    EncryptionNotConfigured,
    LengthRequired,
    MalformedMessage,
    MessageRejected,
    MethodNotAllowed,
)
from wechat.parser import parse_fields, to_message
from wechat.replies import NO_REPLY
from wechat.signature import verify

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # WeChat's pushes are a few hundred bytes
PLAIN = "text/plain; charset=utf-8"
XML = "application/xml; charset=utf-8"

StartResponse = Callable[..., object]


class MessageServer:
    def __init__(
        self,
        robot: BaseRoBot,
        token: str,
        max_skew: int,
        guard: RetryGuard,
        max_body: int = MAX_BODY,
        crypto: MessageCrypto | None = None,
    ) -> None:
        self.dispatcher = Dispatcher(robot)
        self.token = token
        self.max_skew = max_skew
        self.guard = guard
        self.max_body = max_body
        self.crypto = crypto
        self._warned_no_key = False

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, body, content_type = self.handle(environ)
            extra: tuple[tuple[str, str], ...] = ()
        except MessageRejected as exc:
            status, body, content_type, extra = exc.status, str(exc).encode(), PLAIN, exc.headers
        start_response(
            status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
        )
        return [body]

    def handle(self, environ: dict) -> tuple[str, bytes, str]:
        """(status, body, content type) of an accepted request; raises `MessageRejected`."""
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "POST"):
            raise MethodNotAllowed("only GET and POST")
        query = _query(environ.get("QUERY_STRING", ""))
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not verify(self.token, timestamp, nonce, query.get("signature", ""), self.max_skew):
            raise BadSignature("invalid or stale signature")
        if method == "GET":
            echostr = query.get("echostr", "")
            if not echostr:
                raise MalformedMessage("echostr missing")
            return "200 OK", echostr.encode("utf-8"), PLAIN
        return self._push(environ, query)

    def _push(self, environ: dict, query: dict) -> tuple[str, bytes, str]:
        """The push's answer, sealed when the push came sealed (`success` stays plain)."""
        encrypted = self._encrypted(query.get("encrypt_type", "raw"))
        body = _read_body(environ, self.max_body)
        xml, key = self._open(body, query) if encrypted else (body, None)
        message = to_message(parse_fields(xml), xml.decode("utf-8"))
        answer = self.guard.run(_delivery_key(message), lambda: self.dispatcher.answer(message))
        if answer == NO_REPLY:
            return "200 OK", answer, PLAIN
        return "200 OK", answer if key is None else self.crypto.seal(answer, key), XML

    def _open(self, body: bytes, query: dict) -> tuple[bytes, AESKey]:
        """The XML inside a compatible or safe push: the decrypted copy is the message
        (compatible mode's plaintext copy is covered by no signature, so it is ignored)."""
        encrypt = parse_fields(body).get("Encrypt")
        if not isinstance(encrypt, str):
            raise MalformedMessage("encrypt_type=aes without Encrypt")
        stamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        return self.crypto.open(encrypt, stamp, nonce, query.get("msg_signature", ""))

    def _encrypted(self, encrypt_type: str) -> bool:
        """True for `aes` (compatible and safe modes), False for plaintext."""
        if encrypt_type == "raw":
            return False
        if encrypt_type != "aes":
            raise MalformedMessage("encrypt_type must be aes or raw")
        if self.crypto is None:
            self._warn_no_key()
            raise EncryptionNotConfigured(
                "encrypted push, but this bot has no EncodingAESKey configured"
            )
        return True

    def _warn_no_key(self) -> None:
        """Once per process: the operator chose compatible or safe mode on the platform."""
        if not self._warned_no_key:
            self._warned_no_key = True
            log.warning(
                "WeChat sent an encrypted push (compatible or safe mode) but no key is "
                "configured: set wechat.encoding_aes_key (BOT_WECHAT_ENCODING_AES_KEY) "
                "to the platform's EncodingAESKey, or switch the platform to plaintext mode"
            )


def _delivery_key(message) -> str:
    """WeChat's retry identity: MsgId for messages, sender + CreateTime for events."""
    msg_id = message.__dict__.get("MsgId")
    if msg_id:
        return f"m:{msg_id}"
    return f"e:{message.source}:{message.time}"


def _query(text: str) -> dict[str, str]:
    """The query's fields as parse_qsl reads them (blank ones dropped, the last of
    a repeated name kept). WeChat's queries hold nothing to unquote: only other
    queries pay for parse_qsl."""
    if "%" in text or "+" in text:
        return dict(parse_qsl(text))
    fields = {}
    for part in text.split("&"):
        name, _, value = part.partition("=")
        if value:
            fields[name] = value
    return fields


def _read_body(environ: dict, limit: int) -> bytes:
    """The request body: WeChat always says how long it is, and it is small."""
    length = environ.get("CONTENT_LENGTH") or ""
    if not (length.isascii() and length.isdigit()):
        raise LengthRequired("Content-Length required")
    if len(length) > 9 or int(length) > limit:
        raise BodyTooLarge("body too large")
    body = environ["wsgi.input"].read(int(length))
    if len(body) != int(length):
        raise MalformedMessage("body shorter than its Content-Length")
    return body
