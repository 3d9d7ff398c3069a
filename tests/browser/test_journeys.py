"""The follower's journey on a phone, by tapping: the link from the chat → WeChat's consent
page (the simulator) → the bot's /me, and every way it can go wrong on the way.

Each journey ends on /me and fails unless the nickname and the avatar show.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from oauth.urls import authorize_url
from tests.browser.conftest import Phone, link_in, reply_to

pytestmark = pytest.mark.browser

EXCHANGE = "/sns/oauth2/access_token"
# Words of the protocol a follower never reads on the bot's pages
JARGON = re.compile(r"openid|snsapi|scope|token|令牌|单击|unionid", re.IGNORECASE)


# -- what a follower sees ---------------------------------------------------------------


def consent(phone: Phone, decision: str = "允许", shot: str | None = None) -> None:
    """WeChat's consent page is showing: take a picture if asked, then tap `decision`."""
    button = phone.page.get_by_role("button", name=decision)
    expect(button).to_be_visible()
    if shot:
        phone.snap(shot)
    button.tap()


def in_plain_words(page: Page) -> None:
    """What a page of the bot must always be: plain words, and no sideways scrolling."""
    text = page.inner_text("body")
    assert not JARGON.findall(text), f"protocol words on {page.url}: {JARGON.findall(text)}"
    sideways = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert sideways <= 0, f"{page.url} scrolls {sideways}px sideways"


def shows_profile(phone: Phone, nickname: str, avatar: str | None) -> None:
    """On /me: greeted by `nickname`, the avatar loaded (from `avatar`, else the bot's
    placeholder), in plain words."""
    page = phone.page
    expect(page).to_have_url(re.compile(r"/me(#.*)?$"))
    expect(page.get_by_test_id("greeting")).to_have_text(f"你好，{nickname}")
    image = page.get_by_test_id("avatar")
    expect(image).to_be_visible()
    shown = "img => img.complete && img.naturalWidth > 0"
    try:
        page.wait_for_function(shown, arg=image.element_handle())
    except PlaywrightTimeout:
        pytest.fail(f"the avatar does not show: {image.evaluate('img => img.currentSrc')}")
    source = image.evaluate("img => img.currentSrc")
    if avatar is None:
        assert "/static/avatar.svg" in source
    else:
        assert source == avatar
    in_plain_words(page)


def shows_problem(phone: Phone, title: str, shot: str | None = None) -> None:
    """One of the bot's pages saying `title`, with a way forward."""
    page = phone.page
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page.locator(".btn_primary")).to_be_visible()
    in_plain_words(page)
    if shot:
        phone.snap(shot)


def signs_in_again(phone: Phone) -> None:
    """From a problem page: tap its button, allow, and land on /me."""
    phone.page.locator(".btn_primary").tap()
    consent(phone)
    shows_profile(phone, phone.follower.nickname, phone.avatar)


# -- the journeys -------------------------------------------------------------------------


def test_userinfo_journey_by_tapping(phone, bot, tap_the_link):
    tap_the_link(phone)
    consent(phone, shot="consent")
    shows_profile(phone, phone.follower.nickname, phone.avatar)
    expect(phone.page.get_by_text("昵称和头像")).to_be_visible()
    phone.snap("me")


def test_silent_journey_greets_a_wechat_user_then_offers_more(phone, start_bot, tap_the_link):
    start_bot(scope="snsapi_base")  # the one the simulator pushes to
    tap_the_link(phone)  # silent: no consent page, straight back to the bot
    shows_profile(phone, "微信用户", avatar=None)
    expect(phone.page.get_by_text("仅基本身份")).to_be_visible()
    phone.snap("me-silent")
    phone.page.get_by_role("link", name="授权获取昵称和头像").tap()
    consent(phone)
    shows_profile(phone, phone.follower.nickname, phone.avatar)


def test_refusing_then_changing_ones_mind(phone, bot, tap_the_link):
    tap_the_link(phone)
    consent(phone, decision="拒绝")
    shows_problem(phone, "你取消了授权", shot="refused")
    signs_in_again(phone)


