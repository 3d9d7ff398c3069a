"""Message pushes to the bot, exactly as WeChat sends them, and reading what it answers."""

import logging
import secrets
from typing import Any

import requests
from lxml import etree

from simulator.crypto import CryptoError, MessageCrypto, signature

log = logging.getLogger("simulator")

MODES = ("plain", "compatible", "safe")
NO_SERVICE = "该公众号暂时无法提供服务，请稍后再试"
ATTEMPTS = 3
NUMERIC = ("CreateTime", "MsgId", "Location_X", "Location_Y", "Scale")
REPLY_TYPES = ("text", "image", "voice", "video", "music", "news", "transfer_customer_service")
MEDIA = {"image": "Image", "voice": "Voice", "video": "Video"}
MAX_ARTICLES = 8  # shown for an event; a reply to a message shows only its first article
HEADERS = {"Content-Type": "text/xml", "User-Agent": "Mozilla/4.0", "Accept": "*/*"}
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

Fields = list[tuple[str, str]]


class ReplyError(Exception):
    """A reply WeChat would not show; the follower sees NO_SERVICE instead."""


def cdata(value: str) -> str:
    """A CDATA section, splitting any `]]>` inside the value."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(fields: Fields) -> str:
    """WeChat's flat <xml>: numbers bare, everything else in CDATA."""
    inner = "".join(f"<{k}>{v if k in NUMERIC else cdata(v)}</{k}>" for k, v in fields)
    return f"<xml>{inner}</xml>"


def _media_id() -> str:
    return secrets.token_urlsafe(48)


def type_fields(msg_type: str, content: str | None, event: str | None) -> Fields:
    """The fields after MsgType that each message type carries, with plausible values."""
    media = _media_id()
    samples: dict[str, Fields] = {
        "text": [("Content", content or "")],
        "event": [("Event", event or ""), ("EventKey", "")],
        "image": [("PicUrl", f"http://mmbiz.qpic.cn/mmbiz_jpg/{media[:32]}/0"), ("MediaId", media)],
        "voice": [("MediaId", media), ("Format", "amr")],
        "video": [("MediaId", media), ("ThumbMediaId", _media_id())],
        "shortvideo": [("MediaId", media), ("ThumbMediaId", _media_id())],
        "location": [
            ("Location_X", "39.915119"),
            ("Location_Y", "116.403963"),
            ("Scale", "16"),
            ("Label", "北京市东城区天安门广场"),
        ],
        "link": [
            ("Title", "微信公众平台"),
            ("Description", "公众平台官网链接"),
            ("Url", "https://mp.weixin.qq.com/"),
        ],
    }
    if msg_type not in samples:
        raise ValueError(f"unknown message type {msg_type!r}; use one of {sorted(samples)}")
    if msg_type == "event" and not event:
        raise ValueError("an event push needs an event name such as subscribe")
    return samples[msg_type]


def build_message(
    head: Fields, msg_type: str, body: Fields, extra: dict[str, str], msg_id: int | str | None
) -> Fields:
    """Head, MsgType, type fields (overridden or extended by `extra`), then MsgId."""
    merged = dict(body)
    merged.update(extra)
    fields = [*head, ("MsgType", msg_type), *merged.items()]
    return fields if msg_id is None else [*fields, ("MsgId", str(msg_id))]


def envelope(
    fields: Fields, mode: str, crypto: MessageCrypto | None, token: str, stamp: tuple[str, str]
) -> tuple[str, dict[str, str]]:
    """The body for `mode` and the extra query parameters it needs."""
    plain = to_xml(fields)
    if mode == "plain":
        return plain, {}
    if crypto is None:
        raise ValueError(f"{mode} mode needs an EncodingAESKey (aes_key)")
    encrypted = crypto.encrypt(plain)
    extra = {"encrypt_type": "aes", "msg_signature": signature(token, *stamp, encrypted)}
    kept = fields if mode == "compatible" else fields[:1]
    return to_xml([*kept, ("Encrypt", encrypted)]), extra


def deliver(
    url: str, body: bytes, timeout: float, trusted_ca: str | None = None
) -> tuple[requests.Response | None, int]:
    """POST the identical delivery until the bot answers; WeChat gives up after 3 tries.
    An https bot must show a certificate the system (or `trusted_ca`) trusts."""
    with requests.Session() as session:
        session.trust_env = False
        session.verify = trusted_ca or True
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return session.post(url, data=body, headers=HEADERS, timeout=timeout), attempt
            except (requests.Timeout, requests.ConnectionError) as exc:
                log.info("push attempt %d failed: %s", attempt, type(exc).__name__)
    return None, ATTEMPTS


