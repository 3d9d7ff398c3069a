"""Two instances, one database: two `python bot.py serve` processes on two ports,
started together on an empty database, wired to one simulator. What one instance
did, the other knows.

One pair of instances per backend and pytest-xdist worker serves the module's tests
(each starts from a fresh link or follower): session-scoped, so that other modules'
tests the worker runs in between do not stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest
import requests

from simulator import Simulator
from storage import Store
from tests import processes
from tests.conftest import ANCHOR, ROOT, empty_database, free_port, new_simulator, write_config
from tests.test_dedupe import assert_copies_run_once, wait_until_up

pytestmark = pytest.mark.backends("sqlite", "postgresql")


@dataclass
class Instance:
    url: str
    process: subprocess.Popen

    @property
    def wechat_url(self) -> str:
        return self.url + "/wechat"

    def on_me(self, url: str) -> str:
        """`url` (a page of another instance) on this instance."""
        path = url.split("/", 3)[3]
        return f"{self.url}/{path}"


def _start(config: Path) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    command = [sys.executable, "bot.py", "--config", str(config), "serve"]
    return processes.BotProcess(command, cwd=ROOT, env=environ)


@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    """WeChat, for the module's tests: the instances' configuration names it."""
    simulator = new_simulator()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="session")
def backend(request) -> str:
    """conftest's `backend`, for the module's tests: one pair of instances per backend."""
    return request.param


@pytest.fixture(scope="session")
def db_url(backend, tmp_path_factory, request) -> str:
    return empty_database(backend, tmp_path_factory.mktemp(backend), request)


@pytest.fixture(scope="session")
def instances(sim, tmp_path_factory, db_url):
    """Two bots on `db_url`, started at the same moment on an empty database."""
    home = tmp_path_factory.mktemp("instances")
    started = []
    for name in ("a", "b"):
        port = free_port()
        config = write_config(home / f"{name}.toml", port, sim.url, storage_url=db_url)
        started.append(Instance(f"http://127.0.0.1:{port}", _start(config)))
    try:
        for instance in started:
            wait_until_up(instance.url + "/healthz")
        sim.bot_url = started[0].wechat_url
        yield started
    finally:
        for instance in started:
            instance.process.send_signal(signal.SIGTERM)
        for instance in started:
            instance.process.wait(timeout=30)


def _link(sim, openid: str) -> str:
    """The authorize link out of the reply to a text message (pushed to sim.bot_url)."""
    answer = sim.push(openid, type="text", content="你好")
    assert answer["status"] == 200, answer
    return unescape(ANCHOR.search(answer["reply"]["Content"]).group(1))


def _signed_in(sim, openid: str, first: Instance) -> requests.Session:
    """A browser signed in through `first`'s callback."""
    sim.bot_url = first.wechat_url
    browser = requests.Session()
    callback = sim.authorize(_link(sim, openid), openid=openid).location
    assert browser.get(callback, allow_redirects=False, timeout=15).status_code == 303
    return browser


def test_a_follower_authorized_on_one_is_known_on_the_other(sim, instances):
    a, b = instances
    browser = _signed_in(sim, sim.default_openid, a)
    nickname = sim.followers[sim.default_openid].nickname
    page = browser.get(b.url + "/me", timeout=15)  # the sign-in cookie names the follower
    assert page.status_code == 200
    assert nickname in page.content.decode("utf-8")


def test_a_follower_authorized_on_one_is_greeted_by_name_on_the_other(sim, instances):
    a, b = instances
    openid = sim.add_follower().openid  # one neither instance has met (they serve the module)
    sim.bot_url = b.wechat_url
    assert sim.push(openid, type="text", content="你好")["reply"]["Content"].startswith("你好！")
    _signed_in(sim, openid, a)
    sim.bot_url = b.wechat_url  # the next message lands on the instance that did not see it
    nickname = sim.followers[openid].nickname
    reply = sim.push(openid, type="text", content="你好")["reply"]["Content"]
    assert reply.startswith(f"{nickname}，你好！")


def test_a_state_used_on_one_is_refused_on_the_other(sim, instances):
    a, b = instances
    sim.bot_url = a.wechat_url
    link = _link(sim, sim.default_openid)
    first = sim.authorize(link, openid=sim.default_openid).location
    assert requests.get(first, allow_redirects=False, timeout=15).status_code == 303
    again = sim.authorize(link, openid=sim.default_openid).location  # a new code, the same state
    refused = requests.get(b.on_me(again), allow_redirects=False, timeout=15)
    assert refused.status_code == 400
    assert "链接已使用" in refused.text


def test_copies_of_a_delivery_split_across_them_run_the_handlers_once(instances):
    # WeChat's retries of one delivery, landing on both instances
    assert_copies_run_once([i.wechat_url for i in instances], deliveries=10, copies=4)


def test_both_refreshing_one_expired_token_call_wechat_once(sim, instances, db_url):
    a, b = instances
    openid = sim.default_openid
    sim.access_token_ttl = 30  # inside the bots' refresh margin: expired for them
    browser = _signed_in(sim, openid, a)
    sim.access_token_ttl = 7200  # the renewed token lasts
    sim.calls.clear()
    sim.fault("/sns/oauth2/refresh_token", "slow", seconds=1.0)  # the other visit comes meanwhile
    with ThreadPoolExecutor(2) as pool:
        pages = list(
            pool.map(
                lambda i: requests.get(i.url + "/me", cookies=browser.cookies, timeout=15), (a, b)
            )
        )
    nickname = sim.followers[openid].nickname
    assert [nickname in page.content.decode("utf-8") for page in pages] == [True, True]
    assert [path for path, _ in sim.calls].count("/sns/oauth2/refresh_token") == 1
    stored = Store.from_url(db_url).get_follower(openid)
    used = [params["access_token"] for path, params in sim.calls if path == "/sns/userinfo"]
    assert used == [stored.access_token] * 2  # both pages used the one token WeChat issued
    assert stored.access_expires_at > time.time() + 3600  # and it is the renewed one
