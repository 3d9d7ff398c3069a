"""Replies: whatever a WeRoBot handler may return, as XML any parser reads back.

The renderer is fuzzed with arbitrary strings (lxml reads every reply back and finds
the content, cleaned by an independent reference of XML 1.0's rules). Then handlers
registered on a running bot answer pushes from the simulator, which reads each
reply as WeChat does.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from werobot.replies import (
    Article,
    ArticlesReply,
    ImageReply,
    MusicReply,
    SuccessReply,
    TextReply,
    TransferCustomerServiceReply,
    VideoReply,
    VoiceReply,
    WeChatReply,
)

from wechat.dispatch import APOLOGY
from wechat.replies import MAX_ARTICLES, MAX_TEXT_BYTES, UnrenderableReply, render

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
GH_ID = "gh_0123456789ab"
ZWJ = "\u200d"
LINK = (
    '<a href="https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx0123456789abcdef'
    "&redirect_uri=http%3A%2F%2F127.0.0.1%2Foauth%2Fcallback&response_type=code"
    '&scope=snsapi_userinfo&state=abc#wechat_redirect">单击这里体验OAuth授权</a>'
)
NASTY = [
    "]]>", "]]", "]", ">", "<![CDATA[", "\x00", "\x08", "\x0b", "\x1f", "\x7f", "\t", "\n",
    "\r", "\r\n", "\ufffe", "\uffff", "\ud800", "\udfff", "\U0001fffe", "&amp;", "<b>",
    "😀", "👍🏽", "👨\u200d👩\u200d👧", "❤\ufe0f\u200d🔥", "🇨🇳", "🏴\U000e0067\U000e0062\U000e007f",
    "e\u0301", "长" * 700, "a" * 2000, LINK, '<a href="x">', "</a>",
]  # fmt: skip
pieces = st.one_of(st.sampled_from(NASTY), st.text(st.characters(exclude_categories=[])))
nasty_text = st.lists(pieces, max_size=12).map("".join)


def xml_char(char: str) -> bool:
    """XML 1.0's Char production, written out from the specification."""
    code = ord(char)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def allowed(text: str) -> str:
    """`text` without the characters XML forbids: what goes on the wire."""
    return "".join(char for char in text if xml_char(char))


def readable(text: str) -> str:
    """What a parser reads back from `text` once the forbidden characters are gone."""
    return allowed(text).replace("\r\n", "\n").replace("\r", "\n")


def parse(xml: bytes) -> Any:
    root = etree.fromstring(xml)  # lxml's default parser: strict XML 1.0
    assert root.tag == "xml" and root.findtext("ToUserName") is not None
    return root


def reply_to(result: object, to_user: str = OPENID, from_user: str = GH_ID) -> Any:
    return parse(render(result, to_user, from_user))


# -- text ----------------------------------------------------------------------------


@given(nasty_text, nasty_text, nasty_text)
def test_any_text_reads_back(content: str, to_user: str, from_user: str) -> None:
    root = reply_to(content, to_user, from_user)
    assert root.findtext("ToUserName") == readable(to_user)
    assert root.findtext("FromUserName") == readable(from_user)
    assert root.findtext("MsgType") == "text" and root.findtext("CreateTime").isdigit()
    shown, expected = root.findtext("Content"), readable(content)
    if len(allowed(content).encode()) <= MAX_TEXT_BYTES:  # a parser reads \r\n as one byte
        assert shown == expected
    else:
        assert_cut_well(expected, shown)


def assert_cut_well(full: str, shown: str) -> None:
    """A head of `full` plus an ellipsis, within the limit, cut between clusters and
    outside any anchor."""
    assert len(shown.encode()) <= MAX_TEXT_BYTES and shown.endswith("…")
    head = shown[:-1]
    assert full.startswith(head)
    cut = len(head)
    if cut:
        assert full[cut - 1] != ZWJ
        after = full[cut]
        assert unicodedata.category(after) not in ("Mn", "Me", "Mc") and after != ZWJ
        assert not 0x1F3FB <= ord(after) <= 0x1F3FF
    flags = re.search("[\U0001f1e6-\U0001f1ff]*$", head).group()
    assert len(flags) % 2 == 0 or not 0x1F1E6 <= ord(full[cut]) <= 0x1F1FF
    for anchor in re.finditer(r"<a\s", head, re.IGNORECASE):
        assert re.search(r"</a\s*>", head[anchor.end() :], re.IGNORECASE), "an anchor was cut"


