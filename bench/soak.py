"""Soak: N followers run the whole journey against one bot process for T seconds
while the WeChat simulator fails now and then.

    .venv/bin/python -m bench.soak --followers 20 --seconds 60 [--faults 2] [--json PATH]

The bot runs as `python bot.py --config TMP/config.toml serve` on a throwaway SQLite
file, wired to an in-process simulator. Each follower is a thread with its own browser
(a `requests.Session`) looping over: a text message → the link in the reply → WeChat's
authorize page (sometimes refused first) → the callback (sometimes reloaded, sometimes
redirected twice at once) → /me, which must show the follower's nickname; now and then
the access token expires so that /me refreshes it. Meanwhile faults are injected on the
sns endpoints (busy, slow, HTTP error, garbage, reset) at `--faults` per second, at most
one pending per endpoint.

Every answer is classified. Expected: 200, 303, a 400 after a refusal, and a 502 page,
a 400 page or /me's offline notice when a fault met that follower's own WeChat calls
(each fault is traced to the follower whose call it failed). Unexpected: anything else —
any other 5xx, a connection error, a traceback, the app secret or a token in a page, a
page without the nickname, a push WeChat could not show. A follower who meets an
expected failure reloads or takes a fresh link, as a person would.

At the end the faults stop, each follower opens /me once more, the bot gets SIGTERM and
the SQLite file is read: every follower whose journey completed must be stored with the
right nickname and tokens the simulator accepts. Exit status 1 when anything was
unexpected, a write was lost or no journey completed. Tokens and secrets are never printed.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from simulator import Simulator
from simulator.app import Call, CallLog, Fault

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "wx50a450a450a450a4"
FAULT_PATHS = (
    "/sns/oauth2/access_token",
    "/sns/oauth2/refresh_token",
    "/sns/userinfo",
    "/sns/auth",
)
FAULT_KINDS = ("busy", "slow", "http_error", "garbage", "reset")
SLOW_SECONDS = (0.3, 1.0, 2.0, 6.0)  # the last outlasts the bot's 5 s read timeout
# How people behave, per journey.
P_REFUSE = 0.1  # refuses on the consent page first, then taps the same link again
P_DOUBLE = 0.15  # WeChat's double redirect: the callback twice at once
P_RELOAD = 0.15  # reloads the callback after landing on /me
P_RELOAD_ME = 0.2
P_EXPIRE = 0.2  # the access token expires before another look at /me
MAX_RELOADS = 2  # a failure page is reloaded this often before its fresh link is taken
MAX_TAPS = 5  # links tried before the follower gives up on this journey
CLIENT_TIMEOUT = 30.0
TIMELINE_STEP = 10  # seconds
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
OFFLINE = "暂时无法连接微信"  # /me's notice when WeChat did not answer
TRACEBACK = "Traceback (most recent call last)"
QUEUE_DEPTH = re.compile(r"Task queue depth is (\d+)")  # waitress, when all threads are busy
CONNECTION_LIMIT = "reached the connection limit"  # waitress stops accepting connections
LOG_FAILURES = ("tracebacks", "secrets or tokens")
LINK = re.compile(r'href="([^"]*/connect/oauth2/authorize[^"]*)"')
TITLE = re.compile(r"<h1>(.*?)</h1>", re.S)
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{80,}")
TEXTS = ("你好", "hello", "授权", "<b>&amp;</b>", "😀")
EXAMPLES = 20
USER_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49 NetType/WIFI Language/zh_CN soak/{}"
)


class SoakError(Exception):
    """The soak could not run (the bot did not start)."""


# -- the simulator, with every served fault traced to a follower -----------------------


class CurrentCall(CallLog):
    """Keeps no history: only each thread's current WeChat call, and every token the
    bot sent (to look for them in pages and logs)."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()
        self.tokens: set[str] = set()

    def append(self, call: Call) -> None:
        self._local.call = call
        for key in ("access_token", "refresh_token"):
            if call[1].get(key):
                self.tokens.add(call[1][key])

    def current(self) -> dict[str, Any]:
        call = getattr(self._local, "call", None)
        return call[1] if call else {}


