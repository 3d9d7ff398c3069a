"""Message-path throughput, in process (no sockets): our bot with every check on
against a bare WeRoBot bot (no session) answering the same signed text pushes.

    .venv/bin/python bench/message_path.py [--seconds 3]

Each push has a fresh MsgId, so dedupe does real work. Figures are WSGI calls
per second on one thread; they compare the two paths, not a deployment.
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import config as settings
from bench.contenders import TOKEN
from bench.contenders.werobot_apps import werobot_bare
from bench.in_process import rate
from bot import Bot
from wechat.signature import sign

_ids = itertools.count(10**15)


def push_environ(path: str) -> dict:
    timestamp, nonce = str(int(time.time())), "123456"
    body = (
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
        "<FromUserName><![CDATA[o6_bmjrPTlm6_2sgVt7hMZOPfL2M]]></FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[你好]]></Content><MsgId>{next(_ids)}</MsgId></xml>"
    ).encode()
    query = (
        f"signature={sign(TOKEN, timestamp, nonce)}&timestamp={timestamp}&nonce={nonce}&openid=o6"
    )
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "text/xml",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8888",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    seconds = parser.parse_args().seconds
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "config.toml"
        empty.write_text("")
        environ = {"BOT_WECHAT_TOKEN": TOKEN, "BOT_STORAGE_URL": f"sqlite:///{tmp}/bench.sqlite3"}
        ours = Bot(settings.load(empty, environ))
        try:
            bare = rate(werobot_bare, lambda _: push_environ("/"), b"<xml>", seconds)
            bot = rate(ours, lambda _: push_environ("/wechat"), b"<xml>", seconds)
        finally:
            ours.close()
    print(f"bare WeRoBot (no session): {bare:8.0f} messages/s")
    print(f"this bot, every check on:  {bot:8.0f} messages/s  ({bot / bare:.2f}x)")


if __name__ == "__main__":
    main()
