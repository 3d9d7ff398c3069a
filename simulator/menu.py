"""The account's custom menu: `cgi-bin/menu/create`'s checks with WeChat's errcodes, and
the menu as `cgi-bin/menu/get` gives it back.

Limits (wechat-protocol.md): at most 3 top-level buttons with at most 5 sub-buttons
each; a name of at most 16 bytes at the top level and 60 in a submenu (UTF-8); a key
of at most 128 bytes; a URL of at most 1024 bytes. A body that spells a character as
`\\uXXXX` (what `json.dumps` and `requests`' `json=` do by default) is refused with
40033, as WeChat refuses it.
"""

import json
import re
import threading
from typing import Any

from simulator.wxapi import WeChatError

MAX_BUTTONS = 3
MAX_SUB_BUTTONS = 5
NAME_BYTES = (16, 60)  # (top level, submenu)
KEY_BYTES = 128
URL_BYTES = 1024
# Types that push an event carrying the button's `key`.
KEY_TYPES = frozenset(
    {
        "click",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
    }
)
# Other types and the fields each needs besides its name.
FIELD_TYPES = {
    "view": ("url",),
    "miniprogram": ("url", "appid", "pagepath"),
    "media_id": ("media_id",),
    "view_limited": ("media_id",),
    "article_id": ("article_id",),
    "article_view_limited": ("article_id",),
}
# The errcode of each fault: (at the top level, in a submenu).
SIZE = (40016, 40023)
TYPE = (40017, 40024)
NAME = (40018, 40025)
KEY = (40019, 40026)
URL = (40020, 40027)
DOMAIN = (40055, 40054)
DATA_FORMAT = 47001
ESCAPED_CHARSET = 40033
INVALID_ARGS = 40097
NO_MENU = 46003
_ESCAPE = re.compile(r"(?<!\\)\\u[0-9A-Fa-f]{4}")

Button = dict[str, Any]


class Menu:
    """The one menu of the account: replaced by every successful create."""

    def __init__(self) -> None:
        self._buttons: list[Button] | None = None
        self._lock = threading.Lock()

    def create(self, body: bytes) -> None:
        """Check a menu/create body in WeChat's order; install it, or raise WeChatError."""
        buttons = parse(body)
        with self._lock:
            self._buttons = buttons

    def get(self) -> dict[str, Any]:
        """menu/get's answer: every button carries `sub_button` (empty for a leaf)."""
        with self._lock:
            buttons = self._buttons
        if buttons is None:
            raise WeChatError(NO_MENU)
        return {"menu": {"button": [_as_shown(button) for button in buttons]}}

    @property
    def buttons(self) -> list[Button]:
        """The installed buttons as created ([] when there is no menu)."""
        with self._lock:
            return list(self._buttons or [])

    def button(self, top: int, sub: int | None = None) -> Button:
        """The leaf button at `top` (and `sub` in its submenu); KeyError when none."""
        buttons = self.buttons
        if not 0 <= top < len(buttons):
            raise KeyError(f"no button {top}")
        chosen = buttons[top]
        if sub is None:
            if chosen.get("sub_button"):
                raise KeyError(f"button {top} opens a submenu")
            return chosen
        subs = chosen.get("sub_button") or []
        if not 0 <= sub < len(subs):
            raise KeyError(f"no button {sub} in submenu {top}")
        return subs[sub]


def parse(body: bytes) -> list[Button]:
    """The buttons of a create request, checked; WeChatError with WeChat's errcode."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WeChatError(DATA_FORMAT) from exc
    if _ESCAPE.search(text):
        raise WeChatError(ESCAPED_CHARSET)
    buttons = data.get("button") if isinstance(data, dict) else None
    if not isinstance(buttons, list) or not 0 < len(buttons) <= MAX_BUTTONS:
        raise WeChatError(SIZE[0])
    for button in buttons:
        _check(button, level=0)
    return buttons


def _check(button: Any, level: int) -> None:
    if not isinstance(button, dict):
        raise WeChatError(DATA_FORMAT)
    name = button.get("name")
    if not isinstance(name, str) or not 0 < len(name.encode()) <= NAME_BYTES[level]:
        raise WeChatError(NAME[level])
    subs = button.get("sub_button")
    if level == 0 and subs:  # a submenu: its own type, key or url do not count
        if not isinstance(subs, list) or len(subs) > MAX_SUB_BUTTONS:
            raise WeChatError(SIZE[1])
        for sub in subs:
            _check(sub, level=1)
        return
    if subs:  # a submenu inside a submenu
        raise WeChatError(TYPE[1])
    kind = button.get("type")
    if kind in KEY_TYPES:
        _check_size(button.get("key"), KEY_BYTES, KEY[level])
    elif kind in FIELD_TYPES:
        _check_fields(button, FIELD_TYPES[kind], level)
    else:
        raise WeChatError(TYPE[level])


def _check_fields(button: Button, needed: tuple[str, ...], level: int) -> None:
    for field in needed:
        if field == "url":
            _check_size(button.get("url"), URL_BYTES, URL[level])
            if not re.match(r"https?://[^/?#\s]+", button["url"], re.IGNORECASE):
                raise WeChatError(DOMAIN[level])
        elif not isinstance(button.get(field), str) or not button[field]:
            raise WeChatError(INVALID_ARGS)


def _check_size(value: Any, limit: int, errcode: int) -> None:
    if not isinstance(value, str) or not 0 < len(value.encode()) <= limit:
        raise WeChatError(errcode)


def _as_shown(button: Button) -> Button:
    subs = button.get("sub_button") or []
    shown = {k: v for k, v in button.items() if k != "sub_button"}
    if subs:
        shown = {"name": button["name"]}  # a submenu's own type, key or url are dropped
    return {**shown, "sub_button": [_as_shown(sub) for sub in subs]}
