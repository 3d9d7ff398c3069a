"""`GET /jssdk/config` throughput, in process (no sockets), against the simulator: every
page view asks for a signature, so once the ticket is held the route must cost neither
a WeChat call nor a database read. Prints signatures per second on one thread, and how
often WeChat was asked.

    .venv/bin/python bench/jssdk_config.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import config as settings
from bench.in_process import rate
from bot import Bot
from simulator import Simulator

APP_ID, SECRET = "wxbench0000000001a", "benchsecret000000000000000000001"
PAGE = "http://127.0.0.1:8888/shop/order?id=42&from=menu"


def environ(number: int) -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/jssdk/config",
        "QUERY_STRING": "url=" + quote(f"{PAGE}&n={number}", safe=""),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8888",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    seconds = parser.parse_args().seconds
    with Simulator(APP_ID, SECRET, "benchtoken") as sim, tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "config.toml"
        empty.write_text("")
        variables = {
            "BOT_WECHAT_APP_ID": APP_ID,
            "BOT_WECHAT_APP_SECRET": SECRET,
            "BOT_WECHAT_API_BASE": sim.url,
            "BOT_STORAGE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        }
        bot = Bot(settings.load(empty, variables))
        try:
            signed = rate(bot, environ, b"signature", seconds)
        finally:
            bot.close()
        asked = sim.calls.paths()
    print(f"/jssdk/config: {signed:8.0f} signatures/s on one thread")
    print(f"WeChat asked {len(asked)} time(s): {', '.join(asked)}")


if __name__ == "__main__":
    main()
