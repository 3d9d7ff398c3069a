"""`python bot.py [--config PATH] COMMAND`: serve, sandbox, check, authorize-url, users,
migrate, menu.

bot.py composes the bot and hands its class in (`main(argv, Bot)`): every command
works on that one composition, and this module never imports bot.py back.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import config as settings
import routes
from oauth import AuthorizeLinks, WeChatAPIError, WeChatUnavailable
from oauth.menu import AccountMenu, explain
from oauth.urls import SCOPES
from serving import CannotListen, Server
from storage import StorageError, Store
from terminal import clip, local_time, printable, table

EXIT_WECHAT = 1  # WeChat refused or failed a call the command needed
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130  # Ctrl-C before the server took over the signal
SERVERS = ("serve", "sandbox")  # the commands that keep running and log as they go
SANDBOX_PORT = 8888
SIMULATOR_PORT = 9000
NICKNAME_COLUMNS = 24  # `users` cuts longer nicknames


class App(Protocol):
    """What the commands use of bot.py's Bot: a WSGI app over one store."""

    store: Store
    links: AuthorizeLinks
    menu: AccountMenu

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]: ...

    def close(self) -> None: ...


AppFactory = Callable[[settings.Config], App]


def main(argv: list[str], make_app: AppFactory) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    setup_logging(logging.INFO if command in SERVERS else logging.WARNING)
    try:
        config = settings.load(args.config)
    except settings.ConfigError as exc:
        _print_lines("config warning", exc.warnings)
        _print_lines("config error", exc.problems)
        return EXIT_CONFIG
    _print_lines("config warning", config.warnings)
    try:
        return COMMANDS[command](config, args, make_app)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except StorageError as exc:
        print(f"storage error (storage.url): {exc}", file=sys.stderr)
    except CannotListen as exc:
        print(f"error: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def _print_lines(kind: str, lines: Iterable[str]) -> None:
    for line in lines:
        print(f"{kind}: {line}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot.py", description="WeChat official-account OAuth bot")
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: config.toml or $BOT_CONFIG)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the bot with a production WSGI server (default)")
    sandbox = commands.add_parser(
        "sandbox",
        help="run the bot and the WeChat simulator together on loopback",
        description="The bot and a local WeChat simulator on 127.0.0.1, with the sandbox "
        "account and a throwaway SQLite database (removed at exit): the configured account, "
        "server and storage.url are not used. Prints the phone page's URL.",
    )
    sandbox.add_argument(
        "--port",
        type=_port,
        default=SANDBOX_PORT,
        help=f"the bot's port; the OAuth callback follows (default {SANDBOX_PORT})",
    )
    sandbox.add_argument(
        "--simulator-port",
        type=_port,
        default=SIMULATOR_PORT,
        metavar="PORT",
        help=f"the simulator's port, where the phone page is (default {SIMULATOR_PORT})",
    )
    commands.add_parser("check", help="validate the configuration, print what to paste into WeChat")
    url = commands.add_parser("authorize-url", help="print a fresh authorize URL")
    url.add_argument("--scope", choices=SCOPES)
    commands.add_parser("users", help="list authorized followers (secrets masked)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    menu = commands.add_parser(
        "menu",
        help="install the account's custom menu (a button that opens /login?next=/me)",
        description="Installs the account's custom menu (cgi-bin/menu/create, replacing the "
        "installed one): a view button 我的 that opens public_url + /login?next=/me.",
    )
    menu.add_argument("--show", action="store_true", help="print the installed menu instead")
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (expected 1-65535)")
    return int(text)


