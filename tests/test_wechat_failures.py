"""WeChat's API failing under a follower's pages, over real HTTP with the simulator's faults.

Every failure gives the 502 page (callback) or the stored profile marked offline
(/me), and leaves the stored follower exactly as it was. A busy WeChat (-1) is asked
again for refresh, userinfo and sns/auth, never for the code exchange (a code is
single use). However many calls a page makes, it answers within PAGE_DEADLINE.
"""

from __future__ import annotations

import time

import pytest

from oauth import PAGE_DEADLINE
from oauth.client import READ_TIMEOUT
from tests.conftest import Follower

EXCHANGE = "/sns/oauth2/access_token"
REFRESH = "/sns/oauth2/refresh_token"
USERINFO = "/sns/userinfo"
AUTH = "/sns/auth"
KINDS = ["busy", "http_error", "garbage", "html", "truncated", "reset", "slow"]
SLOW = READ_TIMEOUT + 1  # a `slow` fault longer than one call may wait
TRIES_WHEN_BUSY = 3
MARGIN = 1.0  # what a page may take beyond the deadline: our own work, not WeChat's


def calls(sim, path: str) -> int:
    return sim.calls.paths().count(path)


def signed_in(sim, start_bot, path: str) -> Follower:
    """A signed-in follower (of a bot of their own) whose next /me calls `path` first."""
    bot = start_bot(scope="snsapi_base" if path == AUTH else "snsapi_userinfo")
    if path == REFRESH:
        sim.access_token_ttl = 30  # inside the bot's refresh margin: /me refreshes first
    follower = Follower(sim, bot, sim.default_openid)
    assert follower.authorize().status_code == 303
    sim.calls.clear()
    return follower


@pytest.mark.parametrize("kind", KINDS)
def test_exchange_failure_is_502_asked_once_and_changes_nothing(sim, bot, follower, kind):
    assert follower.authorize().status_code == 303
    before = bot.app.store.get_follower(follower.openid)
    location = follower.tap(follower.link())
    sim.calls.clear()
    sim.fault(EXCHANGE, kind, times=TRIES_WHEN_BUSY, seconds=SLOW)
    answer = follower.open(location)
    assert answer.status_code == 502
    assert "微信暂时没有响应" in answer.text
    assert "Set-Cookie" not in answer.headers
    assert calls(sim, EXCHANGE) == 1
    assert bot.app.store.get_follower(follower.openid) == before


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", [REFRESH, USERINFO, AUTH])
def test_me_shows_the_stored_profile_when_a_call_fails(sim, start_bot, path, kind):
    follower = signed_in(sim, start_bot, path)
    store = follower.bot.app.store
    before = store.get_follower(follower.openid)
    sim.fault(path, kind, times=TRIES_WHEN_BUSY, seconds=SLOW)
    me = follower.me()
    assert me.status_code == 200
    assert "暂时无法连接微信" in me.text
    assert calls(sim, path) == (TRIES_WHEN_BUSY if kind == "busy" else 1)
    assert store.get_follower(follower.openid) == before


@pytest.mark.parametrize("path", [REFRESH, USERINFO, AUTH])
def test_busy_once_is_asked_again(sim, start_bot, path):
    follower = signed_in(sim, start_bot, path)
    sim.fault(path, "busy")
    me = follower.me()
    assert me.status_code == 200
    assert "暂时无法连接微信" not in me.text
    assert calls(sim, path) == 2


def test_reauthorizing_while_userinfo_fails_keeps_the_stored_profile(sim, bot, follower):
    assert follower.authorize().status_code == 303
    before = bot.app.store.get_follower(follower.openid)
    sim.expire_access_tokens(follower.openid)  # so the new authorization brings new tokens
    sim.fault(USERINFO, "http_error")
    assert follower.authorize().status_code == 303
    after = bot.app.store.get_follower(follower.openid)
    assert after.access_token != before.access_token
    assert (after.nickname, after.profile) == (before.nickname, before.profile)


def test_callback_answers_within_the_deadline(sim, bot, follower):
    location = follower.tap(follower.link())
    sim.fault(EXCHANGE, "slow", seconds=READ_TIMEOUT - 0.1)  # slow, yet in time for one call
    sim.fault(USERINFO, "slow", seconds=SLOW)
    started = time.monotonic()
    answer = follower.open(location)
    assert time.monotonic() - started < PAGE_DEADLINE + MARGIN
    assert answer.status_code == 303  # signed in with the tokens; /me fetches the profile
    stored = bot.app.store.get_follower(follower.openid)
    assert stored.access_token and stored.nickname is None


def test_me_answers_within_the_deadline_however_many_calls(sim, follower):
    assert follower.authorize().status_code == 303
    sim.expire_access_tokens(follower.openid)  # userinfo says 42001: refresh, then userinfo again
    each = READ_TIMEOUT - 0.5  # every call in time on its own, not all three together
    sim.fault(USERINFO, "slow", times=2, seconds=each)
    sim.fault(REFRESH, "slow", seconds=each)
    started = time.monotonic()
    me = follower.me()
    assert time.monotonic() - started < PAGE_DEADLINE + MARGIN
    assert me.status_code == 200
    assert "暂时无法连接微信" in me.text
