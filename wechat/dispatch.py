"""A parsed message → WeRoBot's handlers → the reply XML (or `success`).

The handlers are WeRoBot's registry; this is the one place that calls them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from werobot.robot import BaseRoBot

from wechat.dedupe import NO_REPLY
from wechat.replies import text_reply

log = logging.getLogger(__name__)

APOLOGY = "抱歉，服务暂时出了点问题，请稍后再试。"


class Dispatcher:
    def __init__(self, robot: BaseRoBot) -> None:
        self.robot = robot

    def answer(self, message) -> bytes:
        """The first handler's non-empty text, as reply XML; `success` if none."""
        try:
            content = self._dispatch(message)
        except Exception:  # a bug of ours: the follower still gets a word, we get the trace
            log.exception("handler failed for a %s message", message.type)
            content = APOLOGY
        if not content:
            return NO_REPLY
        return text_reply(message.source, message.target, content).encode("utf-8")

    def _dispatch(self, message) -> str | None:
        for handler, argc in self.robot.get_handlers(message.type):
            reply = handler(message) if argc < 2 else self._with_session(handler, message)
            if reply:
                return reply
        return None

    def _with_session(self, handler: Callable, message) -> str | None:
        storage = self.robot.session_storage
        session = storage.get(message.source)
        reply = handler(message, session)
        storage.set(message.source, session)
        return reply