@pytest.mark.parametrize(
    ("unit", "bytes_each"),
    [("😀", 4), ("👍🏽", 8), ("👨\u200d👩\u200d👧", 18), ("🇨🇳", 8), ("e\u0301", 3), ("长", 3)],
)
def test_long_text_is_cut_between_whole_characters(unit: str, bytes_each: int) -> None:
    assert len(unit.encode()) == bytes_each
    shown = reply_to(unit * 1000).findtext("Content")
    assert shown == unit * ((MAX_TEXT_BYTES - 3) // bytes_each) + "…"


def test_the_authorize_link_is_never_cut() -> None:
    before = "说明" * 330 + "\n"  # the limit falls inside the anchor after it
    shown = reply_to(before + LINK).findtext("Content")
    assert shown == before + "…"
    after = LINK + "\n" + "说明" * 400  # the anchor fits: kept whole, the text after is cut
    shown = reply_to(after).findtext("Content")
    assert shown.startswith(LINK + "\n说明") and len(shown.encode()) <= MAX_TEXT_BYTES
    nested = "说明" * 320 + '<a href="https://a.example">前' + ZWJ + LINK + "</a>"
    assert reply_to(nested).findtext("Content") == "说明" * 320 + "…"  # both anchors go
    exact = "长" * ((MAX_TEXT_BYTES - len(LINK.encode())) // 3) + LINK  # just fits: untouched
    assert reply_to(exact).findtext("Content") == exact


# -- every reply type ----------------------------------------------------------------

values = nasty_text
article = st.tuples(values, values, values, values)


@given(values, values, values)
def test_text_image_voice_objects(content: str, media_id: str, to_user: str) -> None:
    text = reply_to(TextReply(content=content, source="ignored", target="ignored"), to_user)
    assert text.findtext("ToUserName") == readable(to_user)  # always back to the sender
    assert text.findtext("FromUserName") == GH_ID
    if len(readable(content).encode()) <= MAX_TEXT_BYTES:
        assert text.findtext("Content") == readable(content)
    for kind, tag in ((ImageReply, "Image"), (VoiceReply, "Voice")):
        if not readable(media_id):
            with pytest.raises(UnrenderableReply):
                render(kind(media_id=media_id), OPENID, GH_ID)
            continue
        root = reply_to(kind(media_id=media_id))
        assert root.findtext("MsgType") == tag.lower()
        assert root.findtext(f"{tag}/MediaId") == readable(media_id)


@given(values.filter(lambda value: readable(value) != ""), values, values)
def test_video_objects(media_id: str, title: str, description: str) -> None:
    root = reply_to(VideoReply(media_id=media_id, title=title, description=description))
    assert root.findtext("MsgType") == "video"
    fields = {child.tag: child.text or "" for child in root.find("Video")}
    assert fields == {
        "MediaId": readable(media_id),
        "Title": readable(title),
        "Description": readable(description),
    }


@given(values, values, values, st.none() | values, st.none() | values)
def test_music_objects_and_lists(
    title: str, description: str, url: str, hq_url: str | None, thumb: str | None
) -> None:
    extra = {"hq_url": hq_url} if hq_url is not None else {}
    extra.update({"thumb_media_id": thumb} if thumb is not None else {})
    music = reply_to(MusicReply(title=title, description=description, url=url, **extra))
    shorthand = [title, description, url] + ([hq_url] if hq_url is not None else [])
    for root in (music, reply_to(shorthand), reply_to(tuple(shorthand))):
        assert root.findtext("MsgType") == "music"
        assert root.findtext("Music/Title") == readable(title)
        assert root.findtext("Music/Description") == readable(description)
        assert root.findtext("Music/MusicUrl") == readable(url)
        assert root.findtext("Music/HQMusicUrl") == readable(hq_url or url)
    assert music.findtext("Music/ThumbMediaId") == (readable(thumb) if thumb else None)


@given(st.lists(article, min_size=1, max_size=12))
def test_articles_objects_and_lists(articles: list[tuple[str, str, str, str]]) -> None:
    reply = ArticlesReply()
    for item in articles[:10]:  # WeRoBot's own cap
        reply.add_article(Article(*item))
    lists = [list(item) for item in articles]
    for result, given_items in ((reply, articles[:10]), (lists, articles)):
        root = reply_to(result)
        assert root.findtext("MsgType") == "news"
        kept = given_items[:MAX_ARTICLES]
        assert root.findtext("ArticleCount") == str(len(kept))
        items = [[child.text or "" for child in item] for item in root.find("Articles")]
        assert items == [[readable(value) for value in item] for item in kept]
        tags = [child.tag for child in root.find("Articles/item")]
        assert tags == ["Title", "Description", "PicUrl", "Url"]


@given(values)
def test_transfer_to_customer_service(account: str) -> None:
    root = reply_to(TransferCustomerServiceReply(account=account))
    assert root.findtext("MsgType") == "transfer_customer_service"
    assert root.findtext("TransInfo/KfAccount") == (readable(account) if account else None)


class CustomReply(WeChatReply):
    TEMPLATE = "<xml><Content><![CDATA[{content}]]></Content></xml>"


@pytest.mark.parametrize(
    "result",
    [
        object(),
        {"content": "字典"},
        [1, 2],
        [["t", "d", "i", "u"], "not an article"],
        ImageReply(),
        VoiceReply(media_id="\x00\x01"),
        VideoReply(title="no media"),
        ArticlesReply(),
        TextReply(content=object()),
        "坏".encode("gbk"),
        CustomReply(content="its own template"),
    ],
    ids=lambda result: type(result).__name__,  # stable: xdist workers compare the ids
)
def test_what_cannot_be_rendered(result: object) -> None:
    with pytest.raises(ValueError):  # UnrenderableReply, or bytes that are not UTF-8
        render(result, OPENID, GH_ID)


# -- over HTTP: handlers registered on the running bot --------------------------------


def articles(count: int) -> list[list[str]]:
    return [[f"标题{n}]]>", f"描述{n}", f"https://img.example/{n}.jpg", f"https://a.example/{n}"]
            for n in range(count)]  # fmt: skip


def item(n: int) -> dict[str, str]:
    title, description, pic, url = articles(n + 1)[n]
    return {"Title": title, "Description": description, "PicUrl": pic, "Url": url}


CASES = [  # (push type, event, what the handler returns, what the follower is shown)
    ("image", None, lambda m: ImageReply(message=m, media_id="MEDIA]]>1"),
     {"MsgType": "image", "Image": {"MediaId": "MEDIA]]>1"}}),
    ("voice", None, lambda m: VoiceReply(media_id="VOICE_1"),
     {"MsgType": "voice", "Voice": {"MediaId": "VOICE_1"}}),
    ("video", None, lambda m: VideoReply(media_id="V1", title="片]]>名", description="简介"),
     {"MsgType": "video", "Video": {"MediaId": "V1", "Title": "片]]>名", "Description": "简介"}}),
    ("location", None, lambda m: ["晴天", "周杰伦", "https://music.example/a.mp3"],
     {"MsgType": "music", "Music": {"Title": "晴天", "Description": "周杰伦",
      "MusicUrl": "https://music.example/a.mp3", "HQMusicUrl": "https://music.example/a.mp3"}}),
    ("location", None, lambda m: ("晴天", "周杰伦", "http://lq.example", "http://hq.example"),
     {"MsgType": "music", "Music": {"Title": "晴天", "Description": "周杰伦",
      "MusicUrl": "http://lq.example", "HQMusicUrl": "http://hq.example"}}),
    ("link", None, lambda m: articles(3),  # answering a message: WeChat shows the first
     {"MsgType": "news", "ArticleCount": "3", "Articles": [item(0)]}),
    ("event", "CLICK", lambda m: articles(10),  # answering an event: up to 8
     {"MsgType": "news", "ArticleCount": "8", "Articles": [item(n) for n in range(8)]}),
    ("event", "SCAN", lambda m: Article(*articles(1)[0]),
     {"MsgType": "news", "ArticleCount": "1", "Articles": [item(0)]}),
    ("shortvideo", None, lambda m: TransferCustomerServiceReply(message=m, account="kf@gh"),
     {"MsgType": "transfer_customer_service", "TransInfo": {"KfAccount": "kf@gh"}}),
    ("shortvideo", None, lambda m: TransferCustomerServiceReply(message=m),
     {"MsgType": "transfer_customer_service"}),
    ("image", None, lambda m: TextReply(content="文本对象 ]]> 也行"),
     {"MsgType": "text", "Content": "文本对象 ]]> 也行"}),
    ("voice", None, lambda m: "字节也行\x00".encode(),
     {"MsgType": "text", "Content": "字节也行"}),
]  # fmt: skip


class Script:
    """One handler on the running bot for every push type these tests send, returning
    whatever `returns(message)` gives. The `bot` fixture builds a fresh bot (and robot)
    for each test, so no handler outlives its test."""

    KINDS = (
        "image",
        "voice",
        "video",
        "location",
        "link",
        "shortvideo",
        "click_event",
        "scan_event",
    )

    def __init__(self, robot) -> None:
        self.returns: Callable[[Any], object] = lambda message: None
        for kind in self.KINDS:
            robot.add_handler(lambda message: self.returns(message), type=kind)


@pytest.fixture
def script(bot) -> Script:
    return Script(bot.app.robot)


def test_every_reply_type_reaches_the_follower(sim, script):
    start = int(sim.clock.now()) - len(CASES)
    for n, (push_type, event, returns, shown) in enumerate(CASES):
        script.returns = returns  # events are told apart by CreateTime: one each
        answer = sim.push(sim.default_openid, push_type, event=event, create_time=start + n)
        assert answer["status"] == 200 and "error" not in answer, answer
        reply = answer["reply"]
        assert {key: reply[key] for key in shown} == shown, answer["raw"]
        assert reply["ToUserName"] == sim.default_openid and reply["FromUserName"] == sim.gh_id


def test_success_reply_is_no_reply(sim, script):
    script.returns = lambda message: SuccessReply()
    answer = sim.push(sim.default_openid, type="image")
    assert answer["status"] == 200 and answer["raw"] == "success"
    assert answer["reply"] is None and "error" not in answer


def assert_apology(sim, caplog) -> logging.LogRecord:
    """Push an image: the follower reads the apology; the one record logged, with its trace."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="wechat.dispatch"):
        answer = sim.push(sim.default_openid, type="image")
    assert answer["status"] == 200 and "error" not in answer
    assert answer["reply"]["MsgType"] == "text" and answer["reply"]["Content"] == APOLOGY
    [record] = [r for r in caplog.records if r.name == "wechat.dispatch"]
    assert record.exc_info is not None
    return record


def test_a_handler_that_raises_gets_the_apology(sim, script, caplog):
    def broken(message):
        raise RuntimeError("handler bug 42")

    script.returns = broken
    record = assert_apology(sim, caplog)
    assert "a handler failed on a message of type image" in record.getMessage()
    assert "handler bug 42" in caplog.text and "Traceback" in caplog.text


def test_what_cannot_be_rendered_gets_the_apology(sim, script, caplog):
    for result in (
        object(),
        {"content": "字典"},
        [1, 2],
        ImageReply(),
        ArticlesReply(),
        CustomReply(),
    ):
        script.returns = lambda message, result=result: result
        record = assert_apology(sim, caplog)
        assert "cannot be rendered" in record.getMessage()


def test_an_empty_result_falls_through_to_the_next_handler(sim, script):
    for empty in (None, "", [], b""):
        script.returns = lambda message, empty=empty: empty
        reply = sim.push(sim.default_openid, type="image")["reply"]
        assert reply["MsgType"] == "text" and "<a href=" in reply["Content"]  # the bot's help


def test_handlers_with_no_argument_or_a_session(sim, bot):
    def counter(message, session):
        session["seen"] = session.get("seen", 0) + 1
        return f"第{session['seen']}次"

    bot.app.robot.add_handler(counter, type="location")
    bot.app.robot.add_handler(lambda: "不需要参数", type="voice")
    other = sim.add_follower().openid
    shown = [sim.push(openid, type="location")["reply"]["Content"]
             for openid in (sim.default_openid, sim.default_openid, other)]  # fmt: skip
    assert shown == ["第1次", "第2次", "第1次"]
    assert sim.push(sim.default_openid, type="voice")["reply"]["Content"] == "不需要参数"


def test_nasty_content_over_http(sim, script):
    """Arbitrary handler output, real pushes: WeChat shows every reply, as cleaned."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(nasty_text.filter(lambda text: readable(text) != ""), values)
    def check(content: str, title: str) -> None:
        script.returns = lambda message: content
        reply = sim.push(sim.default_openid, type="link")["reply"]
        expected = readable(content)
        if len(expected.encode()) <= MAX_TEXT_BYTES:
            assert reply["Content"] == expected
        else:
            assert_cut_well(expected, reply["Content"])
        script.returns = lambda message: [[title, content, "http://img", "http://url"]]
        shown = sim.push(sim.default_openid, type="link")["reply"]["Articles"]
        assert shown == [{"Title": readable(title), "Description": expected,
                          "PicUrl": "http://img", "Url": "http://url"}]  # fmt: skip

    check()
