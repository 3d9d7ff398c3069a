"""`serve` and `sandbox` as operators run them (`python bot.py ...` in a subprocess):
stopped by SIGTERM or Ctrl-C only after the requests in flight are answered, and
not starved by idle or half-sent connections."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from html import unescape
from pathlib import Path

import pytest
import requests

from serving import GRACE
from tests import processes
from tests.conftest import ANCHOR, ROOT, free_port, write_config

SLOW = 1.0  # seconds WeChat takes to exchange the code while the stop signal arrives
EXCHANGE = "/sns/oauth2/access_token"
STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT]
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"  # the simulator's default follower


class WeChat:
    """The simulator driven over its control API, in this process or in `sandbox`'s."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _post(self, route: str, **body) -> dict:
        answer = requests.post(self.url + route, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def push(self, content: str = "你好", msg_id: int | None = None) -> dict:
        return self._post("/api/push", openid=OPENID, type="text", content=content, msg_id=msg_id)

    def callback_url(self) -> str:
        """Where WeChat sends the follower after they allow the link in the bot's reply."""
        answer = self.push()
        link = unescape(ANCHOR.search(answer["reply"]["Content"]).group(1))
        location = self._post("/api/authorize", url=link, openid=OPENID)["location"]
        assert location, "WeChat refused the link"
        return location

    def slow_down(self, path: str, seconds: float) -> None:
        self._post("/api/fault", path=path, kind="slow", seconds=seconds)

    def called(self, path: str) -> bool:
        calls = requests.get(self.url + "/api/calls", timeout=10).json()
        return any(call["path"] == path for call in calls["calls"])


class BotProcess:
    """`python bot.py --config PATH COMMAND` in a subprocess."""

    def __init__(self, config: Path, port: int, *command: str) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = processes.BotProcess(
            [sys.executable, "bot.py", "--config", str(config), *command],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until_up(self.url + "/healthz", self.process)

    def stop(self, signum: int = signal.SIGTERM) -> subprocess.CompletedProcess:
        """Send `signum`; the process must exit within the grace period (plus start-up slack)."""
        self.process.send_signal(signum)
        stdout, stderr = self.process.communicate(timeout=GRACE + 10)
        return subprocess.CompletedProcess(
            self.process.args, self.process.returncode, stdout, stderr
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.communicate()[1]
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.1)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 15
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


class InFlight(threading.Thread):
    """A follower's browser opening `url` in the background."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.outcome: requests.Response | Exception | None = None

    def run(self) -> None:
        try:
            self.outcome = requests.get(self.url, allow_redirects=False, timeout=30)
        except requests.RequestException as exc:
            self.outcome = exc

    def response(self) -> requests.Response:
        self.join()
        assert isinstance(self.outcome, requests.Response), f"no answer: {self.outcome!r}"
        return self.outcome


def slow_callback(wechat: WeChat) -> InFlight:
    """A follower's callback whose code exchange WeChat answers slowly, now in flight."""
    callback = InFlight(wechat.callback_url())
    wechat.slow_down(EXCHANGE, SLOW)
    callback.start()
    wait_for(lambda: wechat.called(EXCHANGE), "the callback reached WeChat")
    return callback


@pytest.fixture
def started(tmp_path, sim):
    """Start `python bot.py serve` wired to `sim`; every bot started is killed at the end."""
    port = free_port()
    config = write_config(tmp_path / "config.toml", port, sim.url)
    sim.bot_url = f"http://127.0.0.1:{port}/wechat"
    with ExitStack() as running:

        def start() -> BotProcess:
            bot = BotProcess(config, port, "serve")
            running.callback(bot.kill)
            return bot

        yield start


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_serve_answers_in_flight_requests_before_exiting(started, sim, signum):
    bot = started()
    callback = slow_callback(WeChat(sim.url))
    stopped = bot.stop(signum)

    response = callback.response()
    assert response.status_code == 303, response.text
    assert response.headers["Location"] == "/me"
    assert stopped.returncode == 0, stopped.stderr
    assert "Traceback" not in stopped.stderr


def test_serve_writes_pending_records_before_exiting(started, sim):
    bot, wechat = started(), WeChat(sim.url)
    first = wechat.push("你好")  # its record is still waiting for the batch writer
    assert bot.stop(signal.SIGTERM).returncode == 0
    # Written on the way down: the same delivery after a restart runs no handler.
    started()
    again = wechat.push("你好", msg_id=first["msg_id"])
    assert again["status"] == 200
    assert again["reply"] in (None, first["reply"])


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_sandbox_answers_in_flight_requests_before_exiting(tmp_path, signum):
    port, simulator_port = free_port(), free_port()
    config = write_config(tmp_path / "config.toml", free_port(), "http://127.0.0.1:9")
    ports = ("--port", str(port), "--simulator-port", str(simulator_port))
    bot = BotProcess(config, port, "sandbox", *ports)
    try:
        callback = slow_callback(WeChat(f"http://127.0.0.1:{simulator_port}"))
        stopped = bot.stop(signum)
    finally:
        bot.kill()
    assert callback.response().status_code == 303
    assert stopped.returncode == 0, stopped.stderr
    assert "Traceback" not in stopped.stderr


def test_idle_and_half_sent_connections_do_not_starve_pushes(started, sim):
    bot = started()
    with ExitStack() as held:
        for number in range(500):
            connection = held.enter_context(socket.create_connection(("127.0.0.1", bot.port)))
            if number % 5 < 2:  # 200 of them stop half-way through a push
                connection.sendall(b"POST /wechat?signature=x HTTP/1.1\r\nContent-Length: 900\r\n")
        answer = sim.push(OPENID, type="text", content="你好")
    # Answered on WeChat's first try, within its 5 s: no retry was needed.
    assert answer["status"] == 200, answer
    assert answer["attempts"] == 1
    assert ANCHOR.search(answer["reply"]["Content"])
