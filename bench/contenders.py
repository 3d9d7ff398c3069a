"""WSGI apps the bot is measured against, importable by gunicorn (`bench.contenders:NAME`).

The token comes from BENCH_TOKEN, the same for every contender in a run.
"""

from __future__ import annotations

import os

from werobot import WeRoBot

TOKEN = os.environ.get("BENCH_TOKEN", "benchtoken")


def _werobot_bare():
    """WeRoBot at its fastest: no session storage, one text handler."""
    robot = WeRoBot(token=TOKEN, SESSION_STORAGE=False)

    @robot.text
    def hello(message):
        return "你好"

    return robot.wsgi


werobot_bare = _werobot_bare()
