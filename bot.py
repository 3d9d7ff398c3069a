"""The WeChat OAuth bot, composed on one screen: config → storage → robot → routes.

`bot:app` is the WSGI application (`gunicorn bot:app`, configured by BOT_CONFIG
and BOT_* variables); `python bot.py [--config PATH] COMMAND` is the command
line (cli.py, which gets the Bot handed in and serves it with serving.py).
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from werobot.robot import BaseRoBot

import config as settings
import routes
from handlers import Handlers
from oauth import (
    PAGE_DEADLINE,
    AuthorizeLinks,
    SignIn,
    StateSigner,
    TokenUpkeep,
    WeChatOAuth,
    derive_key,
)
from oauth.basic_token import BasicToken
from oauth.client import BUSY_PAUSES, CONNECT_TIMEOUT, READ_TIMEOUT
from oauth.jssdk import JsapiTicket, JsSdk, PageURLs
from oauth.menu import AccountMenu
from request_log import log_requests
from storage import DeliveryLedger, Store, StoreSessionStorage
from web.api import InternalAPI
from web.app import create_web_app, with_every_response_headers
from web.cookies import CookieSigner
from web.destinations import Destinations
from web.gate import Gate
from web.jssdk import JsSdkConfig
from wechat import MessageServer, RetryGuard
from wechat.crypto import message_crypto
from wechat.dedupe import WAIT_FOR_FIRST

log = logging.getLogger("bot")


@dataclass(frozen=True)
class Timings:
    """How long the bot waits on others, in seconds. The defaults are production's,
    set by what WeChat and followers tolerate (see where each is defined); the tests
    scale them down to see the same behaviour without waiting it out."""

    page_deadline: float = PAGE_DEADLINE  # a page's WeChat calls, all together
    read_timeout: float = READ_TIMEOUT  # one WeChat call's answer
    busy_pauses: tuple[float, ...] = BUSY_PAUSES  # before asking a busy WeChat again
    wait_for_first: float = WAIT_FOR_FIRST  # a copy of a push, for the first one's answer


class Bot:
    """The WSGI app: the message endpoint on `wechat_path`, the proxies' /auth, the web
    pages elsewhere."""

    def __init__(self, config: settings.Config, timings: Timings = Timings()) -> None:
        w, o, s = config.wechat, config.oauth, config.server
        t = timings
        # storage
        self.store = Store.from_url(config.storage.url, base_dir=Path(config.source).parent)
        # OAuth
        self.client = WeChatOAuth(
            w.app_id, w.app_secret, w.api_base, (CONNECT_TIMEOUT, t.read_timeout), t.busy_pauses
        )
        signer = StateSigner(derive_key(w.app_secret, "state"), o.state_ttl)
        self.links = AuthorizeLinks(
            w.open_base, w.app_id, config.callback_url, o.scope, signer, self.store
        )
        # robot: WeRoBot's handler registry, sessions in our store
        self.robot = robot = BaseRoBot(
            token=w.token, app_id=w.app_id, session_storage=StoreSessionStorage(self.store)
        )
        Handlers(self.links.link, o.link_text, self.store.acquaintance).register(robot)
        # routes
        ledger = DeliveryLedger.beside(self.store.engine)
        self.guard = RetryGuard(ledger, w.max_clock_skew, wait_for_first=t.wait_for_first)
        crypto = message_crypto(w.token, w.app_id, w.encoding_aes_key, w.previous_encoding_aes_key)
        self.messages = MessageServer(robot, w.token, w.max_clock_skew, self.guard, crypto=crypto)
        cookies = CookieSigner(
            derive_key(w.app_secret, "cookie"),
            s.public_url.startswith("https"),
            s.sign_in_ttl,
            s.cookie_domain,
        )
        destinations = Destinations(s.public_url, o.return_hosts)
        sign_in = SignIn(self.client, self.store, self.store, self.store, signer, o.lang)
        upkeep = TokenUpkeep(self.client, self.store, o.lang)
        self.pages = create_web_app(
            self.links, sign_in, upkeep, cookies, self.store, destinations, t.page_deadline
        )
        self.gate = Gate(cookies, destinations, s.public_url)  # /auth: the cookie alone
        self.wechat_path = s.wechat_path
        # the account's basic access_token: one owner, shared through the store
        self.basic_token = BasicToken(self.client, self.store)
        self.menu = AccountMenu(self.client, self.basic_token, s.public_url)
        # JS-SDK: the jsapi_ticket, shared like the basic token, signs the operator's pages
        ticket = JsapiTicket(self.client, self.basic_token, self.store)
        pages = PageURLs(s.public_url, o.return_hosts)
        self.jssdk = with_every_response_headers(JsSdkConfig(JsSdk(w.app_id, ticket, pages)))
        api_key = s.api_key  # empty: no /api routes at all (the pages' 404)
        api = InternalAPI(self.basic_token, api_key) if api_key else None
        self.api = api and with_every_response_headers(api)
        self._logged = log_requests(self._route)  # one line per request, once it is answered

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == routes.AUTH:
            # Asked before every request of the protected app, whose proxy logs it: a
            # line here too would double the log and halve /auth's throughput.
            return self.gate(environ, start_response)
        return self._logged(environ, start_response)

    def _route(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == self.wechat_path:
            return self.messages(environ, start_response)
        if self.api and routes.is_under(path, routes.API):
            return self.api(environ, start_response)
        if path == routes.JSSDK_CONFIG:
            return self.jssdk(environ, start_response)
        return self.pages(environ, start_response)

    def close(self) -> None:
        self.guard.close()
        self.client.close()
        self.store.close()


def __getattr__(name: str) -> Bot:
    """`bot:app`, built on first use so that importing bot.py reads no configuration."""
    if name == "app":
        config = settings.load()
        for warning in config.warnings:
            log.warning("config warning: %s", warning)
        if config.is_sandbox:
            log.warning(settings.SANDBOX_WARNING)
        globals()["app"] = Bot(config)
        # What start-up built lives as long as the process: out of the collector's
        # sight, so its full collections scan only what requests leave behind.
        gc.freeze()
        return globals()["app"]
    raise AttributeError(name)


if __name__ == "__main__":
    import cli  # the command line (and waitress, which serves it): not under gunicorn

    sys.exit(cli.main(sys.argv[1:], Bot))
