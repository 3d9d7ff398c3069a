"""The account's custom menu: one `view` button that opens the bot's stable sign-in entry.

A view button's URL is fixed, so it cannot carry a single-use state: the button opens
`public_url + "/login?next=/me"`, which mints a fresh state and sends the follower on
to WeChat's authorize page. Installing and reading the menu are `cgi-bin` calls made
with the shared basic access_token (renewed once when WeChat rejects it).
"""

from __future__ import annotations

from typing import Any

import routes
from oauth.basic_token import BasicToken
from oauth.client import WeChatOAuth
from oauth.errors import WeChatAPIError, WeChatUnavailable

BUTTON_NAME = "我的"
NO_MENU = 46003  # menu/get: no menu is installed
# What WeChat's refusals of a menu, or of the calls around it, mean for the operator.
REFUSALS = {
    40001: "the basic access_token was rejected, and again once renewed",
    42001: "the basic access_token was rejected as expired, and again once renewed",
    40013: "wechat.app_id is not a valid AppID",
    40125: "wechat.app_secret is wrong",
    40164: "this machine's IP address is not in the account's IP whitelist (IP白名单)",
    48001: "the account may not use custom menus (an unverified account?)",
    45009: "the day's quota of this call is spent",
    45011: "too many calls this minute",
    40016: "at most 3 top-level buttons",
    40017: "a top-level button has no valid type",
    40018: "a top-level button's name is empty or longer than 16 bytes",
    40019: "a top-level button's key is empty or longer than 128 bytes",
    40020: "a top-level button's URL is empty or longer than 1024 bytes",
    40023: "at most 5 buttons in a submenu",
    40024: "a submenu button has no valid type",
    40025: "a submenu button's name is empty or longer than 60 bytes",
    40026: "a submenu button's key is empty or longer than 128 bytes",
    40027: "a submenu button's URL is empty or longer than 1024 bytes",
    40033: "the request spelt a character as \\uXXXX",
    40054: "a submenu button's URL is not on an allowed domain",
    40055: "a top-level button's URL is not on an allowed domain",
    40097: "a button lacks a field its type needs",
    47001: "WeChat could not read the menu",
}

Button = dict[str, Any]


def login_url(public_url: str) -> str:
    """Where the menu's button goes: the sign-in entry, returning to /me."""
    return f"{public_url.rstrip('/')}{routes.LOGIN}?next={routes.ME}"


def explain(exc: WeChatAPIError) -> str:
    """A refusal in the operator's words, with WeChat's errcode."""
    meaning = REFUSALS.get(exc.errcode, "see WeChat's global return codes")
    return f"WeChat refused {exc.endpoint}: errcode {exc.errcode} ({meaning})"


class AccountMenu:
    def __init__(self, client: WeChatOAuth, basic_token: BasicToken, public_url: str) -> None:
        self._client = client
        self._basic = basic_token
        self.buttons: list[Button] = [
            {"type": "view", "name": BUTTON_NAME, "url": login_url(public_url)}
        ]

    def install(self) -> list[Button]:
        """Install the menu (it replaces the one installed) and return its buttons;
        WeChatAPIError or WeChatUnavailable when WeChat refuses or fails."""
        menu = {"button": self.buttons}
        self._basic.call(lambda token: self._client.create_menu(token, menu))
        return self.buttons

    def installed(self) -> list[Button] | None:
        """The installed menu's buttons as WeChat gives them back, None when there is
        no menu."""
        try:
            answer = self._basic.call(self._client.menu)
        except WeChatAPIError as exc:
            if exc.errcode == NO_MENU:
                return None
            raise
        menu = answer.get("menu")
        buttons = menu.get("button") if isinstance(menu, dict) else None
        if not _buttons(buttons) or not all(_buttons(b.get("sub_button", [])) for b in buttons):
            raise WeChatUnavailable("menu/get answer lacks menu.button")
        return buttons


def _buttons(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(button, dict) for button in value)
