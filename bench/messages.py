"""The message path under load, plaintext and safe mode: thousands of followers
messaging at once, every push signed when it was made and carrying a MsgId of its own.

Contenders, each under the same gunicorn and answering a text push with a text reply
(encrypted in safe mode):

- `ours`: `bot:app` with every check on (signature, replay window, dedupe across
  workers, signed state), on SQLite in a throwaway directory;
- `werobot-default`: the seed's bot as its readers would write it, WeRoBot's defaults
  (a session in SQLite, read and written per push);
- `werobot-bare`: WeRoBot at its fastest, no session (its own crypto in safe mode);
- `wechatpy-flask`: wechatpy + Flask as wechatpy's docs show it;
- `ceiling`: a WSGI app giving every request the same reply.

    .venv/bin/python -m bench messages [--seconds 10] [--rounds 3] [--contender ours]

The pushes are made before each run (bench/pushes.py), enough for 1.5× the rate that
contender reached in its previous round (20,000/s for its first); a run that runs out
is made again with more. Each run gets a fresh server and a fresh directory (its
databases, WeRoBot's session file, the bot's shared claims); ours' database is
migrated by `python bot.py migrate` before gunicorn starts, as a deploy's release step
does, so no worker carries Alembic.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.contenders import REPLY
from bench.harness import App, Load, LoadGeneratorRanOut, interleave, measure
from bench.pushes import Account, PushWriter, text_reply
from bench.report import Options, Row, Target, ratio

SCENARIO = "messages"
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).with_name("push.lua")
TOKEN = "benchtoken"  # noqa: S105 - a benchmark's token
APP_ID = "wxbench0000000001a"
AES_KEY = "benchAESkey0benchAESkey0benchAESkey0benchAE"  # 43 letters and digits
MODES = {"plaintext": Account(TOKEN, APP_ID), "safe": Account(TOKEN, APP_ID, AES_KEY)}
CONTENDERS = {  # name: (gunicorn's app, the path pushes go to)
    "ours": ("bot:app", "/wechat"),
    "werobot-default": ("bench.contenders.werobot_apps:werobot_default", "/"),
    "werobot-bare": ("bench.contenders.werobot_apps:werobot_bare", "/"),
    "wechatpy-flask": ("bench.contenders.flask_app:wechatpy_flask", "/wechat"),
    "ceiling": ("bench.contenders.ceiling:ceiling", "/wechat"),
}
FIRST_BUDGET = 20_000  # pushes per second made for a contender's first run
MAX_SECONDS = 240  # of load: a push signed when it was made must still be fresh when sent


@dataclass
class Pushes:
    """A contender's throwaway directory, emptied before each run, and its pushes.
    `budget` is the rate (pushes per second of load) they are made for."""

    account: Account
    path: str
    directory: Path
    options: Options
    release: dict[str, str] | None = None  # ours' environment: migrate before the start
    budget: float = FIRST_BUDGET

    def __call__(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        (self.directory / "config.toml").write_text("")
        writer = PushWriter(self.account, self.path, first_id=10**15)
        count = int(self.budget * self.options.seconds / self.options.wrk_threads) + 100
        for thread in range(1, self.options.wrk_threads + 1):
            writer.write(self.directory / f"pushes.{thread}", count)
        if self.release is not None:
            command = [sys.executable, "bot.py", "migrate"]
            environ = {**os.environ, **self.release}
            subprocess.run(command, cwd=ROOT, env=environ, check=True, capture_output=True)  # noqa: S603

    def remove(self) -> None:
        """The pushes are hundreds of MB: gone once sent."""
        for file in self.directory.glob("pushes.*"):
            file.unlink()


def environ(contender: str, account: Account, directory: Path) -> dict[str, str]:
    """The app's environment: the account, and for ours its storage and config."""
    if contender != "ours":
        return {
            "BENCH_TOKEN": account.token,
            "BENCH_APP_ID": account.app_id,
            "BENCH_AES_KEY": account.aes_key,
            "BENCH_CEILING_REPLY": text_reply(REPLY, account),
        }
    return {
        "BOT_CONFIG": str(directory / "config.toml"),
        "BOT_WECHAT_TOKEN": account.token,
        "BOT_WECHAT_APP_ID": account.app_id,
        "BOT_WECHAT_APP_SECRET": "benchsecret000000000000000000001",
        "BOT_WECHAT_ENCODING_AES_KEY": account.aes_key,
        "BOT_STORAGE_URL": f"sqlite:///{directory}/bot.sqlite3",
    }


