"""The catalogue: every hostile input and every fault tried against the bot, by name.

Each entry is one named attack or fault, sent to the real bot on waitress. Attacks go
over a raw socket (so that framing `requests` would fix up - a lying Content-Length, a
chunked body, a header over the limit - reaches the bot as sent) and assert the status,
what the answer says AND that nothing else happened:

- on the message endpoint: no handler ran (a recorder put in front of WeRoBot's
  handlers saw no message); nothing was stored (the MsgId the attack carried is still
  fresh: a real push with it afterwards runs the handlers, which also proves the bot is
  up); nothing was fetched (a canary HTTP server named in every entity, DTD and XInclude
  got no request);
- on the follower pages: nobody was signed in (no Set-Cookie), nobody was sent
  elsewhere (no Location), no stored follower changed, and the victim - a follower
  signed in on the same bot, whose links, codes and cookie the attacks abuse - is still
  signed in;
- under WeChat's failures: the page the follower sees, how often WeChat was asked, and
  what is stored - untouched, or (userinfo failing after a successful exchange) the new
  tokens with the profile kept.

Sections (each a named list; the counts add up to the catalogue's size):

1. MESSAGE_HTTP     - the message endpoint's framing: methods, Content-Length, chunked
2. MESSAGE_QUERY    - signatures, timestamps and the query
3. MESSAGE_XML      - the XML itself: entities, DTDs, XInclude, encodings, nesting
4. MESSAGE_FIELDS   - the fields: missing, unknown MsgType, ids that are not numbers
5. MESSAGE_AES      - compatible and safe modes: the envelope and what is inside it
6. CALLBACK_QUERY   - the callback's code and state: forged, expired, repeated, replayed
7. SIGN_IN_COOKIE   - the sign-in cookie: forged, too old, from the future, misshapen, many
8. PAGE_HTTP        - methods, paths and hosts on the follower pages
9. WECHAT_FAULTS    - every fault of the simulator on every sns call a page makes

and then property-based fuzzing (hypothesis) of the message endpoint, the callback and
the sign-in cookie: whatever is sent, the answer is 2xx or 4xx, never 5xx, nobody is
signed in by it, and the bot still answers afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

import routes
from config import Server
from oauth import StateSigner, derive_key
from oauth.sign_in import REPLAY_GRACE
from oauth.urls import BASE, SCOPES, USERINFO
from simulator.crypto import signature as wechat_sign
from storage.schema import oauth_states
from tests.conftest import (
    AES_KEY,
    ANCHOR,
    APP_ID,
    APP_SECRET,
    FAST,
    TOKEN,
    BotServer,
    free_port,
    new_simulator,
    write_config,
)
from web.cookies import NAME as COOKIE

OTHER_KEY = "Th1rdKeyTh1rdKeyTh1rdKeyTh1rdKeyTh1rdKeyTh1"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
STATE_KEY = derive_key(APP_SECRET, "state")
COOKIE_KEY = derive_key(APP_SECRET, "cookie")
MAX_AGE = Server.sign_in_ttl  # how long the test bots' sign-ins last


# --- the machinery: a context per attack, raw HTTP, a recorder, a canary ----------------


@dataclass(frozen=True)
class Context:
    """What an attack needs to be built: the path, a fresh MsgId, the canary's URL."""

    path: str
    msg_id: str
    canary: str


@dataclass(frozen=True)
class Attack:
    id: str
    status: int | None  # None: the server drops the connection without an answer
    request: Callable[[Context], bytes]  # the raw HTTP request
    aes: bool = False  # sent to a bot configured with an EncodingAESKey


def signed(timestamp: str | None = None, token: str = TOKEN, **extra: str | None) -> dict:
    """A correctly signed query; `extra` adds parameters or (None) removes them."""
    stamp = str(int(time.time())) if timestamp is None else timestamp
    query = {"signature": wechat_sign(token, stamp, "1514711492"), "timestamp": stamp}
    query |= {"nonce": "1514711492", "openid": OPENID, **extra}
    return {k: v for k, v in query.items() if v is not None}


def http(
    c: Context,
    body: bytes = b"",
    query: dict | None = None,
    method: str = "POST",
    headers: tuple[str, ...] | None = None,
) -> bytes:
    """A raw request; `headers` replaces the default Content-Length line."""
    target = c.path + "?" + urlencode(signed() if query is None else query)
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"Content-Length: {len(body)}"] if headers is None else list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def message(c: Context, **fields: str | None) -> str:
    """A text push as WeChat sends it; each keyword replaces a field's raw XML (None drops it)."""
    values = {
        "ToUserName": "<![CDATA[gh_test]]>",
        "FromUserName": f"<![CDATA[{OPENID}]]>",
        "CreateTime": str(int(time.time())),
        "MsgType": "<![CDATA[text]]>",
        "Content": "<![CDATA[你好]]>",
        "MsgId": c.msg_id,
        **fields,
    }
    return (
        "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in values.items() if v is not None) + "</xml>"
    )


