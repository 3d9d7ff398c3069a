"""Real servers on loopback: the WeChat simulator and the bot (waitress), wired
together exactly as in production, plus a follower who drives them over HTTP.

Databases: `db_url` is an empty database for one test, SQLite by default. A module
or test marked `@pytest.mark.backends("sqlite", "postgresql")` runs once per
backend; the PostgreSQL runs use a throwaway database on the machine's server
(tests/postgres.py), and are skipped with the reason when there is none, except in
CI (CI=true), where a missing PostgreSQL fails them.
"""

from __future__ import annotations

import os
import random
import re
import socket
import threading
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
import requests
import waitress
from hypothesis import settings as hypothesis_settings

import config as settings
from bot import Bot, Timings
from simulator import Simulator
from tests.postgres import ThrowawayDatabase, Unreachable

# Property tests: 100 examples each in the suite (an example that ever failed is kept in
# .hypothesis/ and tried first on every later run); HYPOTHESIS_PROFILE=thorough tries
# 1000. No per-example deadline: a loaded machine is slow, not wrong.
hypothesis_settings.register_profile("suite", max_examples=100, deadline=None)
hypothesis_settings.register_profile("thorough", max_examples=1000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "wx0123456789abcdef"
APP_SECRET = "testsecret0000000000000000000001"
TOKEN = "testtoken123"
AES_KEY = "N3wKeyN3wKeyN3wKeyN3wKeyN3wKeyN3wKeyN3wKeyN"
OLD_AES_KEY = "0ldKey0ldKey0ldKey0ldKey0ldKey0ldKey0ldKey0"
ANCHOR = re.compile(r'<a href="([^"]+)">([^<]+)</a>')
PRODUCTION = Timings()
# The bot's waits on WeChat and on a first copy, scaled down for the tests that wait
# them out: the same behaviour (a page's deadline, one call's timeout, a copy giving
# up), seen in a second or two instead of production's eight.
FAST = Timings(page_deadline=2.0, read_timeout=1.0, busy_pauses=(0.02, 0.05), wait_for_first=0.5)


def free_port() -> int:
    """A port nobody listens on, below the kernel's ephemeral range: a port the kernel
    hands out for `bind(0)` may be taken by an outgoing connection before the server
    binds it, which several test processes running at once make likely."""
    while True:
        port = random.randrange(10_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def write_config(
    path: Path,
    port: int,
    sim_url: str,
    scope: str = "snsapi_userinfo",
    storage_url: str | None = None,
) -> Path:
    """A config file for a bot on `port` wired to the simulator at `sim_url`; the
    database is `storage_url`, by default a SQLite file beside the config."""
    storage_url = storage_url or f"sqlite:///{path.parent / 'bot.sqlite3'}"
    lines = [
        "[wechat]",
        f'app_id = "{APP_ID}"',
        f'app_secret = "{APP_SECRET}"',
        f'token = "{TOKEN}"',
        f'api_base = "{sim_url}"',
        f'open_base = "{sim_url}"',
        "[server]",
        f"port = {port}",
        f'public_url = "http://127.0.0.1:{port}"',
        "[oauth]",
        f'scope = "{scope}"',
        "[storage]",
        f'url = "{storage_url}"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class BotServer:
    """The bot behind waitress in a thread, restartable on the same port and database."""

    def __init__(
        self, config_path: Path, environ: dict[str, str], timings: Timings = PRODUCTION
    ) -> None:
        self.config = settings.load(config_path, environ)
        self.timings = timings
        self.port = self.config.server.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.wechat_url = self.url + self.config.server.wechat_path
        self.start()

    def start(self) -> None:
        self.app = Bot(self.config, self.timings)
        self.server = waitress.create_server(self.app, host="127.0.0.1", port=self.port, threads=8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.run()

    def stop(self) -> None:
        """Like a process dying: the listener and every kept-alive connection go.
        They are closed by the serving loop itself, woken through its trigger, so the
        loop ends at once instead of at its next one-second poll. Stopping twice is
        harmless."""
        server = self.server

        def close_everything() -> None:
            for dispatcher in list(server._map.values()):
                dispatcher.close()

        if self.thread.is_alive():
            try:
                server.trigger.pull_trigger(close_everything)
            except OSError:  # the trigger's pipe is gone (a descriptor closed twice
                close_everything()  # elsewhere): close from here, the loop ends within 1 s
            self.thread.join(timeout=5)
        server.task_dispatcher.shutdown()
        self.app.close()

    def restart(self) -> None:
        self.stop()
        self.start()


class Follower:
    """A follower with a phone: chats through the simulator, browses with cookies."""

    def __init__(self, sim: Simulator, bot: BotServer, openid: str) -> None:
        self.sim = sim
        self.bot = bot
        self.openid = openid
        self.browser = requests.Session()

    def say(self, content: str = "你好") -> dict:
        answer = self.sim.push(self.openid, type="text", content=content)
        assert answer["status"] == 200, answer
        return answer["reply"]

    def link(self) -> str:
        """The authorize URL out of the bot's reply to a text message."""
        match = ANCHOR.search(self.say()["Content"])
        assert match, "reply carries no anchor"
        return unescape(match.group(1))

    def tap(self, url: str, decision: str = "allow") -> str:
        """Tap an authorize link; return where WeChat sends the browser."""
        result = self.sim.authorize(url, openid=self.openid, decision=decision)
        assert result.location, f"WeChat refused the link: errcode {result.errcode}"
        return result.location

    def open(self, url: str) -> requests.Response:
        return self.browser.get(url, allow_redirects=False, timeout=15)

    def authorize(self) -> requests.Response:
        """The whole journey up to the callback's answer."""
        return self.open(self.tap(self.link()))

    def me(self) -> requests.Response:
        return self.open(self.bot.url + "/me")


def new_simulator(**options: str) -> Simulator:
    """A simulator of the test account, started; keyword arguments override its settings."""
    settings = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "token": TOKEN,
        "bot_url": "http://127.0.0.1:9/unset",
        "callback_domain": "127.0.0.1",
        "aes_key": "",
        **options,
    }
    return Simulator(**settings).start(host="127.0.0.1", port=0)


def launch_bot(
    sim: Simulator,
    home: Path,
    db_url: str,
    scope: str = "snsapi_userinfo",
    timings: Timings = PRODUCTION,
    **environ: str,
) -> BotServer:
    """A bot configured in `home`, on `db_url`, that `sim` pushes to; the caller stops it."""
    path = write_config(home / "config.toml", free_port(), sim.url, scope, db_url)
    server = BotServer(path, environ, timings)
    sim.bot_url = server.wechat_url
    return server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None and "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", marker.args, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database this test runs on: "sqlite", or "postgresql" (see `backends`)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayDatabase]:
    try:
        database = ThrowawayDatabase()
    except Unreachable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL (.ci/run starts it): {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL server ({exc}); .ci/run starts one")
    yield database
    database.drop()


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database for this test, on `backend`."""
    return empty_database(backend, tmp_path, request)


def empty_database(backend: str, home: Path, request: pytest.FixtureRequest) -> str:
    """The URL of an empty database on `backend` (SQLite: a file in `home`)."""
    if backend == "postgresql":
        return request.getfixturevalue("postgres").schema_url()
    return f"sqlite:///{home / 'bot.sqlite3'}"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = new_simulator()
    yield simulator
    simulator.stop()


@pytest.fixture
def make_sim():
    """More simulators (another AES key, another AppID...), stopped after the test."""
    started: list[Simulator] = []

    def make(**options: str) -> Simulator:
        started.append(new_simulator(**options))
        return started[-1]

    yield make
    for simulator in started:
        simulator.stop()


@pytest.fixture
def start_bot(sim: Simulator, tmp_path: Path, db_url: str):
    """Start a bot wired to `sim` on `db_url`; `BOT_*` keyword arguments override its
    config, `timings` its waits (production's by default)."""
    started: list[BotServer] = []

    def start(
        scope: str = "snsapi_userinfo", timings: Timings = PRODUCTION, **environ: str
    ) -> BotServer:
        started.append(launch_bot(sim, tmp_path, db_url, scope, timings, **environ))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def bot(start_bot) -> BotServer:
    return start_bot()


@pytest.fixture
def follower(sim: Simulator, bot: BotServer) -> Follower:
    return Follower(sim, bot, sim.default_openid)


@pytest.fixture
def aes_bot(start_bot) -> BotServer:
    """A bot configured for compatible and safe modes (it still takes plaintext)."""
    return start_bot(BOT_WECHAT_ENCODING_AES_KEY=AES_KEY)


@pytest.fixture
def aes_sim(make_sim, aes_bot: BotServer) -> Simulator:
    """WeChat with the same EncodingAESKey, pushing to `aes_bot`."""
    return make_sim(aes_key=AES_KEY, bot_url=aes_bot.wechat_url)
