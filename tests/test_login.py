"""/login?next=, the callback's return to `next`, /logout and /auth, over real HTTP
against the bot and the simulator.

The destination rides on the state (stored under it, covered by its HMAC), so the
journey works when WeChat's browser drops every cookie on the way; and no response
of the bot ever sends a browser to a host other than public_url's, oauth.return_hosts
or WeChat's authorize page, whatever `next` (or a stored destination) says.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import pytest
import requests
from sqlalchemy import delete, event, func, select, update

import routes
from oauth import derive_key
from oauth.urls import BASE, USERINFO, authorize_url
from simulator import Simulator
from storage.schema import sign_in_destinations
from tests.conftest import APP_ID, APP_SECRET, BotServer, launch_bot, new_simulator
from web.cookies import NAME as COOKIE
from web.cookies import CookieSigner, Identity

RETURN_HOST = "shop.example.com"
BAD_LINK = "链接地址有误"
WITH_UNIONID = "o6_bmasdasdsad6_2sgVt7hMZOPf"  # 张三🎉, a fixture follower with a unionid


@pytest.fixture
def bot(start_bot):
    return start_bot(BOT_OAUTH_RETURN_HOSTS=RETURN_HOST)


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Iterator[tuple[Simulator, BotServer]]:
    """WeChat and a bot for the tests run once per destination: each case signs in
    afresh in a browser of its own and changes nothing another case reads."""
    home = tmp_path_factory.mktemp("login")
    sim = new_simulator()
    database = f"sqlite:///{home / 'bot.sqlite3'}"
    bot = launch_bot(sim, home, database, BOT_OAUTH_RETURN_HOSTS=RETURN_HOST)
    yield sim, bot
    bot.stop()
    sim.stop()


def browser() -> requests.Session:
    return requests.Session()


def login(bot, session: requests.Session, next_: str | None = None, **params: str):
    if next_ is not None:
        params["next"] = next_
    return session.get(bot.url + routes.LOGIN, params=params, allow_redirects=False, timeout=15)


def through_wechat(sim, authorize: str, openid: str | None = None) -> str:
    """Where WeChat sends the browser once the follower agreed on the authorize page."""
    return sim.authorize(authorize, openid=openid or sim.default_openid).location


def sign_in(sim, bot, session: requests.Session, next_: str | None = None, **options):
    """/login (signed out), WeChat, then the callback in `session`: its answer."""
    openid = options.pop("openid", None)
    start = login(bot, session, next_, **options)
    assert start.status_code == 302, start.text
    return session.get(through_wechat(sim, start.headers["Location"], openid), **NO_FOLLOW)


NO_FOLLOW = {"allow_redirects": False, "timeout": 15}


def state_of(authorize: str) -> str:
    return parse_qs(urlsplit(authorize).query)["state"][0]


def stays_home(bot, sim, answer: requests.Response) -> None:
    """Wherever `answer` sends the browser: WeChat's authorize page, or a URL on
    public_url's host or a return host, with nothing a browser reads otherwise."""
    location = answer.headers.get("Location")
    if location is None:
        return
    assert not re.search(r"[\x00-\x20\x7f\\]", location), location
    if location.startswith(sim.url + "/connect/oauth2/authorize?"):
        return
    absolute = urljoin(bot.url + routes.LOGIN, location)
    assert urlsplit(absolute).hostname in ("127.0.0.1", RETURN_HOST), location
    assert not location.startswith("//"), location


def destinations_stored(bot) -> int:
    with bot.app.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(sign_in_destinations)).scalar()


# -- /login and the journey back ----------------------------------------------------------


def test_login_goes_to_wechat_in_its_exact_link_shape(sim, bot):
    answer = login(bot, browser(), "/orders?id=1")
    assert answer.status_code == 302
    state = state_of(answer.headers["Location"])
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", state)
    callback = bot.config.callback_url
    assert answer.headers["Location"] == authorize_url(sim.url, APP_ID, callback, USERINFO, state)
    assert "Set-Cookie" not in answer.headers  # nothing needs to survive the trip


