"""`python bot.py [--config PATH] COMMAND`: serve, sandbox, check, authorize-url, users."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from urllib.parse import urlsplit

import config as settings
from oauth import StateSigner, derive_key
from oauth.urls import SCOPES, authorize_url
from storage import StorageError, Store

EXIT_CONFIG = 2
SANDBOX_WARNING = """\
!!! 警告 / WARNING !!!
This bot runs with the SANDBOX credentials of the default config.toml.
It is NOT configured for a real WeChat official account: set wechat.app_id,
wechat.app_secret and wechat.token (BOT_WECHAT_APP_ID, BOT_WECHAT_APP_SECRET,
BOT_WECHAT_TOKEN) to your account's values. See README.md."""


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    _setup_logging()
    try:
        config = settings.load(args.config)
    except settings.ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    return COMMANDS[args.command or "serve"](config, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot.py", description="WeChat official-account OAuth bot")
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: config.toml or $BOT_CONFIG)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the bot with a production WSGI server (default)")
    sandbox = commands.add_parser("sandbox", help="run the bot and the WeChat simulator together")
    sandbox.add_argument("--simulator-port", type=int, default=9000, metavar="PORT")
    commands.add_parser("check", help="validate the configuration, print what to paste into WeChat")
    url = commands.add_parser("authorize-url", help="print a fresh authorize URL")
    url.add_argument("--scope", choices=SCOPES)
    commands.add_parser("users", help="list authorized followers (secrets masked)")
    return parser


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # urllib3 logs request lines at DEBUG, query string (app secret) included.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def serve(config: settings.Config, _args: argparse.Namespace) -> int:
    from bot import Bot
    from bot import serve as run_server

    if config.is_sandbox:
        print(SANDBOX_WARNING, file=sys.stderr)
    app = _open(Bot, config)
    if app is None:
        return EXIT_CONFIG
    server = config.server
    print(f"serving on http://{server.host}:{server.port}, WeChat path {server.wechat_path}")
    print(f"message modes accepted: {_modes(config)}")
    try:
        run_server(app, config.server.host, config.server.port)
    finally:
        app.close()
    return 0


def sandbox(config: settings.Config, args: argparse.Namespace) -> int:
    """The bot wired to a local simulator: try the whole journey with no account."""
    from bot import Bot
    from bot import serve as run_server
    from simulator import Simulator

    host, port = config.server.host, config.server.port
    simulator = Simulator(
        app_id=config.wechat.app_id,
        app_secret=config.wechat.app_secret,
        token=config.wechat.token,
        aes_key=config.wechat.encoding_aes_key,
        bot_url=f"http://{host}:{port}{config.server.wechat_path}",
        callback_domain=config.callback_domain,
    ).start(host="127.0.0.1", port=args.simulator_port)
    wired = replace(
        config, wechat=replace(config.wechat, api_base=simulator.url, open_base=simulator.url)
    )
    app = _open(Bot, wired)
    if app is None:
        simulator.stop()
        return EXIT_CONFIG
    print(f"WeChat simulator: {simulator.url}\n")
    print(f"  打开手机页面 / open the phone page:  {simulator.url}/phone\n")
    try:
        run_server(app, host, port)
    finally:
        app.close()
        simulator.stop()
    return 0


def check(config: settings.Config, _args: argparse.Namespace) -> int:
    """Validate, then print exactly what the WeChat platform asks for."""
    store = _open(Store.from_url, config.storage.url)
    if store is None:
        return EXIT_CONFIG
    store.close()
    server = config.server
    print(f"configuration OK ({config.source})\n")
    print("微信公众平台 → 设置与开发 → 基本配置 → 服务器配置 / server configuration:")
    print(f"  URL (服务器地址):               {server.public_url.rstrip('/')}{server.wechat_path}")
    print(f"  Token (令牌):                   {config.wechat.token}")
    aes_key = config.wechat.encoding_aes_key or "(empty: plaintext mode)"
    print(f"  EncodingAESKey (消息加解密密钥): {aes_key}")
    print(f"  message modes accepted (消息加解密方式): {_modes(config)}")
    print("微信公众平台 → 设置与开发 → 接口权限 → 网页授权 / web authorization:")
    print(f"  网页授权回调域名 (callback domain): {config.callback_domain}")
    for warning in _warnings(config):
        print(f"warning: {warning}")
    return 0


def _modes(config: settings.Config) -> str:
    from wechat.crypto import describe_modes

    return describe_modes(config.wechat.encoding_aes_key, config.wechat.previous_encoding_aes_key)


def _warnings(config: settings.Config) -> list[str]:
    parts = urlsplit(config.server.public_url)
    found = []
    if config.is_sandbox:
        found.append("sandbox credentials: not configured for a real account")
    if parts.port not in (None, 80, 443):
        found.append(f"WeChat only calls ports 80 and 443; server.public_url uses {parts.port}")
    if parts.scheme != "https":
        found.append("server.public_url is not https: the login cookie travels unprotected")
    return found


def print_authorize_url(config: settings.Config, args: argparse.Namespace) -> int:
    signer = StateSigner(derive_key(config.wechat.app_secret, "state"), config.oauth.state_ttl)
    w = config.wechat
    print(
        authorize_url(
            w.open_base,
            w.app_id,
            config.callback_url,
            args.scope or config.oauth.scope,
            signer.issue(),
        )
    )
    return 0


def users(config: settings.Config, _args: argparse.Namespace) -> int:
    store = _open(Store.from_url, config.storage.url)
    if store is None:
        return EXIT_CONFIG
    try:
        followers = store.list_followers()
    finally:
        store.close()
    row = "{:<30} {:<16} {:<16} {:<12} {:<20} {}"
    print(row.format("openid", "nickname", "scope", "access token", "token expires", "status"))
    for f in followers:
        expiry = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f.access_expires_at))
        status = "needs re-authorization" if f.needs_reauth else "ok"
        print(
            row.format(f.openid, f.nickname or "-", f.scope, mask(f.access_token), expiry, status)
        )
    print(f"{len(followers)} follower(s)")
    return 0


def mask(secret: str) -> str:
    return secret[:4] + "…" + "*" * 6 if len(secret) > 8 else "*" * len(secret)


def _open(factory, *args):
    """Build something that opens the database; None (and a clear line) if it cannot."""
    try:
        return factory(*args)
    except StorageError as exc:
        print(f"config error: storage.url: cannot open the database ({exc})", file=sys.stderr)
        return None


COMMANDS = {
    "serve": serve,
    "sandbox": sandbox,
    "check": check,
    "authorize-url": print_authorize_url,
    "users": users,
}
