"""The OAuth journey under load: WeChat's callback, then /me, ours against the seed's
style (bench/seed_style.py), both under the same gunicorn, against the simulator as
a bot in a data centre reaches api.weixin.qq.com: over HTTPS (a throwaway CA the
contenders trust through REQUESTS_CA_BUNDLE, beside certifi's) with a network round
trip injected (BENCH_ROUND_TRIP_MS, 30 by default) per request and per handshake.

Every journey is genuine. Before each run, for each journey: a new follower in the
simulator, a state the contender minted (its /login, called in process), and a code
the simulator issued on that follower's consent; wrk (bench/journey.lua) sends each
callback URL once, then /me with the cookie the callback set. One request is one
step of a journey, a callback or a /me, so a journey is two requests; p50 and p99
are over both kinds. A callback costs the contender two WeChat calls (the code
exchange, userinfo), a /me one (userinfo).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit
from wsgiref.util import setup_testing_defaults

import certifi
import requests

from bench.harness import (
    ROOT,
    App,
    Load,
    LoadGeneratorRanOut,
    cpu_seconds,
    free_port,
    interleave,
    measure,
)
from bench.report import Options, Row, Target, ratio
from simulator.tls import self_signed

SCENARIO = "journey"
APP_ID = "wxbench00000000001"
APP_SECRET = "benchsecret0123456789abcdef01234"  # noqa: S105 - a benchmark account
TOKEN = "benchtoken"  # noqa: S105
SCRIPT = Path(__file__).with_name("journey.lua")
PROFILE_TITLE = "我的资料"  # both contenders' /me
OFFLINE_NOTICE = "暂时无法连接微信"  # ours, when userinfo failed
TICKET = re.compile(r'name="ticket" value="([^"]+)"')
MAKERS = 32  # threads making journeys before a run
# WeChat round trips a callback waits for, at least: ours reuses its connections (one
# per call), the seed's style opens one per call (TCP's and TLS's handshakes too).
CALLBACK_ROUND_TRIPS = {"ours": 2, "seed-style": 6}
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


def round_trip_ms() -> float:
    return float(os.environ.get("BENCH_ROUND_TRIP_MS", "30"))


def mode() -> str:
    return f"https, {round_trip_ms():g} ms round trip"


class WeChat:
    """`python -m simulator` over HTTPS with the round trip injected, until `stop()`."""

    def __init__(self, workdir: Path) -> None:
        cert, key = self_signed(workdir, "api.weixin.qq.com")
        self.ca_bundle = workdir / "ca-bundle.pem"  # what a bot trusts: certifi's and ours
        self.ca_bundle.write_text(Path(certifi.where()).read_text() + cert.read_text())
        self.cert = cert
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        command = [
            sys.executable, "-m", "simulator", "--port", str(port),
            "--bot-url", "http://127.0.0.1:9/unused", "--app-id", APP_ID,
            "--app-secret", APP_SECRET, "--token", TOKEN, "--callback-domain", "127.0.0.1",
            "--tls-cert", str(cert), "--tls-key", str(key),
            "--round-trip", str(round_trip_ms()),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)  # noqa: S603
        self._local = threading.local()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.session().get(self.url + "/api/account", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the simulator did not start")

    def session(self) -> requests.Session:
        """This thread's phone: kept-alive connections to the simulator, its cookies."""
        if not hasattr(self._local, "session"):
            session = requests.Session()
            session.trust_env = False
            session.verify = str(self.cert)
            self._local.session = session
        return self._local.session

    def consent(self, number: int, link: str) -> str:
        """A new follower opens `link` and allows it: the callback's path and query."""
        phone = self.session()
        phone.post(self.url + "/api/follower", json={"nickname": f"跑者{number}"}, timeout=30)
        parts = urlsplit(link)
        page = phone.get(f"{self.url}{parts.path}?{parts.query}", timeout=30)
        ticket = TICKET.search(page.text)
        if ticket is None:
            raise RuntimeError(f"no consent page for {link}: {page.text[:200]}")
        form = {"ticket": ticket.group(1), "decision": "allow"}
        confirm = f"{self.url}/connect/oauth2/authorize/confirm"
        landing = urlsplit(
            phone.post(confirm, data=form, allow_redirects=False).headers["Location"]
        )
        return f"{landing.path}?{landing.query}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def login_link(app: WSGIApp) -> str:
    """The authorize link the contender's /login redirects a new visitor to."""
    environ = {"PATH_INFO": "/login", "REMOTE_ADDR": "127.0.0.1"}
    setup_testing_defaults(environ)
    found: dict[str, str] = {}

    def start_response(status: str, headers: list, exc_info=None) -> None:
        found.update((name.lower(), value) for name, value in headers)

    b"".join(app(environ, start_response))
    return found["location"]


def ours(wechat: WeChat, workdir: Path) -> tuple[App, WSGIApp, Callable[[], None]]:
    """The bot, every check on: its gunicorn app, the same bot in process (to mint states)."""
    import config as settings
    from bot import Bot

    path = workdir / "ours.toml"
    path.write_text(
        f'[wechat]\napp_id = "{APP_ID}"\napp_secret = "{APP_SECRET}"\ntoken = "{TOKEN}"\n'
        f'api_base = "{wechat.url}"\nopen_base = "{wechat.url}"\n'
        '[server]\npublic_url = "http://127.0.0.1:8888"\n[oauth]\nscope = "snsapi_userinfo"\n'
        f'[storage]\nurl = "sqlite:///{workdir}/ours.sqlite3"\n'
    )
    bot = Bot(settings.load(path, {}))
    return App("bot:app", {"BOT_CONFIG": str(path)}), bot, bot.close