def test_the_journey_returns_to_next_though_wechat_drops_every_cookie(sim, bot):
    destination = "/orders?id=1&tab=2#top"
    start = login(bot, browser(), destination)
    in_wechat = browser()  # another cookie jar: nothing of the first request survives
    landed = in_wechat.get(through_wechat(sim, start.headers["Location"]), **NO_FOLLOW)
    assert landed.status_code == 303
    assert landed.headers["Location"] == destination
    assert landed.headers["Set-Cookie"].startswith(f"{COOKIE}=")
    again = login(bot, in_wechat, destination)  # signed in now: straight there
    assert again.status_code == 303 and again.headers["Location"] == destination


def test_login_returns_to_a_return_host_and_to_public_urls_host(sim, bot):
    for destination in (f"https://{RETURN_HOST}/member?from=menu", "http://127.0.0.1:1/app"):
        landed = sign_in(sim, bot, browser(), destination)
        assert landed.status_code == 303 and landed.headers["Location"] == destination


def test_without_next_or_to_me_nothing_is_stored_and_the_journey_ends_on_me(sim, bot, follower):
    follower.say()  # the message path: a chat link
    for start in (
        login(bot, browser()),
        login(bot, browser(), routes.ME),
        login(bot, browser(), ""),
    ):
        assert re.fullmatch(r"[0-9a-f]{64}", state_of(start.headers["Location"]))
    assert destinations_stored(bot) == 0
    landed = sign_in(sim, bot, browser())
    assert landed.status_code == 303 and landed.headers["Location"] == routes.ME


def test_each_login_to_elsewhere_stores_one_destination_swept_after_its_time(sim, bot):
    login(bot, browser(), "/a")
    login(bot, browser(), "/b")
    assert destinations_stored(bot) == 2
    with bot.app.store.engine.begin() as conn:
        conn.execute(update(sign_in_destinations).values(expires_at=int(time.time()) - 1))
    login(bot, browser(), "/c")
    assert destinations_stored(bot) == 1


def test_a_stored_destination_cannot_be_swapped_or_lost(sim, bot):
    for tamper in (
        update(sign_in_destinations).values(destination="/elsewhere"),
        delete(sign_in_destinations),
    ):
        start = login(bot, browser(), "/orders")
        with bot.app.store.engine.begin() as conn:
            conn.execute(tamper)
        answer = browser().get(through_wechat(sim, start.headers["Location"]), **NO_FOLLOW)
        assert answer.status_code == 400 and "链接无效" in answer.text
        assert "Set-Cookie" not in answer.headers and "Location" not in answer.headers


def test_a_state_with_its_mark_removed_is_forged(sim, bot):
    start = login(bot, browser(), "/orders").headers["Location"]
    state = state_of(start)
    unmarked = start.replace(f"state={state}", f"state={state[1:]}")
    answer = browser().get(through_wechat(sim, unmarked), **NO_FOLLOW)
    assert answer.status_code == 400 and "Set-Cookie" not in answer.headers


def test_the_grace_of_a_login_state_returns_to_its_destination(sim, bot):
    in_wechat = browser()
    start = login(bot, in_wechat, "/orders")
    callback = through_wechat(sim, start.headers["Location"])
    assert in_wechat.get(callback, **NO_FOLLOW).headers["Location"] == "/orders"
    again = in_wechat.get(callback, **NO_FOLLOW)  # a refresh, WeChat's double redirect
    assert again.status_code == 303 and again.headers["Location"] == "/orders"