class FaultLog:
    """When each served fault happened and whose call it failed (None: unknown)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str | None, list[float]] = defaultdict(list)
        self._code_owners: dict[str, str] = {}
        self.served: Counter[str] = Counter()

    def own(self, code: str, openid: str) -> None:
        with self._lock:
            self._code_owners[code] = openid

    def owner_of_code(self, code: str) -> str | None:
        with self._lock:
            return self._code_owners.get(code)

    def record(self, path: str, kind: str, openid: str | None) -> None:
        with self._lock:
            self._times[openid].append(time.monotonic())
            self.served[f"{path} {kind}"] += 1

    def hit(self, openid: str, start: float, end: float) -> bool:
        """Did a fault fail a call of this follower (or of nobody known) in [start, end]?"""
        with self._lock:
            times = [*self._times.get(openid, ()), *self._times.get(None, ())]
        return any(start <= t <= end for t in times)


class SoakSimulator(Simulator):
    """The simulator, recording which follower each served fault was meant for."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = CurrentCall()
        self.fault_log = FaultLog()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> SoakSimulator:
        super().start(host, port)
        server = self._server._server
        # The bot hanging up on a slow answer (its read timeout) is not news here.
        server.handle_error = _quiet_on_hang_up(server.handle_error)
        return self

    def take_fault(self, path: str) -> Fault | None:
        fault = super().take_fault(path)
        if fault is not None:
            self.fault_log.record(path, fault.kind, self._owner(self.calls.current()))
        return fault

    def _owner(self, params: dict[str, Any]) -> str | None:
        if params.get("openid"):
            return params["openid"]
        if params.get("code"):
            return self.fault_log.owner_of_code(params["code"])
        # refresh_token calls name no openid; WeChat's own books do
        token = self.oauth._refresh.get(params.get("refresh_token", ""))
        return token.openid if token else None


