"""The message endpoint over real HTTP: signatures, limits, hostile XML, replies, retries."""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl, quote

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from oauth import StateSigner
from tests.conftest import ANCHOR, APP_ID, FAST, TOKEN
from wechat.replies import cdata, text_reply
from wechat.server import _query
from wechat.signature import sign

VECTORS = json.loads((Path(__file__).parent / "vectors" / "wechat-crypto.json").read_text("utf-8"))


def signed_query(token: str = TOKEN, timestamp: int | None = None, **extra: str) -> dict:
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = "1514711492"
    return {
        "signature": sign(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        **extra,
    }


def push(bot, body: bytes | str, **query: str) -> requests.Response:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return requests.post(bot.wechat_url, params=signed_query(**query), data=data, timeout=10)


def text_xml(
    content: str = "你好", msg_id: str = "1234567890123456", openid: str = "o6_bFollower"
) -> str:
    return (
        f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
        f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]>"
        f"</MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


@pytest.mark.parametrize("case", VECTORS["url_verification"])
def test_signature_matches_wechat_vectors(case):
    assert sign(case["token"], case["timestamp"], case["nonce"]) == case["signature"]


def test_url_verification_echoes(bot):
    answer = requests.get(bot.wechat_url, params=signed_query(echostr="5837397778"), timeout=5)
    assert answer.status_code == 200
    assert answer.text == "5837397778"
    assert answer.headers["Content-Type"].startswith("text/plain")


def test_text_gets_the_exact_authorize_anchor(sim, bot):
    reply = sim.push(sim.default_openid, type="text", content="你好")["reply"]
    assert reply["MsgType"] == "text"
    assert reply["ToUserName"] == sim.default_openid
    href, text = ANCHOR.search(reply["Content"]).groups()
    assert text == "单击这里体验OAuth授权"
    callback = quote(bot.url + "/oauth/callback", safe="")
    pattern = (
        re.escape(f"{sim.url}/connect/oauth2/authorize?appid={APP_ID}&redirect_uri={callback}")
        + r"&response_type=code&scope=snsapi_userinfo&state=[a-zA-Z0-9]{1,128}#wechat_redirect"
    )
    assert re.fullmatch(pattern, href), href


def test_every_link_has_a_fresh_state(sim, bot):
    links = {
        ANCHOR.search(
            sim.push(sim.default_openid, type="text", content="hi")["reply"]["Content"]
        ).group(1)
        for _ in range(3)
    }
    assert len(links) == 3


def _issue_one(signer: StateSigner, results) -> None:
    results.put(signer.issue())


def test_a_forked_worker_never_repeats_its_parents_states():
    """States take their randomness from a pool: a forked child must not inherit it."""
    signer = StateSigner(b"k" * 32, ttl=3600)
    signer.issue()  # the parent's pool is filled
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_issue_one, args=(signer, results))
    child.start()
    in_child = results.get(timeout=30)
    child.join(30)
    in_parent = signer.issue()
    assert in_child[8:32] != in_parent[8:32]  # the random part (after the issue time)


def test_subscribe_gets_welcome_with_link(sim, bot):
    reply = sim.push(sim.default_openid, type="event", event="subscribe")["reply"]
    assert "感谢关注" in reply["Content"]
    assert ANCHOR.search(reply["Content"])


def test_other_types_get_help_with_link(sim, bot):
    reply = sim.push(sim.default_openid, type="image")["reply"]
    assert "文字" in reply["Content"]
    assert ANCHOR.search(reply["Content"])


def test_unsubscribe_gets_no_reply(sim, bot):
    answer = sim.push(sim.default_openid, type="event", event="unsubscribe")
    assert answer["status"] == 200
    assert answer["reply"] is None


def test_retried_delivery_runs_handlers_once(sim, bot):
    first = sim.push(sim.default_openid, type="text", content="你好", msg_id="987654321012345678")
    retry = sim.push(sim.default_openid, type="text", content="你好", msg_id="987654321012345678")
    # a second run would have minted a new state, so an identical reply proves a single run
    assert first["reply"]["Content"] == retry["reply"]["Content"]


def test_retried_event_runs_handlers_once(sim, bot):
    created = str(int(time.time()))
    first = sim.push(sim.default_openid, type="event", event="subscribe", create_time=created)
    retry = sim.push(sim.default_openid, type="event", event="subscribe", create_time=created)
    assert first["reply"]["Content"] == retry["reply"]["Content"]


def test_dedupe_survives_a_restart(sim, start_bot):
    bot = start_bot(timings=FAST)  # the retry gives up on the lost answer in half a second
    first = sim.push(sim.default_openid, type="text", content="你好", msg_id="55555555555")
    bot.app.guard.flush()
    bot.restart()
    retry = sim.push(sim.default_openid, type="text", content="你好", msg_id="55555555555")
    assert first["reply"] is not None
    assert retry["status"] == 200
    assert retry["reply"] is None  # answered `success`: the handlers did not run again


def test_message_raw_is_the_body_as_werobot_sets_it(bot):
    seen = []
    bot.app.robot.add_handler(lambda message: seen.append(message.raw), type="image")
    body = text_xml().replace("<![CDATA[text]]>", "<![CDATA[image]]>")
    assert push(bot, body).status_code == 200
    assert seen == [body]


def test_refusals_are_plain_text_and_405_says_what_is_allowed(bot):
    answer = requests.put(bot.wechat_url, params=signed_query(), timeout=5)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, POST"
    assert answer.headers["Content-Type"].startswith("text/plain")


def test_cdata_splits_its_terminator():
    xml = text_reply("o6_b", "gh_x", "a]]>b<c>", now=1)
    from lxml import etree

    assert etree.fromstring(xml.encode()).findtext("Content") == "a]]>b<c>"
    assert cdata("]]>") == "<![CDATA[]]]]><![CDATA[>]]>"


def test_a_percent_encoded_query_is_unquoted(bot):
    query = signed_query()
    signature = query["signature"]
    spelled = f"%{ord(signature[0]):02x}{signature[1:]}"  # its first character as %XX
    raw = f"signature={spelled}&timestamp={query['timestamp']}&nonce={query['nonce']}"
    answer = requests.post(f"{bot.wechat_url}?{raw}", data=text_xml().encode(), timeout=5)
    assert answer.status_code == 200
    assert ANCHOR.search(answer.text)


@given(st.text(alphabet="ab=&%+2 \u4f60", max_size=40))
def test_the_query_is_read_as_parse_qsl_reads_it(text):
    assert _query(text) == dict(parse_qsl(text))