def test_refusing_on_the_way_to_a_page_offers_to_try_again_towards_it(sim, bot):
    session = browser()
    start = login(bot, session, "/orders?id=1")
    refused = sim.authorize(start.headers["Location"], sim.default_openid, decision="deny")
    answer = session.get(refused.location, **NO_FOLLOW)
    assert answer.status_code == 400 and "你取消了授权" in answer.text
    again = f"{routes.LOGIN}?next={quote('/orders?id=1', safe='')}"
    assert f'href="{again}"' in answer.text
    landed = sign_in(sim, bot, session, "/orders?id=1")
    assert landed.status_code == 303 and landed.headers["Location"] == "/orders?id=1"


def test_login_asks_for_the_scope_requested(sim, bot):
    base = login(bot, browser(), "/x", scope=BASE).headers["Location"]
    assert f"&scope={BASE}&" in base
    for scope in ("snsapi_login", "SNSAPI_BASE", "snsapi_base,snsapi_userinfo"):
        answer = login(bot, browser(), "/x", scope=scope)
        assert answer.status_code == 400 and BAD_LINK in answer.text


def test_a_silent_sign_in_asks_again_for_more_but_not_for_as_much(sim, bot):
    session = browser()
    assert sign_in(sim, bot, session, "/x", scope=BASE).status_code == 303
    assert login(bot, session, "/x", scope=BASE).status_code == 303
    assert login(bot, session, "/x", scope=USERINFO).status_code == 302
    assert login(bot, session, "/x").status_code == 302  # the configured scope is userinfo


def test_a_repeated_or_undecodable_next_is_a_bad_link(bot):
    for query in ("next=/a&next=/b", "next=/%ff%fe", "scope=snsapi_base&scope=snsapi_base"):
        answer = browser().get(f"{bot.url}{routes.LOGIN}?{query}", **NO_FOLLOW)
        assert answer.status_code == 400 and BAD_LINK in answer.text
        assert "Location" not in answer.headers


# -- no redirect ever leaves home ---------------------------------------------------------

REFUSED = [
    "//evil.com",
    "//evil.com/path",
    "///evil.com",
    "////evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "\\/evil.com",
    "/\\/evil.com",
    "https:evil.com",
    "https:127.0.0.1",
    "http:/evil.com",
    "http:/127.0.0.1/me",
    "https:///evil.com",
    "/%2F%2Fevil.com",
    "/%2fevil.com",
    "/%2F/evil.com",
    "%2F%2Fevil.com",
    "/%5Cevil.com",
    "/%5c%5cevil.com",
    "/%09/evil.com",
    "/%0a/evil.com",
    "/%20/evil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "/\r\n/evil.com",
    "\t//evil.com",
    " //evil.com",
    "/ /evil.com",
    f"https://{RETURN_HOST}\t.evil.com/",
    f"https://{RETURN_HOST}\n.evil.com/",
    "/me\r\nSet-Cookie: oauthbot=x",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    f"javascript://{RETURN_HOST}/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    f"ftp://{RETURN_HOST}/",
    f"wss://{RETURN_HOST}/",
    f"https://{RETURN_HOST}.evil.com/",
    f"https://evil.com@{RETURN_HOST}/",
    f"https://{RETURN_HOST}@evil.com/",
    f"https://{RETURN_HOST}:443@evil.com/",
    f"https://user:password@{RETURN_HOST}/",
    f"https://@{RETURN_HOST}/",
    "https://127.0.0.1.evil.com/",
    "http://127.0.0.1@evil.com/",
    "http://evil.com@127.0.0.1/",
    "https://xn--shp-example-9db.com/",  # a look-alike, spelt as browsers send it
    "https://xn--80ak6aa92e.com/",
    "https://shоp.example.com/",  # a Cyrillic о
    "https://ｓｈｏｐ.example.com/",  # full-width letters
    f"https://{RETURN_HOST}./",
    f"https://{RETURN_HOST}.:443/",
    f"https://{RETURN_HOST}:99999/",
    f"https://{RETURN_HOST}:0/",
    f"https://{RETURN_HOST}:/",
    f"https://{RETURN_HOST}:443:443/",
    f"https://{RETURN_HOST}:-443/",
    f"https://evil.com#@{RETURN_HOST}",
    f"https://evil.com?@{RETURN_HOST}",
    f"https://evil.com\\@{RETURN_HOST}",
    f"https://evil.com/\\@{RETURN_HOST}",
    "https://[::1]/",
    "https://0x7f.0.0.1/",
    "https://2130706433/",
    "https://127.1/",
    "evil.com",
    f"{RETURN_HOST}/member",
    "?next=//evil.com",
    "#//evil.com",
    "./me",
    "../me",
    "http://" + "a" * 3000,
    "/" + "a" * 3000,
]

