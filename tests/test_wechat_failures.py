"""WeChat's API failing under a follower's pages, over real HTTP with the simulator's faults.

Every fault kind on every sns call is named in test_catalogue.py (section 9), with the
page it gives and the stored follower left as it was. Here: a busy WeChat (-1) that
answers on the second try is not noticed, and however many calls a page makes, it
answers within its deadline. The bots here wait on WeChat on the tests' scaled-down
timings (conftest.FAST): the same deadline and timeouts, a fraction as long.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import FAST, Follower

EXCHANGE = "/sns/oauth2/access_token"
REFRESH = "/sns/oauth2/refresh_token"
USERINFO = "/sns/userinfo"
AUTH = "/sns/auth"
READ_TIMEOUT = FAST.read_timeout
PAGE_DEADLINE = FAST.page_deadline
SLOW = READ_TIMEOUT * 1.5  # a `slow` fault longer than one call may wait
MARGIN = 1.0  # what a page may take beyond the deadline: our own work, not WeChat's


def calls(sim, path: str) -> int:
    return sim.calls.paths().count(path)


def signed_in(sim, start_bot, path: str) -> Follower:
    """A signed-in follower (of a bot of their own) whose next /me calls `path` first."""
    bot = start_bot(scope="snsapi_base" if path == AUTH else "snsapi_userinfo", timings=FAST)
    if path == REFRESH:
        sim.access_token_ttl = 30  # inside the bot's refresh margin: /me refreshes first
    follower = Follower(sim, bot, sim.default_openid)
    assert follower.authorize().status_code == 303
    sim.calls.clear()
    return follower


@pytest.mark.parametrize("path", [REFRESH, USERINFO, AUTH])
def test_busy_once_is_asked_again(sim, start_bot, path):
    follower = signed_in(sim, start_bot, path)
    sim.fault(path, "busy")
    me = follower.me()
    assert me.status_code == 200
    assert "暂时无法连接微信" not in me.text
    assert calls(sim, path) == 2


@pytest.fixture
def bot(start_bot):
    return start_bot(timings=FAST)


def test_callback_answers_within_the_deadline(sim, bot, follower):
    location = follower.tap(follower.link())
    sim.fault(EXCHANGE, "slow", seconds=READ_TIMEOUT * 0.7)  # slow, yet in time for one call
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
    each = READ_TIMEOUT * 0.8  # every call in time on its own, not all three together
    sim.fault(USERINFO, "slow", times=2, seconds=each)
    sim.fault(REFRESH, "slow", seconds=each)
    started = time.monotonic()
    me = follower.me()
    assert time.monotonic() - started < PAGE_DEADLINE + MARGIN
    assert me.status_code == 200
    assert "暂时无法连接微信" in me.text
