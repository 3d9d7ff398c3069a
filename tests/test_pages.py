"""The bot's pages and their static files, over real HTTP: every asset a page names is
served by the bot itself, the favicon too, and nothing outside web/static/ is reachable."""

from __future__ import annotations

import re

import pytest

import routes
from tests.conftest import Follower

ASSET = re.compile(r'<(?:link|script|img)\b[^>]*?\b(?:href|src)="([^"]+)"')


def assets_of(html: str) -> list[str]:
    return ASSET.findall(html)


def test_every_asset_of_a_page_is_the_bots_own(sim, bot, follower):
    pages = [follower.me().text]  # not signed in
    assert follower.authorize().status_code == 303
    pages += [follower.me().text, follower.open(bot.url + "/nowhere").text]
    avatar = sim.avatar_url(sim.followers[follower.openid])
    for html in pages:
        for url in assets_of(html):
            if url == avatar:
                continue
            assert url.startswith(routes.STATIC + "/"), url
            answer = follower.open(bot.url + url)
            assert answer.status_code == 200, url
            assert answer.headers["Cache-Control"].startswith("public"), url


def test_pages_allow_only_the_bots_own_styles_and_scripts(bot, follower):
    policy = follower.me().headers["Content-Security-Policy"]
    assert "style-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_favicon(bot, follower):
    answer = follower.open(bot.url + routes.FAVICON)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] in ("image/vnd.microsoft.icon", "image/x-icon")
    assert answer.content[:4] == b"\x00\x00\x01\x00"  # an ICO file


@pytest.mark.parametrize(
    "path",
    [
        "/static/missing.css",
        "/static/..%2fpages.py",
        "/static/%2e%2e/render.py",
        "/static/../app.py",
        "/static/",
        "/static",
    ],
)
def test_nothing_else_is_served_from_static(bot, follower, path):
    answer = follower.open(bot.url + path)
    assert answer.status_code == 404
    assert "页面不存在" in answer.text


def test_a_404_page_leads_to_the_followers_own_page(bot, follower: Follower):
    page = follower.open(bot.url + "/nowhere").text
    assert f'href="{routes.ME}"' in page
