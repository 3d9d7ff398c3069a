"""Pre-signed pushes for wrk: what WeChat would send, made before the load so that
wrk's Lua only reads them (it cannot sha1 or AES), each with its own MsgId, nonce and
signature (plus msg_signature and an encrypted body in safe mode).

A file holds complete HTTP requests, each as a 6-digit length and the request's bytes;
`bench/push.lua` has each wrk thread read its own file. The envelope is the
simulator's (WeChat's side), never the bot's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from simulator.crypto import MessageCrypto, signature

FOLLOWERS = 10_000  # pushes come from this many followers in turn (a post gone viral)
OFFICIAL = "gh_bench"


@dataclass(frozen=True)
class Account:
    """The official account the pushes are for: no AES key means plaintext mode."""

    token: str
    app_id: str
    aes_key: str = ""

    @property
    def mode(self) -> str:
        return "safe" if self.aes_key else "plaintext"


def openid(number: int) -> str:
    return f"o6_bench{number % FOLLOWERS:020d}"


def text_push(msg_id: int, sender: str, stamp: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{OFFICIAL}]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName><CreateTime>{stamp}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )


def text_reply(content: str, account: Account) -> str:
    """A text reply to the first follower (encrypted and signed in safe mode)."""
    stamp = str(int(time.time()))
    xml = (
        f"<xml><ToUserName><![CDATA[{openid(0)}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OFFICIAL}]]></FromUserName><CreateTime>{stamp}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content>{escape(content)}</Content></xml>"
    )
    if not account.aes_key:
        return xml
    encrypt = MessageCrypto(account.aes_key, account.app_id).encrypt(xml)
    return (
        f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA["
        f"{signature(account.token, stamp, '1', encrypt)}]]></MsgSignature>"
        f"<TimeStamp>{stamp}</TimeStamp><Nonce><![CDATA[1]]></Nonce></xml>"
    )


class PushWriter:
    """Signed text pushes to `path` for one account, numbered from `first_id` on."""

    def __init__(self, account: Account, path: str, first_id: int) -> None:
        self.account = account
        self.path = path
        self.next_id = first_id
        self.crypto = MessageCrypto(account.aes_key, account.app_id) if account.aes_key else None

    def request(self) -> bytes:
        """The next push as a whole HTTP request, signed now with a nonce of its own."""
        msg_id, self.next_id = self.next_id, self.next_id + 1
        stamp, nonce = str(int(time.time())), str(int.from_bytes(os.urandom(4)))
        sender = openid(msg_id)
        body = text_push(msg_id, sender, stamp)
        query = (
            f"signature={signature(self.account.token, stamp, nonce)}"
            f"&timestamp={stamp}&nonce={nonce}&openid={sender}"
        )
        if self.crypto:
            encrypt = self.crypto.encrypt(body)
            body = (
                f"<xml><ToUserName><![CDATA[{OFFICIAL}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
            )
            query += (
                f"&encrypt_type=aes&msg_signature="
                f"{signature(self.account.token, stamp, nonce, encrypt)}"
            )
        data = body.encode()
        head = (
            f"POST {self.path}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        return head.encode() + data

    def write(self, file: Path, count: int) -> None:
        """`count` requests into `file`, each preceded by its length in 6 digits."""
        with file.open("wb") as out:
            for _ in range(count):
                request = self.request()
                out.write(b"%06d" % len(request) + request)