def seed_style(wechat: WeChat, workdir: Path) -> tuple[App, WSGIApp, Callable[[], None]]:
    """bench/seed_style.py: its gunicorn app, the same app in process (to mint states)."""
    from bench import seed_style as seed

    environ = {
        "SEED_API_BASE": wechat.url,
        "SEED_APP_ID": APP_ID,
        "SEED_APP_SECRET": APP_SECRET,
        "SEED_PUBLIC_URL": "http://127.0.0.1:8888",
        "SEED_DATABASE": str(workdir / "seed.sqlite3"),
    }
    return App("bench.seed_style:create()", environ), seed.create(environ), lambda: None


CONTENDERS = {"ours": ours, "seed-style": seed_style}


def journeys_needed(contender: str, options: Options) -> int:
    """More journeys than the contender can finish in the run: each gunicorn thread
    completes a callback in no less than its WeChat round trips."""
    fastest = CALLBACK_ROUND_TRIPS[contender] * round_trip_ms() / 1000
    per_second = options.workers * options.threads / fastest if fastest else 2000.0
    return math.ceil(min(per_second, 2000.0) * options.seconds * 1.25) + 20


@dataclass
class Journeys:
    """The callback URLs of one contender's next run, made fresh before each run."""

    wechat: WeChat
    app: WSGIApp  # the contender in process: its /login mints the states
    path: Path  # one callback path and query a line
    count: int

    def make(self) -> None:
        def one(number: int) -> str:
            return self.wechat.consent(number, login_link(self.app))

        with ThreadPoolExecutor(MAKERS) as pool:
            lines = list(pool.map(one, range(self.count)))
        self.path.write_text("\n".join(lines) + "\n")


def run(options: Options) -> list[Row]:
    """Ours against the seed's style, interleaved rounds; one Row each."""
    workdir = options.workdir / SCENARIO
    workdir.mkdir(parents=True, exist_ok=True)
    wechat = WeChat(workdir)
    closers: list[Callable[[], None]] = []
    try:
        loads, journeys = [], {}
        for name, contender in CONTENDERS.items():
            if not options.wants(name):
                continue
            app, in_process, close = contender(wechat, workdir)
            closers.append(close)
            path, count = workdir / f"{name}.journeys", journeys_needed(name, options)
            journeys[name] = Journeys(wechat, in_process, path, count)
            loads.append(_load(name, app, wechat, path, options))
        return interleave(loads, options, run=_measured_with(wechat, journeys))
    finally:
        for close in closers:
            close()
        wechat.stop()


def _load(name: str, app: App, wechat: WeChat, journeys: Path, options: Options) -> Load:
    app.environ["REQUESTS_CA_BUNDLE"] = str(wechat.ca_bundle)
    return Load(
        SCENARIO, mode(), name, app, SCRIPT,
        {
            "BENCH_JOURNEYS": str(journeys), "BENCH_WRK_THREADS": str(options.wrk_threads),
            "BENCH_ME_MARK": PROFILE_TITLE,
            "BENCH_ME_OFFLINE": OFFLINE_NOTICE if name == "ours" else "",
        },
    )  # fmt: skip


def _measured_with(wechat: WeChat, journeys: dict[str, Journeys]) -> Callable[[Load, Options], Row]:
    """harness.measure after making the contender's journeys (again, with more, when
    they ran out), with the simulator's CPU share over the run and the round trip in
    the extras."""

    def measured(load: Load, options: Options) -> Row:
        made = journeys[load.contender]
        while True:
            made.make()
            before, started = cpu_seconds(wechat.process.pid), time.monotonic()
            try:
                row = measure(load, options)
            except LoadGeneratorRanOut as short:
                made.count = max(2 * made.count, math.ceil(short.rps * options.seconds))
                continue
            break
        used = cpu_seconds(wechat.process.pid) - before
        share = used / (time.monotonic() - started) / (os.cpu_count() or 1)
        extras = {
            **row.extras,
            "journeys_per_s": round(row.rps / 2, 1),
            "round_trip_ms": round_trip_ms(),
            "simulator_cpu_share": round(share, 3),
        }
        return replace(row, extras=extras)

    return measured


def targets(rows: list[Row]) -> list[Target]:
    """Issue 9's targets for the journey: ours at least twice the seed style's
    throughput, at most half its p50, and no errors."""
    have = {row.contender: row for row in rows if row.scenario == SCENARIO}
    found = (
        [Target("journey: ours' errors", have["ours"].errors, 0, False)] if "ours" in have else []
    )
    if {"ours", "seed-style"} <= have.keys():
        journey_mode = have["ours"].mode
        for figure, goal, at_least in (("rps", 2.0, True), ("p50_ms", 0.5, False)):
            value = ratio(rows, SCENARIO, journey_mode, ("ours", "seed-style"), figure)
            found.append(Target(f"journey: ours / seed-style {figure}", value, goal, at_least))
    return found
