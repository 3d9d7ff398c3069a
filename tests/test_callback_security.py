"""The callback's grace is bound to its client, over real HTTP.

The same code+state again lands on /me for the browser that sent it first (a
refresh, the back button, WeChat's double redirect) or one already signed in as
that follower; from any other client it is a used link. A signed-in follower who
taps an old link from the chat lands on /me when WeChat's fresh code names them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import update

from oauth import StateSigner, derive_key
from oauth.sign_in import REPLAY_GRACE
from oauth.urls import authorize_url
from storage.schema import oauth_states
from tests.conftest import APP_ID, APP_SECRET, Follower

EXCHANGE = "/sns/oauth2/access_token"
ELSEWHERE = "127.0.0.2"  # another address on loopback: a client on another network
STRANGER_AGENT = "Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile Safari/537.36"


class FromAddress(HTTPAdapter):
    """Connects from another local address, so the bot sees another REMOTE_ADDR."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def move_to(session: requests.Session, address: str) -> None:
    session.mount("http://", FromAddress(address))


def stranger(user_agent: str | None = STRANGER_AGENT, address: str | None = None):
    """Another client: its own cookies, and another User-Agent and/or address."""
    session = requests.Session()
    if user_agent:
        session.headers["User-Agent"] = user_agent
    if address:
        move_to(session, address)
    return session


def exchanges(sim) -> int:
    return sim.calls.paths().count(EXCHANGE)


def end_grace(bot) -> None:
    """Let the grace of every completed state pass."""
    with bot.app.store.engine.begin() as conn:
        conn.execute(
            update(oauth_states).values(completed_at=oauth_states.c.completed_at - REPLAY_GRACE - 1)
        )


def refused_as_used(answer: requests.Response) -> None:
    assert answer.status_code == 400
    assert "已经用过" in answer.text
    assert "/connect/oauth2/authorize?appid=" in answer.text  # a fresh link
    assert "Set-Cookie" not in answer.headers


# -- replay of a completed callback URL -------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "address"),
    [(STRANGER_AGENT, None), (None, ELSEWHERE), (STRANGER_AGENT, ELSEWHERE)],
    ids=["another-agent", "another-address", "both"],
)
def test_replay_from_another_client_does_not_sign_it_in(bot, follower, user_agent, address):
    location = follower.tap(follower.link())
    assert follower.open(location).status_code == 303
    other = stranger(user_agent, address)
    refused_as_used(other.get(location, allow_redirects=False, timeout=15))
    me = other.get(bot.url + "/me", timeout=15)
    assert "尚未授权" in me.text


def test_replay_by_a_client_signed_in_as_someone_else_is_refused(sim, bot, follower):
    location = follower.tap(follower.link())
    assert follower.open(location).status_code == 303
    other_openid = next(openid for openid in sim.followers if openid != follower.openid)
    other = Follower(sim, bot, other_openid)
    other.browser.headers["User-Agent"] = STRANGER_AGENT
    assert other.authorize().status_code == 303
    refused_as_used(other.open(location))
    assert sim.followers[other_openid].nickname in other.me().content.decode("utf-8")


def test_refresh_and_back_in_the_same_browser_land_on_me(sim, follower):
    location = follower.tap(follower.link())
    assert follower.open(location).status_code == 303
    assert follower.open(location).status_code == 303  # refresh, signed in
    follower.browser.cookies.clear()
    again = follower.open(location)  # same User-Agent and address, no cookie yet
    assert again.status_code == 303
    assert "Set-Cookie" in again.headers
    assert exchanges(sim) == 1


def test_signed_in_follower_on_another_network_lands_on_me(sim, follower):
    location = follower.tap(follower.link())
    assert follower.open(location).status_code == 303
    move_to(follower.browser, ELSEWHERE)  # Wi-Fi to mobile data, cookie kept
    assert follower.open(location).status_code == 303
    assert follower.me().status_code == 200
    assert exchanges(sim) == 1


def test_a_stranger_during_the_double_redirect_is_refused(sim, follower):
    location = follower.tap(follower.link())
    sim.fault(EXCHANGE, "slow", seconds=1.0)
    with ThreadPoolExecutor(2) as pool:
        mine = [pool.submit(follower.open, location) for _ in range(2)]
        while exchanges(sim) == 0:  # the first request is talking to WeChat
            time.sleep(0.01)
        refused_as_used(stranger().get(location, allow_redirects=False, timeout=15))
        assert [m.result().status_code for m in mine] == [303, 303]
    assert exchanges(sim) == 1


