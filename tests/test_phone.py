"""The simulator's phone page and the avatars it serves, over real HTTP.

The page's behaviour in a browser is driven by the browser tests; here: what it is
made of (static files, no outside asset), what its script reads (/api/account,
/api/followers, /api/follower) and the avatars every page shows offline."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
import requests
from lxml import etree

from simulator import Simulator
from simulator.avatars import SIZES
from tests.conftest import AES_KEY

STATIC_TYPES = {
    "phone.css": "text/css",
    "phone.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
    "wechat.css": "text/css",
}
SVG_NAMESPACE = b"http://www.w3.org/2000/svg"  # a name, never fetched
# What the browser tests select the page's parts by.
TEST_IDS = (
    "title-bar", "account-name", "follower-picker", "follower-avatar", "new-follower-button",
    "unsubscribe-button", "subscribe-button", "mode-switch", "mode-note", "chat-log",
    "composer-input", "send-button", "account-menu", "new-follower-dialog",
    "new-follower-nickname", "create-follower-button",
)  # fmt: skip


def get(sim: Simulator, path: str) -> requests.Response:
    return requests.get(sim.url + path, timeout=5)


def post(sim: Simulator, path: str, **payload: object) -> requests.Response:
    return requests.post(sim.url + path, json=payload, timeout=5)


def test_the_phone_page_is_static_files_of_the_simulator_and_nothing_from_outside(sim):
    page = get(sim, "/phone")
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    html = page.content.decode("utf-8")
    linked = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert {"/static/phone.css", "/static/phone.js", "/static/favicon.svg"} <= set(linked)
    for name, content_type in STATIC_TYPES.items():
        asset = get(sim, "/static/" + name)
        assert asset.status_code == 200 and asset.headers["Content-Type"].startswith(content_type)
        outside = re.findall(rb"https?://[^\s\"')]+", asset.content)
        assert set(outside) <= {SVG_NAMESPACE}, f"{name} reaches outside: {outside}"
    assert all(url.startswith("/") for url in linked), "an asset from outside"
    assert "<style" not in html and "<script>" not in html  # styles and script are files


def test_the_page_names_its_parts_for_the_browser_tests(sim):
    html = get(sim, "/phone").content.decode("utf-8")
    for test_id in TEST_IDS:
        assert f'data-testid="{test_id}"' in html, test_id
    script = get(sim, "/static/phone.js").content.decode("utf-8")
    for test_id in ("message-bubble", "message-avatar", "system-message", "message-time"):
        assert f'"{test_id}"' in script, test_id


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/avatar.svg.tmpl",
        "/static/consent.html.tmpl",
        "/static/nope.css",
        "/static/",
        "/mmopen/",
    ],
)
def test_only_the_served_files_are_served(sim, path):
    assert get(sim, path).status_code == 404


def test_the_account_offers_plaintext_only_without_an_aes_key(sim):
    account = get(sim, "/api/account").json()
    assert account["modes"] == ["plain"]
    assert account["name"] == sim.account_name and account["gh_id"] == sim.gh_id
    assert get(sim, account["headimgurl"][len(sim.url) :]).status_code == 200


def test_the_account_offers_every_mode_with_an_aes_key(make_sim):
    sim = make_sim(aes_key=AES_KEY, account_name="测试号😀")
    account = get(sim, "/api/account").json()
    assert account["modes"] == ["safe", "compatible", "plain"]
    assert account["name"] == "测试号😀"


def test_every_follower_has_an_avatar_served_here_at_wechats_sizes(sim):
    followers = get(sim, "/api/followers").json()["followers"]
    assert {f["openid"] for f in followers} == set(sim.followers)
    seen = set()
    for follower in followers:
        url = follower["headimgurl"]
        assert url.startswith(sim.url + "/mmopen/vi_32/") and url.endswith("/132")
        assert follower["openid"] not in url  # like WeChat's, it does not give the openid away
        seen.add(url)
        for size, pixels in SIZES.items():
            avatar = requests.get(url.removesuffix("132") + size, timeout=5)
            assert avatar.status_code == 200
            assert avatar.headers["Content-Type"] == "image/svg+xml"
            svg = etree.fromstring(avatar.content)  # well-formed, whatever the nickname
            assert svg.get("width") == svg.get("height") == str(pixels)
    assert len(seen) == len(followers)


def test_an_avatar_shows_the_first_character_of_the_name_escaped(sim):
    panda = next(f for f in sim.followers.values() if "<b>" in f.nickname)
    svg = requests.get(sim.avatar_url(panda), timeout=5).content.decode("utf-8")
    assert ">熊</text>" in svg and "<b>" not in svg
    again = requests.get(sim.avatar_url(panda), timeout=5).content.decode("utf-8")
    assert again == svg  # the same every time


@pytest.mark.parametrize("size", ["640", "120", "abc"])
def test_an_avatar_at_a_size_wechat_does_not_have_is_not_found(sim, size):
    url = sim.avatar_url(sim.followers[sim.default_openid])
    assert requests.get(url.removesuffix("132") + size, timeout=5).status_code == 404


def test_an_unknown_avatar_is_not_found(sim):
    assert get(sim, "/mmopen/vi_32/" + "0" * 40 + "/132").status_code == 404


def test_userinfo_hands_out_the_avatar_served_here(sim, follower):
    assert follower.authorize().status_code == 303
    me = follower.me().content.decode("utf-8")
    avatar = sim.avatar_url(sim.followers[follower.openid])
    assert f'src="{avatar}"' in me
    assert requests.get(avatar, timeout=5).status_code == 200


def test_a_follower_made_on_the_phone_follows_only_once_subscribed(sim, bot):
    created = post(sim, "/api/follower", nickname="  新来的🐣  ", subscribed=False)
    assert created.status_code == 200
    newcomer = created.json()
    assert newcomer["nickname"] == "新来的🐣" and newcomer["subscribed"] is False
    assert created.cookies["sim_openid"] == newcomer["openid"]
    welcome = post(sim, "/api/push", openid=newcomer["openid"], type="event", event="subscribe")
    assert "<a href=" in welcome.json()["reply"]["Content"]
    assert sim.followers[newcomer["openid"]].subscribed is True
    post(sim, "/api/push", openid=newcomer["openid"], type="event", event="unsubscribe")
    listed = get(sim, "/api/followers").json()["followers"]
    assert next(f for f in listed if f["openid"] == newcomer["openid"])["subscribed"] is False


def test_fixture_followers_follow_from_the_start(sim):
    assert all(f["subscribed"] for f in get(sim, "/api/followers").json()["followers"])


@pytest.mark.parametrize("payload", [{"nickname": 42}, {"subscribed": "no"}])
def test_a_bad_new_follower_is_a_readable_400(sim, payload):
    answer = post(sim, "/api/follower", **payload)
    assert answer.status_code == 400 and answer.json()["error"]


def test_the_page_links_resolve_on_the_simulator(sim):
    html = get(sim, "/phone").content.decode("utf-8")
    for url in re.findall(r'(?:href|src)="([^"]+)"', html):
        assert requests.get(urljoin(sim.url + "/phone", url), timeout=5).status_code == 200


def test_wechats_consent_page_shows_the_account_and_the_follower_with_their_avatars(sim):
    link = (
        f"{sim.url}/connect/oauth2/authorize?appid={sim.app_id}"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8888%2Foauth%2Fcallback"
        "&response_type=code&scope=snsapi_userinfo&state=s#wechat_redirect"
    )
    html = sim.authorize(link).html
    follower = sim.followers[sim.default_openid]
    assert sim.account_name in html and follower.nickname in html
    assert f'src="{sim.avatar_url()}"' in html and f'src="{sim.avatar_url(follower)}"' in html
    assert "<style" not in html and 'href="/static/wechat.css"' in html
    assert get(sim, "/static/wechat.css").headers["Content-Type"].startswith("text/css")


def test_an_error_page_without_an_errcode_shows_none(sim):
    confirm = requests.post(
        sim.url + "/connect/oauth2/authorize/confirm", data={"ticket": "gone"}, timeout=5
    )
    html = confirm.content.decode("utf-8")
    assert "授权页面已失效" in html and '<p class="code" hidden>' in html


def test_avatar_urls_still_work_while_wechat_stops(make_sim):
    """A userinfo answer still in flight when stop() runs names the avatar (it raised)."""
    sim = make_sim()
    address = sim.url
    sim.stop()
    follower = sim.followers[sim.default_openid]
    assert sim.avatar_url(follower).startswith(address + "/mmopen/vi_32/")
