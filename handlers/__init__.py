"""Message handlers, registered in WeRoBot's handler registry.

Each returns the reply text; the message server renders it. Building a reply costs
one HMAC (a fresh signed state) and at most one primary-key read (to greet a follower
who has authorized by name; kept in memory until a follower changes), and writes
nothing, which keeps the message path fast.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable

from werobot.robot import BaseRoBot

from handlers import texts
from storage import Acquaintance, StorageError

log = logging.getLogger(__name__)

# Nobody would read a reply: the follower left, or tapped a menu's view button (WeChat
# shows no reply to a VIEW event: the follower is already on the page).
SILENT_EVENTS = frozenset({"unsubscribe_event", "view_event"})
# A nickname is the follower's own text: its angle brackets become full-width ones, so
# it can never open an anchor or a tag in the reply, whichever way a client reads it.
_NO_MARKUP = str.maketrans("<>", "＜＞")


class Handlers:
    def __init__(
        self,
        new_link: Callable[[], str],
        link_text: str,
        acquaintance: Callable[[str], Acquaintance | None],
    ) -> None:
        self.new_link = new_link
        self.link_text = link_text
        self.acquaintance = acquaintance

    def anchor(self) -> str:
        """`<a href="AUTHORIZE_URL">LINK_TEXT</a>`, the URL verbatim as CONTRACT.md gives
        it (it holds no quote or angle bracket: redirect_uri is percent-encoded)."""
        return f'<a href="{self.new_link()}">{html.escape(self.link_text, quote=False)}</a>'

    def on_text(self, message) -> str:
        return self.reply(message.source, texts.HELLO)

    def on_subscribe(self, message) -> str:
        return self.reply(message.source, texts.WELCOME)

    def on_anything_else(self, message) -> str | None:
        if message.type in SILENT_EVENTS:
            return None
        return self.reply(message.source, texts.OTHER)

    def reply(self, openid: str, openings: tuple[str, str]) -> str:
        """The opening (by name when we know it), then what the link does for them."""
        known = self._known(openid)
        return _opening(known, openings) + "\n" + _then(known).format(link=self.anchor())

    def _known(self, openid: str) -> Acquaintance | None:
        """The follower as last authorized; a database outage only costs the greeting."""
        try:
            return self.acquaintance(openid)
        except StorageError as exc:
            log.warning("greeting without a name: %s", exc)
            return None

    def register(self, robot: BaseRoBot) -> None:
        robot.add_handler(self.on_text, type="text")
        robot.add_handler(self.on_subscribe, type="subscribe_event")
        robot.add_handler(self.on_anything_else, type="all")


def _opening(known: Acquaintance | None, openings: tuple[str, str]) -> str:
    anonymous, by_name = openings
    if known is None or not known.nickname:
        return anonymous
    return by_name.format(name=known.nickname.translate(_NO_MARKUP))


def _then(known: Acquaintance | None) -> str:
    if known is None:
        return texts.INVITE
    return texts.LAPSED if known.lapsed else texts.RETURN
