"""A parsed message → WeRoBot's handlers → the reply XML (or `success`).

The handlers are WeRoBot's registry; this is the one place that calls them, the
way WeRoBot's `get_reply` does (type-specific handlers, then `all`; the first
non-empty result wins; a handler taking two arguments gets the follower's session),
except that a failure is not swallowed: it is logged with its trace and the
follower gets an apology instead of silence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from werobot.replies import SuccessReply
from werobot.robot import BaseRoBot

from wechat.replies import NO_REPLY, render, text_reply

log = logging.getLogger(__name__)

APOLOGY = "抱歉，服务暂时出了点问题，请稍后再试。"


class Dispatcher:
    def __init__(self, robot: BaseRoBot) -> None:
        self.robot = robot

    def answer(self, message) -> bytes:
        """The first handler's non-empty result as reply XML; `success` if none."""
        try:
            result = self._dispatch(message)
        except Exception:  # a bug in a handler: the follower still gets a word, we the trace
            log.exception("a handler failed on a message of type %s", message.type)
            return self._apology(message)
        if result is None or isinstance(result, SuccessReply):
            return NO_REPLY
        try:
            return render(result, message.source, message.target)
        except Exception:
            log.exception(
                "a handler's answer to a message of type %s cannot be rendered", message.type
            )
            return self._apology(message)

    def _dispatch(self, message) -> object | None:
        """The first non-empty result (WeRoBot's rule), None when every handler passed."""
        for handler, argc in self.robot.get_handlers(message.type):
            if argc >= 2:
                result = self._with_session(handler, message)
            else:
                result = handler(message) if argc else handler()
            if result:
                return result
        return None

    def _with_session(self, handler: Callable, message) -> object:
        storage = self.robot.session_storage
        session = storage.get(message.source)
        result = handler(message, session)
        storage.set(message.source, session)
        return result

    @staticmethod
    def _apology(message) -> bytes:
        return text_reply(message.source, message.target, APOLOGY).encode("utf-8")