def load(contender: str, mode: str, options: Options) -> Load:
    app, path = CONTENDERS[contender]
    account = MODES[mode]
    directory = options.workdir / f"{SCENARIO}-{mode}-{contender}"
    settings = environ(contender, account, directory)
    release = settings if contender == "ours" else None
    pushes = Pushes(account, path, directory, options, release)
    return Load(
        SCENARIO, mode, contender,
        App(app, settings, cwd=directory),
        SCRIPT,
        {
            "BENCH_PUSHES": str(directory / "pushes"),
            "BENCH_EXPECT": "<Encrypt>" if account.aes_key else "<Content>",
        },
        prepare=pushes,
    )  # fmt: skip


def measure_with_enough(load: Load, options: Options) -> Row:
    """`measure`, made again with more pushes while wrk runs out of them (twice as many,
    or 1.5× the rate seen, whichever is more); the next round's are made for 1.5× this
    round's rate."""
    pushes = load.prepare
    assert isinstance(pushes, Pushes)
    while True:
        try:
            row = measure(load, options)
        except LoadGeneratorRanOut as short:
            pushes.budget = max(2 * pushes.budget, 1.5 * short.rps)
            continue
        finally:
            pushes.remove()
        pushes.budget = max(1.5 * row.rps, 1000)
        return row


def run(options: Options) -> list[Row]:
    if options.seconds > MAX_SECONDS:
        raise ValueError(
            f"messages: at most {MAX_SECONDS} s a run: the pushes are signed before it "
            "and the bot refuses any signed more than 300 s ago"
        )
    loads = [
        load(contender, mode, options)
        for mode in MODES
        for contender in CONTENDERS
        if options.wants(contender, mode)
    ]
    return interleave(loads, options, run=measure_with_enough)


def targets(rows: list[Row]) -> list[Target]:
    """Issue 9's targets for the message path, for the modes and contenders measured."""
    have = {(row.mode, row.contender): row for row in rows if row.scenario == SCENARIO}
    found = [
        Target(f"messages {mode}: ours' errors", row.errors, 0, at_least=False)
        for (mode, contender), row in have.items()
        if contender == "ours"
    ]
    for mode in MODES:
        for other, figure, goal, at_least in GOALS[mode]:
            if {(mode, "ours"), (mode, other)} <= have.keys():
                value = ratio(rows, SCENARIO, mode, ("ours", other), figure)
                name = f"messages {mode}: ours / {other} {figure}"
                found.append(Target(name, value, goal, at_least))
            if figure == "rps" and {(mode, "ours"), (mode, other)} <= have.keys():
                # the same comparison from CPU time per request: steadier on a busy machine
                value = ratio(rows, SCENARIO, mode, (other, "ours"), "cpu_us_per_request")
                name = f"messages {mode}: {other} / ours CPU µs per request (steadier)"
                found.append(Target(name, value, goal, at_least))
    return found


GOALS = {  # mode: (other contender, figure, goal, at least)
    mode: [
        ("werobot-bare", "rps", 1.0, True),
        ("wechatpy-flask", "rps", 1.0, True),
        *([("ceiling", "rps", 0.6, True)] if mode == "plaintext" else []),
        ("werobot-bare", "p99_ms", 1.0, False),
        ("werobot-bare", "peak_rss_mib", 1.5, False),
    ]
    for mode in MODES
}