def _quiet_on_hang_up(handle_error: Callable[..., None]) -> Callable[..., None]:
    def handle(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            handle_error(request, client_address)

    return handle


# -- the bot as a separate process ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BotProcess:
    """`python bot.py --config TMP/config.toml serve`, its output in TMP/bot.log."""

    def __init__(self, workdir: Path, sim_url: str, secret: str, token: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.wechat_url = self.url + "/wechat"
        self.database = workdir / "bot.sqlite3"
        self.log_path = workdir / "bot.log"
        config = workdir / "config.toml"
        config.write_text(
            "\n".join(
                [
                    "[wechat]",
                    f'app_id = "{APP_ID}"',
                    f'app_secret = "{secret}"',
                    f'token = "{token}"',
                    f'api_base = "{sim_url}"',
                    f'open_base = "{sim_url}"',
                    "[server]",
                    f"port = {port}",
                    f'public_url = "{self.url}"',
                    "[oauth]",
                    'scope = "snsapi_userinfo"',
                    "[storage]",
                    f'url = "sqlite:///{self.database}"',
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
        environ["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and bot.py
                [sys.executable, str(ROOT / "bot.py"), "--config", str(config), "serve"],
                cwd=ROOT,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SoakError(f"the bot exited with status {self.process.returncode} at start")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise SoakError(f"the bot did not answer /healthz within {STARTUP_TIMEOUT:g} s")

    def cpu_seconds(self) -> float:
        """User and system CPU time the bot has used so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"), 1)

    def stop(self) -> int | None:
        """SIGTERM, as a service manager would; the exit status, None if it had to be killed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


# -- counting ---------------------------------------------------------------------------


class Metrics:
    """Thread-safe tallies: statuses, latencies, events, expected and unexpected outcomes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.timeline: dict[int, Counter[str]] = defaultdict(Counter)
        self.statuses: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.events: Counter[str] = Counter()
        self.expected: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.examples: list[str] = []

    def request(self, kind: str, status: int | None, seconds: float) -> None:
        with self._lock:
            self.statuses[f"{kind} {status}"] += 1
            self.latency[kind].append(seconds)
            self.timeline[self._step()]["requests"] += 1
            self.timeline[self._step()]["over 5 s"] += seconds > 5

    def _step(self) -> int:
        return int((time.monotonic() - self.started) // TIMELINE_STEP)

    def count(self, event: str) -> None:
        with self._lock:
            self.events[event] += 1

    def expect(self, outcome: str) -> None:
        with self._lock:
            self.expected[outcome] += 1

    def fail(self, what: str, why: str) -> None:
        with self._lock:
            self.unexpected[f"{what}: {why}"] += 1
            self.timeline[self._step()]["unexpected"] += 1
            if len(self.examples) < EXAMPLES:
                offset = time.monotonic() - self.started
                self.examples.append(
                    f"+{offset:.1f}s {threading.current_thread().name} {what}: {why}"
                )

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "journeys_completed": self.events["journeys completed"],
                "events": dict(self.events),
                "requests": dict(sorted(self.statuses.items())),
                "latency_ms": {k: percentiles(v) for k, v in sorted(self.latency.items())},
                "expected_failures": dict(self.expected),
                "unexpected_errors": sum(self.unexpected.values()),
                "unexpected": dict(self.unexpected),
                "unexpected_examples": list(self.examples),
                "timeline": [
                    {"from_s": step * TIMELINE_STEP, **counts}
                    for step, counts in sorted(self.timeline.items())
                ],
            }


@dataclass(frozen=True)
class Fetch:
    """One answer of the bot, with when it was asked and answered."""

    kind: str
    url: str
    status: int
    location: str | None
    text: str
    start: float
    end: float

    @property
    def title(self) -> str:
        match = TITLE.search(self.text)
        return html.unescape(match.group(1)).strip() if match else "no title"


class Verdict(Enum):
    DONE = "done"  # signed in, or the page shown
    RELOAD = "reload"  # an expected failure: reload the same URL
    AGAIN = "again"  # an expected failure: take a fresh link
    FAIL = "fail"  # unexpected (already counted): abandon the journey


def shows(page: str, nickname: str) -> bool:
    """The nickname is on the page, escaped (its raw markup is not)."""
    escaped = "<" not in nickname or nickname not in page
    return escaped and nickname in html.unescape(page)


def fresh_link(page: str) -> str | None:
    match = LINK.search(page)
    return html.unescape(match.group(1)) if match else None


# -- one follower -------------------------------------------------------------------------


class Phone(threading.Thread):
    """A follower with a phone: chats through the simulator, browses the bot with cookies."""

    def __init__(self, soak: Soak, index: int, nickname: str, seed: int) -> None:
        super().__init__(name=f"follower-{index}", daemon=True)
        self.soak = soak
        self.openid = soak.sim.add_follower(nickname).openid
        self.nickname = nickname
        self.rng = seeded(seed)
        self.browser = requests.Session()
        self.browser.trust_env = False
        self.browser.headers["User-Agent"] = USER_AGENT.format(index)
        self.completed = 0
        self.journey_start = 0.0

    def run(self) -> None:
        while not self.soak.stopping.is_set():
            try:
                self.journey()
            except Exception as exc:  # a fault of the soak itself: counted, never silent
                self.soak.metrics.fail("soak", f"{type(exc).__name__} in a follower's journey")

    def journey(self) -> None:
        self.journey_start = time.monotonic()
        link = self.chat_link()
        if link and self.rng.random() < P_REFUSE:
            link = self.refuse(link)
        if link and self.sign_in(link) and self.my_page():
            self.completed += 1
            self.soak.metrics.count("journeys completed")
            self.wander()

    def wander(self) -> None:
        """What a follower does on their page: reload it, come back after the token expired."""
        if self.rng.random() < P_RELOAD_ME:
            self.soak.metrics.count("/me reloads")
            self.my_page()
        if self.rng.random() < P_EXPIRE:
            self.soak.sim.expire_access_tokens(self.openid)
            self.soak.metrics.count("access tokens expired")
            self.my_page()

    def settle(self) -> bool:
        """After the faults stopped: /me must be checked with WeChat and show the nickname."""
        fetch = self.get("final /me", self.soak.bot_url + "/me")
        if fetch is None:
            return False
        if fetch.status == 200 and OFFLINE not in fetch.text and shows(fetch.text, self.nickname):
            return True
        self.fail(fetch, f"with WeChat healthy again, /me shows {fetch.title!r}")
        return False

    # -- the chat and WeChat's pages

    def chat_link(self) -> str | None:
        start = time.monotonic()
        answer = self.soak.sim.push(self.openid, type="text", content=self.rng.choice(TEXTS))
        self.soak.metrics.request("push", answer["status"], time.monotonic() - start)
        if answer["attempts"] > 1:
            self.soak.metrics.count("pushes WeChat retried (no answer within 5 s)")
        link = fresh_link((answer["reply"] or {}).get("Content", ""))
        if answer["status"] == 200 and link:
            return link
        why = answer.get("detail") or "the reply carries no authorize link"
        self.soak.metrics.fail(f"push {answer['status']}", why)
        return None

    def tap(self, link: str, decision: str) -> str | None:
        """WeChat's authorize page; where it sends the browser."""
        result = self.soak.sim.authorize(link, openid=self.openid, decision=decision)
        if not result.location:
            self.soak.metrics.fail(
                "authorize", f"WeChat refused the link (errcode {result.errcode})"
            )
            return None
        if result.code:
            self.soak.sim.fault_log.own(result.code, self.openid)
        return result.location

    def refuse(self, link: str) -> str | None:
        """Tap 拒绝 first; the same link stays usable."""
        self.soak.metrics.count("refusals")
        url = self.tap(link, "deny")
        fetch = self.get("callback", url) if url else None
        if fetch is None:
            return None
        if fetch.status != 400:
            self.fail(fetch, "a refusal did not get the 400 page")
            return None
        self.soak.metrics.expect("callback 400 after a refusal")
        return link

    # -- the bot's pages

    def sign_in(self, link: str) -> bool:
        for _ in range(MAX_TAPS):
            url = self.tap(link, "allow")
            if url is None:
                return False
            verdict, page = self.callback(url)
            if verdict is not Verdict.AGAIN:
                return verdict is Verdict.DONE
            link = fresh_link(page) or self.chat_link()
            if link is None:
                return False
        self.soak.metrics.count("journeys abandoned")
        return False

    def callback(self, url: str) -> tuple[Verdict, str]:
        """The callback, reloaded after a passing failure; the verdict and the last page."""
        double = self.rng.random() < P_DOUBLE
        page = ""
        for attempt in range(MAX_RELOADS + 1):
            fetches = self.twice(url) if double and not attempt else [self.get("callback", url)]
            if None in fetches:
                return Verdict.FAIL, page
            verdicts = {self.judge_callback(fetch) for fetch in fetches}
            page = fetches[-1].text
            if Verdict.FAIL in verdicts:
                return Verdict.FAIL, page
            if Verdict.DONE in verdicts:
                return self.reload_callback(url), page
            if Verdict.AGAIN in verdicts:
                return Verdict.AGAIN, page
        return Verdict.AGAIN, page

    def reload_callback(self, url: str) -> Verdict:
        """Sometimes the follower reloads the callback once landed: still /me."""
        if self.rng.random() >= P_RELOAD:
            return Verdict.DONE
        self.soak.metrics.count("callback reloads")
        fetch = self.get("callback", url)
        if fetch is None or self.judge_callback(fetch) is Verdict.FAIL:
            return Verdict.FAIL
        return Verdict.DONE

    def twice(self, url: str) -> list[Fetch | None]:
        """WeChat's double redirect: the same callback twice at the same moment."""
        self.soak.metrics.count("double redirects")
        fetches: list[Fetch | None] = [None, None]

        def second() -> None:
            fetches[1] = self.get("callback", url)

        other = threading.Thread(target=second, name=self.name + "-twin")
        other.start()
        fetches[0] = self.get("callback", url)
        other.join()
        return fetches

    def judge_callback(self, fetch: Fetch) -> Verdict:
        if fetch.status == 303:
            target = urlsplit(urljoin(fetch.url, fetch.location or ""))
            if target.netloc == urlsplit(self.soak.bot_url).netloc and target.path == "/me":
                return Verdict.DONE
            self.fail(fetch, "redirected elsewhere than /me")
            return Verdict.FAIL
        if fetch.status == 502 and self.faulted(fetch.start, fetch.end):
            self.soak.metrics.expect("callback 502 after a fault")
            return Verdict.RELOAD
        if fetch.status == 400 and self.faulted(self.journey_start, fetch.end):
            self.soak.metrics.expect(f"callback 400 after a fault ({fetch.title})")
            return Verdict.AGAIN
        self.fail(fetch, f"{fetch.title!r} with no fault on this follower's calls")
        return Verdict.FAIL

    def my_page(self) -> bool:
        for _ in range(MAX_RELOADS + 1):
            fetch = self.get("/me", self.soak.bot_url + "/me")
            verdict = self.judge_me(fetch) if fetch else Verdict.FAIL
            if verdict is not Verdict.RELOAD:
                return verdict is Verdict.DONE
        self.soak.metrics.count("journeys abandoned")
        return False

    def judge_me(self, fetch: Fetch) -> Verdict:
        if fetch.status != 200:
            self.fail(fetch, repr(fetch.title))
            return Verdict.FAIL
        shown = shows(fetch.text, self.nickname)
        if OFFLINE in fetch.text:
            if not self.faulted(fetch.start, fetch.end):
                self.fail(fetch, "the offline notice with no fault on this follower's calls")
                return Verdict.FAIL
            self.soak.metrics.expect("/me offline after a fault")
            return Verdict.DONE if shown else Verdict.RELOAD
        if not shown:
            self.fail(fetch, f"{fetch.title!r} lacks the follower's nickname")
            return Verdict.FAIL
        return Verdict.DONE

    def get(self, kind: str, url: str) -> Fetch | None:
        """GET without following redirects; None (counted as unexpected) if nothing usable came."""
        start = time.monotonic()
        try:
            response = self.browser.get(url, allow_redirects=False, timeout=CLIENT_TIMEOUT)
        except requests.RequestException as exc:
            self.soak.metrics.fail(kind, f"no answer from the bot ({type(exc).__name__})")
            return None
        end = time.monotonic()
        self.soak.metrics.request(kind, response.status_code, end - start)
        text = response.content.decode("utf-8", "replace")
        location = response.headers.get("Location")
        fetch = Fetch(kind, url, response.status_code, location, text, start, end)
        leak = self.soak.leak(text)
        if leak:
            self.fail(fetch, f"the page shows {leak}")
            return None
        return fetch

    def faulted(self, start: float, end: float) -> bool:
        return self.soak.sim.fault_log.hit(self.openid, start, end)

    def fail(self, fetch: Fetch, why: str) -> None:
        self.soak.metrics.fail(f"{fetch.kind} {fetch.status}", why)


class Soak:
    """What the followers share: the simulator, the bot's URL, the tallies, the stop flag."""

    def __init__(self, sim: SoakSimulator, bot_url: str, secret: str) -> None:
        self.sim = sim
        self.bot_url = bot_url
        self.secret = secret
        self.metrics = Metrics()
        self.stopping = threading.Event()

    def leak(self, text: str) -> str | None:
        """What a page must never show: a traceback, the app secret, a token."""
        if TRACEBACK in text:
            return "a traceback"
        if self.secret in text:
            return "the app secret"
        if any(run in self.sim.calls.tokens for run in TOKEN_LIKE.findall(text)):
            return "a token"
        return None


def inject_faults(
    sim: Simulator, rate: float, stop: threading.Event, rng: random.Random
) -> Counter[str]:
    """Queue a random fault on a random sns endpoint about `rate` times a second, at most
    one pending per endpoint (so a rarely called one does not pile them up)."""
    injected: Counter[str] = Counter()
    while not stop.wait(rng.expovariate(rate)):
        path = rng.choice(FAULT_PATHS)
        if sim.faults.get(path):
            continue
        kind = rng.choice(FAULT_KINDS)
        sim.fault(path, kind, times=1, seconds=rng.choice(SLOW_SECONDS) if kind == "slow" else 0)
        injected[f"{path} {kind}"] += 1
    return injected


# -- after the run ------------------------------------------------------------------------


def check_writes(
    database: Path, sim_url: str, app_id: str, nicknames: dict[str, str], fresh: set[str]
) -> list[str]:
    """Every follower in `nicknames` must be stored with that nickname and tokens WeChat
    (the simulator at `sim_url`) accepts. A follower in `fresh` saw /me checked with
    WeChat last, so its stored access token must be live; for the others an expired one
    is fine if the refresh token renews it. One line per problem, no token in it."""
    with closing(sqlite3.connect(database)) as db:
        db.row_factory = sqlite3.Row
        rows = {row["openid"]: row for row in db.execute("SELECT * FROM followers")}
    problems = []
    for openid, nickname in sorted(nicknames.items()):
        row = rows.get(openid)
        problem = _check_follower(row, openid, nickname, openid in fresh, sim_url, app_id)
        if problem:
            problems.append(f"{openid}: {problem}")
    return problems


def _check_follower(
    row: sqlite3.Row | None, openid: str, nickname: str, fresh: bool, sim_url: str, app_id: str
) -> str | None:
    if row is None:
        return "not stored"
    if row["nickname"] != nickname:
        return f"stored nickname {row['nickname']!r}, WeChat says {nickname!r}"
    if row["needs_reauth"]:
        return "marked for re-authorization"
    access = _wechat(sim_url, "sns/auth", access_token=row["access_token"], openid=openid)
    errcode = access.get("errcode", 0)
    if errcode and (fresh or errcode != 42001):
        return f"stored access token refused by WeChat (errcode {errcode})"
    renewed = _wechat(
        sim_url,
        "sns/oauth2/refresh_token",
        appid=app_id,
        grant_type="refresh_token",
        refresh_token=row["refresh_token"],
    )
    if renewed.get("openid") != openid:
        return f"stored refresh token refused by WeChat (errcode {renewed.get('errcode')})"
    if not errcode and renewed["access_token"] != row["access_token"]:
        return "stored access and refresh tokens come from different grants"
    return None


def _wechat(sim_url: str, endpoint: str, **params: str) -> dict[str, Any]:
    answer = requests.get(f"{sim_url}/{endpoint}", params=params, timeout=CLIENT_TIMEOUT)
    return json.loads(answer.content.decode("utf-8"))


def stored_rows(database: Path) -> dict[str, int]:
    with closing(sqlite3.connect(database)) as db:
        followers = db.execute("SELECT COUNT(*) FROM followers").fetchone()[0]
        open_claims = db.execute(
            "SELECT COUNT(*) FROM oauth_states WHERE completed_at IS NULL"
        ).fetchone()[0]
    return {"followers": followers, "claims left open": open_claims}


def stored_tokens(database: Path) -> set[str]:
    with closing(sqlite3.connect(database)) as db:
        rows = db.execute("SELECT access_token, refresh_token FROM followers").fetchall()
    return {token for row in rows for token in row}


def scan_log(path: Path, hidden: Iterable[str]) -> dict[str, int]:
    text = path.read_text("utf-8", "replace")
    return {
        "tracebacks": text.count(TRACEBACK),
        "ERROR lines": sum(" ERROR " in line for line in text.splitlines()),
        "secrets or tokens": sum(1 for secret in hidden if secret and secret in text),
        "max task queue depth": max(map(int, QUEUE_DEPTH.findall(text)), default=0),
        "connection limit reached": text.count(CONNECTION_LIMIT),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1] * 1000, 1)}


# -- the run ------------------------------------------------------------------------------


def nickname_for(index: int) -> str:
    """Unique nicknames; every other one carries markup and an entity, to catch bad escaping."""
    if index % 2:
        return f'<b>粉丝{index}</b>&amp;"🐼'
    return f"快乐的熊猫{index}号😀"


def seeded(seed: float) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible choices, not secrets


def run(followers: int, seconds: float, faults: float, seed: int | None = None) -> dict[str, Any]:
    """Run the soak; the report as a dict (`render` prints it)."""
    seed = secrets.randbelow(2**32) if seed is None else seed
    rng = seeded(seed)
    secret, token = secrets.token_hex(16), secrets.token_hex(8)
    report: dict[str, Any] = {"followers": followers, "fault_rate_per_s": faults, "seed": seed}
    report["load_average_1min"] = [os.getloadavg()[0]]
    cpu = time.process_time()
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as workdir,
        SoakSimulator(
            app_id=APP_ID, app_secret=secret, token=token, callback_domain="127.0.0.1"
        ) as sim,
    ):
        bot = BotProcess(Path(workdir), sim.url, secret, token)
        try:
            sim.bot_url = bot.wechat_url
            soak = Soak(sim, bot.url, secret)
            phones = [
                Phone(soak, i, nickname_for(i), rng.randrange(2**32)) for i in range(followers)
            ]
            report.update(_drive(soak, phones, seconds, faults, rng))
            fresh = {phone.openid for phone in phones if phone.completed and phone.settle()}
            report["load_average_1min"].append(os.getloadavg()[0])
            report["cpu_s"] = {
                "bot": bot.cpu_seconds(),
                "soak and simulator": round(time.process_time() - cpu, 1),
            }
        finally:
            report["bot_exit_status"] = bot.stop()
        completed = {phone.openid: phone.nickname for phone in phones if phone.completed}
        report["lost"] = check_writes(bot.database, sim.url, APP_ID, completed, fresh)
        report["stored"] = stored_rows(bot.database)
        hidden = {secret, token, *sim.calls.tokens, *stored_tokens(bot.database)}
        report["bot_log"] = scan_log(bot.log_path, hidden)
    for problem in LOG_FAILURES:
        if report["bot_log"][problem]:
            soak.metrics.fail("bot log", f"{report['bot_log'][problem]} {problem}")
    report.update(soak.metrics.summary(), lost_writes=len(report["lost"]))
    return report


def _drive(
    soak: Soak, phones: list[Phone], seconds: float, faults: float, rng: random.Random
) -> dict[str, Any]:
    """Followers for `seconds` with faults, then no more faults: duration and fault counts."""
    started = time.monotonic()
    stop_faults = threading.Event()
    injected: Counter[str] = Counter()

    def injector() -> None:
        injected.update(inject_faults(soak.sim, faults, stop_faults, seeded(rng.random())))

    thread = threading.Thread(target=injector, name="faults", daemon=True)
    if faults > 0:
        thread.start()
    for phone in phones:
        phone.start()
    soak.stopping.wait(seconds)
    soak.stopping.set()
    for phone in phones:
        phone.join()
    stop_faults.set()
    if faults > 0:
        thread.join()
    soak.sim.clear_faults()
    served = soak.sim.fault_log.served
    return {
        "duration_s": round(time.monotonic() - started, 1),
        "cpus": os.cpu_count(),
        "faults": {
            "injected": sum(injected.values()),
            "served": sum(served.values()),
            "served_by_kind": dict(sorted(served.items())),
        },
    }


def failed(report: dict[str, Any]) -> bool:
    return bool(
        report["unexpected_errors"] or report["lost_writes"] or not report["journeys_completed"]
    )


def render(report: dict[str, Any]) -> str:
    r = report
    load = " → ".join(f"{x:.2f}" for x in r["load_average_1min"])
    lines = [
        f"soak: {r['followers']} followers for {r['duration_s']} s,"
        f" faults {r['fault_rate_per_s']}/s, seed {r['seed']}"
        f" (load average {load} on {r['cpus']} CPUs)",
        f"journeys completed: {r['journeys_completed']}",
        "CPU seconds: " + _pairs(r["cpu_s"]),
        "events: " + _pairs(r["events"]),
        "requests: " + _pairs(r["requests"]),
        "latency ms (p50 / p99 / max): "
        + "; ".join(
            f"{kind} {v['p50']} / {v['p99']} / {v['max']}" for kind, v in r["latency_ms"].items()
        ),
        f"faults: {r['faults']['injected']} injected, {r['faults']['served']} served: "
        + _pairs(r["faults"]["served_by_kind"]),
        "expected failures: " + _pairs(r["expected_failures"]),
        f"stored: {_pairs(r['stored'])}; bot log: {_pairs(r['bot_log'])}",
        f"bot stopped by SIGTERM: {_exit(r['bot_exit_status'])}",
        f"requests per {TIMELINE_STEP} s: " + _steps(r["timeline"], "requests"),
        f"answers slower than 5 s per {TIMELINE_STEP} s: " + _steps(r["timeline"], "over 5 s"),
        f"unexpected errors: {r['unexpected_errors']}",
        *(f"  {count} × {what}" for what, count in r["unexpected"].items()),
        *(f"  e.g. {example}" for example in r["unexpected_examples"][:5]),
        f"lost writes: {r['lost_writes']}",
        *(f"  {problem}" for problem in r["lost"][:EXAMPLES]),
    ]
    return "\n".join(lines)


def _pairs(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _steps(timeline: list[dict[str, int]], key: str) -> str:
    return " ".join(str(step.get(key, 0)) for step in timeline)


def _exit(status: int | None) -> str:
    if status is None:
        return f"still running after {STOP_TIMEOUT:g} s, killed"
    if status < 0:
        return f"killed by signal {-status} (no clean shutdown)"
    return f"exit status {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="N followers run the whole journey against a bot process for T seconds "
        "while the WeChat simulator fails now and then; exit status 1 on any unexpected "
        "answer or lost write.",
    )
    parser.add_argument("--followers", type=int, default=20, metavar="N", help="default 20")
    parser.add_argument("--seconds", type=float, default=60.0, metavar="T", help="default 60")
    parser.add_argument(
        "--faults", type=float, default=2.0, metavar="RATE", help="faults per second (default 2)"
    )
    parser.add_argument("--seed", type=int, help="seed of the followers' and faults' choices")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report here")
    args = parser.parse_args(argv)
    try:
        report = run(args.followers, args.seconds, args.faults, args.seed)
    except SoakError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return 1 if failed(report) else 0


if __name__ == "__main__":
    sys.exit(main())
