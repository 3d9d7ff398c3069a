"""The simulator's custom menu (`cgi-bin/menu/create`, `cgi-bin/menu/get`) with WeChat's
limits and errcodes, and a follower tapping its buttons; over real HTTP, as any client
would call WeChat."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from simulator import Simulator
from tests.test_simulator import APP_ID, SECRET, TOKEN, EchoBot, body, errcode, fields_of

VIEW = {"type": "view", "name": "我的", "url": "https://bot.example.com/login?next=/me"}
CLICK = {"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(APP_ID, SECRET, TOKEN, bot_url="http://127.0.0.1:9/wechat") as running:
        yield running


@pytest.fixture
def token(sim: Simulator) -> str:
    payload = {"grant_type": "client_credential", "appid": APP_ID, "secret": SECRET}
    answer = requests.post(sim.url + "/cgi-bin/stable_token", json=payload, timeout=5)
    return body(answer)["access_token"]


def utf8_json(document: Any) -> bytes:
    """What WeChat wants: raw UTF-8, no `\\uXXXX` escapes."""
    return json.dumps(document, ensure_ascii=False).encode()


def create(sim: Simulator, token: str, menu: Any) -> requests.Response:
    data = menu if isinstance(menu, bytes) else utf8_json(menu)
    url = sim.url + "/cgi-bin/menu/create"
    return requests.post(url, params={"access_token": token}, data=data, timeout=5)


def get_menu(sim: Simulator, token: str) -> requests.Response:
    return requests.get(sim.url + "/cgi-bin/menu/get", params={"access_token": token}, timeout=5)


def leaf(name: str = "按钮", **fields: str) -> dict[str, str]:
    return {"type": "click", "name": name, "key": "K", **fields}


def test_a_menu_is_created_and_read_back_in_wechats_shape(sim, token):
    menu = {"button": [VIEW, {"name": "菜单", "sub_button": [CLICK, {**VIEW, "name": "搜索"}]}]}
    answer = create(sim, token, menu)
    assert body(answer) == {"errcode": 0, "errmsg": "ok"}
    assert answer.headers["Content-Type"] == "application/json; encoding=utf-8"
    shown = get_menu(sim, token)
    assert b"\\/" in shown.content  # slashes escaped, as WeChat sends them
    assert body(shown) == {
        "menu": {
            "button": [
                {**VIEW, "sub_button": []},
                {
                    "name": "菜单",
                    "sub_button": [
                        {**CLICK, "sub_button": []},
                        {**VIEW, "name": "搜索", "sub_button": []},
                    ],
                },
            ]
        }
    }


def test_a_new_menu_replaces_the_old_one(sim, token):
    create(sim, token, {"button": [CLICK]})
    assert errcode(create(sim, token, {"button": [VIEW]})) == 0
    assert body(get_menu(sim, token))["menu"]["button"] == [{**VIEW, "sub_button": []}]


def test_no_menu_is_46003(sim, token):
    assert errcode(get_menu(sim, token)) == 46003


def test_escaped_characters_are_refused_with_40033_as_wechat_does(sim, token):
    """`requests`' json= (and json.dumps by default) write 我 as \\u6211."""
    url = sim.url + "/cgi-bin/menu/create"
    escaped = requests.post(url, params={"access_token": token}, json={"button": [VIEW]}, timeout=5)
    assert errcode(escaped) == 40033
    assert "\\\\uxxxx" in escaped.content.decode()  # the errmsg as WeChat words it
    assert errcode(get_menu(sim, token)) == 46003


def test_the_access_token_is_checked_as_every_cgi_bin_api_checks_it(sim, token):
    assert errcode(create(sim, "", {"button": [VIEW]})) == 41001
    assert errcode(create(sim, "not-a-token", {"button": [VIEW]})) == 40001
    assert errcode(get_menu(sim, "not-a-token")) == 40001
    sim.clock.advance(7200)
    assert errcode(create(sim, token, {"button": [VIEW]})) == 42001
    wrong_method = requests.get(sim.url + "/cgi-bin/menu/create", timeout=5)
    assert errcode(wrong_method) == 43002


SUBS = [leaf(f"子{n}") for n in range(5)]


