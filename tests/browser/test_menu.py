"""The account's custom menu on the phone page, in a real browser: installed by the bot
(`python bot.py menu` does the same), shown at the bottom of the chat as WeChat shows
it, and tapped: a view button pushes VIEW to the bot and opens its link in the same tab."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Phone, account_replies, open_chat
from tests.browser.test_journeys import consent, shows_profile
from tests.test_serving import wait_for

pytestmark = pytest.mark.browser


def view_events(sim, openid: str) -> list[dict]:
    return [
        fields
        for kind, fields in sim.pushed
        if kind == "event" and fields["Event"] == "VIEW" and fields["FromUserName"] == openid
    ]


def test_the_menus_button_pushes_view_and_opens_the_sign_in_entry(phone: Phone, bot, sim):
    bot.app.menu.install()
    login = bot.url + "/login?next=/me"
    page = open_chat(phone)
    menu = page.get_by_test_id("account-menu")
    expect(menu).to_be_visible()
    expect(page.get_by_test_id("composer")).to_be_hidden()  # WeChat shows the menu first
    button = menu.get_by_test_id("menu-button")
    expect(button).to_have_text(["我的"])
    phone.snap("phone-menu")
    with page.expect_request(lambda r: r.url == login and r.is_navigation_request()):
        button.tap()
    # /login sends the follower through WeChat's consent page back to /me, in one tab.
    consent(phone)
    shows_profile(phone, phone.follower.nickname, phone.avatar)
    wait_for(lambda: view_events(sim, phone.openid), "the VIEW event reached the bot")
    [event] = view_events(sim, phone.openid)
    assert event["EventKey"] == login and event["MsgType"] == "event"
    assert event["ToUserName"] == sim.gh_id


def test_the_keyboard_and_the_menu_switch_as_in_wechat(phone: Phone, bot, sim):
    bot.app.menu.install()
    page = open_chat(phone)
    page.get_by_test_id("keyboard-switch").tap()
    expect(page.get_by_test_id("account-menu")).to_be_hidden()
    expect(page.get_by_test_id("composer-input")).to_be_visible()
    page.get_by_test_id("menu-switch").tap()
    expect(page.get_by_test_id("account-menu")).to_be_visible()
    expect(page.get_by_test_id("composer")).to_be_hidden()


def test_without_a_menu_there_is_only_the_composer(phone: Phone, bot):
    page = open_chat(phone)
    expect(page.get_by_test_id("account-menu")).to_be_hidden()
    expect(page.get_by_test_id("composer-input")).to_be_visible()
    expect(page.get_by_test_id("menu-switch")).to_be_hidden()


def test_a_submenus_click_button_pushes_click_and_the_chat_shows_the_reply(phone, bot, sim):
    menu = {
        "button": [
            {"type": "view", "name": "我的", "url": bot.url + "/login?next=/me"},
            {
                "name": "更多",
                "sub_button": [
                    {"type": "click", "name": "今日推荐", "key": "TODAY"},
                    {"type": "click", "name": "联系我们", "key": "CONTACT"},
                ],
            },
        ]
    }
    sim.menu.create(json.dumps(menu, ensure_ascii=False).encode())  # by another tool
    page = open_chat(phone)
    expect(page.get_by_test_id("menu-button")).to_have_text(["我的", "更多"])
    submenu = page.get_by_test_id("menu-submenu")
    expect(submenu).to_be_hidden()
    page.get_by_test_id("menu-button").last.tap()
    expect(submenu).to_be_visible()
    expect(submenu.get_by_test_id("menu-sub-button")).to_have_text(["今日推荐", "联系我们"])
    phone.snap("phone-submenu")
    submenu.get_by_test_id("menu-sub-button").last.tap()
    expect(submenu).to_be_hidden()
    expect(account_replies(page)).to_have_count(1)  # the bot's answer to the CLICK
    clicks = [f for kind, f in sim.pushed if kind == "event" and f["Event"] == "CLICK"]
    assert [f["EventKey"] for f in clicks] == ["CONTACT"]
