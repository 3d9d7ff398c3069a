"""The simulator's JS-SDK side: `cgi-bin/ticket/getticket`, and the check its stand-in
for jweixin-1.6.0.js asks of a page's wx.config; over real HTTP."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest
import requests

from simulator import Simulator
from simulator.jssdk import signature
from tests.test_simulator import APP_ID, SECRET, TOKEN, VECTORS, body, errcode

PAGE = "http://127.0.0.1:8080/shop/order?id=42&from=menu"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(APP_ID, SECRET, TOKEN, bot_url="http://127.0.0.1:9/wechat") as running:
        yield running


def basic_token(sim: Simulator, force_refresh: bool = False) -> str:
    payload = {"grant_type": "client_credential", "appid": APP_ID, "secret": SECRET}
    payload["force_refresh"] = force_refresh
    answer = requests.post(sim.url + "/cgi-bin/stable_token", json=payload, timeout=5)
    return body(answer)["access_token"]


def getticket(sim: Simulator, token: str, kind: str = "jsapi") -> requests.Response:
    url = sim.url + "/cgi-bin/ticket/getticket"
    return requests.get(url, params={"access_token": token, "type": kind}, timeout=5)


def sign(ticket: str, nonce: str, timestamp: str, url: str) -> str:
    """The documented algorithm, written apart from the simulator's."""
    text = f"jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324


def wx_config(sim: Simulator, **fields: str) -> str:
    """What the stand-in's wx.config sends (a text/plain body), and the errMsg it gets."""
    answer = requests.post(
        sim.url + "/api/jssdk/config",
        data=json.dumps(fields),
        headers={"Content-Type": "text/plain", "Origin": "http://127.0.0.1:8080"},
        timeout=5,
    )
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    return answer.json()["errMsg"]


def config_for(ticket: str, url: str = PAGE, **overrides: str) -> dict[str, str]:
    fields = {"appId": APP_ID, "timestamp": "1714036504", "nonceStr": "Wm3WZYTPz0wzccnW"}
    fields.update(url=url, signature=sign(ticket, fields["nonceStr"], fields["timestamp"], url))
    return {**fields, **overrides}


def test_the_signature_matches_the_worked_example():
    case = VECTORS["jssdk"]
    assert (
        sign(case["jsapi_ticket"], case["noncestr"], case["timestamp"], case["url"])
        == (case["signature"])
    )
    assert (
        signature(case["jsapi_ticket"], case["noncestr"], case["timestamp"], case["url"])
        == (case["signature"])
    )


def test_a_ticket_is_the_same_for_every_caller_until_its_last_five_minutes(sim):
    token = basic_token(sim)
    first = getticket(sim, token)
    assert first.headers["Content-Type"] == "application/json; encoding=utf-8"
    ticket = body(first)
    assert ticket["errcode"] == 0 and ticket["errmsg"] == "ok"
    assert ticket["expires_in"] == 7200 and len(ticket["ticket"]) > 40
    sim.clock.advance(100)
    again = body(getticket(sim, token))
    assert again["ticket"] == ticket["ticket"] and 7090 < again["expires_in"] <= 7100
    sim.clock.advance(6850)  # under 5 minutes left: a new one; the old works until it ends
    token = basic_token(sim)  # the basic token was renewed by now as well
    renewed = body(getticket(sim, token))
    assert renewed["ticket"] != ticket["ticket"] and renewed["expires_in"] == 7200
    assert wx_config(sim, **config_for(ticket["ticket"])) == "config:ok"
    assert wx_config(sim, **config_for(renewed["ticket"])) == "config:ok"
    sim.clock.advance(300)
    assert "63002,invalid signature" in wx_config(sim, **config_for(ticket["ticket"]))
    assert wx_config(sim, **config_for(renewed["ticket"])) == "config:ok"


def test_getticket_errors(sim):
    token = basic_token(sim)
    assert errcode(getticket(sim, "")) == 41001
    assert errcode(getticket(sim, "not-a-token")) == 40001
    assert errcode(getticket(sim, token, kind="card")) == 40097
    basic_token(sim, force_refresh=True)  # someone else forced a new basic token
    assert errcode(getticket(sim, token)) == 40001
    sim.clock.advance(7200)
    assert errcode(getticket(sim, basic_token(sim))) == 0
    post = requests.post(sim.url + "/cgi-bin/ticket/getticket", timeout=5)
    assert errcode(post) == 43001


def test_wx_config_fails_as_wechat_reports_it(sim):
    ticket = body(getticket(sim, basic_token(sim)))["ticket"]
    assert wx_config(sim, **config_for(ticket)) == "config:ok"
    tampered = config_for(ticket, signature="0" * 40)
    assert wx_config(sim, **tampered).startswith(
        "config:fail,Error: 系统错误，错误码：63002,invalid signature ["
    )
    other_page = {**config_for(ticket), "url": PAGE + "&x=1"}  # signed for another URL
    assert "63002" in wx_config(sim, **other_page)
    outside = config_for(ticket, url="http://shop.example.com/order")
    assert "40048,invalid url domain" in wx_config(sim, **outside)
    sim.js_domains = ("127.0.0.1", "shop.example.com")
    assert wx_config(sim, **outside) == "config:ok"
    assert "40013,invalid appid" in wx_config(sim, **config_for(ticket, appId="wxother"))
    assert "63002" in wx_config(sim, **config_for("a ticket WeChat never issued"))


def test_the_js_sdk_stand_in_is_served_where_pages_load_it(sim):
    script = requests.get(sim.url + "/open/js/jweixin-1.6.0.js", timeout=5)
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "window.wx" in script.text