# accepted `next` → the Location the bot sends (on public_url's host or a return host)
ACCEPTED = {
    "/orders?id=1&tab=2": "/orders?id=1&tab=2",
    "/me#section": "/me#section",
    "/a/../../b": "/a/../../b",
    "/shop/%2F%2Fevil.com": "/shop/%2F%2Fevil.com",
    "/商品?名=值": "/%E5%95%86%E5%93%81?%E5%90%8D=%E5%80%BC",
    '/say?q="<b>"': "/say?q=%22%3Cb%3E%22",
    "/a b": "/a%20b",
    "https://SHOP.Example.COM/Cart": f"https://{RETURN_HOST}/Cart",
    f"HTTPS://{RETURN_HOST}/": f"https://{RETURN_HOST}/",
    f"https://{RETURN_HOST}": f"https://{RETURN_HOST}",
    f"https://{RETURN_HOST}:8443/x": f"https://{RETURN_HOST}:8443/x",
    f"https://{RETURN_HOST}/#@evil.com": f"https://{RETURN_HOST}/#@evil.com",
    f"https://{RETURN_HOST}?@evil.com": f"https://{RETURN_HOST}?@evil.com",
    f"http://{RETURN_HOST}/plain": f"http://{RETURN_HOST}/plain",  # public_url is http here
    "http://127.0.0.1:1/x": "http://127.0.0.1:1/x",
}


@pytest.mark.parametrize("destination", REFUSED)
def test_login_refuses_a_destination_off_home_with_a_page(shared, destination):
    sim, bot = shared
    signed_in = browser()
    assert sign_in(sim, bot, signed_in).status_code == 303
    for session in (browser(), signed_in):
        answer = login(bot, session, destination)
        assert answer.status_code == 400, destination
        assert BAD_LINK in answer.text
        assert "Location" not in answer.headers and "Set-Cookie" not in answer.headers
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(("destination", "location"), ACCEPTED.items())
def test_login_sends_an_accepted_destination_home_only(shared, destination, location):
    sim, bot = shared
    session = browser()
    start = login(bot, session, destination)
    stays_home(bot, sim, start)
    landed = session.get(through_wechat(sim, start.headers["Location"]), **NO_FOLLOW)
    assert landed.status_code == 303 and landed.headers["Location"] == location
    stays_home(bot, sim, landed)
    again = login(bot, session, destination)
    assert again.status_code == 303 and again.headers["Location"] == location


@pytest.mark.parametrize("destination", REFUSED)
def test_the_callback_never_follows_a_stored_destination_it_would_refuse(shared, destination):
    """A destination stored without /login's check (by hand, or by an older version or
    configuration): the follower is signed in and lands on /me, never there."""
    sim, bot = shared
    links = bot.app.links
    state = links.signer.issue(destination)
    bot.app.store.remember_destination(state, destination, int(time.time()) + 600)
    link = authorize_url(sim.url, APP_ID, bot.config.callback_url, USERINFO, state)
    landed = browser().get(through_wechat(sim, link), **NO_FOLLOW)
    assert landed.status_code == 303 and landed.headers["Location"] == routes.ME
    assert "Set-Cookie" in landed.headers