def push(c: Context, body: str | bytes, **query: str | None) -> bytes:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return http(c, data, signed(**query))


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: the server hung up without an answer
    head: list[tuple[str, ...]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((field[-1] for field in self.head if field[0].lower() == name.lower()), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def exchange(port: int, raw: bytes, address: str = "127.0.0.1") -> Answer:
    """Send from `address`, half-close, read until the server closes."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), 15, (address, 0)) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # it answered and hung up before reading it all (431)
            pass
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    if not data:
        return Answer(None, [], b"")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
    return Answer(int(lines[0].split()[1]), fields, body)


class Recorder:
    """Put in front of the robot's handlers: records every message a handler would see."""

    def __init__(self, robot) -> None:
        self.calls: list = []
        self.robot = robot
        registry = robot.get_handlers
        robot.get_handlers = lambda type: [(self.calls.append, 1), *registry(type)]

    def remove(self) -> None:
        del self.robot.get_handlers  # WeRoBot's own method again


class Canary(ThreadingHTTPServer):
    """An HTTP server that records every request: no attack may make the bot call it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canary.hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'<!ENTITY x "canary">')

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


# --- the AES envelope, built here independently of wechat/crypto.py --------------------


def envelope(
    xml: bytes, app_id: bytes = APP_ID.encode(), length: int | None = None, short: int = 16
) -> bytes:
    """random16 + length + XML + AppID, the XML padded with spaces (still the same XML)
    so that the envelope ends `short` bytes short of a 32-byte block (16: room for
    16 bytes of padding; 0: no room at all)."""
    xml += b" " * ((short - (20 + len(xml) + len(app_id))) % 32)
    return os.urandom(16) + struct.pack(">I", len(xml) if length is None else length) + xml + app_id


def seal(plain: bytes, key: str = AES_KEY) -> str:
    raw = base64.b64decode(key + "=")
    encryptor = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def padded(plain: bytes, pad: bytes | None = None) -> bytes:
    return plain + (bytes([16]) * 16 if pad is None else pad)


def sealed_xml(c: Context, xml: str | bytes | None = None, **envelope_args) -> str:
    data = message(c) if xml is None else xml
    data = data.encode("utf-8") if isinstance(data, str) else data
    return seal(padded(envelope(data, **envelope_args)))


def encrypted_push(
    c: Context,
    encrypt: str,
    msg_signature: str | None = "",
    outer: str | None = None,
    timestamp: str | None = None,
) -> bytes:
    """A safe-mode push of `encrypt`: `msg_signature` "" (the default) signs it right,
    None leaves it out, anything else is sent as given."""
    stamp = str(int(time.time())) if timestamp is None else timestamp
    if msg_signature == "":
        msg_signature = wechat_sign(TOKEN, stamp, "1514711492", encrypt)
    body = outer or (
        f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    query = signed(stamp, encrypt_type="aes", msg_signature=msg_signature)
    return http(c, body.encode("utf-8"), query)


# --- 1. the message endpoint's framing ---------------------------------------------------


def chunked(c: Context, chunks: list[bytes], end: bool = True) -> bytes:
    body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for chunk in chunks)
    return http(c, body + (b"0\r\n\r\n" if end else b""), headers=("Transfer-Encoding: chunked",))


MESSAGE_HTTP = [
    Attack("method-put", 405, lambda c: http(c, message(c).encode(), method="PUT")),
    Attack("method-delete", 405, lambda c: http(c, method="DELETE")),
    Attack("method-patch", 405, lambda c: http(c, message(c).encode(), method="PATCH")),
    Attack("method-options", 405, lambda c: http(c, method="OPTIONS")),
    Attack("method-head", 405, lambda c: http(c, method="HEAD")),
    Attack("empty-body", 400, lambda c: push(c, b"")),
    Attack("body-over-the-cap", 413, lambda c: push(c, message(c, Content="长" * 30000))),
    Attack(
        "content-length-absurd",
        413,
        lambda c: http(c, message(c).encode(), headers=("Content-Length: 1000000000000",)),
    ),
    Attack(
        "content-length-lying-long",
        None,
        lambda c: http(c, message(c).encode(), headers=("Content-Length: 4000",)),
    ),
    Attack(
        "content-length-lying-short",
        400,
        lambda c: http(c, message(c).encode(), headers=("Content-Length: 40",)),
    ),
    Attack(
        "content-length-negative",
        400,
        lambda c: http(c, message(c).encode(), headers=("Content-Length: -1",)),
    ),
    Attack(
        "content-length-not-a-number",
        400,
        lambda c: http(c, message(c).encode(), headers=("Content-Length: 0x40",)),
    ),
    Attack(
        "content-length-twice",
        400,
        lambda c: http(
            c, message(c).encode(), headers=("Content-Length: 10", "Content-Length: 300")
        ),
    ),
    Attack("no-content-length", 411, lambda c: http(c, message(c).encode(), headers=())),
    Attack("chunked-over-the-cap", 413, lambda c: chunked(c, [b"a" * 16384] * 5)),
    Attack("chunked-never-ends", None, lambda c: chunked(c, [message(c).encode()[:50]], end=False)),
    Attack(
        "chunked-bad-chunk-size",
        400,
        lambda c: http(c, b"zz\r\n<xml/>\r\n0\r\n\r\n", headers=("Transfer-Encoding: chunked",)),
    ),
]


# --- 2. signatures, timestamps and the query ---------------------------------------------

STALE = str(int(time.time()) - 3600)


def query_attack(name: str, status: int, make_query: Callable[[], dict]) -> Attack:
    return Attack(name, status, lambda c: http(c, message(c).encode(), make_query()))


MESSAGE_QUERY = [
    query_attack("signature-missing", 403, lambda: signed(signature=None)),
    query_attack("signature-wrong", 403, lambda: signed(signature="0" * 40)),
    query_attack("signature-other-token", 403, lambda: signed(token="othertoken")),
    query_attack("signature-not-ascii", 403, lambda: signed(signature="签名" * 20)),
    query_attack("timestamp-missing", 403, lambda: signed(timestamp="")),
    query_attack("timestamp-stale-replay", 403, lambda: signed(timestamp=STALE)),
    query_attack(
        "timestamp-from-the-future", 403, lambda: signed(timestamp=str(int(time.time()) + 3600))
    ),
    query_attack("timestamp-superscript-digits", 403, lambda: signed(timestamp="¹⁷⁰⁰⁰⁰⁰⁰⁰⁰")),
    query_attack("timestamp-5000-digits", 403, lambda: signed(timestamp="9" * 5000)),
    query_attack("nonce-missing", 403, lambda: signed(nonce=None)),
    query_attack("encrypt-type-unknown", 400, lambda: signed(encrypt_type="des")),
    query_attack("encrypt-type-aes-but-no-key", 400, lambda: signed(encrypt_type="aes")),
    Attack(
        "verification-signature-wrong",
        403,
        lambda c: http(c, method="GET", query=signed(signature="0" * 40, echostr="x")),
    ),
    Attack("verification-without-echostr", 400, lambda c: http(c, method="GET")),
    Attack(
        "verification-signature-missing",
        403,
        lambda c: http(c, method="GET", query=signed(signature=None, echostr="x")),
    ),
    Attack(
        "verification-other-token",
        403,
        lambda c: http(c, method="GET", query=signed(token="othertoken", echostr="x")),
    ),
    Attack(
        "verification-stale-replay",
        403,
        lambda c: http(c, method="GET", query=signed(timestamp=STALE, echostr="x")),
    ),
]


# --- 3. the XML itself --------------------------------------------------------------------


def with_doctype(c: Context, doctype: str, **fields: str) -> str:
    return '<?xml version="1.0"?>' + doctype + message(c, **fields)


LAUGHS = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10))

MESSAGE_XML = [
    Attack("not-xml", 400, lambda c: push(c, "not xml at all")),
    Attack("truncated-xml", 400, lambda c: push(c, message(c)[:-12])),
    Attack("wrong-root", 400, lambda c: push(c, message(c).replace("xml>", "root>"))),
    Attack("two-roots", 400, lambda c: push(c, message(c) + message(c))),
    Attack(
        "xxe-external-entity-file",
        400,
        lambda c: push(
            c,
            with_doctype(
                c, '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>', Content="&x;"
            ),
        ),
    ),
    Attack(
        "xxe-external-entity-http",
        400,
        lambda c: push(
            c,
            with_doctype(
                c, f'<!DOCTYPE xml [<!ENTITY x SYSTEM "{c.canary}/entity">]>', Content="&x;"
            ),
        ),
    ),
    Attack(
        "xxe-parameter-entity",
        400,
        lambda c: push(
            c, with_doctype(c, f'<!DOCTYPE xml [<!ENTITY % p SYSTEM "{c.canary}/param"> %p;]>')
        ),
    ),
    Attack(
        "external-dtd",
        400,
        lambda c: push(c, with_doctype(c, f'<!DOCTYPE xml SYSTEM "{c.canary}/dtd">')),
    ),
    Attack("doctype-alone", 400, lambda c: push(c, with_doctype(c, "<!DOCTYPE xml>"))),
    Attack(
        "billion-laughs",
        400,
        lambda c: push(c, with_doctype(c, f"<!DOCTYPE xml [{LAUGHS}]>", Content="&l9;")),
    ),
    Attack(
        "quadratic-blowup",
        400,
        lambda c: push(
            c,
            with_doctype(c, f'<!DOCTYPE xml [<!ENTITY a "{"a" * 20000}">]>', Content="&a;" * 8000),
        ),
    ),
    Attack(
        "xinclude",
        400,
        lambda c: push(
            c,
            message(c, Content=f'<xi:include href="{c.canary}/xinclude" parse="text"/>').replace(
                "<xml>", '<xml xmlns:xi="http://www.w3.org/2001/XInclude">'
            ),
        ),
    ),
    Attack(
        "namespaced-field",
        400,
        lambda c: push(
            c, message(c).replace("</xml>", '<x:Admin xmlns:x="urn:x">1</x:Admin></xml>')
        ),
    ),
    Attack("invalid-utf8", 400, lambda c: push(c, message(c).encode().replace(b"\xe4", b"\xff"))),
    Attack(
        "overlong-utf8",
        400,
        lambda c: push(
            c, message(c, Content="<![CDATA[a]]>").encode().replace(b"a]]", b"\xc0\xaf]]")
        ),
    ),
    Attack(
        "latin1-declared",
        400,
        lambda c: push(
            c,
            b'<?xml version="1.0" encoding="ISO-8859-1"?>'
            + message(c, Content="caf\x00").encode().replace(b"\x00", b"\xe9"),
        ),
    ),
    Attack("utf16-body", 400, lambda c: push(c, message(c).encode("utf-16"))),
    Attack("nul-character", 400, lambda c: push(c, message(c, Content="a&#0;b"))),
    Attack("control-character", 400, lambda c: push(c, message(c, Content="a\x01b"))),
    Attack(
        "deep-nesting-5000",
        400,
        lambda c: push(c, message(c, Content="<a>" * 5000 + "x" + "</a>" * 5000)),
    ),
    Attack(
        "nesting-deeper-than-wechat",
        400,
        lambda c: push(c, message(c, Extra="<a>" * 7 + "x" + "</a>" * 7)),
    ),
    Attack(
        "field-given-twice",
        400,
        lambda c: push(c, message(c).replace("</xml>", "<MsgType>event</MsgType></xml>")),
    ),
]


# --- 4. the fields ----------------------------------------------------------------------

MESSAGE_FIELDS = [
    Attack("missing-fromusername", 400, lambda c: push(c, message(c, FromUserName=None))),
    Attack("missing-tousername", 400, lambda c: push(c, message(c, ToUserName=None))),
    Attack("empty-fromusername", 400, lambda c: push(c, message(c, FromUserName=""))),
    Attack("empty-tousername", 400, lambda c: push(c, message(c, ToUserName=""))),
    Attack("missing-msgtype", 400, lambda c: push(c, message(c, MsgType=None))),
    Attack("missing-createtime", 400, lambda c: push(c, message(c, CreateTime=None))),
    Attack("missing-msgid", 400, lambda c: push(c, message(c, MsgId=None))),
    Attack("text-without-content", 400, lambda c: push(c, message(c, Content=None))),
    Attack(
        "event-without-event",
        400,
        lambda c: push(c, message(c, MsgType="event", Content=None, MsgId=None)),
    ),
    Attack(
        "event-empty-event",
        400,
        lambda c: push(c, message(c, MsgType="event", Content=None, MsgId=None, Event="")),
    ),
    Attack("msgtype-unknown", 400, lambda c: push(c, message(c, MsgType="file"))),
    Attack("msgtype-uppercase", 400, lambda c: push(c, message(c, MsgType="TEXT"))),
    Attack("msgtype-nested", 400, lambda c: push(c, message(c, MsgType="<a>text</a>"))),
    Attack("msgid-not-a-number", 400, lambda c: push(c, message(c, MsgId="12ab"))),
    Attack("msgid-too-long", 400, lambda c: push(c, message(c, MsgId="9" * 30))),
    Attack("createtime-not-a-number", 400, lambda c: push(c, message(c, CreateTime="now"))),
    Attack("createtime-superscript", 400, lambda c: push(c, message(c, CreateTime="¹²³"))),
    Attack("createtime-negative", 400, lambda c: push(c, message(c, CreateTime="-1"))),
    Attack("createtime-5000-digits", 400, lambda c: push(c, message(c, CreateTime="9" * 5000))),
]


# --- 5. compatible and safe modes -------------------------------------------------------


def aes(name: str, status: int, request: Callable[[Context], bytes]) -> Attack:
    return Attack(name, status, request, aes=True)


def bad_pad(pad: bytes) -> Callable[[Context], bytes]:
    return lambda c: encrypted_push(c, seal(padded(envelope(message(c).encode()), pad)))


MESSAGE_AES = [
    aes("aes-msg-signature-wrong", 403, lambda c: encrypted_push(c, sealed_xml(c), "0" * 40)),
    aes("aes-msg-signature-missing", 403, lambda c: encrypted_push(c, sealed_xml(c), None)),
    aes(
        "aes-msg-signature-without-encrypt",
        403,
        lambda c: encrypted_push(
            c, sealed_xml(c), wechat_sign(TOKEN, str(int(time.time())), "1514711492")
        ),
    ),
    aes(
        "aes-stale-timestamp",
        403,
        lambda c: encrypted_push(c, sealed_xml(c), timestamp=STALE),
    ),
    aes(
        "aes-encrypt-missing",
        400,
        lambda c: encrypted_push(c, "", outer=message(c)),
    ),
    aes("aes-encrypt-empty", 400, lambda c: encrypted_push(c, "")),
    aes("aes-encrypt-not-base64", 400, lambda c: encrypted_push(c, "not*base64!" * 4)),
    aes("aes-encrypt-not-ascii", 400, lambda c: encrypted_push(c, "加密" * 32)),
    aes("aes-truncated-half-block", 400, lambda c: encrypted_push(c, sealed_xml(c)[:-24])),
    aes(
        "aes-truncated-whole-block",
        400,
        lambda c: encrypted_push(
            c, base64.b64encode(base64.b64decode(sealed_xml(c))[:-32]).decode()
        ),
    ),
    aes("aes-padding-inconsistent", 400, bad_pad(bytes([16]) * 8 + bytes([15]) + bytes([16]) * 7)),
    aes("aes-padding-zero", 400, bad_pad(bytes([16]) * 15 + bytes([0]))),
    aes("aes-padding-over-32", 400, bad_pad(bytes([16]) * 15 + bytes([33]))),
    aes(
        "aes-padding-none",
        400,
        lambda c: encrypted_push(c, seal(envelope(message(c).encode(), short=0))),
    ),
    aes(
        "aes-length-field-too-long",
        400,
        lambda c: encrypted_push(c, sealed_xml(c, length=5000)),
    ),
    aes(
        "aes-length-field-short",
        400,
        lambda c: encrypted_push(c, sealed_xml(c, length=len(message(c).encode()) - 6)),
    ),
    aes(
        "aes-length-field-max",
        400,
        lambda c: encrypted_push(c, sealed_xml(c, length=2**32 - 1)),
    ),
    aes(
        "aes-another-appid",
        403,
        lambda c: encrypted_push(c, sealed_xml(c, app_id=b"wxffffffffffffffff")),
    ),
    aes("aes-no-appid", 400, lambda c: encrypted_push(c, sealed_xml(c, app_id=b""))),
    aes(
        "aes-wrong-key",
        400,
        lambda c: encrypted_push(c, seal(padded(envelope(message(c).encode())), OTHER_KEY)),
    ),
    aes("aes-inside-not-xml", 400, lambda c: encrypted_push(c, sealed_xml(c, "not xml"))),
    aes(
        "aes-inside-xxe",
        400,
        lambda c: encrypted_push(
            c,
            sealed_xml(
                c,
                with_doctype(
                    c, f'<!DOCTYPE xml [<!ENTITY x SYSTEM "{c.canary}/aes">]>', Content="&x;"
                ),
            ),
        ),
    ),
    aes(
        "aes-inside-billion-laughs",
        400,
        lambda c: encrypted_push(
            c, sealed_xml(c, with_doctype(c, f"<!DOCTYPE xml [{LAUGHS}]>", Content="&l9;"))
        ),
    ),
    aes(
        "aes-inside-invalid-utf8",
        400,
        lambda c: encrypted_push(c, sealed_xml(c, message(c).encode().replace(b"\xe4", b"\xff"))),
    ),
    aes(
        "aes-inside-unknown-msgtype",
        400,
        lambda c: encrypted_push(c, sealed_xml(c, message(c, MsgType="file"))),
    ),
    aes(
        "aes-inside-msgid-not-a-number",
        400,
        lambda c: encrypted_push(c, sealed_xml(c, message(c, MsgId="x1"))),
    ),
    aes(
        "aes-inside-another-envelope",
        400,
        lambda c: encrypted_push(
            c,
            sealed_xml(
                c, f"<xml><ToUserName>gh_test</ToUserName><Encrypt>{sealed_xml(c)}</Encrypt></xml>"
            ),
        ),
    ),
]

MESSAGE_ATTACKS = MESSAGE_HTTP + MESSAGE_QUERY + MESSAGE_XML + MESSAGE_FIELDS + MESSAGE_AES


# --- the bots under attack (one of each for the module: attacks must not break them) -----


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    server = Canary()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def bots(tmp_path_factory) -> Iterator[dict[bool, BotServer]]:
    """A plaintext-only bot and one with an EncodingAESKey, keyed by `Attack.aes`."""
    started = {}
    for with_key in (False, True):
        home = tmp_path_factory.mktemp("aes" if with_key else "plain")
        path = write_config(home / "config.toml", free_port(), "http://127.0.0.1:9")
        environ = {"BOT_WECHAT_ENCODING_AES_KEY": AES_KEY} if with_key else {}
        started[with_key] = BotServer(path, environ)
    yield started
    for server in started.values():
        server.stop()


_msg_ids = iter(range(7_000_000_000_000_000_000, 8_000_000_000_000_000_000))


@pytest.fixture
def attacked(bots, canary):
    """(bot, context, recorder) for one attack: a fresh MsgId, a clean canary."""

    recorders: list[Recorder] = []

    def target(with_key: bool) -> tuple[BotServer, Context, Recorder]:
        bot = bots[with_key]
        canary.hits.clear()
        context = Context(bot.config.server.wechat_path, str(next(_msg_ids)), canary.url)
        recorders.append(Recorder(bot.app.robot))
        return bot, context, recorders[-1]

    yield target
    for recorder in recorders:
        recorder.remove()


def still_fresh(bot: BotServer, c: Context, recorder: Recorder) -> bool:
    """A real push with the attack's MsgId runs the handlers: the attack left no trace."""
    answer = exchange(bot.port, push(c, message(c)))
    return answer.status == 200 and bool(ANCHOR.search(answer.text)) and len(recorder.calls) == 1


LEAKS = (b"Traceback", b"root:", b"<Content>")  # a trace, a file's content, the message back


@pytest.mark.parametrize("attack", MESSAGE_ATTACKS, ids=[a.id for a in MESSAGE_ATTACKS])
def test_hostile_request_is_refused_and_nothing_happens(attack, attacked, canary):
    bot, c, recorder = attacked(attack.aes)
    answer = exchange(bot.port, attack.request(c))
    assert answer.status == attack.status, answer.body[:300]
    assert recorder.calls == [], "a handler ran"
    assert canary.hits == [], "the bot fetched a URL named in the request"
    assert not [leak for leak in LEAKS if leak in answer.body]
    assert still_fresh(bot, c, recorder), "the attack's MsgId was recorded, or the bot is down"


@pytest.mark.parametrize("with_key", [False, True], ids=["plain-bot", "aes-bot"])
def test_the_machinery_sees_a_real_push(with_key, attacked):
    """The control: the same raw wire and recorder do see a well-formed push (and a
    well-formed encrypted one), so a refusal above is a refusal, not a broken test."""
    bot, c, recorder = attacked(with_key)
    request = encrypted_push(c, sealed_xml(c)) if with_key else push(c, message(c))
    answer = exchange(bot.port, request)
    assert answer.status == 200
    assert len(recorder.calls) == 1
    assert (b"<Encrypt>" in answer.body) if with_key else bool(ANCHOR.search(answer.text))


# =========================================================================================
# The follower pages: /oauth/callback, /me and their neighbours, and WeChat failing under them
# =========================================================================================

VICTIM_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) MicroMessenger/8.0.50"
STRANGER_AGENT = "Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile Safari/537.36"
ELSEWHERE = "127.0.0.2"  # another address on loopback: a client on another network
EVIL = "evil.example"  # a host no answer may name
OTHER_SECRET = "anothersecret000000000000000001"
STATE_TTL = 3600  # the bots' oauth.state_ttl (the default)
# What the pages say.
MISSING = "缺少必要的信息"
FORGED = "无法识别"
EXPIRED = "超过有效期"
USED = "已经用过"
DENIED = "取消了授权"
CODE_REJECTED = "授权没有完成"
NOT_SIGNED_IN = "尚未授权"
FRESH_LINK = "/connect/oauth2/authorize?appid="  # every refused callback offers one


@dataclass(frozen=True)
class Signed:
    """A follower signed in on a bot: the openid, and the browser holding the cookie."""

    openid: str
    browser: requests.Session

    @property
    def cookie(self) -> str:
        return f"{COOKIE}={self.browser.cookies[COOKIE]}"


class Site:
    """WeChat and one bot per scope (on the scaled-down timings: a slow WeChat costs a
    second, not five); on the userinfo bot a victim and a bystander are
    signed in. Every page attack aims at them, and must leave them as they were."""

    def __init__(self, homes: dict[str, Path]) -> None:
        self.sim = new_simulator()
        self.bots = {
            scope: BotServer(
                write_config(home / "config.toml", free_port(), self.sim.url, scope), {}, FAST
            )
            for scope, home in homes.items()
        }
        self.bot = self.bots[USERINFO]
        self.victim = self.sign_in(self.bot, self.sim.default_openid)
        self.bystander = self.sign_in(self.bot, self.sim.add_follower().openid, STRANGER_AGENT)

    def stop(self) -> None:
        for bot in self.bots.values():
            bot.stop()
        self.sim.stop()

    def sign_in(
        self, bot: BotServer, openid: str, agent: str = VICTIM_AGENT, token_ttl: int = 7200
    ) -> Signed:
        """The whole journey in a browser of its own; `token_ttl` for the tokens WeChat gives."""
        browser = requests.Session()
        browser.headers["User-Agent"] = agent
        self.sim.access_token_ttl = token_ttl
        try:
            target = self.tap(openid, bot.app.links.link())
            landed = browser.get(bot.url + target, allow_redirects=False, timeout=15)
        finally:
            self.sim.access_token_ttl = 7200
        assert landed.status_code == 303, landed.text
        return Signed(openid, browser)

    def tap(self, openid: str | None = None, link: str | None = None) -> str:
        """Where WeChat sends `openid` (the victim) who taps `link` (a fresh one): the
        callback's path and query, not opened yet."""
        link = link or self.bot.app.links.link()
        location = self.sim.authorize(link, openid=openid or self.victim.openid).location
        parts = urlsplit(location)
        return f"{parts.path}?{parts.query}"

    def state(self) -> str:
        """A fresh state the bot minted."""
        return parse_qs(urlsplit(self.bot.app.links.link()).query)["state"][0]

    def completed(self, link: str | None = None) -> str:
        """A callback the victim's browser has just completed: it is signed in, on /me."""
        target = self.tap(link=link)
        landed = self.victim.browser.get(self.bot.url + target, allow_redirects=False, timeout=15)
        assert landed.status_code == 303
        return target

    @cached_property
    def replayable(self) -> str:
        """A callback the victim completed, for other clients to replay."""
        return self.completed()

    def end_grace(self) -> None:
        """Let the grace of every completed state pass."""
        with self.bot.app.store.engine.begin() as conn:
            earlier = oauth_states.c.completed_at - REPLAY_GRACE - 1
            conn.execute(update(oauth_states).values(completed_at=earlier))

    def followers(self, bot: BotServer | None = None) -> list:
        return (bot or self.bot).app.store.list_followers()

    def victim_signed_in(self) -> bool:
        me = self.victim.browser.get(self.bot.url + routes.ME, timeout=15)
        nickname = self.sim.followers[self.victim.openid].nickname
        return me.status_code == 200 and nickname in me.content.decode("utf-8")


def page(
    target: str,
    cookie: str | None = None,
    agent: str = STRANGER_AGENT,
    method: str = "GET",
    headers: tuple[str, ...] = ("Host: 127.0.0.1",),
) -> bytes:
    """A raw request for a follower page; lone surrogates in it become raw bytes."""
    lines = [f"{method} {target} HTTP/1.1", *headers, "Connection: close", f"User-Agent: {agent}"]
    lines += [] if cookie is None else [f"Cookie: {cookie}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def callback(query: str) -> str:
    return f"{routes.CALLBACK}?{query}"


def signed_state(issued: float, key: bytes = STATE_KEY) -> str:
    return StateSigner(key, ttl=STATE_TTL).issue(now=issued)


def sealed_cookie(body: str, key: bytes = COOKIE_KEY) -> str:
    """The sign-in cookie for `body` (openid|scope|unionid|nickname|issued), its HMAC
    made with `key`."""
    mac = hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    return f"{COOKIE}={body}|{mac}"


def body_of(openid: str, issued: object, scope: str = USERINFO, nickname: str = "") -> str:
    """A cookie's signed part: `issued` as given (any text), no unionid."""
    return f"{openid}|{scope}||{nickname}|{issued}"


@dataclass(frozen=True)
class PageAttack:
    id: str
    status: int
    words: tuple[str, ...]  # what the answer must say
    request: Callable[[Site], bytes]  # the raw request; may prepare the scene first
    address: str = "127.0.0.1"  # where it is sent from


def refused(
    name: str, words: str, request: Callable[[Site], bytes], address: str = "127.0.0.1"
) -> PageAttack:
    """A callback refused: a 400 page that says `words` and offers a fresh link."""
    return PageAttack(name, 400, (words, FRESH_LINK), request, address)


# --- 6. the callback's code and state ----------------------------------------------------


def restated(make_state: Callable[[str], str]) -> Callable[[Site], bytes]:
    """The victim's genuine callback (a fresh code) with its state rewritten."""

    def request(s: Site) -> bytes:
        query = parse_qs(urlsplit(s.tap()).query)
        return page(callback(f"code={query['code'][0]}&state={make_state(query['state'][0])}"))

    return request


def with_code(code: str) -> Callable[[Site], bytes]:
    """A fresh genuine state with `code` (sent as given)."""
    return lambda s: page(callback(f"code={code}&state={s.state()}"))


def spent_code(s: Site) -> bytes:
    """The victim's fresh code, exchanged by someone else first (40163)."""
    target = s.tap()
    query = {"appid": APP_ID, "secret": APP_SECRET, "grant_type": "authorization_code"}
    query["code"] = parse_qs(urlsplit(target).query)["code"][0]
    requests.get(s.sim.url + "/sns/oauth2/access_token", params=query, timeout=15)
    return page(target)


def expired_code(s: Site) -> bytes:
    target = s.tap()
    s.sim.clock.advance(301)  # WeChat's codes live 5 minutes (42003)
    return page(target)


def after_grace(s: Site) -> bytes:
    """The victim's own completed callback again, from the same browser, too late."""
    target = s.completed()
    s.end_grace()
    return page(target, agent=VICTIM_AGENT)


def tapped_again(cookie: Callable[[Site], str | None]) -> Callable[[Site], bytes]:
    """A link the victim used, tapped after the grace by another follower (a fresh code
    naming them, the same state), opened with `cookie`."""

    def request(s: Site) -> bytes:
        link = s.bot.app.links.link()
        s.completed(link)
        s.end_grace()
        return page(s.tap(s.sim.add_follower().openid, link), cookie(s), VICTIM_AGENT)

    return request


def flip(text: str) -> str:
    return text[:-1] + ("1" if text[-1] == "0" else "0")


CALLBACK_QUERY = [
    refused("callback-without-query", MISSING, lambda s: page(routes.CALLBACK)),
    refused("state-missing", MISSING, lambda s: page(callback("code=abc"))),
    refused("state-empty", MISSING, restated(lambda state: "")),
    refused("state-all-zeros", FORGED, restated(lambda state: "0" * 64)),
    refused("state-hmac-forged", FORGED, restated(flip)),
    refused(
        "state-signed-with-another-secret",
        FORGED,
        restated(lambda state: signed_state(time.time(), derive_key(OTHER_SECRET, "state"))),
    ),
    refused("state-truncated", FORGED, restated(lambda state: state[:-1])),
    refused("state-too-long", FORGED, restated(lambda state: state + "0" * 5000)),
    refused("state-uppercase", FORGED, restated(str.upper)),
    refused("state-not-ascii", FORGED, restated(lambda state: quote("状态" * 32))),
    refused("state-not-utf8", FORGED, restated(lambda state: "%ff%fe" + state[4:])),
    refused("state-with-nul", FORGED, restated(lambda state: state + "%00")),
    refused("state-markup", FORGED, restated(lambda state: quote('"><script>alert(1)</script>'))),
    refused(
        "state-header-injection",
        FORGED,
        restated(lambda state: state + "%0d%0aSet-Cookie:%20oauthbot=x%0d%0aLocation:%20//evil"),
    ),
    refused(
        "state-expired", EXPIRED, restated(lambda state: signed_state(time.time() - STATE_TTL - 1))
    ),
    refused(
        "state-from-the-future", EXPIRED, restated(lambda state: signed_state(time.time() + 3600))
    ),
    refused("state-repeated", FORGED, lambda s: page(s.tap() + "&state=" + s.state())),
    refused(
        "state-repeated-forged-first", FORGED, restated(lambda state: f"{'0' * 64}&state={state}")
    ),
    refused("code-repeated", FORGED, lambda s: page(s.tap() + "&code=abc")),
    refused("code-missing", DENIED, lambda s: page(callback(f"state={s.state()}"))),
    refused("code-empty", DENIED, with_code("")),
    refused("code-forged", CODE_REJECTED, with_code("abc")),
    refused("code-too-long", CODE_REJECTED, with_code("a" * 5000)),
    refused("code-not-ascii", CODE_REJECTED, with_code(quote("授权码"))),
    refused("code-smuggling-parameters", CODE_REJECTED, with_code(quote("x&secret=y&code=z"))),
    refused("code-spent-by-someone-else", CODE_REJECTED, spent_code),
    refused("code-expired", CODE_REJECTED, expired_code),
    refused("query-of-100-kb", FORGED, lambda s: page(callback("code=a&state=" + "a" * 100_000))),
    refused(
        "query-of-ten-thousand-parameters",
        MISSING,
        lambda s: page(callback("&".join(f"p{i}={i}" for i in range(10_000)))),
    ),
    PageAttack(
        "query-over-the-header-limit",
        431,
        ("Request Header Fields Too Large",),
        lambda s: page(callback("code=a&state=" + "a" * 300_000)),
    ),
    # -- replays: a completed callback URL in another client's hands
    refused("replay-from-another-agent", USED, lambda s: page(s.completed())),
    refused(
        "replay-from-another-address",
        USED,
        lambda s: page(s.completed(), agent=VICTIM_AGENT),
        ELSEWHERE,
    ),
    refused(
        "replay-from-another-agent-and-address", USED, lambda s: page(s.completed()), ELSEWHERE
    ),
    refused(
        "replay-signed-in-as-another-follower",
        USED,
        lambda s: page(s.completed(), s.bystander.cookie),
    ),
    refused("replay-after-the-grace", USED, after_grace),
    refused("used-link-tapped-by-another-follower", USED, tapped_again(lambda s: None)),
    refused(
        "old-link-tapped-by-another-follower-on-the-victims-phone",
        USED,
        tapped_again(lambda s: s.victim.cookie),
    ),
    refused(
        "forged-state-while-signed-in",
        FORGED,
        lambda s: page(callback(f"code=abc&state={'0' * 64}"), s.victim.cookie, VICTIM_AGENT),
    ),
]


# --- 7. the sign-in cookie ---------------------------------------------------------------


def on_me(name: str, cookie: Callable[[Site], str]) -> PageAttack:
    """/me with a Cookie header that must sign nobody in."""
    return PageAttack(name, 200, (NOT_SIGNED_IN,), lambda s: page(routes.ME, cookie(s)))


def tampered(change: Callable[[str, str, str, str], str]) -> Callable[[Site], str]:
    """The victim's genuine cookie remade by `change` from its openid, its middle
    (scope|unionid|nickname), its issue time and its HMAC."""

    def cookie(s: Site) -> str:
        openid, rest = s.victim.browser.cookies[COOKIE].split("|", 1)
        middle, issued, mac = rest.rsplit("|", 2)
        return f"{COOKIE}={change(openid, middle, issued, mac)}"

    return cookie


def victims(body: Callable[[str], str], key: bytes = COOKIE_KEY) -> Callable[[Site], str]:
    """A cookie correctly signed with `key` whose body `body` makes of the victim's openid."""
    return lambda s: sealed_cookie(body(s.victim.openid), key)


def now() -> int:
    return int(time.time())


def victim_as(middle: Callable[[str], str]) -> Callable[[Site], str]:
    """The victim's cookie with a middle (scope|unionid|nickname) made of the genuine one:
    the HMAC no longer matches."""
    return tampered(lambda o, mid, t, m: f"{o}|{middle(mid)}|{t}|{m}")


SIGN_IN_COOKIE = [
    on_me("cookie-empty", lambda s: f"{COOKIE}="),
    on_me("cookie-hmac-forged", tampered(lambda o, mid, t, m: f"{o}|{mid}|{t}|{'0' * 32}")),
    on_me("cookie-hmac-flipped", tampered(lambda o, mid, t, m: f"{o}|{mid}|{t}|{flip(m)}")),
    on_me("cookie-hmac-uppercase", tampered(lambda o, mid, t, m: f"{o}|{mid}|{t}|{m.upper()}")),
    on_me("cookie-hmac-truncated", tampered(lambda o, mid, t, m: f"{o}|{mid}|{t}|{m[:16]}")),
    on_me("cookie-hmac-full-length", tampered(lambda o, mid, t, m: f"{o}|{mid}|{t}|{m * 2}")),
    on_me("cookie-hmac-missing", tampered(lambda o, mid, t, m: f"{o}|{mid}|{t}")),
    on_me("cookie-another-time", tampered(lambda o, mid, t, m: f"{o}|{mid}|{int(t) + 1}|{m}")),
    on_me("cookie-another-openid", tampered(lambda o, mid, t, m: f"{flip(o)}|{mid}|{t}|{m}")),
    on_me("cookie-extra-part", tampered(lambda o, mid, t, m: f"{o}|{mid}|{t}|{m}|{m}")),
    on_me("cookie-another-scope", victim_as(lambda mid: mid.replace(USERINFO, BASE))),
    on_me("cookie-another-nickname", victim_as(lambda mid: mid + "%E7%8E%8B")),
    on_me("cookie-a-unionid-added", victim_as(lambda mid: mid.replace("||", "|oUnion|", 1))),
    on_me(
        "cookie-in-the-old-format",
        lambda s: (
            f"{COOKIE}={s.victim.openid}.{now()}."
            + hmac.new(
                COOKIE_KEY, f"{s.victim.openid}.{now()}".encode(), hashlib.sha256
            ).hexdigest()
        ),
    ),
    on_me(
        "cookie-signed-with-another-secret",
        victims(lambda o: body_of(o, now()), derive_key(OTHER_SECRET, "cookie")),
    ),
    on_me("cookie-from-the-future", victims(lambda o: body_of(o, now() + 3600))),
    on_me("cookie-too-old", victims(lambda o: body_of(o, now() - MAX_AGE - 60))),
    on_me("cookie-time-not-a-number", victims(lambda o: body_of(o, "soon"))),
    on_me("cookie-time-negative", victims(lambda o: body_of(o, -now()))),
    on_me("cookie-time-superscript-digits", victims(lambda o: body_of(o, "¹⁷⁰⁰⁰⁰⁰⁰⁰⁰"))),
    on_me(
        "cookie-time-latin1-digits",
        lambda s: f"{COOKIE}={body_of(s.victim.openid, chr(0xDCB2) + chr(0xDCB3))}|{'0' * 32}",
    ),
    on_me("cookie-time-5000-digits", victims(lambda o: body_of(o, "9" * 5000))),
    on_me("cookie-openid-markup", victims(lambda o: body_of(f"<b>{o}</b>", now()))),
    on_me("cookie-openid-too-long", victims(lambda o: body_of(o * 3, now()))),
    on_me("cookie-openid-not-ascii", victims(lambda o: body_of(f"{o}粉丝", now()))),
    on_me("cookie-openid-empty", victims(lambda o: body_of("", now()))),
    on_me(
        "cookie-mac-not-ascii", lambda s: f"{COOKIE}={body_of(s.victim.openid, now())}|{'码' * 32}"
    ),
    on_me(
        "cookie-under-other-names",
        lambda s: f"{COOKIE.upper()}={s.victim.browser.cookies[COOKIE]}; x{s.victim.cookie}",
    ),
    on_me(
        "cookie-a-thousand-forged",
        lambda s: "; ".join(
            f"{COOKIE}={body_of(s.victim.openid, i)}|{'0' * 32}" for i in range(1000)
        ),
    ),
    on_me("cookie-of-100-kb", lambda s: f"{COOKIE}={'a' * 100_000}"),
    on_me("cookie-latin1-bytes", lambda s: f"{COOKIE}=\udcff\udcfe"),
    on_me("cookie-syntax-broken", lambda s: f'{COOKIE}="{s.victim.openid};;=;"\\'),
    PageAttack(
        "cookie-over-the-header-limit",
        431,
        ("Request Header Fields Too Large",),
        lambda s: page(routes.ME, f"{COOKIE}={'a' * 300_000}"),
    ),
    PageAttack(
        "cookie-control-bytes",
        400,
        ("Invalid header",),
        lambda s: page(routes.ME, f"{COOKIE}=\x00\x01"),
    ),
    # -- a bad cookie naming the victim must not make a replay or an old link theirs
    refused(
        "replay-with-a-forged-cookie",
        USED,
        lambda s: page(s.completed(), tampered(lambda o, mid, t, m: f"{o}|{mid}|{t}|{flip(m)}")(s)),
    ),
    refused(
        "replay-with-a-cookie-too-old",
        USED,
        lambda s: page(s.completed(), victims(lambda o: body_of(o, now() - MAX_AGE - 60))(s)),
    ),
    refused(
        "old-link-tapped-again-with-a-forged-cookie",
        USED,
        lambda s: old_link_again(s, tampered(lambda o, mid, t, m: f"{o}|{mid}|{t}|{'0' * 32}")(s)),
    ),
]


def old_link_again(s: Site, cookie: str) -> bytes:
    """The victim taps a link they used, after the grace (a fresh code naming them), in a
    browser whose cookie is `cookie`: only a genuine cookie would land it on /me."""
    link = s.bot.app.links.link()
    s.completed(link)
    s.end_grace()
    return page(s.tap(link=link), cookie)


# --- 8. methods, paths and hosts ---------------------------------------------------------

NOT_ALLOWED = ("请求方式不支持",)
NOT_FOUND = ("页面不存在",)


def method(name: str, verb: str, path: str) -> PageAttack:
    extra = ("Host: 127.0.0.1", "Content-Length: 0")
    return PageAttack(name, 405, NOT_ALLOWED, lambda s: page(path, method=verb, headers=extra))


def path(name: str, target: Callable[[Site], str]) -> PageAttack:
    return PageAttack(name, 404, NOT_FOUND, lambda s: page(target(s), s.victim.cookie))


def elsewhere(name: str, *headers: str, target: str = callback("code=abc")) -> PageAttack:
    """A request naming another host: every link in the answer is still the bot's own."""
    sent = headers or ("Host: 127.0.0.1",)
    return refused(name, MISSING, lambda s: page(target, headers=sent))


PAGE_HTTP = [
    method("callback-post", "POST", callback("code=abc")),
    method("callback-put", "PUT", routes.CALLBACK),
    method("me-delete", "DELETE", routes.ME),
    method("me-patch", "PATCH", routes.ME),
    method("me-options", "OPTIONS", routes.ME),
    method("me-trace", "TRACE", routes.ME),
    method("me-unknown-method", "BREW", routes.ME),
    method("healthz-post", "POST", routes.HEALTH),
    PageAttack(
        "callback-post-with-a-genuine-code",
        405,
        NOT_ALLOWED,
        lambda s: page(s.tap(), method="POST", headers=("Host: 127.0.0.1", "Content-Length: 0")),
    ),
    path("unknown-path", lambda s: "/nope"),
    path("callback-trailing-slash", lambda s: s.tap().replace("?", "/?", 1)),
    path("me-uppercase", lambda s: routes.ME.upper()),
    path("me-path-parameter", lambda s: routes.ME + ";jsessionid=x"),
    path("path-not-utf8", lambda s: routes.ME + "/%ff%fe"),
    path("path-with-nul", lambda s: routes.ME + "%00"),
    path("path-traversal", lambda s: "/../config.toml"),
    path("path-traversal-encoded", lambda s: "/%2e%2e/%2e%2e/etc/passwd"),
    path("path-of-10-kb", lambda s: "/" + "a" * 10_000),
    elsewhere("host-of-another-site", f"Host: {EVIL}"),
    elsewhere("forwarded-host", "Host: 127.0.0.1", f"X-Forwarded-Host: {EVIL}"),
    elsewhere("forwarded-header", "Host: 127.0.0.1", f"Forwarded: host={EVIL};proto=https"),
    elsewhere("absolute-target-on-another-host", target=f"http://{EVIL}{callback('code=abc')}"),
]

PAGE_ATTACKS = CALLBACK_QUERY + SIGN_IN_COOKIE + PAGE_HTTP


# --- 9. WeChat's API failing under the pages ---------------------------------------------

EXCHANGE = "/sns/oauth2/access_token"
REFRESH = "/sns/oauth2/refresh_token"
USERINFO_API = "/sns/userinfo"
AUTH_API = "/sns/auth"
KINDS = ("busy", "slow", "http_error", "garbage", "html", "truncated", "reset")
SLOW = FAST.read_timeout * 1.5  # a `slow` answer comes later than one call may wait
TRIES_WHEN_BUSY = 3
OFFLINE = "暂时无法连接微信"


@dataclass(frozen=True)
class Fault:
    page: str  # the page whose WeChat call fails: "callback" or "me"
    path: str  # the sns endpoint that fails
    kind: str  # how (simulator/README.md, Faults)

    @property
    def id(self) -> str:
        return f"{self.page}-{self.path.rsplit('/', 1)[1]}-{self.kind}"

    @property
    def scope(self) -> str:
        return BASE if self.path == AUTH_API else USERINFO

    @property
    def calls(self) -> int:
        """How often the bot asks: again while busy, except for the code exchange."""
        return TRIES_WHEN_BUSY if self.kind == "busy" and self.path != EXCHANGE else 1


WECHAT_FAULTS = [
    Fault(page, path, kind)
    for page, path in (
        ("callback", EXCHANGE),
        ("callback", USERINFO_API),
        ("me", REFRESH),
        ("me", USERINFO_API),
        ("me", AUTH_API),
    )
    for kind in KINDS
]


def faults(page: str, *paths: str) -> dict:
    chosen = [f for f in WECHAT_FAULTS if f.page == page and f.path in paths]
    return {"argvalues": chosen, "ids": [f.id for f in chosen]}


def failing(site: Site, fault: Fault, target: str, browser: requests.Session) -> requests.Response:
    """Open `target` while WeChat fails as `fault` says; the calls it made are counted."""
    site.sim.calls.clear()
    site.sim.fault(fault.path, fault.kind, times=TRIES_WHEN_BUSY, seconds=SLOW)
    try:
        return browser.get(target, allow_redirects=False, timeout=30)
    finally:
        site.sim.clear_faults()


# --- the site under attack, and the tests ------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    started = Site({scope: tmp_path_factory.mktemp(scope) for scope in SCOPES})
    yield started
    started.stop()


@pytest.mark.parametrize("attack", PAGE_ATTACKS, ids=[a.id for a in PAGE_ATTACKS])
def test_hostile_page_request_is_refused_and_nothing_changes(attack, site):
    raw = attack.request(site)
    before = site.followers()
    answer = exchange(site.bot.port, raw, attack.address)
    assert answer.status == attack.status, answer.text[:300]
    assert [words for words in attack.words if words not in answer.text] == []
    assert answer.header("Set-Cookie") is None, "a client was signed in"
    assert answer.header("Location") is None
    assert not [leak for leak in (b"Traceback", b"<script", EVIL.encode()) if leak in answer.body]
    if b"(generated by waitress)" not in answer.body:  # the bot's own answer
        assert answer.header("Cache-Control") == "no-store"
        assert answer.header("Referrer-Policy") == "no-referrer"
    assert site.followers() == before, "a stored follower changed"
    assert site.victim_signed_in(), "the victim was signed out, or the bot is down"


@pytest.mark.parametrize("fault", **faults("callback", EXCHANGE))
def test_exchange_failing_is_the_502_page_and_changes_nothing(fault, site):
    follower = site.sign_in(site.bot, site.sim.add_follower().openid)
    target = site.bot.url + site.tap(follower.openid)
    before = site.followers()
    answer = failing(site, fault, target, follower.browser)
    assert answer.status_code == 502
    assert "微信暂时没有响应" in answer.text and FRESH_LINK in answer.text
    assert "Set-Cookie" not in answer.headers
    assert site.sim.calls.paths().count(EXCHANGE) == fault.calls
    assert site.followers() == before


@pytest.mark.parametrize("fault", **faults("callback", USERINFO_API))
def test_userinfo_failing_after_the_exchange_signs_in_and_keeps_the_profile(fault, site):
    follower = site.sign_in(site.bot, site.sim.add_follower().openid)
    site.sim.expire_access_tokens(follower.openid)  # so this authorization brings new tokens
    target = site.bot.url + site.tap(follower.openid)
    before = site.bot.app.store.get_follower(follower.openid)
    answer = failing(site, fault, target, follower.browser)
    assert answer.status_code == 303 and answer.headers["Location"] == routes.ME
    assert "Set-Cookie" in answer.headers
    assert site.sim.calls.paths().count(USERINFO_API) == fault.calls
    after = site.bot.app.store.get_follower(follower.openid)
    assert after.access_token != before.access_token
    assert (after.nickname, after.headimgurl, after.profile) == (
        before.nickname,
        before.headimgurl,
        before.profile,
    )


@pytest.mark.parametrize("fault", **faults("me", REFRESH, USERINFO_API, AUTH_API))
def test_a_token_call_failing_shows_the_stored_profile_and_changes_nothing(fault, site):
    bot = site.bots[fault.scope]
    ttl = 30 if fault.path == REFRESH else 7200  # inside the refresh margin: /me refreshes first
    follower = site.sign_in(bot, site.sim.add_follower().openid, token_ttl=ttl)
    before = site.followers(bot)
    me = failing(site, fault, bot.url + routes.ME, follower.browser)
    assert me.status_code == 200
    assert OFFLINE in me.text
    assert site.sim.calls.paths().count(fault.path) == fault.calls
    assert site.followers(bot) == before


def test_the_machinery_signs_in_with_genuine_values(site):
    """The control: the same raw wire does sign in with a genuine callback, and a genuine
    cookie does show the profile, so a refusal above is a refusal, not a broken test."""
    newcomer = site.sim.add_follower().openid
    landed = exchange(site.bot.port, page(site.tap(newcomer)))
    assert landed.status == 303 and landed.header("Location") == routes.ME
    me = exchange(site.bot.port, page(routes.ME, landed.header("Set-Cookie").split(";")[0]))
    assert me.status == 200
    assert site.sim.followers[newcomer].nickname in me.body.decode("utf-8")


# --- 10. fuzzing: whatever is sent, 2xx or 4xx, nobody signed in, the bot still up -------

FUZZ = settings(  # examples: the suite's profile (tests/conftest.py)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Text that fits on one line of a request: no CR or LF, no lone surrogates.
LINE = st.characters(exclude_characters="\r\n", exclude_categories=("Cs",))
FIELD_NAMES = ("ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId")
FIELD_NAMES += ("Event", "EventKey", "MediaId", "PicUrl", "Encrypt", "Location_X", "Ticket")
MSG_TYPES = ("text", "event", "image", "voice", "video", "shortvideo", "location", "link")
MSG_TYPES += ("subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW")

queries = st.dictionaries(
    st.sampled_from(["signature", "timestamp", "nonce", "openid", "encrypt_type"])
    | st.sampled_from(["msg_signature", "echostr"])
    | st.text(max_size=8),
    st.text(max_size=40),
    max_size=8,
)
field_values = st.one_of(
    st.text(max_size=80),
    st.text(max_size=80).map(lambda text: f"<![CDATA[{text}]]>"),
    st.integers().map(str),
    st.sampled_from(MSG_TYPES).map(lambda name: f"<![CDATA[{name}]]>"),
)
# A push's fields, some replaced, dropped or added: often enough a message the handlers see.
field_changes = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.from_regex(r"[A-Z][A-Za-z0-9_]{0,10}", fullmatch=True),
    field_values | st.none(),
    max_size=6,
)


def is_2xx_or_4xx(status: int | None) -> bool:
    return status is not None and (200 <= status < 300 or 400 <= status < 500)


def no_errors_logged(caplog) -> bool:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def fuzz_context(bot: BotServer) -> Context:
    return Context(bot.config.server.wechat_path, str(next(_msg_ids)), "http://127.0.0.1:9")


def pkcs7(data: bytes) -> bytes:
    pad = 32 - len(data) % 32
    return data + bytes([pad]) * pad


def sealed(inner: bytes, app_id: bytes, length: int | None) -> str:
    """A well-padded envelope around any `inner` bytes, any AppID, any length field."""
    size = len(inner) if length is None else length
    return seal(pkcs7(os.urandom(16) + struct.pack(">I", size) + inner + app_id))


@FUZZ
@given(method=st.sampled_from(["POST", "GET"]), query=queries, body=st.binary(max_size=4096))
def test_fuzz_any_query_and_body(bots, caplog, method, query, body):
    bot = bots[False]
    answer = exchange(bot.port, http(fuzz_context(bot), body, query, method))
    assert is_2xx_or_4xx(answer.status), answer.body[:300]
    assert no_errors_logged(caplog)
    c = fuzz_context(bot)
    assert exchange(bot.port, push(c, message(c))).status == 200  # still answering


@FUZZ
@given(changes=field_changes, raw=st.none() | st.binary(max_size=2048))
def test_fuzz_signed_body_reaches_the_parser(bots, caplog, changes, raw):
    bot = bots[False]
    c = fuzz_context(bot)
    answer = exchange(bot.port, push(c, message(c, **changes) if raw is None else raw))
    assert is_2xx_or_4xx(answer.status), answer.body[:300]
    assert no_errors_logged(caplog)
    c = fuzz_context(bot)
    assert exchange(bot.port, push(c, message(c))).status == 200


@FUZZ
@given(
    encrypt=st.none()
    | st.text(max_size=200)
    | st.binary(max_size=300).map(lambda data: base64.b64encode(data).decode()),
    inner=st.binary(max_size=300) | field_changes,
    app_id=st.sampled_from([APP_ID.encode(), b"wxffffffffffffffff", b""]) | st.binary(max_size=20),
    length=st.none() | st.integers(0, 2**32 - 1),
)
def test_fuzz_encrypt_payload_on_an_aes_bot(bots, caplog, encrypt, inner, app_id, length):
    """Any Encrypt, correctly signed; or (None) a well-padded envelope of anything, fields
    of a push included, under any AppID and length field: the decrypted XML is parsed."""
    bot = bots[True]
    c = fuzz_context(bot)
    if encrypt is None:
        xml = message(c, **inner).encode("utf-8") if isinstance(inner, dict) else inner
        encrypt = sealed(xml, app_id, length)
    answer = exchange(bot.port, encrypted_push(c, encrypt))
    assert is_2xx_or_4xx(answer.status), answer.body[:300]
    assert no_errors_logged(caplog)
    c = fuzz_context(bot)
    assert exchange(bot.port, encrypted_push(c, sealed_xml(c))).status == 200


callback_queries = st.one_of(
    st.text(LINE, max_size=300),  # raw, spaces and all: the request line may break
    st.text(max_size=300).map(lambda text: quote(text, safe="=&")),
    st.lists(
        st.tuples(st.sampled_from(["code", "state"]) | st.text(max_size=6), st.text(max_size=80)),
        max_size=5,
    ).map(urlencode),
)


@FUZZ
@given(query=callback_queries, genuine_state=st.booleans())
def test_fuzz_callback_query(site, caplog, query, genuine_state):
    """Any query, with a genuine fresh state or without: never 5xx, nobody signed in."""
    target = callback(query + (f"&state={site.state()}" if genuine_state else ""))
    answer = exchange(site.bot.port, page(target))
    assert is_2xx_or_4xx(answer.status), answer.body[:300]
    assert answer.header("Set-Cookie") is None
    assert no_errors_logged(caplog)
    assert site.victim_signed_in()


cookie_headers = st.one_of(
    st.text(LINE, max_size=300),
    st.lists(st.text(LINE, max_size=40), min_size=5, max_size=7)
    .map("|".join)
    .map(lambda value: f"{COOKIE}={value}"),
    st.lists(st.text(LINE, max_size=40), max_size=6).map(lambda values: "; ".join(values)),
)


@FUZZ
@given(cookie=cookie_headers, on_callback=st.booleans())
def test_fuzz_sign_in_cookie(site, caplog, cookie, on_callback):
    """Any Cookie header on /me (not signed in) and on a completed callback replayed by
    another client (still refused): never 5xx, never signed in."""
    target = site.replayable if on_callback else routes.ME
    answer = exchange(site.bot.port, page(target, cookie))
    assert is_2xx_or_4xx(answer.status), answer.body[:300]
    assert answer.header("Set-Cookie") is None
    if answer.status == 200:
        assert NOT_SIGNED_IN in answer.body.decode("utf-8")
    assert no_errors_logged(caplog)
    assert site.victim_signed_in()


# --- the count ----------------------------------------------------------------------------

CATALOGUE = [a.id for a in MESSAGE_ATTACKS + PAGE_ATTACKS] + [f.id for f in WECHAT_FAULTS]


def test_the_catalogue_is_large_and_names_are_unique():
    assert len(CATALOGUE) == len(set(CATALOGUE))
    assert len(CATALOGUE) >= 60
