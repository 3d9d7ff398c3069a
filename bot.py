"""The WeChat OAuth bot, composed on one screen: config → storage → robot → routes → server.

`bot:app` is the WSGI application (`gunicorn bot:app`, configured by BOT_CONFIG
and BOT_* variables); `python bot.py [--config PATH] COMMAND` is the command
line (cli.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import waitress
from werobot.robot import BaseRoBot

import config as settings
from handlers import Handlers
from oauth import AuthorizeLinks, SignIn, StateSigner, TokenUpkeep, WeChatOAuth, derive_key
from storage import Store, StoreSessionStorage
from web.app import create_web_app
from web.cookies import CookieSigner
from wechat import MessageServer, RetryGuard


class Bot:
    """The WSGI app: the message endpoint on `wechat_path`, the web pages elsewhere."""

    def __init__(self, config: settings.Config) -> None:
        w, o = config.wechat, config.oauth
        # storage
        self.store = Store.from_url(config.storage.url, base_dir=Path(config.source).parent)
        # OAuth
        self.client = WeChatOAuth(w.app_id, w.app_secret, w.api_base)
        signer = StateSigner(derive_key(w.app_secret, "state"), o.state_ttl)
        self.links = AuthorizeLinks(w.open_base, w.app_id, config.callback_url, o.scope, signer)
        # robot: WeRoBot's handler registry, sessions in our store
        robot = BaseRoBot(
            token=w.token, app_id=w.app_id, session_storage=StoreSessionStorage(self.store)
        )
        Handlers(self.links.link, o.link_text).register(robot)
        # routes
        self.guard = RetryGuard(self.store)
        self.messages = MessageServer(robot, w.token, w.max_clock_skew, self.guard)
        cookies = CookieSigner(
            derive_key(w.app_secret, "cookie"), config.server.public_url.startswith("https")
        )
        sign_in = SignIn(self.client, self.store, self.store, signer, o.lang)
        upkeep = TokenUpkeep(self.client, self.store, o.lang)
        self.pages = create_web_app(self.links, sign_in, upkeep, cookies, self.store)
        self.wechat_path = config.server.wechat_path

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == self.wechat_path:
            return self.messages(environ, start_response)
        return self.pages(environ, start_response)

    def close(self) -> None:
        self.guard.close()
        self.client.close()
        self.store.close()


def serve(app: Bot, host: str, port: int) -> None:
    """Waitress: a production WSGI server, pure Python, threaded."""
    waitress.serve(
        app, host=host, port=port, threads=16, ident="oauth-bot", clear_untrusted_proxy_headers=True
    )


def __getattr__(name: str) -> Bot:
    """`bot:app`, built on first use so that importing bot.py reads no configuration."""
    if name == "app":
        globals()["app"] = Bot(settings.load())
        return globals()["app"]
    raise AttributeError(name)


if __name__ == "__main__":
    import sys

    import cli

    sys.exit(cli.main(sys.argv[1:]))