def test_the_same_link_tapped_twice(open_phone, bot):
    phone = open_phone()
    link = link_in(reply_to(phone))
    phone.page.goto(link)
    consent(phone)
    shows_profile(phone, phone.follower.nickname, phone.avatar)
    phone.page.goto(link)  # the same message in the chat, tapped again
    consent(phone)
    shows_profile(phone, phone.follower.nickname, phone.avatar)
    other = open_phone()  # the same link on a device that never signed in
    other.page.goto(link)
    consent(other)
    shows_problem(other, "链接已使用", shot="link-used")
    signs_in_again(other)


def test_back_and_reload_on_the_callback(phone, bot, tap_the_link):
    callbacks: list[str] = []
    phone.page.on(
        "request", lambda r: callbacks.append(r.url) if "/oauth/callback" in r.url else None
    )
    tap_the_link(phone)
    consent(phone)
    profile = (phone.follower.nickname, phone.avatar)
    shows_profile(phone, *profile)
    phone.page.reload()
    shows_profile(phone, *profile)
    phone.page.go_back()  # WeChat's page again; forward comes back to the bot
    phone.page.go_forward()
    shows_profile(phone, *profile)
    phone.page.goto(callbacks[0])  # the callback itself, opened again from history
    shows_profile(phone, *profile)


def test_an_expired_link(phone, bot):
    links = bot.app.links
    issued_long_ago = links.signer.issue(now=time.time() - links.signer.ttl - 60)
    phone.page.goto(
        authorize_url(
            links.open_base, links.app_id, links.callback_url, links.scope, issued_long_ago
        )
    )
    consent(phone)
    shows_problem(phone, "链接已过期", shot="link-expired")
    signs_in_again(phone)


def test_wechat_busy_then_a_reload(phone, bot, sim, tap_the_link):
    sim.fault(EXCHANGE, "busy")  # errcode -1 once: WeChat's 系统繁忙
    tap_the_link(phone)
    consent(phone)
    shows_problem(phone, "微信暂时没有响应", shot="wechat-busy")
    phone.page.reload()  # as the page suggests
    shows_profile(phone, phone.follower.nickname, phone.avatar)


def test_an_avatar_that_cannot_load_shows_the_placeholder(phone, bot, tap_the_link):
    phone.context.route(phone.avatar, lambda route: route.abort())
    tap_the_link(phone)
    consent(phone)
    shows_profile(phone, phone.follower.nickname, avatar=None)


LONG_NICKNAME = "一个名字非常非常非常长的微信用户🐼🐼🐼" + "Supercalifragilisticexpialidocious" * 2


@pytest.mark.parametrize("width", [320, 360])
def test_a_long_nickname_never_scrolls_sideways(open_phone, sim, bot, width):
    phone = open_phone(sim.add_follower(nickname=LONG_NICKNAME).openid, width=width)
    phone.page.goto(link_in(reply_to(phone)))
    consent(phone)
    shows_profile(phone, LONG_NICKNAME, phone.avatar)  # and no sideways scroll


def test_me_before_authorizing_offers_the_link(phone, bot):
    phone.page.goto(bot.url + "/me")
    shows_problem(phone, "尚未授权", shot="not-authorized")
    signs_in_again(phone)


def test_a_lapsed_grant_on_me_and_in_the_chat(phone, bot, sim, tap_the_link):
    tap_the_link(phone)
    consent(phone)
    shows_profile(phone, phone.follower.nickname, phone.avatar)
    sim.invalidate_tokens(phone.openid)  # the follower changed their password
    phone.page.reload()
    shows_problem(phone, "授权已失效", shot="reauthorize")
    assert "你之前的授权已失效" in tap_the_link(phone)  # the chat says so too
    consent(phone)
    shows_profile(phone, phone.follower.nickname, phone.avatar)


def test_greeted_by_name_in_the_chat_the_link_leads_back_to_me(phone, bot, tap_the_link):
    assert tap_the_link(phone).startswith("你好！")
    consent(phone)
    shows_profile(phone, phone.follower.nickname, phone.avatar)
    assert tap_the_link(phone).startswith(f"{phone.follower.nickname}，你好！")
    consent(phone)
    shows_profile(phone, phone.follower.nickname, phone.avatar)