@pytest.mark.parametrize("destination", REFUSED[::7] + list(ACCEPTED)[::5])
def test_logout_and_auth_never_redirect_whatever_they_are_given(shared, destination):
    sim, bot = shared
    for path in (routes.LOGOUT, routes.AUTH, routes.ME, routes.CALLBACK):
        answer = browser().get(bot.url + path, params={"next": destination}, **NO_FOLLOW)
        stays_home(bot, sim, answer)
        assert answer.headers.get("Location") in (None, routes.ME)


# -- /logout ------------------------------------------------------------------------------


def test_logout_ends_the_sign_in_and_lands_on_me(sim, bot):
    session = browser()
    assert sign_in(sim, bot, session).status_code == 303
    assert session.get(bot.url + routes.AUTH, **NO_FOLLOW).status_code == 200
    out = session.get(bot.url + routes.LOGOUT, **NO_FOLLOW)
    assert out.status_code == 303 and out.headers["Location"] == routes.ME
    assert out.headers["Set-Cookie"] == f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
    assert COOKIE not in session.cookies
    assert session.get(bot.url + routes.AUTH, **NO_FOLLOW).status_code == 401
    assert "尚未授权" in session.get(bot.url + routes.ME, **NO_FOLLOW).text


def test_a_cookie_domain_is_set_and_cleared_with_the_sign_in(sim, start_bot):
    bot = start_bot(BOT_SERVER_COOKIE_DOMAIN="127.0.0.1")
    landed = sign_in(sim, bot, browser())
    assert "; Domain=127.0.0.1; Path=/; HttpOnly; SameSite=Lax" in landed.headers["Set-Cookie"]
    out = browser().get(bot.url + routes.LOGOUT, **NO_FOLLOW)
    cleared = out.raw.headers.getlist("Set-Cookie")
    assert cleared == [
        f"{COOKIE}=; Max-Age=0; Domain=127.0.0.1; Path=/; HttpOnly; SameSite=Lax",
        f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax",  # one set before the Domain
    ]


# -- /auth --------------------------------------------------------------------------------


def auth(bot, session: requests.Session, method: str = "GET", **headers: str):
    return session.request(method, bot.url + routes.AUTH, headers=headers, **NO_FOLLOW)


def identity_headers(answer: requests.Response) -> dict[str, str]:
    """The X-WeChat-* headers, names in lower case (a server may change their case)."""
    return {k.lower(): v for k, v in answer.headers.items() if k.lower().startswith("x-wechat-")}


def test_auth_names_the_signed_in_follower_in_headers(sim, bot):
    for openid, unionid in ((WITH_UNIONID, "oZx8T1uKq0sR3wV5yB7dF9hJ2lM4"), (None, None)):
        session = browser()
        assert sign_in(sim, bot, session, openid=openid).status_code == 303
        follower = sim.followers[openid or sim.default_openid]
        answer = auth(bot, session)
        assert answer.status_code == 200 and answer.content == b""
        expected = {
            "x-wechat-openid": follower.openid,
            "x-wechat-scope": USERINFO,
            "x-wechat-nickname": quote(follower.nickname, safe=""),
        }
        if unionid:
            expected["x-wechat-unionid"] = unionid
        assert identity_headers(answer) == expected
        assert answer.headers["Cache-Control"] == "no-store"


def test_auth_after_a_silent_sign_in_has_no_nickname(sim, start_bot):
    bot = start_bot(scope=BASE)
    session = browser()
    assert sign_in(sim, bot, session).status_code == 303
    assert identity_headers(auth(bot, session)) == {
        "x-wechat-openid": sim.default_openid,
        "x-wechat-scope": BASE,
        "x-wechat-nickname": "",
    }


def test_auth_answers_any_method_alike(sim, bot):
    session = browser()
    assert sign_in(sim, bot, session).status_code == 303
    for method in ("HEAD", "POST", "PUT", "DELETE", "OPTIONS"):
        assert auth(bot, session, method).status_code == 200, method
        assert auth(bot, browser(), method).status_code == 401, method