def read_reply(
    raw: bytes,
    mode: str,
    crypto: MessageCrypto | None,
    token: str,
    parties: tuple[str, str],
    pushed: str = "text",
) -> dict[str, Any] | None:
    """The reply's fields (decrypted), None for "no reply"; ReplyError when WeChat rejects it.
    `pushed` is the MsgType of the push it answers. A news reply's `Articles` is the list
    of items the follower sees."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReplyError("the reply is not UTF-8") from exc
    if text.strip() in ("", "success"):
        return None
    root = _parse(text)
    if root.find("Encrypt") is not None:
        root = _parse(_open(root, mode, crypto, token))
    elif mode == "safe":
        raise ReplyError("safe mode needs an encrypted reply")
    reply = _value(root)
    if not isinstance(reply, dict):
        raise ReplyError("the reply has no fields")
    _check_fields(reply, *parties)
    _check_body(reply)
    if reply["MsgType"] == "news":
        reply["Articles"] = _articles(reply, pushed)
    return reply


def _parse(text: str) -> Any:
    try:
        root = etree.fromstring(text.encode(), PARSER)
    except etree.XMLSyntaxError as exc:
        raise ReplyError(f"the reply is not XML: {exc}") from exc
    if root.getroottree().docinfo.doctype or root.tag != "xml":
        raise ReplyError("the reply must be a bare <xml> document")
    return root


def _open(root: Any, mode: str, crypto: MessageCrypto | None, token: str) -> str:
    """Verify MsgSignature, then decrypt and check the AppID."""
    if mode == "plain" or crypto is None:
        raise ReplyError("an encrypted reply in plaintext mode")
    encrypted, sig, stamp, nonce = (
        root.findtext(tag) or "" for tag in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce")
    )
    if sig != signature(token, stamp, nonce, encrypted):
        raise ReplyError("the reply's MsgSignature does not match")
    try:
        return crypto.decrypt(encrypted)
    except CryptoError as exc:
        raise ReplyError(f"the reply does not decrypt: {exc}") from exc


def _value(element: Any) -> Any:
    """Leaves as strings, nested elements as dicts, repeated tags as lists."""
    children = list(element)
    if not children:
        return element.text or ""
    result: dict[str, Any] = {}
    for child in children:
        value = _value(child)
        if child.tag not in result:
            result[child.tag] = value
        elif isinstance(result[child.tag], list):
            result[child.tag].append(value)
        else:
            result[child.tag] = [result[child.tag], value]
    return result


def _check_fields(reply: dict[str, Any], openid: str, gh_id: str) -> None:
    """The fields WeChat needs before it shows a passive reply."""
    if reply.get("ToUserName") != openid:
        raise ReplyError(f"ToUserName must be the follower's openid {openid}")
    if reply.get("FromUserName") != gh_id:
        raise ReplyError(f"FromUserName must be the account's id {gh_id}")
    if not str(reply.get("CreateTime", "")).isdigit():
        raise ReplyError("CreateTime must be a number")
    if reply.get("MsgType") not in REPLY_TYPES:
        raise ReplyError(f"MsgType must be one of {', '.join(REPLY_TYPES)}")


def _check_body(reply: dict[str, Any]) -> None:
    """The fields each reply type needs (news is checked by `_articles`)."""
    msg_type = reply["MsgType"]
    if msg_type == "text" and not isinstance(reply.get("Content"), str):
        raise ReplyError("a text reply needs Content")
    if msg_type in MEDIA:
        media = reply.get(MEDIA[msg_type])
        media_id = media.get("MediaId") if isinstance(media, dict) else None
        if not (isinstance(media_id, str) and media_id):
            raise ReplyError(f"a {msg_type} reply needs {MEDIA[msg_type]}/MediaId")
    if msg_type == "music" and not isinstance(reply.get("Music"), dict):
        raise ReplyError("a music reply needs Music")


def _articles(reply: dict[str, Any], pushed: str) -> list[dict[str, Any]]:
    """The news items the follower sees: WeChat sends only those within its limit, one
    when the reply answers a message, eight when it answers an event."""
    count, articles = reply.get("ArticleCount", ""), reply.get("Articles")
    items = articles.get("item") if isinstance(articles, dict) else None
    items = [items] if isinstance(items, dict) else items
    if not (isinstance(items, list) and all(isinstance(item, dict) for item in items)):
        raise ReplyError("a news reply needs Articles with item elements")
    if not (isinstance(count, str) and count.isdigit() and int(count) == len(items)):
        raise ReplyError(f"ArticleCount must be the number of items ({len(items)})")
    return items[: MAX_ARTICLES if pushed == "event" else 1]
