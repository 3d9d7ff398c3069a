"""The follower's whole journey over real HTTP: message → link → WeChat → callback → /me,
and what a follower may do on the way. Hostile inputs and WeChat's faults are named in
test_catalogue.py."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import Follower

pytestmark = pytest.mark.backends("sqlite", "postgresql")


def _userinfo_calls(sim) -> list:
    return [params for path, params in sim.calls if path == "/sns/userinfo"]


def _paths(sim) -> list[str]:
    return [path for path, _ in sim.calls]


def test_userinfo_journey_ends_on_my_nickname(sim, follower):
    nickname = sim.followers[follower.openid].nickname
    callback = follower.authorize()
    assert callback.status_code == 303
    assert callback.headers["Location"] == "/me"
    cookie = callback.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    me = follower.me()
    assert me.status_code == 200
    assert nickname in me.content.decode("utf-8")
    assert "昵称和头像" in me.text  # what was shared, in the follower's words


def test_base_journey_never_calls_userinfo(sim, start_bot):
    bot = start_bot(scope="snsapi_base")
    follower = Follower(sim, bot, sim.default_openid)
    link = follower.link()
    assert "scope=snsapi_base" in link
    assert follower.authorize().status_code == 303
    me = follower.me()
    assert me.status_code == 200
    assert "你好，微信用户" in me.text and "仅基本身份" in me.text
    assert _userinfo_calls(sim) == []
    assert "/sns/auth" in _paths(sim)  # the base grant is checked with sns/auth instead


def test_new_follower_with_generated_nickname(sim, bot):
    follower = Follower(sim, bot, "o6_bNewFollowerFromTheTests01")
    assert follower.authorize().status_code == 303
    assert sim.followers[follower.openid].nickname in follower.me().content.decode("utf-8")


def test_double_redirect_lands_on_me(sim, follower):
    location = follower.tap(follower.link())
    first = follower.open(location)
    follower.browser.cookies.clear()
    second = follower.open(location)  # WeChat's double redirect, a refresh, the back button
    assert first.status_code == second.status_code == 303
    assert second.headers["Location"] == "/me"
    assert "Set-Cookie" in second.headers
    assert follower.me().status_code == 200
    assert _paths(sim).count("/sns/oauth2/access_token") == 1


def test_concurrent_double_redirect_exchanges_once(sim, follower):
    location = follower.tap(follower.link())
    sim.fault("/sns/oauth2/access_token", "slow", seconds=1.0)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: follower.open(location), range(2)))
    assert [a.status_code for a in answers] == [303, 303]
    assert _paths(sim).count("/sns/oauth2/access_token") == 1


def test_refusal_explains_and_keeps_link_usable(sim, follower):
    link = follower.link()
    refused = follower.open(follower.tap(link, decision="deny"))
    assert refused.status_code == 400
    assert "取消了授权" in refused.text
    assert follower.open(follower.tap(link)).status_code == 303  # changed their mind


def test_reloading_after_wechat_failed_signs_in(sim, follower):
    location = follower.tap(follower.link())
    sim.fault("/sns/oauth2/access_token", "busy")  # every fault kind: test_catalogue.py
    assert follower.open(location).status_code == 502
    assert follower.open(location).status_code == 303  # a refresh after the outage


def test_me_without_cookie_offers_a_link(bot, follower):
    answer = follower.me()
    assert answer.status_code == 200
    assert "尚未授权" in answer.text
    assert "/connect/oauth2/authorize?appid=" in answer.text


def test_me_refreshes_an_expired_access_token_first(sim, follower):
    sim.access_token_ttl = 30  # already inside the bot's refresh margin
    assert follower.authorize().status_code == 303
    sim.calls.clear()
    me = follower.me()
    assert me.status_code == 200
    paths = _paths(sim)
    assert paths.index("/sns/oauth2/refresh_token") < paths.index("/sns/userinfo")


def test_simultaneous_visits_refresh_an_expired_token_once(sim, follower):
    sim.access_token_ttl = 30  # already inside the bot's refresh margin
    assert follower.authorize().status_code == 303
    sim.access_token_ttl = 7200  # the renewed token lasts
    sim.calls.clear()
    sim.fault("/sns/oauth2/refresh_token", "slow", seconds=1.0)  # the other visit comes meanwhile

    def visit(_) -> requests.Response:
        return requests.get(follower.bot.url + "/me", cookies=follower.browser.cookies, timeout=15)

    with ThreadPoolExecutor(2) as pool:
        pages = list(pool.map(visit, range(2)))
    nickname = sim.followers[follower.openid].nickname
    assert [nickname in page.content.decode("utf-8") for page in pages] == [True, True]
    assert _paths(sim).count("/sns/oauth2/refresh_token") == 1
    renewed = [params["access_token"] for path, params in sim.calls if path == "/sns/userinfo"]
    assert renewed == [follower.bot.app.store.get_follower(follower.openid).access_token] * 2


def test_me_recovers_from_a_token_revoked_early(sim, follower):
    assert follower.authorize().status_code == 303
    sim.expire_access_tokens(follower.openid)
    me = follower.me()
    assert me.status_code == 200
    assert sim.followers[follower.openid].nickname in me.content.decode("utf-8")
    assert "/sns/oauth2/refresh_token" in _paths(sim)


@pytest.mark.parametrize("how", ["expired", "invalidated"])
def test_dead_refresh_token_asks_to_authorize_again(sim, bot, follower, how):
    sim.access_token_ttl = 30
    assert follower.authorize().status_code == 303
    if how == "expired":
        sim.expire_refresh_tokens(follower.openid)
    else:
        sim.invalidate_tokens(follower.openid)
    me = follower.me()
    assert me.status_code == 200
    assert "授权已失效" in me.text
    assert "/connect/oauth2/authorize?appid=" in me.text
    assert bot.app.store.get_follower(follower.openid).needs_reauth
    # authorizing again clears it
    assert follower.authorize().status_code == 303
    assert sim.followers[follower.openid].nickname in follower.me().content.decode("utf-8")


def test_me_shows_stored_profile_when_wechat_is_down(sim, follower):
    assert follower.authorize().status_code == 303
    sim.fault("/sns/userinfo", "http_error")
    me = follower.me()
    assert me.status_code == 200
    assert "暂时无法连接微信" in me.text
    assert sim.followers[follower.openid].nickname in me.content.decode("utf-8")


def test_restart_in_the_middle_of_a_journey(sim, bot, follower):
    link = follower.link()
    bot.restart()  # the follower taps a link the previous process issued
    assert follower.open(follower.tap(link)).status_code == 303
    bot.restart()  # and comes back to a fresh process with their cookie
    me = follower.me()
    assert me.status_code == 200
    assert sim.followers[follower.openid].nickname in me.content.decode("utf-8")


def test_healthz(bot, follower):
    answer = follower.open(bot.url + "/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_nickname_markup_is_escaped_on_me(sim, bot):
    panda = next(f for f in sim.followers.values() if "<b>" in f.nickname)
    follower = Follower(sim, bot, panda.openid)
    assert follower.authorize().status_code == 303
    page = follower.me().content.decode("utf-8")
    assert "<b>熊猫</b>" not in page
    assert "&lt;b&gt;熊猫&lt;/b&gt;&amp;🐼" in page


def test_refreshed_token_is_kept_when_userinfo_then_fails(sim, bot, follower):
    sim.access_token_ttl = 30
    assert follower.authorize().status_code == 303
    before = bot.app.store.get_follower(follower.openid)
    sim.expire_access_tokens(follower.openid)  # so the refresh hands out a new token
    sim.fault("/sns/userinfo", "http_error")
    assert "暂时无法连接微信" in follower.me().text
    after = bot.app.store.get_follower(follower.openid)
    assert after.access_token != before.access_token
