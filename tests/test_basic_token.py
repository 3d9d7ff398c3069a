"""The account's basic access_token has one owner: `GET /api/access-token` on any
instance hands out the token the shared store holds, fetched from WeChat's
`cgi-bin/stable_token` once for every instance and renewed once when a caller
reports WeChat rejected it. Two bots on one database (SQLite, and PostgreSQL where
the lock matters), WeChat the simulator, everything over real HTTP."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import routes
from tests.conftest import APP_ID, APP_SECRET, BotServer
from tests.test_secrets import every_log_record

API_KEY = "k3y-0f-the-0perat0rs-0ther-serv1ces-4ll-0f-them"
STABLE = "/cgi-bin/stable_token"
CALLERS = 24
# The store's lock is BEGIN IMMEDIATE on SQLite and a row locked FOR UPDATE on PostgreSQL.
BOTH_BACKENDS = pytest.mark.backends("sqlite", "postgresql")


def stable_calls(sim) -> int:
    return sim.calls.paths().count(STABLE)


def ask(bot: BotServer, key: str | None = API_KEY, **headers: str) -> requests.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return requests.get(bot.url + routes.ACCESS_TOKEN, headers=headers, timeout=30)


def token_of(bot: BotServer, **headers: str) -> dict:
    answer = ask(bot, **headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.json()


def at_once(bots: list[BotServer], **headers: str) -> list[dict]:
    """CALLERS requests released together, spread over `bots`, each on its own connection."""
    barrier = threading.Barrier(CALLERS)

    def one(number: int) -> dict:
        barrier.wait()
        return token_of(bots[number % len(bots)], **headers)

    with ThreadPoolExecutor(CALLERS) as pool:
        return list(pool.map(one, range(CALLERS)))


def wechat_accepts(sim, token: str) -> int:
    """The errcode WeChat gives a cgi-bin call made with `token` (0: accepted)."""
    answer = requests.get(
        sim.url + "/cgi-bin/getcallbackip", params={"access_token": token}, timeout=10
    )
    return answer.json().get("errcode", 0)


def force_refresh_elsewhere(sim) -> str:
    """Someone else forces a new stable token (WeChat's debug page, another tool):
    the one the bot holds stops working at once."""
    body = {"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}
    answer = requests.post(sim.url + STABLE, json={**body, "force_refresh": True}, timeout=10)
    return answer.json()["access_token"]


@pytest.fixture
def bots(start_bot) -> list[BotServer]:
    """Two instances of the bot, one SQLite file, the internal API on."""
    return [start_bot(BOT_SERVER_API_KEY=API_KEY) for _ in range(2)]


@BOTH_BACKENDS
def test_simultaneous_callers_on_two_instances_make_one_wechat_call(sim, bots):
    sim.fault(STABLE, "slow", seconds=0.5)  # every caller arrives while it is being fetched
    answers = at_once(bots)
    assert stable_calls(sim) == 1
    assert len({(a["access_token"], a["expires_at"]) for a in answers}) == 1
    token = answers[0]
    assert wechat_accepts(sim, token["access_token"]) == 0
    assert 7100 < token["expires_at"] - time.time() <= 7200
    # asked as WeChat wants it: POST JSON, normal mode; cgi-bin/token never
    [params] = [params for path, params in sim.calls if path == STABLE]
    assert params == {
        "grant_type": "client_credential",
        "appid": APP_ID,
        "secret": APP_SECRET,
        "force_refresh": False,
    }
    # later callers, on either instance, get it from the store
    assert [token_of(bot) for bot in bots * 3] == [token] * 6
    assert stable_calls(sim) == 1
    assert "/cgi-bin/token" not in sim.calls.paths()


@BOTH_BACKENDS
def test_a_restarted_instance_keeps_the_token(sim, bots):
    token = token_of(bots[0])
    bots[0].restart()
    assert token_of(bots[0]) == token
    assert stable_calls(sim) == 1


@BOTH_BACKENDS
def test_a_token_near_its_expiry_is_renewed_once_for_everybody(sim, bots):
    sim.basic_tokens.ttl = 100  # lives less than the bot's renewal margin
    first = token_of(bots[0])
    sim.basic_tokens.ttl = 7200
    answers = at_once(bots)
    assert stable_calls(sim) == 2
    assert {a["access_token"] for a in answers} == {answers[0]["access_token"]}
    assert answers[0]["access_token"] != first["access_token"]
    assert wechat_accepts(sim, first["access_token"]) == 0  # WeChat's overlap: both work


def test_near_expiry_with_wechat_down_the_stored_token_is_handed_out(sim, bots):
    sim.basic_tokens.ttl = 100
    first = token_of(bots[0])
    sim.fault(STABLE, "http_error", times=10)
    assert token_of(bots[1]) == first  # it still works for 100 s
    sim.clear_faults()
    assert token_of(bots[1]) != first


@BOTH_BACKENDS
def test_a_token_wechat_invalidated_40001_is_renewed_once_when_reported(sim, bots):
    old = token_of(bots[0])["access_token"]
    forced = force_refresh_elsewhere(sim)
    assert wechat_accepts(sim, old) == 40001
    before = stable_calls(sim)
    answers = at_once(bots, **{"X-Rejected-Token": old})
    assert stable_calls(sim) == before + 1
    assert {a["access_token"] for a in answers} == {forced}
    assert wechat_accepts(sim, forced) == 0
    # a late report of the old token costs nothing: it was replaced already
    assert token_of(bots[1], **{"X-Rejected-Token": old})["access_token"] == forced
    assert token_of(bots[0])["access_token"] == forced
    assert stable_calls(sim) == before + 1


@BOTH_BACKENDS
def test_a_token_wechat_says_expired_42001_is_renewed_once_when_reported(sim, bots):
    old = token_of(bots[0])["access_token"]
    sim.clock.advance(7200)  # WeChat's clock ran ahead of the bot's
    assert wechat_accepts(sim, old) == 42001
    assert token_of(bots[1])["access_token"] == old  # by the bot's clock it is fresh
    renewed = token_of(bots[1], **{"X-Rejected-Token": old})["access_token"]
    assert renewed != old and wechat_accepts(sim, renewed) == 0
    assert token_of(bots[0])["access_token"] == renewed
    assert stable_calls(sim) == 2


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, None),
        ("", None),
        (f"Bearer {API_KEY}x", "invalid_token"),
        (f"Bearer {API_KEY[:-1]}", "invalid_token"),
        ("Bearer ", "invalid_token"),
        ("Bearer", "invalid_token"),
        (f"Basic {API_KEY}", "invalid_token"),
        (API_KEY, "invalid_token"),
        ("Bearer 密钥", "invalid_token"),
    ],
    ids=["absent", "empty", "longer", "shorter", "blank", "scheme only", "basic", "bare", "utf8"],
)
def test_a_missing_or_wrong_key_gets_401(sim, bots, authorization, error):
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = requests.get(
        bots[0].url + routes.ACCESS_TOKEN,
        headers={k: v.encode() for k, v in headers.items()},
        timeout=10,
    )
    assert answer.status_code == 401
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="wechat-bot"')
    assert ("invalid_token" in challenge) == (error is not None)
    assert "access_token" not in answer.json()
    assert stable_calls(sim) == 0


def test_the_scheme_is_case_insensitive(bots):
    answer = ask(bots[0], key=None, Authorization=f"bearer {API_KEY}")
    assert answer.status_code == 200


def test_other_paths_and_methods_under_the_api(sim, bots):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    assert (
        requests.get(bots[0].url + "/api/nothing", headers=headers, timeout=10).status_code == 404
    )
    posted = requests.post(bots[0].url + routes.ACCESS_TOKEN, headers=headers, timeout=10)
    assert posted.status_code == 405 and posted.headers["Allow"] == "GET"
    stranger = requests.get(bots[0].url + "/api/nothing", timeout=10)
    assert stranger.status_code == 401  # who may not ask learns nothing of the routes
    assert stable_calls(sim) == 0


def test_without_an_api_key_the_api_is_not_there(sim, start_bot):
    bot = start_bot()
    for key in (None, "", API_KEY):
        answer = ask(bot, key=key)
        assert answer.status_code == 404
        assert "text/html" in answer.headers["Content-Type"]  # the bot's own 404 page
    assert stable_calls(sim) == 0


@pytest.mark.parametrize("kind", ["http_error", "garbage", "html", "truncated", "reset"])
def test_wechat_failing_is_a_502_that_says_so(sim, bots, kind):
    sim.fault(STABLE, kind, times=5)
    answer = ask(bots[0])
    assert answer.status_code == 502
    assert answer.json() == {"error": "WeChat did not answer"}
    sim.clear_faults()
    assert token_of(bots[0])["access_token"]  # and the next caller gets one


def test_wechat_refusing_is_a_502_with_its_errcode(sim, start_bot):
    bot = start_bot(BOT_SERVER_API_KEY=API_KEY, BOT_WECHAT_APP_SECRET="not" + APP_SECRET[3:])
    answer = ask(bot)
    assert answer.status_code == 502
    assert answer.json() == {"error": "WeChat refused the token", "errcode": 40125}


def test_wechat_busy_is_asked_again(sim, bots):
    sim.fault(STABLE, "busy", times=2)
    assert token_of(bots[0])["access_token"]
    assert stable_calls(sim) == 3


def test_the_token_and_the_key_never_reach_the_log(sim, bots):
    with every_log_record() as log:
        old = token_of(bots[0])["access_token"]
        force_refresh_elsewhere(sim)
        new = token_of(bots[1], **{"X-Rejected-Token": old})["access_token"]
        ask(bots[0], key="wrong" + API_KEY)
        sim.fault(STABLE, "busy", times=3)
        assert ask(bots[0], **{"X-Rejected-Token": new}).status_code == 502  # busy throughout
    lines = "\n".join(log.lines)
    assert "stable_token" in lines  # the control: the bot's calls to WeChat were captured
    for secret in (old, new, API_KEY, APP_SECRET):
        assert secret not in lines
