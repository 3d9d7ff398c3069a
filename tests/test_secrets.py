"""Secrets never leak: not into a log record, not into a page, not into a header.

One run (once per pytest-xdist worker) drives the bot through a full journey and WeChat's failures
with every log record captured - the root logger at DEBUG, so the bot's own records and
urllib3's, requests' and waitress's - and every answer of the bot kept at its WSGI
boundary (status, headers, body): pushes in plaintext, compatible and safe modes (the
current AES key and the previous one), both scopes, the callback and its double
redirect, /me, a refresh of an expired token, a re-authorization, every fault kind of
the simulator on every sns call, and hostile callback inputs. Nothing captured may
contain the app secret, the server token, an access_token or refresh_token WeChat
issued, an AES key, or the keys the state and the sign-in cookie are signed with. Every
sign-in cookie is HttpOnly and SameSite=Lax (and Secure behind https), and no answer
sends the browser to another host.
"""

from __future__ import annotations

import base64
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

import routes
from oauth import derive_key
from oauth.urls import BASE
from simulator import Simulator
from tests.conftest import (
    AES_KEY,
    APP_SECRET,
    FAST,
    OLD_AES_KEY,
    TOKEN,
    BotServer,
    Follower,
    free_port,
    new_simulator,
    write_config,
)

EXCHANGE = "/sns/oauth2/access_token"
REFRESH = "/sns/oauth2/refresh_token"
USERINFO = "/sns/userinfo"
AUTH = "/sns/auth"
KINDS = ("busy", "slow", "http_error", "garbage", "html", "truncated", "reset")
EVIL = "evil.example"


@dataclass(frozen=True)
class Recorded:
    """One answer of the bot, as its WSGI app gave it to the server."""

    path: str
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


class Wiretap:
    """Around a bot's WSGI app: keeps every answer it gives, changes none."""

    def __init__(self, app: Callable, answers: list[Recorded]) -> None:
        self.app = app
        self.answers = answers

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        seen: dict = {}

        def start(status: str, headers: list, exc_info=None):
            seen.update(status=status, headers=list(headers))
            return start_response(status, headers, exc_info)

        chunks = self.app(environ, start)
        try:
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        self.answers.append(Recorded(environ["PATH_INFO"], seen["status"], seen["headers"], body))
        return [body]


