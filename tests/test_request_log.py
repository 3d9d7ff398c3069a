"""One log line per request: method, path without its query, status, milliseconds;
never a code, state, signature or token, and no line a client can forge. (A whole
journey's lines are checked in test_secrets.py.)"""

from __future__ import annotations

import logging
import re
import time

import pytest
import requests

from tests.conftest import ANCHOR

LINE = re.compile(r"([A-Z]+) (\S+) (\d{3}) (\d+\.\d) ms")


@pytest.fixture
def lines(caplog):
    """`lines(n)`: the first n request lines, once written: the bot writes each after
    its response has gone out, so the client may see the answer a moment earlier."""
    caplog.set_level(logging.INFO, logger="bot.request")

    def read(count: int) -> list[tuple[str, str, str]]:
        deadline = time.monotonic() + 10
        while len(found := [r for r in caplog.records if r.name == "bot.request"]) < count:
            assert time.monotonic() < deadline, f"{len(found)} of {count} lines written"
            time.sleep(0.01)
        messages = [record.getMessage() for record in found]
        assert all(LINE.fullmatch(line) for line in messages), messages
        return [LINE.fullmatch(line).groups()[:3] for line in messages]

    return read


def test_a_push_and_a_callback_are_logged_without_their_query(follower, bot, lines):
    location = follower.tap(follower.link())
    assert "code=" in location and "state=" in location
    follower.open(location)
    assert lines(2) == [("POST", "/wechat", "200"), ("GET", "/oauth/callback", "303")]


def test_a_forged_line_cannot_be_written(bot, lines):
    requests.get(bot.url + "/me%0a2026-01-01%20INFO%20bot.request:%20GET%20/x?code=1", timeout=5)
    [(method, path, status)] = lines(1)
    assert (method, status) == ("GET", "404")
    assert path == "/me%0A2026-01-01%20INFO%20bot.request:%20GET%20/x"  # and the query dropped


def test_a_long_path_is_cut(bot, lines):
    requests.get(bot.url + "/" + "a" * 5000, timeout=5)
    [(_, path, status)] = lines(1)
    assert status == "404" and path == "/" + "a" * 199


def test_a_refused_push_is_logged_with_its_status(bot, lines):
    requests.post(bot.wechat_url + "?signature=bad&timestamp=1&nonce=2", data=b"<xml/>", timeout=5)
    assert lines(1) == [("POST", "/wechat", "403")]


def test_each_of_several_requests_is_one_line(follower, bot, lines):
    for _ in range(3):
        assert ANCHOR.search(follower.say()["Content"])
    follower.me()
    requests.head(bot.url + "/healthz", timeout=5)
    assert lines(5) == [("POST", "/wechat", "200")] * 3 + [
        ("GET", "/me", "200"),
        ("HEAD", "/healthz", "200"),
    ]


def test_auth_is_left_to_the_proxys_log(bot, lines):
    """/auth answers before every request of the protected app: its proxy logs those."""
    for _ in range(3):
        assert requests.get(bot.url + "/auth", timeout=5).status_code == 401
    requests.get(bot.url + "/logout", allow_redirects=False, timeout=5)
    assert lines(1) == [("GET", "/logout", "303")]
