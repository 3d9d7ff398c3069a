"""`GET /jssdk/config?url=`: wx.config's parameters for the operator's pages, signed with
the account's jsapi_ticket, which every instance shares and no page view fetches again.
The bot and the WeChat simulator over real HTTP; the simulator's own wx.config check
(what its stand-in for jweixin-1.6.0.js asks) is the judge of every signature."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import event

import routes
from oauth.jssdk import signature
from tests.conftest import APP_ID, APP_SECRET, BotServer
from tests.test_basic_token import BOTH_BACKENDS, force_refresh_elsewhere
from tests.test_secrets import every_log_record
from tests.test_simulator import VECTORS

GETTICKET = "/cgi-bin/ticket/getticket"
STABLE = "/cgi-bin/stable_token"
SHOP = "shop.example.com"


@pytest.fixture
def bots(start_bot) -> list[BotServer]:
    """Two instances of the bot on one database; shop.example.com's pages may be signed."""
    return [start_bot(BOT_OAUTH_RETURN_HOSTS=f"{SHOP},m.example.com") for _ in range(2)]


def page_of(bot: BotServer, path: str = "/shop/order?id=42&from=menu") -> str:
    return bot.url + path


def ask(bot: BotServer, url: str | None, **headers: str) -> requests.Response:
    query = "" if url is None else "?url=" + quote(url, safe="")
    return requests.get(bot.url + routes.JSSDK_CONFIG + query, headers=headers, timeout=30)


def config_for(bot: BotServer, url: str, **headers: str) -> dict:
    answer = ask(bot, url, **headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.json()


def wechat_verdict(sim, config: dict, page: str) -> str:
    """What wx.config on `page` says of `config`, as the simulator's JS-SDK asks it."""
    fields = {key: config[key] for key in ("appId", "timestamp", "nonceStr", "signature")}
    answer = requests.post(sim.url + "/api/jssdk/config", json={**fields, "url": page}, timeout=10)
    return answer.json()["errMsg"]


def calls(sim, path: str) -> int:
    return sim.calls.paths().count(path)


def test_the_signature_is_the_worked_example_of_wechats_documentation():
    case = VECTORS["jssdk"]
    assert (
        signature(case["jsapi_ticket"], case["noncestr"], case["timestamp"], case["url"])
        == (case["signature"])
    )
    string1 = case["string1"]
    assert hashlib.sha1(string1.encode()).hexdigest() == case["signature"]  # noqa: S324


def test_a_page_gets_wx_configs_parameters_that_wechat_accepts(sim, bots):
    page = page_of(bots[0])
    before = time.time()
    config = config_for(bots[0], page)
    assert set(config) == {"appId", "timestamp", "nonceStr", "signature"}
    assert config["appId"] == APP_ID
    assert isinstance(config["timestamp"], int) and before - 1 <= config["timestamp"] <= time.time()
    assert re.fullmatch(r"[A-Za-z0-9]{16}", config["nonceStr"])
    assert wechat_verdict(sim, config, page) == "config:ok"
    # asked as WeChat wants it: the basic token from stable_token, then getticket type=jsapi
    assert sim.calls.paths() == [STABLE, GETTICKET]
    [(_, params)] = [call for call in sim.calls if call[0] == GETTICKET]
    assert params["type"] == "jsapi" and params["access_token"]
    assert config_for(bots[0], page)["nonceStr"] != config["nonceStr"]  # fresh each time


def test_the_fragment_is_not_signed_the_scheme_is(sim, bots):
    page = page_of(bots[0])
    config = config_for(bots[0], page + "#/cart?step=2")
    assert wechat_verdict(sim, config, page) == "config:ok"
    # A page behind a TLS proxy has https in its location.href: that is what is signed.
    https_page = page.replace("http://", "https://")
    signed_https = config_for(bots[0], https_page)
    assert wechat_verdict(sim, signed_https, https_page) == "config:ok"
    assert "invalid signature" in wechat_verdict(sim, signed_https, page)


def test_pages_on_the_return_hosts_are_signed(sim, bots):
    sim.js_domains = ("127.0.0.1", SHOP)
    for page in (f"https://{SHOP}/member?tab=orders", f"http://{SHOP.upper()}:8443/"):
        assert wechat_verdict(sim, config_for(bots[1], page), page) == "config:ok"


@BOTH_BACKENDS
def test_every_instance_shares_one_ticket_and_page_views_never_ask_wechat(sim, bots):
    sim.fault(GETTICKET, "slow", seconds=0.5)  # every first caller arrives while it is fetched
    barrier = threading.Barrier(12)

    def first_view(number: int) -> dict:
        barrier.wait()
        return config_for(bots[number % 2], page_of(bots[0]))

    with ThreadPoolExecutor(12) as pool:
        configs = list(pool.map(first_view, range(12)))
    assert calls(sim, GETTICKET) == 1 and calls(sim, STABLE) == 1
    assert all(wechat_verdict(sim, c, page_of(bots[0])) == "config:ok" for c in configs)
    # later views: no WeChat call, and no database statement either (held in memory)
    statements: list[str] = []
    for bot in bots:
        event.listen(bot.app.store.engine, "before_cursor_execute", _record(statements))
    for number in range(40):
        config_for(bots[number % 2], page_of(bots[0], f"/p{number}"))
    assert statements == []
    assert calls(sim, GETTICKET) == 1


def _record(statements: list[str]):
    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    return record


def test_a_restarted_instance_keeps_the_ticket(sim, bots):
    config_for(bots[0], page_of(bots[0]))
    bots[0].restart()
    config = config_for(bots[0], page_of(bots[0]))
    assert wechat_verdict(sim, config, page_of(bots[0])) == "config:ok"
    assert calls(sim, GETTICKET) == 1


def test_a_ticket_near_its_expiry_is_renewed(sim, bots):
    sim.tickets.ttl = 100  # lives less than the bot's renewal margin: renewed at each view
    config_for(bots[0], page_of(bots[0]))
    sim.tickets.ttl = 7200
    config = config_for(bots[1], page_of(bots[0]))
    assert calls(sim, GETTICKET) == 2 and calls(sim, STABLE) == 1
    config_for(bots[0], page_of(bots[0]))
    assert calls(sim, GETTICKET) == 2
    assert wechat_verdict(sim, config, page_of(bots[0])) == "config:ok"


def test_near_expiry_with_wechat_down_the_stored_ticket_still_signs(sim, bots):
    sim.tickets.ttl = 100
    config_for(bots[0], page_of(bots[0]))
    sim.fault(GETTICKET, "http_error", times=10)
    config = config_for(bots[1], page_of(bots[0]))
    assert wechat_verdict(sim, config, page_of(bots[0])) == "config:ok"  # it works 100 s more


def test_a_basic_token_wechat_rejects_at_getticket_is_replaced_once(sim, bots):
    sim.tickets.ttl = 100  # every view asks for a ticket
    config_for(bots[0], page_of(bots[0]))
    force_refresh_elsewhere(sim)  # the bot's basic token now gets 40001
    config = config_for(bots[1], page_of(bots[0]))
    assert wechat_verdict(sim, config, page_of(bots[0])) == "config:ok"
    assert calls(sim, STABLE) == 3  # the bot's first, the forced one, the bot's replacement
    assert calls(sim, GETTICKET) == 3  # the first, the refused one, the one after


@pytest.mark.parametrize("kind", ["http_error", "garbage", "html", "reset"])
def test_wechat_failing_is_a_502_that_says_so(sim, bots, kind):
    sim.fault(GETTICKET, kind, times=5)
    answer = ask(bots[0], page_of(bots[0]))
    assert answer.status_code == 502
    assert answer.json() == {"error": "WeChat did not answer"}
    sim.clear_faults()
    assert wechat_verdict(sim, config_for(bots[0], page_of(bots[0])), page_of(bots[0])) == (
        "config:ok"
    )


def test_wechat_refusing_is_a_502_with_its_errcode(sim, start_bot):
    bot = start_bot(BOT_WECHAT_APP_SECRET="not" + APP_SECRET[3:])
    answer = ask(bot, page_of(bot))
    assert answer.status_code == 502
    assert answer.json() == {"error": "WeChat refused the ticket", "errcode": 40125}


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "/shop/order",
        "https://evil.example.com/",
        "https://127.0.0.1.evil.example.com/",
        "https://shop.example.com.evil.example.com/",
        "https://evilshop.example.com/",
        "http://127.0.0.1@evil.example.com/",
        "http://evil.example.com\\@127.0.0.1/",
        "javascript:alert(1)//127.0.0.1/",
        "ftp://127.0.0.1/file",
        "HTTP://127.0.0.1/",
        "//127.0.0.1/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1/a b",
        "http://127.0.0.1/a\nb",
        "http://127.0.0.1/?a=1&amp;b=2",
        "http://127.0.0.1/" + "a" * 4096,
    ],
)
def test_a_page_the_bot_will_not_sign_is_a_400_and_no_wechat_call(sim, bots, url):
    answer = ask(bots[0], url)
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert set(answer.json()) == {"error"}
    assert sim.calls.paths() == []