class Everything(logging.Handler):
    """Every record, formatted with its traceback if it has one."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def every_log_record() -> Iterator[Everything]:
    """The root logger at DEBUG and every logger below it let through (urllib3's too,
    which `cli.py` quiets), all of it kept. SQLAlchemy keeps the WARNING it sets itself:
    its SQL echo, rows and parameters included, is what an operator turns on by choice."""
    handler = Everything()
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    loggers = [log for log in loggers if isinstance(log, logging.Logger)]
    opened = [log for log in loggers if not log.name.startswith("sqlalchemy")]
    levels = {log: log.level for log in [logging.root, *opened]}
    for log in opened:
        log.setLevel(logging.NOTSET)
    logging.root.setLevel(logging.DEBUG)
    logging.disable(logging.NOTSET)
    logging.root.addHandler(handler)
    try:
        yield handler
    finally:
        logging.root.removeHandler(handler)
        for log, level in levels.items():
            log.setLevel(level)


class Journey:
    """WeChat, a userinfo bot with both AES keys and a base bot, and a recorded browser."""

    def __init__(self, home: Path) -> None:
        self.answers: list[Recorded] = []
        self.sim = new_simulator(aes_key=AES_KEY)
        keys = {
            "BOT_WECHAT_ENCODING_AES_KEY": AES_KEY,
            "BOT_WECHAT_PREVIOUS_ENCODING_AES_KEY": OLD_AES_KEY,
        }
        self.bot = self._bot(home / "userinfo", "snsapi_userinfo", keys)
        self.base_bot = self._bot(home / "base", BASE, {})
        self.sim.bot_url = self.bot.wechat_url
        self.others: list[Simulator] = []

    def _bot(self, home: Path, scope: str, environ: dict[str, str]) -> BotServer:
        home.mkdir()
        bot = BotServer(
            write_config(home / "config.toml", free_port(), self.sim.url, scope), environ, FAST
        )
        bot.server.application = Wiretap(bot.app, self.answers)
        return bot

    def follower(self, bot: BotServer, openid: str | None = None) -> Follower:
        return Follower(self.sim, bot, openid or self.sim.add_follower().openid)

    def secrets(self) -> dict[str, str | bytes]:
        """What must never show, by name: configured, derived, and every token WeChat issued."""
        found: dict[str, str | bytes] = {
            "app secret": APP_SECRET,
            "server token": TOKEN,
            "AES key": AES_KEY,
            "previous AES key": OLD_AES_KEY,
            "AES key (raw)": base64.b64decode(AES_KEY + "="),
            "previous AES key (raw)": base64.b64decode(OLD_AES_KEY + "="),
        }
        for purpose in ("state", "cookie"):
            found[f"{purpose} key (hex)"] = derive_key(APP_SECRET, purpose).hex()
            found[f"{purpose} key (raw)"] = derive_key(APP_SECRET, purpose)
        found |= {f"access_token {t[:6]}": t for t in self.sim.oauth._access}
        found |= {f"refresh_token {t[:6]}": t for t in self.sim.oauth._refresh}
        return found

    def stop(self) -> None:
        for bot in (self.bot, self.base_bot):
            bot.stop()
        for simulator in (self.sim, *self.others):
            simulator.stop()

    # -- the journey ---------------------------------------------------------------------

    def pushes(self) -> None:
        openid = self.sim.default_openid
        for mode in ("plain", "compatible", "safe"):
            assert self.sim.push(openid, type="text", mode=mode)["status"] == 200
        retry = self.sim.push(openid, type="text", mode="safe")
        self.sim.push(openid, type="text", mode="safe", msg_id=retry["msg_id"])  # a retry
        self.sim.push(openid, type="event", event="subscribe", mode="safe")
        self.sim.push(openid, type="image", mode="compatible")
        previous = self._other(aes_key=OLD_AES_KEY)  # WeChat still on the old key
        assert previous.push(openid, type="text", mode="safe")["status"] == 200
        stranger = self._other(aes_key="Th1rdKeyTh1rdKeyTh1rdKeyTh1rdKeyTh1rdKeyTh1")
        assert stranger.push(openid, type="text", mode="safe")["status"] == 400
        other_account = self._other(aes_key=AES_KEY, app_id="wxffffffffffffffff")
        assert other_account.push(openid, type="text", mode="safe")["status"] == 403

    def _other(self, **options: str) -> Simulator:
        self.others.append(new_simulator(bot_url=self.bot.wechat_url, **options))
        return self.others[-1]

    def both_scopes(self) -> tuple[Follower, Follower]:
        mine = self.follower(self.bot, self.sim.default_openid)
        location = mine.tap(mine.link())
        assert mine.open(location).status_code == 303
        assert mine.open(location).status_code == 303  # WeChat's double redirect
        assert mine.me().status_code == 200
        base = self.follower(self.base_bot)
        assert base.open(base.tap(self.base_bot.app.links.link())).status_code == 303
        assert base.me().status_code == 200
        return mine, base

    def refresh_and_reauthorize(self, follower: Follower) -> None:
        self.sim.expire_access_tokens(follower.openid)  # userinfo 42001: refresh, again
        assert self.sim.followers[follower.openid].nickname in follower.me().text
        self.sim.expire_access_tokens(follower.openid)
        self.sim.expire_refresh_tokens(follower.openid)
        assert "授权已失效" in follower.me().text
        assert follower.authorize().status_code == 303  # authorized again
        assert follower.me().status_code == 200

    def failures(self, mine: Follower, base: Follower) -> None:
        """Every fault kind on every sns call (a slow one only on the exchange: each
        costs a read timeout, and the code path is the same)."""
        for kind in KINDS:
            self._failing(EXCHANGE, kind, lambda: mine.open(mine.tap(mine.link())))
            if kind == "slow":
                continue
            self._failing(USERINFO, kind, mine.me)
            self.sim.expire_access_tokens(mine.openid)  # userinfo 42001, then the refresh
            self._failing(REFRESH, kind, mine.me)
            self._failing(AUTH, kind, base.me)
            reauthorizing = self.follower(self.bot)
            self._failing(USERINFO, kind, reauthorizing.authorize)  # after the exchange

    def _failing(self, path: str, kind: str, page: Callable[[], object]) -> None:
        """Open `page` while `path` fails (its answer is checked in test_catalogue.py)."""
        self.sim.fault(path, kind, times=3, seconds=FAST.read_timeout * 1.5)
        try:
            page()
        finally:
            self.sim.clear_faults()

    def hostile_callbacks(self, follower: Follower) -> None:
        """Inputs that try to send the browser elsewhere: the bot never does."""
        bot = self.bot.url
        completed = follower.tap(follower.link())
        assert follower.open(completed).status_code == 303
        stranger = requests.Session()
        for url, headers in [
            (completed, {"User-Agent": "stranger"}),  # a replay
            (follower.tap(follower.link()) + f"&next=//{EVIL}&redirect_uri=https://{EVIL}", {}),
            (follower.tap(follower.link()), {"Host": EVIL}),
            (follower.tap(follower.link()), {"X-Forwarded-Host": EVIL}),
            (f"{bot}{routes.CALLBACK}?code=x&state={'0' * 64}&next=https://{EVIL}", {}),
            (f"{bot}{routes.ME}?next=https://{EVIL}", {}),
            (f"{bot}//{EVIL}/", {}),
            (f"{bot}/%2f%2f{EVIL}", {}),
        ]:
            stranger.get(url, headers=headers, allow_redirects=False, timeout=15)

    def run(self) -> None:
        self.pushes()
        mine, base = self.both_scopes()
        self.refresh_and_reauthorize(mine)
        self.failures(mine, base)
        self.hostile_callbacks(mine)


@dataclass(frozen=True)
class Captured:
    log: list[str]
    answers: list[Recorded]
    secrets: dict[str, str | bytes]
    public_hosts: set[str]


@pytest.fixture(scope="session")  # once per xdist worker, whatever runs in between
def captured(tmp_path_factory) -> Captured:
    with every_log_record() as log:
        journey = Journey(tmp_path_factory.mktemp("journey"))
        try:
            journey.run()
            secrets = journey.secrets()
        finally:
            journey.stop()
    hosts = {
        urlsplit(bot.config.server.public_url).netloc for bot in (journey.bot, journey.base_bot)
    }
    return Captured(log.lines, journey.answers, secrets, hosts)


def found_in(secret: str | bytes, text: str | bytes) -> bool:
    if isinstance(secret, bytes):
        return isinstance(text, bytes) and secret in text
    return secret in (text if isinstance(text, str) else text.decode("latin-1"))


def test_the_capture_sees_everything_it_searches(captured):
    """The control: the records include urllib3's DEBUG request lines of the bot's calls
    to WeChat, the answers include encrypted replies, pages and redirects, and the
    tokens WeChat issued are known."""
    assert any(
        line.startswith("urllib3.connectionpool DEBUG") and EXCHANGE in line
        for line in captured.log
    )
    assert any(b"<Encrypt>" in answer.body for answer in captured.answers)
    statuses = {answer.status[:3] for answer in captured.answers}
    assert {"200", "303", "400", "403", "404", "502"} <= statuses
    assert sum(name.startswith("access_token") for name in captured.secrets) > 10


def test_no_log_record_holds_a_secret(captured):
    leaks = [
        (name, line[:120])
        for line in captured.log
        for name, secret in captured.secrets.items()
        if found_in(secret, line)
    ]
    assert leaks == []


REQUEST_LINE = re.compile(r"bot\.request INFO ([A-Z]+) (/\S*) (\d{3}) (\d+\.\d) ms")


def test_every_answer_has_one_request_line_without_query(captured):
    lines = [line for line in captured.log if line.startswith("bot.request ")]
    assert [line for line in lines if not REQUEST_LINE.fullmatch(line)] == []
    parsed = [REQUEST_LINE.fullmatch(line) for line in lines]
    statuses = Counter(match.group(3) for match in parsed)
    assert statuses == Counter(answer.status[:3] for answer in captured.answers)
    paths = {match.group(2) for match in parsed}
    assert {"/wechat", routes.CALLBACK, routes.ME} <= paths
    assert not [path for path in paths if "?" in path or "=" in path]
    assert {match.group(1) for match in parsed} == {"GET", "POST"}


def test_no_answer_holds_a_secret(captured):
    leaks = []
    for answer in captured.answers:
        head = answer.status + "".join(f"\n{k}: {v}" for k, v in answer.headers)
        for name, secret in captured.secrets.items():
            if found_in(secret, head) or found_in(secret, answer.body):
                leaks.append((name, answer.path, answer.status))
    assert leaks == []


def test_every_sign_in_cookie_is_http_only_and_same_site_lax(captured):
    cookies = [cookie for answer in captured.answers for cookie in answer.all("Set-Cookie")]
    assert len(cookies) > 5
    for cookie in cookies:
        flags = [flag.strip() for flag in cookie.split(";")[1:]]
        assert "HttpOnly" in flags and "SameSite=Lax" in flags, cookie
        assert "Secure" not in flags, cookie  # public_url is http here: see below


def test_no_answer_redirects_to_another_host(captured):
    locations = [where for answer in captured.answers for where in answer.all("Location")]
    assert len(locations) > 5
    for where in locations:
        parts = urlsplit(where)
        relative = not parts.scheme and not parts.netloc and where.startswith("/")
        assert (relative and not where.startswith(("//", "/\\"))) or (
            parts.netloc in captured.public_hosts
        ), where


def test_the_cookie_is_secure_when_public_url_is_https(sim, tmp_path):
    """The bot still listens on http on loopback; public_url says the world sees https."""
    port = free_port()
    path = write_config(tmp_path / "config.toml", port, sim.url)
    bot = BotServer(path, {"BOT_SERVER_PUBLIC_URL": f"https://127.0.0.1:{port}"})
    try:
        sim.bot_url = bot.wechat_url
        follower = Follower(sim, bot, sim.default_openid)
        location = follower.tap(follower.link())
        assert location.startswith(f"https://127.0.0.1:{port}{routes.CALLBACK}?")
        landed = follower.open("http" + location.removeprefix("https"))
    finally:
        bot.stop()
    assert landed.status_code == 303 and landed.headers["Location"] == routes.ME
    flags = [flag.strip() for flag in landed.headers["Set-Cookie"].split(";")[1:]]
    assert {"HttpOnly", "SameSite=Lax", "Secure"} <= set(flags)
