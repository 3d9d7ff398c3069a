"""A handler's result → passive-reply XML that any XML parser accepts.

Handlers may return what a WeRoBot 1.13.1 handler may: a string (or UTF-8 bytes),
one of WeRoBot's reply objects, a list of articles (each `[title, description,
img, url]` or an `Article`), or a music list `[title, description, url(, hq_url)]`
(a tuple works too). WeRoBot's own templates are not used: they paste values into
CDATA unescaped, so a value holding `]]>` or a control character breaks the XML.

Every value goes through `cdata`, which
- removes the characters XML 1.0 forbids (C0 controls other than tab, newline and
  carriage return; U+FFFE, U+FFFF; surrogates, which only occur unpaired in a str),
- splits `]]>` across two CDATA sections.

A text reply's content is cut to WeChat's limit (`fit_text`). A news reply carries
at most 8 articles. The reply always goes to the message's sender from the account
it was sent to, whatever addresses a reply object holds: WeChat shows no other.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Sequence

from werobot.replies import (
    Article,
    ArticlesReply,
    ImageReply,
    MusicReply,
    TextReply,
    TransferCustomerServiceReply,
    VideoReply,
    VoiceReply,
    WeChatReply,
)

log = logging.getLogger(__name__)

MAX_TEXT_BYTES = 2048  # WeChat drops longer text replies (observed, not documented)
MAX_ARTICLES = 8  # WeChat's documented limit for a news reply (1 when answering a message)
ELLIPSIS = "…"
NO_REPLY = b"success"  # what WeChat takes for "nothing to say" (and stops retrying)

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ANCHOR_OPEN = re.compile(r"<a\s", re.IGNORECASE)
_ANCHOR_CLOSE = re.compile(r"</a\s*>", re.IGNORECASE)
_ZWJ = "\u200d"


class UnrenderableReply(ValueError):
    """A handler returned something that is no WeChat reply."""


def clean(text: str) -> str:
    """`text` without the characters XML forbids."""
    if text.isprintable() or text.replace("\n", " ").isprintable():
        return text  # the common case, checked at C speed: no control character at all
    return _FORBIDDEN.sub("", text)


def cdata(text: str) -> str:
    """A CDATA section holding `clean(text)`, any `]]>` split across two sections."""
    return _cdata(clean(text))


def _cdata(cleaned: str) -> str:
    return "<![CDATA[" + cleaned.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def fit_text(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """`text` when its UTF-8 fits `limit` bytes; else its longest head that fits with
    an ellipsis after it. The cut falls between user-perceived characters (an emoji
    with its modifiers, joiners and flags stays whole) and never inside an
    `<a href=...>...</a>` anchor: an anchor that does not fit goes whole, so a link
    the follower sees is never a broken one."""
    if len(text) * 4 <= limit:  # at most 4 bytes a character: fits without encoding
        return text
    if len(text) <= limit and len(text.encode("utf-8")) <= limit:
        return text
    data = text[:limit].encode("utf-8")  # at least `limit` bytes
    cut = len(data[: limit - len(ELLIPSIS.encode("utf-8"))].decode("utf-8", "ignore"))
    while (moved := _outside_anchor(text, _cluster_start(text, cut))) != cut:
        cut = moved
    return text[:cut] + ELLIPSIS


def _cluster_start(text: str, cut: int) -> int:
    """`cut`, moved back to the start of the grapheme cluster it falls in (an
    approximation of UAX #29 good enough for emoji, marks and flags)."""
    while 0 < cut < len(text) and (_extends(text[cut]) or text[cut - 1] == _ZWJ):
        cut -= 1
    if 0 < cut < len(text) and _regional(text[cut]):
        run = cut
        while run > 0 and _regional(text[run - 1]):
            run -= 1
        cut -= (cut - run) % 2  # an odd run before the cut: its last flag half goes too
    return cut


def _extends(char: str) -> bool:
    """True for a character that belongs to the one before it."""
    code = ord(char)
    return (
        char == _ZWJ
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # tag sequences (subdivision flags)
        or unicodedata.category(char) in ("Mn", "Me", "Mc")  # marks, variation selectors
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _outside_anchor(text: str, cut: int) -> int:
    """`cut`, or the start of the anchor it would leave unclosed."""
    starts = [anchor.start() for anchor in _ANCHOR_OPEN.finditer(text, 0, cut)]
    if starts and not _ANCHOR_CLOSE.search(text, starts[-1], cut):
        return starts[-1]
    return cut


def text_reply(to_user: str, from_user: str, content: str, now: int | None = None) -> str:
    """A text reply, the common case."""
    return _envelope(to_user, from_user, now, "text", _content(content))


def render(result: object, to_user: str, from_user: str, now: int | None = None) -> bytes:
    """A handler's non-empty result (anything but a SuccessReply) as reply XML.
    UnrenderableReply when it is nothing WeChat could show."""
    if isinstance(result, str):
        return text_reply(to_user, from_user, result, now).encode("utf-8")
    msg_type, body = _body(result)
    return _envelope(to_user, from_user, now, msg_type, body).encode("utf-8")


def _envelope(to_user: str, from_user: str, now: int | None, msg_type: str, body: str) -> str:
    created = int(time.time()) if now is None else now
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>{body}</xml>"
    )


def _content(text: str) -> str:
    return f"<Content>{_cdata(fit_text(clean(text)))}</Content>"


def _body(result: object) -> tuple[str, str]:
    """(MsgType, the XML after it) for anything but a plain string."""
    if isinstance(result, bytes):
        return "text", _content(result.decode("utf-8"))
    if isinstance(result, Article):
        return _news([result])
    if isinstance(result, list | tuple):
        return _from_sequence(result)
    if isinstance(result, WeChatReply):
        return _from_werobot(result)
    raise UnrenderableReply(f"a handler returned a {type(result).__name__}, which is no reply")


def _from_sequence(items: Sequence) -> tuple[str, str]:
    """WeRoBot's shorthands: a list of 4-item articles, or a 3- or 4-item music list.
    (WeRoBot takes four 4-letter strings for articles; here an article is a sequence.)"""
    if all(isinstance(item, list | tuple) and len(item) == 4 for item in items):
        return _news(items)
    if 3 <= len(items) <= 4:
        title, description, url, *hq_url = items
        return _music(title, description, url, hq_url[0] if hq_url else "", "")
    raise UnrenderableReply("a list is neither articles [title, description, img, url] nor music")


def _from_werobot(reply: WeChatReply) -> tuple[str, str]:
    args = reply._args  # WeRoBot 1.13.1 keeps a reply's fields here
    if isinstance(reply, TextReply):
        return "text", _content(_field(args.get("content")))
    if isinstance(reply, ImageReply | VoiceReply):
        tag = "Image" if isinstance(reply, ImageReply) else "Voice"
        return tag.lower(), f"<{tag}>{_media_id(args)}</{tag}>"
    if isinstance(reply, VideoReply):
        fields = _tags(Title=args.get("title"), Description=args.get("description"))
        return "video", f"<Video>{_media_id(args)}{fields}</Video>"
    if isinstance(reply, MusicReply):
        fields = ("title", "description", "url", "hq_url", "thumb_media_id")
        return _music(*(args.get(name) for name in fields))
    if isinstance(reply, ArticlesReply):
        return _news(reply._articles)
    if isinstance(reply, TransferCustomerServiceReply):
        account = _field(args.get("account"))
        return "transfer_customer_service", (
            f"<TransInfo>{_tags(KfAccount=account)}</TransInfo>" if account else ""
        )
    raise UnrenderableReply(f"{type(reply).__name__} is not a reply type this bot renders")


def _media_id(args: dict) -> str:
    media_id = clean(_field(args.get("media_id")))
    if not media_id:
        raise UnrenderableReply("a media reply needs a media_id")
    return _tags(MediaId=media_id)


def _music(
    title: object, description: object, url: object, hq_url: object, thumb_media_id: object
) -> tuple[str, str]:
    """A music reply; without a high-quality URL, WeChat plays the normal one on Wi-Fi too."""
    fields = _tags(Title=title, Description=description, MusicUrl=url, HQMusicUrl=hq_url or url)
    if thumb_media_id:
        fields += _tags(ThumbMediaId=thumb_media_id)
    return "music", f"<Music>{fields}</Music>"


def _news(articles: Sequence) -> tuple[str, str]:
    if not articles:
        raise UnrenderableReply("a news reply needs at least one article")
    if len(articles) > MAX_ARTICLES:
        log.warning(
            "a news reply of %d articles: sending the first %d", len(articles), MAX_ARTICLES
        )
        articles = articles[:MAX_ARTICLES]
    items = "".join(
        "<item>" + _tags(Title=title, Description=description, PicUrl=img, Url=url) + "</item>"
        for title, description, img, url in articles
    )
    return "news", f"<ArticleCount>{len(articles)}</ArticleCount><Articles>{items}</Articles>"


def _tags(**fields: object) -> str:
    return "".join(f"<{tag}>{cdata(_field(value))}</{tag}>" for tag, value in fields.items())


def _field(value: object) -> str:
    """A field's text: strings as they are, UTF-8 bytes decoded, numbers written out."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise UnrenderableReply(f"a reply field is a {type(value).__name__}, not text")
