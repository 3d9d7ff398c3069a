"""/auth under load: the gateway's check that a reverse proxy makes before every
request of the app it protects, against the ceiling (a WSGI app giving every
request the same empty 200), both under the same gunicorn.

Every request carries a valid sign-in cookie, made by the bot's own CookieSigner
with the key the bot derives from its app secret (byte for byte what the callback
sets), and X-Original-URL as the nginx sample sends it; ours answers each with the
follower's identity headers.
"""

from __future__ import annotations

from pathlib import Path

from bench.harness import App, Load, interleave
from bench.report import Options, Row, Target, ratio
from oauth import derive_key
from web.cookies import NAME, CookieSigner, Identity

SCENARIO = "/auth"
MODE = "signed in"
APP_ID = "wxbench00000000001"
APP_SECRET = "benchsecret0123456789abcdef01234"  # noqa: S105 - a benchmark account
SCRIPT = Path(__file__).with_name("gate.lua")
FOLLOWER = Identity("o6_bmasdasdsad6_2sgVt7hMZOPf", "snsapi_userinfo", "oZx8T1uKq0sR3", "张三🎉")


def sign_in_cookie() -> str:
    """The Cookie header of a follower the bot signed in (seven days' sign-in)."""
    signer = CookieSigner(derive_key(APP_SECRET, "cookie"), secure=False, ttl=7 * 24 * 3600)
    return f"{NAME}={signer.value(FOLLOWER)}"


def ours_app(workdir: Path) -> App:
    config = workdir / "auth.toml"
    config.write_text(
        f'[wechat]\napp_id = "{APP_ID}"\napp_secret = "{APP_SECRET}"\ntoken = "benchtoken"\n'
        f'[server]\npublic_url = "http://127.0.0.1:8888"\n'
        f'[storage]\nurl = "sqlite:///{workdir}/auth.sqlite3"\n'
    )
    return App("bot:app", {"BOT_CONFIG": str(config)})


def run(options: Options) -> list[Row]:
    """/auth against the ceiling, interleaved rounds; one Row each."""
    workdir = options.workdir / "gate"
    workdir.mkdir(parents=True, exist_ok=True)
    apps = {
        "ours": ours_app(workdir),
        "ceiling": App("bench.contenders.ceiling:ceiling", {"BENCH_CEILING_REPLY": ""}),
    }
    environ = {"BENCH_COOKIE": sign_in_cookie()}
    loads = [
        Load(SCENARIO, MODE, name, app, SCRIPT, environ)
        for name, app in apps.items()
        if options.wants(name)
    ]
    return interleave(loads, options)


def targets(rows: list[Row]) -> list[Target]:
    """Issue 9's target for /auth: at least 0.7 of the ceiling's throughput, no errors."""
    have = {row.contender: row for row in rows if row.scenario == SCENARIO}
    found = [Target("/auth: ours' errors", have["ours"].errors, 0, False)] if "ours" in have else []
    if {"ours", "ceiling"} <= have.keys():
        value = ratio(rows, SCENARIO, MODE, ("ours", "ceiling"), "rps")
        found.append(Target("/auth: ours / ceiling rps", value, 0.7))
        # the same from CPU time per request: steadier when other work shares the machine
        value = ratio(rows, SCENARIO, MODE, ("ceiling", "ours"), "cpu_us_per_request")
        found.append(Target("/auth: ceiling / ours CPU µs per request (steadier)", value, 0.7))
    return found