@pytest.mark.parametrize(
    ("menu", "expected"),
    [
        # sizes
        ({"button": [leaf("一"), leaf("二"), leaf("三")]}, 0),
        ({"button": [leaf("一"), leaf("二"), leaf("三"), leaf("四")]}, 40016),
        ({"button": []}, 40016),
        ({}, 40016),
        ({"button": [{"name": "菜单", "sub_button": SUBS}]}, 0),
        ({"button": [{"name": "菜单", "sub_button": [*SUBS, leaf("子5")]}]}, 40023),
        # names: 16 bytes at the top, 60 in a submenu (UTF-8: 3 bytes a Chinese character)
        ({"button": [leaf("一二三四五a")]}, 0),
        ({"button": [leaf("一二三四五ab")]}, 40018),
        ({"button": [leaf("")]}, 40018),
        ({"button": [{"type": "click", "key": "K"}]}, 40018),
        ({"button": [{"name": "菜", "sub_button": [leaf("字" * 20)]}]}, 0),
        ({"button": [{"name": "菜", "sub_button": [leaf("字" * 20 + "a")]}]}, 40025),
        ({"button": [{"name": "一二三四五六", "sub_button": SUBS}]}, 40018),
        # types
        ({"button": [leaf(type="dance")]}, 40017),
        ({"button": [{"name": "空"}]}, 40017),
        ({"button": [{"name": "菜", "sub_button": [leaf(type="dance")]}]}, 40024),
        (
            {"button": [{"name": "菜", "sub_button": [{"name": "子", "sub_button": [leaf()]}]}]},
            40024,
        ),
        # keys: at most 128 bytes
        ({"button": [leaf(key="k" * 128)]}, 0),
        ({"button": [leaf(key="k" * 129)]}, 40019),
        ({"button": [{"type": "click", "name": "无"}]}, 40019),
        ({"button": [{"name": "菜", "sub_button": [leaf(key="k" * 129)]}]}, 40026),
        # URLs: at most 1024 bytes, http(s)
        ({"button": [{**VIEW, "url": "https://a.example/" + "x" * 1006}]}, 0),
        ({"button": [{**VIEW, "url": "https://a.example/" + "x" * 1007}]}, 40020),
        ({"button": [{"type": "view", "name": "无"}]}, 40020),
        (
            {
                "button": [
                    {"name": "菜", "sub_button": [{**VIEW, "url": "https://a/" + "x" * 1015}]}
                ]
            },
            40027,
        ),
        ({"button": [{**VIEW, "url": "javascript:alert(1)"}]}, 40055),
        ({"button": [{"name": "菜", "sub_button": [{**VIEW, "url": "ftp://a.example/"}]}]}, 40054),
        # other types' own fields
        ({"button": [{"type": "media_id", "name": "图文", "media_id": "MEDIA"}]}, 0),
        ({"button": [{"type": "media_id", "name": "图文"}]}, 40097),
        (
            {"button": [{"type": "miniprogram", "name": "小程序", "url": "https://a.example/"}]},
            40097,
        ),
        # not a menu at all
        (b"{", 47001),
        (b"\xff\xfe", 47001),
        ({"button": ["我的"]}, 47001),
    ],
)
def test_wechats_limits(sim, token, menu, expected):
    assert errcode(create(sim, token, menu)) == expected
    assert (errcode(get_menu(sim, token)) == 46003) == (expected != 0)


def test_a_tap_pushes_the_event_wechat_sends():
    bot = EchoBot()
    try:
        with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url) as sim:
            menu = {"button": [VIEW, {"name": "菜单", "sub_button": [CLICK]}]}
            sim.menu.create(utf8_json(menu))
            viewed = sim.tap_menu(sim.default_openid, 0)
            clicked = requests.post(
                sim.url + "/api/menu/tap",
                json={"openid": sim.default_openid, "button": [1, 0]},
                timeout=10,
            ).json()
            for wrong in ([1], [2], [1, 1], ["x"], [0, 0, 0]):
                tap = {"openid": sim.default_openid, "button": wrong}
                answer = requests.post(sim.url + "/api/menu/tap", json=tap, timeout=10)
                assert answer.status_code == 400, wrong
            shown = requests.get(sim.url + "/api/menu", timeout=5).json()
    finally:
        bot.stop()
    assert viewed["url"] == VIEW["url"] and viewed["status"] == 200
    assert clicked["url"] is None and clicked["status"] == 200
    view, click = (fields_of(raw) for _, raw in bot.received)
    assert view["MsgType"] == "event" and view["Event"] == "VIEW"
    assert view["EventKey"] == VIEW["url"] and view["FromUserName"] == sim.default_openid
    assert click["Event"] == "CLICK" and click["EventKey"] == CLICK["key"]
    assert shown == menu