# -- a signed-in follower taps an old link from the chat --------------------------------


def test_tapping_a_used_link_again_lands_on_me(sim, follower):
    link = follower.link()
    assert follower.open(follower.tap(link)).status_code == 303
    again = follower.open(follower.tap(link))  # the same link, a fresh code, within the grace
    assert again.status_code == 303
    assert again.headers["Location"] == "/me"


def test_tapping_an_old_used_link_lands_on_me_with_fresh_tokens(sim, bot, follower):
    link = follower.link()
    assert follower.open(follower.tap(link)).status_code == 303
    before = bot.app.store.get_follower(follower.openid)
    end_grace(bot)
    location = follower.tap(link)
    answer = follower.open(location)
    assert answer.status_code == 303
    assert exchanges(sim) == 2  # the fresh code was exchanged: it names this follower
    assert bot.app.store.get_follower(follower.openid).access_token != before.access_token
    assert follower.open(location).status_code == 303  # and a refresh lands on /me too
    assert exchanges(sim) == 2
    assert sim.followers[follower.openid].nickname in follower.me().content.decode("utf-8")


def test_old_link_double_redirect_exchanges_once(sim, bot, follower):
    link = follower.link()
    assert follower.open(follower.tap(link)).status_code == 303
    end_grace(bot)
    location = follower.tap(link)
    sim.fault(EXCHANGE, "slow", seconds=1.0)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: follower.open(location), range(2)))
    assert [a.status_code for a in answers] == [303, 303]
    assert exchanges(sim) == 2


def expired_link(sim, bot) -> str:
    """A link the bot minted more than `state_ttl` ago."""
    state = StateSigner(derive_key(APP_SECRET, "state"), ttl=3600).issue(now=time.time() - 3601)
    return authorize_url(sim.url, APP_ID, bot.url + "/oauth/callback", "snsapi_userinfo", state)


def test_tapping_an_expired_link_lands_on_me_when_signed_in(sim, bot, follower):
    assert follower.authorize().status_code == 303
    location = follower.tap(expired_link(sim, bot))
    answer = follower.open(location)
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/me"
    follower.browser.cookies.clear()
    late = follower.open(follower.tap(expired_link(sim, bot)))
    assert late.status_code == 400
    assert "过期" in late.text


def test_old_link_tapped_by_another_follower_signs_nobody_in(sim, bot, follower):
    link = follower.link()
    assert follower.open(follower.tap(link)).status_code == 303
    end_grace(bot)
    newcomer = sim.add_follower().openid  # holds the phone now; the cookie still names the first
    location = sim.authorize(link, openid=newcomer).location
    refused_as_used(follower.open(location))
    assert bot.app.store.get_follower(newcomer) is None
    assert sim.followers[follower.openid].nickname in follower.me().content.decode("utf-8")
    refused_as_used(follower.open(location))  # again: the code is spent, still refused


def test_forged_state_is_refused_even_when_signed_in(sim, bot, follower):
    assert follower.authorize().status_code == 303
    answer = follower.open(f"{bot.url}/oauth/callback?code=abc&state={'0' * 64}")
    assert answer.status_code == 400
    assert "无法识别" in answer.text
    assert "Set-Cookie" not in answer.headers


# -- every page the follower's browser may keep or pass on --------------------------------


def test_every_page_says_no_store_and_no_referrer(sim, bot, follower):
    pages = [follower.me()]  # not signed in
    location = follower.tap(follower.link())
    pages.append(follower.open(location))  # 303 to /me
    pages.append(follower.me())  # the profile
    pages.append(stranger().get(location, allow_redirects=False, timeout=15))  # 400
    pages.append(follower.open(f"{bot.url}/oauth/callback?code=abc&state={'0' * 64}"))  # forged
    sim.fault(EXCHANGE, "busy")
    pages.append(stranger().get(follower.tap(follower.link()), timeout=15))  # 502
    pages.append(follower.open(bot.url + "/healthz"))
    pages.append(follower.open(bot.url + "/nope"))  # 404
    pages.append(follower.browser.post(bot.url + "/me", timeout=15))  # 405
    pages.append(follower.open(bot.url + "/me/%ff%fe"))  # a path that is not UTF-8
    statuses = [page.status_code for page in pages]
    assert statuses == [200, 303, 200, 400, 400, 502, 200, 404, 405, 404]
    for page in pages:
        assert page.headers.get("Cache-Control") == "no-store", page.url
        assert page.headers.get("Referrer-Policy") == "no-referrer", page.url
