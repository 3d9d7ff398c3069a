"""Message handlers, registered in WeRoBot's handler registry.

Each returns the reply text; the message server renders it. Building a reply
costs one HMAC (a fresh signed state) and no storage, which keeps the message
path fast.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from werobot.robot import BaseRoBot

from handlers import texts

SILENT_EVENTS = frozenset({"unsubscribe_event"})  # nobody left to read a reply


class Handlers:
    def __init__(self, new_link: Callable[[], str], link_text: str) -> None:
        self.new_link = new_link
        self.link_text = link_text

    def anchor(self) -> str:
        """`<a href="AUTHORIZE_URL">LINK_TEXT</a>`, the URL verbatim as CONTRACT.md gives
        it (it holds no quote or angle bracket: redirect_uri is percent-encoded)."""
        return f'<a href="{self.new_link()}">{html.escape(self.link_text, quote=False)}</a>'

    def on_text(self, message) -> str:
        return texts.TEXT.format(link=self.anchor())

    def on_subscribe(self, message) -> str:
        return texts.WELCOME.format(link=self.anchor())

    def on_anything_else(self, message) -> str | None:
        if message.type in SILENT_EVENTS:
            return None
        return texts.HELP.format(link=self.anchor())

    def register(self, robot: BaseRoBot) -> None:
        robot.add_handler(self.on_text, type="text")
        robot.add_handler(self.on_subscribe, type="subscribe_event")
        robot.add_handler(self.on_anything_else, type="all")