def setup_logging(level: int = logging.INFO) -> None:
    """The bot's records to stderr: from INFO up, one line per request included, for
    `serve`, `sandbox` and gunicorn's workers (deploy/gunicorn.conf.py); from WARNING up
    for the other commands, whose own output is what the operator reads."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # urllib3's request lines are noise at INFO (their secrets are masked by oauth/client.py).
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # So are Alembic's on every start; storage.migrate logs the steps it applies.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def serve(config: settings.Config, _args: argparse.Namespace, make_app: AppFactory) -> int:
    """Until SIGTERM or Ctrl-C, which let the requests in flight finish."""
    _warn_if_sandbox(config)
    server = config.server
    with closing(make_app(config)) as app:
        gc.freeze()  # start-up's objects live as long as the process (as bot:app does)
        listening = Server(app, server.host, server.port)
        print(f"serving on http://{server.host}:{server.port}, WeChat path {server.wechat_path}")
        print(f"message modes accepted: {_modes(config)}")
        listening.run()
    return 0


def sandbox(config: settings.Config, args: argparse.Namespace, make_app: AppFactory) -> int:
    """The bot wired to a local simulator: the whole journey with no account, the custom
    menu installed, and nothing configured touched (see settings.sandboxed)."""
    from simulator import Simulator

    if args.port == args.simulator_port:
        print("error: --port and --simulator-port must differ", file=sys.stderr)
        return EXIT_CONFIG
    with tempfile.TemporaryDirectory(prefix="bot-sandbox-") as scratch:
        database = Path(scratch) / "bot.sqlite3"
        simulator_url = f"http://127.0.0.1:{args.simulator_port}"
        wired = settings.sandboxed(config, args.port, simulator_url, database)
        w, server = wired.wechat, wired.server
        simulator = Simulator(
            app_id=w.app_id,
            app_secret=w.app_secret,
            token=w.token,
            aes_key=w.encoding_aes_key,
            bot_url=server.public_url + server.wechat_path,
            callback_domain=wired.callback_domain,
        )
        try:
            simulator.start(host="127.0.0.1", port=args.simulator_port)
        except OSError as exc:
            raise CannotListen("127.0.0.1", args.simulator_port, "--simulator-port", exc) from None
        try:
            with closing(make_app(wired)) as app:
                _install_sandbox_menu(app)
                listening = Server(app, server.host, server.port, "--port")
                _announce_sandbox(server.public_url, simulator.url, database)
                listening.run()
        finally:
            simulator.stop()
    return 0


def _install_sandbox_menu(app: App) -> None:
    """The menu on the simulated account, as `menu` installs it on a real one, so that
    the phone page shows it."""
    try:
        app.menu.install()
    except (WeChatAPIError, WeChatUnavailable) as exc:
        print(f"warning: the custom menu was not installed ({exc})", file=sys.stderr)


def _announce_sandbox(bot_url: str, simulator_url: str, database: Path) -> None:
    print(f"sandbox: the bot on {bot_url}, a WeChat simulator on {simulator_url}")
    print(f"sandbox account, throwaway database {database} (removed at exit)\n")
    print(f"  打开手机页面 / open the phone page:  {simulator_url}/phone\n")
    print("Ctrl-C stops both.", flush=True)


def check(config: settings.Config, _args: argparse.Namespace, make_app: AppFactory) -> int:
    """Validate, then print exactly what the WeChat platform asks for."""
    make_app(config).close()  # builds the whole bot: the storage must open
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
    print("微信公众平台 → 设置与开发 → 公众号设置 → 功能设置 / pages using JS-SDK (/jssdk/config):")
    js_domains = ", ".join((config.callback_domain, *config.oauth.return_hosts))
    print(f"  JS接口安全域名 (JS API domains):   {js_domains}")
    api = "on (server.api_key is set)" if server.api_key else "off (server.api_key is empty)"
    print(f"internal API ({routes.ACCESS_TOKEN}): {api}")
    for warning in _warnings(config):
        print(f"warning: {warning}")
    return 0


def _warn_if_sandbox(config: settings.Config) -> None:
    if config.is_sandbox:
        print(settings.SANDBOX_WARNING, file=sys.stderr)


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


def print_authorize_url(
    config: settings.Config, args: argparse.Namespace, make_app: AppFactory
) -> int:
    _warn_if_sandbox(config)
    with closing(make_app(config)) as app:
        print(app.links.link(args.scope))
    return 0


def users(config: settings.Config, _args: argparse.Namespace, make_app: AppFactory) -> int:
    with closing(make_app(config)) as app:
        followers = app.store.list_followers()
    rows = [("openid", "nickname", "scope", "access token", "token expires", "status")]
    for f in followers:
        nickname = clip(printable(f.nickname or "-"), NICKNAME_COLUMNS)
        expiry = local_time(f.access_expires_at)
        status = "needs re-authorization" if f.needs_reauth else "ok"
        rows.append((f.openid, nickname, f.scope, mask(f.access_token), expiry, status))
    for line in table(rows):
        print(line)
    print(f"{len(followers)} follower(s)")
    return 0


def migrate(config: settings.Config, _args: argparse.Namespace, make_app: AppFactory) -> int:
    """Opening the store applies what is pending (serve does it too): say what that was."""
    with closing(make_app(config)) as app:
        done = app.store.migrated
    if done.applied:
        steps = ", ".join(done.applied)
        print(f"database schema upgraded from {done.before or 'none'} to {done.after} ({steps})")
    else:
        print(f"database schema up to date (version {done.after})")
    return 0


def install_menu(config: settings.Config, args: argparse.Namespace, make_app: AppFactory) -> int:
    """Install the menu, or print the installed one; what WeChat refused in one line."""
    _warn_if_sandbox(config)
    with closing(make_app(config)) as app:
        try:
            buttons = app.menu.installed() if args.show else app.menu.install()
        except WeChatAPIError as exc:
            print(f"error: {explain(exc)}", file=sys.stderr)
            return EXIT_WECHAT
        except WeChatUnavailable as exc:
            print(f"error: WeChat did not answer ({exc})", file=sys.stderr)
            return EXIT_WECHAT
    if buttons is None:
        print("no custom menu is installed")
        return 0
    print("installed custom menu:" if args.show else "custom menu installed:")
    for line in menu_table(buttons):
        print("  " + line)
    return 0


def menu_table(buttons: list[dict]) -> Iterator[str]:
    """A menu's buttons, a submenu's indented under it, names lined up."""
    rows = [("name", "type", "opens / key")]
    for button in buttons:
        rows.append(_menu_row(button, ""))
        rows += [_menu_row(sub, "  ") for sub in button.get("sub_button") or []]
    return table(rows)


def _menu_row(button: dict, indent: str) -> tuple[str, str, str]:
    kind = "submenu" if button.get("sub_button") else str(button.get("type", "-"))
    fields = ("url", "key", "media_id", "article_id", "pagepath")
    target = next((str(button[f]) for f in fields if button.get(f)), "")
    return (indent + printable(str(button.get("name", ""))), printable(kind), printable(target))


def mask(secret: str) -> str:
    return secret[:4] + "…" + "*" * 6 if len(secret) > 8 else "*" * len(secret)


COMMANDS = {
    "serve": serve,
    "sandbox": sandbox,
    "check": check,
    "authorize-url": print_authorize_url,
    "users": users,
    "migrate": migrate,
    "menu": install_menu,
}
