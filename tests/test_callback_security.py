"""The callback's grace is bound to its client, over real HTTP.

The same code+state again lands on /me for the browser that sent it first (a
refresh, the back button, WeChat's double redirect) or one already signed in as
that follower; from any other client it is a used link. A signed-in follower who
taps an old link from the chat lands on /me when WeChat's fresh code names them.
Replays by other clients, forged states and cookies are named in test_catalogue.py.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import update

from oauth import StateSigner, derive_key
from oauth.sign_in import REPLAY_GRACE
from oauth.urls import authorize_url
from storage.schema import oauth_states
from tests.conftest import APP_ID, APP_SECRET

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


def stranger() -> requests.Session:
    """Another client: its own cookies, another User-Agent."""
    session = requests.Session()
    session.headers["User-Agent"] = STRANGER_AGENT
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


# -- every page the follower's browser may keep or pass on --------------------------------


def test_every_page_says_no_store_and_no_referrer(sim, bot, follower):
    """The pages of a journey; the answers to hostile requests: test_catalogue.py."""
    pages = [follower.me()]  # not signed in
    location = follower.tap(follower.link())
    pages.append(follower.open(location))  # 303 to /me
    pages.append(follower.me())  # the profile
    sim.fault(EXCHANGE, "busy")
    pages.append(stranger().get(follower.tap(follower.link()), timeout=15))  # 502
    pages.append(follower.open(bot.url + "/healthz"))
    assert [page.status_code for page in pages] == [200, 303, 200, 502, 200]
    for page in pages:
        assert page.headers.get("Cache-Control") == "no-store", page.url
        assert page.headers.get("Referrer-Policy") == "no-referrer", page.url