def test_auth_reads_neither_the_database_nor_wechat(sim, bot):
    session = browser()
    assert sign_in(sim, bot, session).status_code == 303
    statements: list[str] = []

    def record(conn, cursor, statement, *rest) -> None:
        statements.append(statement)

    engine = bot.app.store.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        sim.calls.clear()
        for _ in range(5):
            assert auth(bot, session).status_code == 200
        assert auth(bot, browser()).status_code == 401
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == [] and list(sim.calls) == []


def test_without_a_sign_in_auth_says_where_to_sign_in(bot):
    plain = auth(bot, browser())
    assert plain.status_code == 401
    assert plain.headers["X-WeChat-Login"] == bot.url + routes.LOGIN
    assert identity_headers(plain) == {"x-wechat-login": bot.url + routes.LOGIN}
    asked = auth(bot, browser(), **{"X-Original-URL": f"https://{RETURN_HOST}/orders?id=1&tab=2"})
    back = quote(f"https://{RETURN_HOST}/orders?id=1&tab=2", safe="")
    assert asked.headers["X-WeChat-Login"] == f"{bot.url}{routes.LOGIN}?next={back}"
    page = asked.content.decode("utf-8")
    assert f'content="0; url={bot.url}{routes.LOGIN}?next={back}"' in page
    assert f'href="{bot.url}{routes.LOGIN}?next={back}"' in page


IN_A_HEADER = [
    v for v in REFUSED if v.isascii() and v == v.strip() and not re.search(r"[\x00-\x1f\x7f]", v)
]


@pytest.mark.parametrize("asked", IN_A_HEADER)
def test_auth_never_offers_a_way_back_off_home(shared, asked):
    _, bot = shared
    answer = auth(bot, browser(), **{"X-Original-URL": asked})
    assert answer.status_code == 401
    assert answer.headers["X-WeChat-Login"] == bot.url + routes.LOGIN


def test_the_way_back_auth_offers_leads_through_wechat_to_the_page(sim, bot):
    forwarded = {"X-Original-URL": f"https://{RETURN_HOST}/member?from=menu"}
    session = browser()
    login_url = auth(bot, session, **forwarded).headers["X-WeChat-Login"]
    start = session.get(login_url, **NO_FOLLOW)
    landed = session.get(through_wechat(sim, start.headers["Location"]), **NO_FOLLOW)
    assert landed.headers["Location"] == f"https://{RETURN_HOST}/member?from=menu"
    assert auth(bot, session, **forwarded).status_code == 200


def test_a_sign_in_lasts_its_lifetime(sim, start_bot):
    bot = start_bot(BOT_SERVER_SIGN_IN_TTL="300")
    landed = sign_in(sim, bot, browser())
    assert "; Max-Age=300;" in landed.headers["Set-Cookie"]
    signer = CookieSigner(derive_key(APP_SECRET, "cookie"), secure=False, ttl=300)
    identity = Identity(sim.default_openid, USERINFO)
    for age, status in ((290, 200), (310, 401)):
        value = signer.value(identity, now=time.time() - age)
        answer = auth(bot, browser(), Cookie=f"{COOKIE}={value}")
        assert answer.status_code == status, age


def test_a_long_nickname_keeps_the_cookie_small(sim, bot):
    follower = sim.add_follower(nickname="😀长" * 150)
    session = browser()
    landed = sign_in(sim, bot, session, openid=follower.openid)
    assert len(landed.headers["Set-Cookie"]) < 1100
    nickname = auth(bot, session).headers["X-WeChat-Nickname"]
    assert nickname == quote(("😀长" * 150)[:64], safe="")


def test_a_cookie_signed_with_another_key_names_nobody(sim, bot):
    value = CookieSigner(b"k" * 32, secure=False, ttl=3600).value(Identity("o6_bX", USERINFO))
    assert auth(bot, browser(), Cookie=f"{COOKIE}={value}").status_code == 401
    assert APP_SECRET not in value
