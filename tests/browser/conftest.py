"""A phone in a real browser: Debian's Chromium driven by Playwright, at an iPhone-sized
viewport with WeChat's in-app User-Agent, against the bot and the simulator of
tests/conftest.py.

Every test leaves a screenshot in test-artefacts/ (git-ignored). Without Chromium the
tests skip with the reason, except in CI (CI=true), where they must run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from simulator import Simulator
from tests.conftest import ANCHOR, ROOT

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright's own download is not used
ARTEFACTS = ROOT / "test-artefacts"
PHONE = {"width": 390, "height": 844}
# WeChat's in-app browser on Android (XWEB, Chromium inside), as it announces itself
WECHAT_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.120 Mobile Safari/537.36 "
    "XWEB/1220133 MMWEBSDK/20240404 MMWEBID/2307 MicroMessenger/8.0.49.2600(0x28003133) "
    "WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} not found: apt-get install chromium fonts-noto-cjk fonts-noto-color-emoji"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI must run the browser tests)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


def shot_path(name: str) -> Path:
    ARTEFACTS.mkdir(exist_ok=True)
    return ARTEFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-')}.png"


class Phone:
    """A follower's phone: the in-app browser, signed in to the simulator as one follower."""

    def __init__(self, context: BrowserContext, sim: Simulator, openid: str) -> None:
        self.context = context
        self.sim = sim
        self.page: Page = context.new_page()
        self.be(openid)

    def be(self, openid: str) -> None:
        """Hold the phone as `openid`: WeChat's authorize page acts for them (a cookie)."""
        self.openid = openid
        self.context.add_cookies([{"name": "sim_openid", "value": openid, "url": self.sim.url}])

    @property
    def follower(self):
        return self.sim.followers[self.openid]

    @property
    def avatar(self) -> str:
        """The follower's headimgurl, served by the simulator."""
        return self.sim.avatar_url(self.follower)

    def snap(self, name: str) -> Path:
        path = shot_path(name)
        self.page.screenshot(path=path, full_page=True)
        return path


@pytest.fixture
def open_phone(chromium: Browser, sim: Simulator, request) -> Iterator[Callable[..., Phone]]:
    """Phones for this test (several make several people or devices). Each is left as a
    screenshot in test-artefacts/ named after the test, whatever the outcome."""
    opened: list[Phone] = []

    def open_(openid: str | None = None, width: int = PHONE["width"]) -> Phone:
        context = chromium.new_context(
            viewport={"width": width, "height": PHONE["height"]},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            user_agent=WECHAT_AGENT,
            locale="zh-CN",
        )
        context.set_default_timeout(10_000)  # how long to wait for a page to show something
        opened.append(Phone(context, sim, openid or sim.default_openid))
        return opened[-1]

    yield open_
    for number, phone in enumerate(opened):
        suffix = f"-{number + 1}" if len(opened) > 1 else ""
        phone.snap(request.node.name + suffix)
        phone.context.close()


@pytest.fixture
def phone(open_phone) -> Phone:
    return open_phone()


# -- how a follower comes to tap the bot's link -------------------------------------------


def reply_to(phone: Phone, content: str = "你好") -> str:
    """The follower writes to the account (the simulator pushes it to the bot, as WeChat
    does); the text of the bot's reply."""
    answer = phone.sim.push(phone.openid, type="text", content=content)
    assert answer["status"] == 200, answer
    return answer["reply"]["Content"]


def link_in(reply: str) -> str:
    match = ANCHOR.search(reply)
    assert match, f"the reply carries no link: {reply}"
    return unescape(match.group(1))


def via_push(phone: Phone) -> str:
    reply = reply_to(phone)
    phone.page.goto(link_in(reply))
    return reply


def account_replies(page: Page) -> Locator:
    return page.locator('[data-testid="message-bubble"][data-from="account"]')


def open_chat(phone: Phone, wechat: Simulator | None = None) -> Page:
    """The phone page of the simulator (`wechat`, else the phone's), the chat on screen."""
    phone.page.goto((wechat or phone.sim).url + "/phone")
    expect(phone.page.locator('body[data-ready="true"]')).to_be_attached()
    return phone.page


def say_in_chat(page: Page, content: str) -> Locator:
    """Type `content`, tap 发送, and wait for the account's answer: its bubble."""
    replies = account_replies(page)
    before = replies.count()
    page.get_by_test_id("composer-input").fill(content)
    page.get_by_test_id("send-button").tap()
    expect(replies).to_have_count(before + 1)
    return replies.last


def via_phone_page(phone: Phone) -> str:
    """The follower writes in the chat on the phone page and taps the link in the answer."""
    reply = say_in_chat(open_chat(phone), "你好")
    shown = reply.inner_text()
    reply.get_by_role("link").tap()
    return shown


# Ways into the journey: each has the follower write to the account, opens the reply's
# link in the phone's browser and returns the reply's text as the follower read it.
ENTRIES: dict[str, Callable[[Phone], str]] = {"push": via_push, "phone": via_phone_page}


@pytest.fixture(params=sorted(ENTRIES))
def tap_the_link(request) -> Callable[[Phone], str]:
    """Bring a phone to the authorize page from the chat, each way a follower can."""
    return ENTRIES[request.param]
