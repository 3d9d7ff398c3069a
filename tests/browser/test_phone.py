"""The simulator's phone page in a real browser: a WeChat chat with the account, where a
follower is picked or made, follows, writes and taps the account's links. (Every
journey of test_journeys.py also starts from this page: the `phone` entry.)"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Phone, account_replies, open_chat, say_in_chat
from tests.test_serving import wait_for

pytestmark = pytest.mark.browser

WECHAT_GREEN_BUBBLE = "rgb(149, 236, 105)"  # #95EC69
WHITE = "rgb(255, 255, 255)"
WECHAT_LINK_BLUE = "rgb(87, 107, 149)"  # #576B95
LONG_NICKNAME = "名字长得停不下来的微信用户🐼🐼" + "Supercalifragilisticexpialidocious" * 2


def shows_images(page: Page, images: str) -> None:
    """Every image matching `images` has loaded (an avatar that fails shows nothing)."""
    loaded = "all => all.length > 0 && all.every(img => img.complete && img.naturalWidth > 0)"
    page.wait_for_function(f"({loaded})(Array.from(document.querySelectorAll({images!r})))")


def no_sideways_scroll(page: Page) -> None:
    sideways = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert sideways <= 0, f"the phone page scrolls {sideways}px sideways"


def background(page: Page, selector: str) -> str:
    return page.locator(selector).last.evaluate("node => getComputedStyle(node).backgroundColor")


def test_a_chat_as_wechat_shows_it_in_safe_mode(phone: Phone, aes_sim) -> None:
    page = open_chat(phone, aes_sim)  # WeChat with an EncodingAESKey, as in `sandbox`
    expect(page.get_by_test_id("account-name")).to_have_text(aes_sim.account_name)
    modes = page.get_by_test_id("mode-switch")
    expect(modes.locator("option")).to_have_text(["安全", "兼容", "明文"])
    expect(modes).to_have_value("safe")
    expect(page.get_by_test_id("mode-note")).to_be_hidden()
    reply = say_in_chat(page, "你好")
    mine = '[data-testid="message-bubble"][data-from="follower"]'
    expect(page.locator(mine).last).to_have_text("你好")
    assert background(page, mine) == WECHAT_GREEN_BUBBLE
    assert background(page, '[data-testid="message-bubble"][data-from="account"]') == WHITE
    shows_images(page, '[data-testid="message-avatar"], [data-testid="follower-avatar"]')
    link = reply.get_by_role("link")  # blue anchor text, as WeChat shows it
    assert "/connect/oauth2/authorize?" in link.get_attribute("href")
    assert link.evaluate("a => getComputedStyle(a).color") == WECHAT_LINK_BLUE
    no_sideways_scroll(page)
    phone.snap("phone")  # the README's picture of the phone page


def test_a_new_follower_follows_writes_and_leaves(phone: Phone, bot, sim) -> None:
    page = open_chat(phone)
    page.get_by_test_id("new-follower-button").tap()
    page.get_by_test_id("new-follower-nickname").fill("小红🌸")
    page.get_by_test_id("create-follower-button").tap()
    expect(page.get_by_test_id("follower-picker").locator("option:checked")).to_have_text("小红🌸")
    expect(page.get_by_test_id("composer-input")).to_be_hidden()  # not following yet
    page.get_by_test_id("subscribe-button").tap()
    expect(account_replies(page)).to_have_count(1)  # the welcome, with its link
    expect(account_replies(page).last.get_by_role("link")).to_be_visible()
    newcomer = next(f for f in sim.followers.values() if f.nickname == "小红🌸")
    assert newcomer.subscribed
    say_in_chat(page, "在吗？")
    page.get_by_test_id("unsubscribe-button").tap()
    expect(page.get_by_test_id("subscribe-button")).to_be_visible()
    expect(page.get_by_test_id("system-message").last).to_contain_text("不再关注")
    wait_for(lambda: not newcomer.subscribed, "the unsubscribe event reached WeChat")


@pytest.mark.parametrize("width", [320, 360])
def test_a_long_nickname_and_a_long_word_never_scroll_sideways(open_phone, sim, bot, width):
    phone = open_phone(sim.add_follower(nickname=LONG_NICKNAME).openid, width=width)
    page = open_chat(phone)
    expect(page.get_by_test_id("follower-picker").locator("option:checked")).to_have_text(
        LONG_NICKNAME
    )
    say_in_chat(page, "没有空格的一长串" + "w" * 120)
    no_sideways_scroll(page)


def test_back_from_the_bots_page_finds_the_chat_as_it_was(phone: Phone, bot) -> None:
    page = open_chat(phone)
    reply = say_in_chat(page, "你好")
    reply.get_by_role("link").tap()
    page.get_by_role("button", name="允许").tap()
    expect(page).to_have_url(bot.url + "/me")
    page.go_back()  # WeChat's consent page
    page.go_back()  # the chat
    expect(page.locator('body[data-ready="true"]')).to_be_attached()
    expect(account_replies(page)).to_have_count(1)
    expect(page.locator('[data-testid="message-bubble"][data-from="follower"]')).to_have_text(
        ["你好"]
    )


def test_without_an_aes_key_only_plaintext_is_offered_and_said_why(phone: Phone, bot) -> None:
    page = open_chat(phone)
    modes = page.get_by_test_id("mode-switch")
    expect(modes).to_be_disabled()
    expect(modes.locator("option")).to_have_text(["明文"])
    expect(page.get_by_test_id("mode-note")).to_contain_text("EncodingAESKey")
