"""WeChat's snapshot page (快照页), played by the simulator: the grant names a virtual
account (`is_snapshotuser: 1`). The bot neither stores it nor signs anyone in with
it; the follower is asked, in plain words, to tap 「使用完整服务」, after which the
same link signs them in as themselves and goes where it was going."""

from __future__ import annotations

import pytest
import requests

import routes
from simulator.followers import virtual_openid

pytestmark = pytest.mark.backends("sqlite", "postgresql")
ASKED = "使用完整服务"
NO_FOLLOW = {"allow_redirects": False, "timeout": 15}


def snapshot_answer_is_a_page_and_nothing_more(bot, answer: requests.Response, openid: str):
    assert answer.status_code == 200
    assert ASKED in answer.text
    for word in ("OpenID", "openid", "scope", "snsapi", "token", "快照"):
        assert word not in answer.text
    assert "Set-Cookie" not in answer.headers and "Location" not in answer.headers
    assert bot.app.store.get_follower(openid) is None
    assert bot.app.store.get_follower(virtual_openid(openid)) is None


def test_a_snapshot_grant_is_a_page_then_the_full_service_signs_in(sim, follower):
    sim.snapshot_mode(follower.openid)
    link = follower.link()
    answer = follower.open(follower.tap(link))
    snapshot_answer_is_a_page_and_nothing_more(follower.bot, answer, follower.openid)
    assert "/sns/userinfo" not in sim.calls.paths()
    assert follower.open(follower.bot.url + routes.AUTH).status_code == 401
    sim.snapshot_mode(follower.openid, on=False)  # the follower taps 「使用完整服务」
    landed = follower.open(follower.tap(link))  # WeChat opens the same link for real
    assert landed.status_code == 303 and landed.headers["Location"] == routes.ME
    signed_in = follower.open(follower.bot.url + routes.AUTH)
    assert signed_in.headers["X-WeChat-OpenID"] == follower.openid


def test_a_snapshot_on_the_way_to_a_page_still_ends_there(sim, bot):
    browser = requests.Session()
    start = browser.get(bot.url + routes.LOGIN, params={"next": "/orders"}, **NO_FOLLOW)
    openid = sim.default_openid
    sim.snapshot_mode(openid)
    callback = sim.authorize(start.headers["Location"], openid=openid).location
    snapshot_answer_is_a_page_and_nothing_more(bot, browser.get(callback, **NO_FOLLOW), openid)
    sim.snapshot_mode(openid, on=False)
    callback = sim.authorize(start.headers["Location"], openid=openid).location
    landed = browser.get(callback, **NO_FOLLOW)
    assert landed.status_code == 303 and landed.headers["Location"] == "/orders"


def test_a_snapshot_leaves_an_earlier_sign_in_as_it_was(sim, follower):
    assert follower.authorize().status_code == 303
    before = follower.bot.app.store.get_follower(follower.openid)
    sim.snapshot_mode(follower.openid)
    answer = follower.open(follower.tap(follower.link()))
    assert answer.status_code == 200 and ASKED in answer.text
    assert "Set-Cookie" not in answer.headers
    assert follower.bot.app.store.get_follower(follower.openid) == before
    signed_in = follower.open(follower.bot.url + routes.AUTH)
    assert signed_in.headers["X-WeChat-OpenID"] == follower.openid
