"""The catalogue: every hostile input and every fault tried against the bot, by name.

Each entry is one named attack, sent over a raw socket to the real bot on
waitress (so that framing `requests` would fix up - a lying Content-Length, a
chunked body - reaches it as sent). Each test asserts the status AND that
nothing else happened:

- no handler ran: a recorder put in front of WeRoBot's handlers saw no message;
- nothing was stored: the MsgId the attack carried is still fresh, so a real
  push with that MsgId afterwards is answered by the handlers (the retry guard
  never saw the attack) - which also proves the bot is still up;
- nothing was fetched: a canary HTTP server named in every entity, DTD and
  XInclude got no request; no file content came back.

Sections (each a named list; the counts add up to the catalogue's size):

1. MESSAGE_HTTP     - the message endpoint's framing: methods, Content-Length, chunked
2. MESSAGE_QUERY    - signatures, timestamps and the query
3. MESSAGE_XML      - the XML itself: entities, DTDs, XInclude, encodings, nesting
4. MESSAGE_FIELDS   - the fields: missing, unknown MsgType, ids that are not numbers
5. MESSAGE_AES      - compatible and safe modes: the envelope and what is inside it
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from simulator.crypto import signature as wechat_sign
from tests.conftest import AES_KEY, ANCHOR, APP_ID, TOKEN, BotServer, free_port, write_config

OTHER_KEY = "Th1rdKeyTh1rdKeyTh1rdKeyTh1rdKeyTh1rdKeyTh1"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"


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


def exchange(port: int, raw: bytes) -> tuple[int | None, bytes]:
    """Send, half-close, read until the server closes: (status, body) or (None, b"")."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    if not data:
        return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


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

CATALOGUE = MESSAGE_HTTP + MESSAGE_QUERY + MESSAGE_XML + MESSAGE_FIELDS + MESSAGE_AES


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
    status, body = exchange(bot.port, push(c, message(c)))
    return status == 200 and bool(ANCHOR.search(body.decode())) and len(recorder.calls) == 1


@pytest.mark.parametrize("attack", CATALOGUE, ids=[a.id for a in CATALOGUE])
def test_hostile_request_is_refused_and_nothing_happens(attack, attacked, canary):
    bot, c, recorder = attacked(attack.aes)
    status, body = exchange(bot.port, attack.request(c))
    assert status == attack.status, body[:300]
    assert recorder.calls == [], "a handler ran"
    assert canary.hits == [], "the bot fetched a URL named in the request"
    assert b"Traceback" not in body and b"root:" not in body and b"<Content>" not in body
    assert still_fresh(bot, c, recorder), "the attack's MsgId was recorded, or the bot is down"


@pytest.mark.parametrize("with_key", [False, True], ids=["plain-bot", "aes-bot"])
def test_the_machinery_sees_a_real_push(with_key, attacked):
    """The control: the same raw wire and recorder do see a well-formed push (and a
    well-formed encrypted one), so a refusal above is a refusal, not a broken test."""
    bot, c, recorder = attacked(with_key)
    request = encrypted_push(c, sealed_xml(c)) if with_key else push(c, message(c))
    status, body = exchange(bot.port, request)
    assert status == 200
    assert len(recorder.calls) == 1
    assert (b"<Encrypt>" in body) if with_key else bool(ANCHOR.search(body.decode()))


def test_the_catalogue_is_large_and_names_are_unique():
    names = [a.id for a in CATALOGUE]
    assert len(names) == len(set(names))
    assert len(names) >= 60