def test_an_unencoded_url_is_refused_with_the_way_to_pass_it(sim, bots):
    raw = f"{bots[0].url}{routes.JSSDK_CONFIG}?url={page_of(bots[0])}"  # its &from= is cut off
    answer = requests.get(raw, timeout=10)
    assert answer.status_code == 400
    assert "encodeURIComponent" in answer.json()["error"]
    twice = f"{bots[0].url}{routes.JSSDK_CONFIG}?url=a&url=b"
    assert requests.get(twice, timeout=10).status_code == 400
    assert "&amp;" in ask(bots[0], page_of(bots[0]).replace("&", "&amp;")).json()["error"]
    assert sim.calls.paths() == []


def test_only_get(bots):
    answer = requests.post(bots[0].url + routes.JSSDK_CONFIG, data={"url": "x"}, timeout=10)
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (f"https://{SHOP}", True),
        ("http://m.example.com:8080", True),
        ("http://127.0.0.1:5173", True),
        ("https://evil.example.com", False),
        (f"https://{SHOP}.evil.example.com", False),
        ("null", False),
    ],
)
def test_pages_of_allowed_origins_may_read_the_answer(sim, bots, origin, allowed):
    answer = ask(bots[0], f"https://{SHOP}/member", Origin=origin)
    assert answer.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)
    assert answer.headers["Vary"] == "Origin"
    refused = ask(bots[0], "https://evil.example.com/", Origin=origin)
    assert refused.status_code == 400
    assert refused.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)


def test_the_ticket_and_the_tokens_never_reach_the_log(sim, bots):
    with every_log_record() as log:
        config_for(bots[0], page_of(bots[0]))
        force_refresh_elsewhere(sim)
        sim.tickets.ttl = 100
        sim.clock.advance(7200)
        config_for(bots[1], page_of(bots[0]))
    lines = "\n".join(log.lines)
    assert "getticket" in lines  # the control: the bot's calls to WeChat were captured
    secrets = {*sim.tickets._expiry, *sim.basic_tokens._expiry, APP_SECRET}
    assert len(secrets) > 3
    for secret in secrets:
        assert secret not in lines
