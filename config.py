"""Configuration: `config.toml`, overridden key by key by `BOT_<SECTION>_<KEY>`.

Every problem is collected before start-up stops, so an operator fixes them all
in one pass instead of one traceback at a time. What is odd but runnable (a
`BOT_*` variable that names no key) comes back as a warning on the Config.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

import routes
from oauth.urls import SCOPES, USERINFO

ROOT = Path(__file__).resolve().parent
DEFAULT_PATH = ROOT / "config.toml"

# The sandbox account that ships in config.toml: fine against the simulator,
# useless against the real platform, so `serve` warns when it sees them.
SANDBOX_APP_ID = "wxsandbox000000001"
SANDBOX_APP_SECRET = "sandboxsecret0000000000000000001"  # noqa: S105 - public sandbox
SANDBOX_TOKEN = "sandboxtoken"  # noqa: S105 - public sandbox
# Only `sandbox` uses it: every message mode (plain, compatible, safe) works there.
SANDBOX_AES_KEY = "SandboxAesKey000000000000000000000000000001"
SANDBOX_WARNING = """\
!!! 警告 / WARNING !!!
This bot runs with the SANDBOX credentials of the default config.toml.
It is NOT configured for a real WeChat official account: set wechat.app_id,
wechat.app_secret and wechat.token (BOT_WECHAT_APP_ID, BOT_WECHAT_APP_SECRET,
BOT_WECHAT_TOKEN) to your account's values. See README.md."""


# `storage.url` schemes the store is built and tested for: SQLite, and PostgreSQL
# through psycopg (3), which plain `postgresql://` also means in SQLAlchemy 2.1.
STORAGE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")
ENVIRONMENT_PREFIX = "BOT_"
CONFIG_VARIABLE = "BOT_CONFIG"  # names the file; not a key


class ConfigError(Exception):
    """A configuration that cannot run: `problems` holds one line per fault, and
    `warnings` what the Config would have carried (see `Config.warnings`)."""

    def __init__(self, problems: list[str], warnings: tuple[str, ...] = ()) -> None:
        super().__init__("\n".join(problems))
        self.problems: tuple[str, ...] = tuple(problems)
        self.warnings = warnings


@dataclass(frozen=True)
class WeChat:
    app_id: str = SANDBOX_APP_ID
    # Secrets stay out of repr(), and so out of logs and tracebacks.
    app_secret: str = field(default=SANDBOX_APP_SECRET, repr=False)
    token: str = field(default=SANDBOX_TOKEN, repr=False)
    encoding_aes_key: str = field(default="", repr=False)
    previous_encoding_aes_key: str = field(default="", repr=False)
    max_clock_skew: int = 300
    api_base: str = "https://api.weixin.qq.com"
    open_base: str = "https://open.weixin.qq.com"


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 8888
    public_url: str = "http://127.0.0.1:8888"
    wechat_path: str = "/wechat"
    # The internal API's bearer secret (`/api/...`); empty turns that API off.
    api_key: str = field(default="", repr=False)


@dataclass(frozen=True)
class OAuth:
    scope: str = USERINFO
    lang: str = "zh_CN"
    state_ttl: int = 3600
    link_text: str = "单击这里体验OAuth授权"
    # Hosts besides public_url's own that /login may send a follower back to.
    return_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Storage:
    url: str = field(default="sqlite:///data/bot.sqlite3", repr=False)  # may hold a password


@dataclass(frozen=True)
class Config:
    wechat: WeChat
    server: Server
    oauth: OAuth
    storage: Storage
    source: str = ""
    # One line each, never a value: what the operator should hear about at start.
    warnings: tuple[str, ...] = ()

    @property
    def callback_url(self) -> str:
        return self.server.public_url.rstrip("/") + routes.CALLBACK

    @property
    def callback_domain(self) -> str:
        """What goes into 网页授权回调域名: the bare host, no scheme, no port."""
        return urlsplit(self.server.public_url).hostname or ""

    @property
    def is_sandbox(self) -> bool:
        return self.wechat.app_id == SANDBOX_APP_ID or self.wechat.app_secret == SANDBOX_APP_SECRET


def sandboxed(config: Config, port: int, wechat_base: str, database: Path) -> Config:
    """`config` as `sandbox` runs it: the sandbox account with an AES key, on loopback at
    `port`, WeChat at `wechat_base`, SQLite at `database`. Nothing of the configured
    account, server or storage is used; what followers see (the [oauth] section) and
    `wechat_path` stay as configured."""
    return replace(
        config,
        wechat=WeChat(
            encoding_aes_key=SANDBOX_AES_KEY, api_base=wechat_base, open_base=wechat_base
        ),
        server=Server(
            host="127.0.0.1",
            port=port,
            public_url=f"http://127.0.0.1:{port}",
            wechat_path=config.server.wechat_path,
        ),
        storage=Storage(url=f"sqlite:///{database}"),
    )


SECTIONS = {"wechat": WeChat, "server": Server, "oauth": OAuth, "storage": Storage}

_TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")
_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_APP_ID = re.compile(r"wx[0-9a-zA-Z]{16}")
_HOST = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+")  # a name, an IPv4 or an IPv6 address
_PLAIN_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+/?")
# A bearer token as RFC 6750 spells one, long enough not to be guessed.
_API_KEY = re.compile(r"[A-Za-z0-9._~+/-]{32,}=*")
# A DNS name: labels of letters, digits and inner hyphens (no port, no dot at the end).
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides `section.key`."""
    return f"{ENVIRONMENT_PREFIX}{section}_{key}".upper()


def load(
    path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> Config:
    """Read the file (if any), apply the environment, validate everything."""
    environ = os.environ if environ is None else environ
    named = path or environ.get(CONFIG_VARIABLE)
    chosen = Path(named or DEFAULT_PATH)
    problems: list[str] = []
    raw = _read_file(chosen, explicit=bool(named), problems=problems)
    sections = {}
    for name, cls in SECTIONS.items():
        table = raw.pop(name, {})
        if not isinstance(table, dict):
            problems.append(f"[{name}]: must be a table")
            table = {}
        sections[name] = _build(name, cls, table, environ, problems)
    problems += [f"[{name}]: unknown section" for name in raw]
    config = Config(**sections, source=str(chosen), warnings=tuple(unknown_variables(environ)))
    problems += validate(config)
    if problems:
        raise ConfigError(problems, config.warnings)
    return config


def unknown_variables(environ: dict[str, str]) -> list[str]:
    """One warning per `BOT_*` variable that overrides nothing (a typo must not pass
    silently), with the closest key's variable as a hint. Names only, never values."""
    keys = [
        env_name(section, spec.name) for section, cls in SECTIONS.items() for spec in fields(cls)
    ]
    accepted = {*keys, CONFIG_VARIABLE}
    warnings = []
    for name in sorted(environ):
        if not name.upper().startswith(ENVIRONMENT_PREFIX) or name in accepted:
            continue
        guess = difflib.get_close_matches(name.upper(), keys, n=1)
        hint = f"; did you mean {guess[0]}?" if guess else ""
        warnings.append(f"{name}: matches no configuration key and is ignored{hint}")
    return warnings


def _read_file(path: Path, explicit: bool, problems: list[str]) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            problems.append(f"{path}: configuration file not found")
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        problems.append(f"{path}: not valid TOML ({exc})")
        return {}


def _build(section: str, cls: type, table: dict, environ: dict[str, str], problems: list[str]):
    values = {}
    known = {spec.name: spec for spec in fields(cls)}
    problems += [f"{section}.{key}: unknown key" for key in table if key not in known]
    for name, spec in known.items():
        variable = env_name(section, name)
        value = environ[variable] if variable in environ else table.get(name, spec.default)
        where = f"{section}.{name}" + (f" ({variable})" if variable in environ else "")
        values[name] = _coerce(value, spec.default, where, problems)
    return cls(**values)


def _coerce(value: Any, default: Any, where: str, problems: list[str]) -> Any:
    """The value in the key's type; on failure a problem, and the default so that
    validation does not report the same key twice. A list key takes a TOML array of
    strings, or (from the environment) one string of comma-separated items."""
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list | tuple) and all(isinstance(item, str) for item in items):
            return tuple(item.strip() for item in items if item.strip())
        problems.append(f"{where}: expected a list of strings")
        return default
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        problems.append(f"{where}: {value!r} is not a whole number")
        return default
    if not isinstance(value, str):
        problems.append(f"{where}: {type(value).__name__} given, expected a string")
        return default
    return value.strip()


def validate(config: Config) -> list[str]:
    """One line per problem: which key, what is wrong, what is expected."""
    w, s, o = config.wechat, config.server, config.oauth
    checks = [
        (_APP_ID.fullmatch(w.app_id), "wechat.app_id: expected 'wx' and 16 letters or digits"),
        (w.app_secret, "wechat.app_secret: must not be empty"),
        (_TOKEN.fullmatch(w.token), "wechat.token: expected 3-32 letters or digits"),
        (
            _aes_ok(w.encoding_aes_key),
            "wechat.encoding_aes_key: expected empty or 43 letters/digits",
        ),
        (
            _aes_ok(w.previous_encoding_aes_key),
            "wechat.previous_encoding_aes_key: expected empty or 43 letters/digits",
        ),
        (w.max_clock_skew > 0, "wechat.max_clock_skew: expected a positive number of seconds"),
        (_http_url(w.api_base), "wechat.api_base: expected an http(s) URL"),
        (_http_url(w.open_base), "wechat.open_base: expected an http(s) URL"),
        (s.host, "server.host: must not be empty"),
        (0 < s.port < 65536, "server.port: expected 1-65535"),
        (
            not s.api_key or _API_KEY.fullmatch(s.api_key),
            "server.api_key: expected empty (no /api routes) or at least 32 letters, digits "
            "or - . _ ~ + / (e.g. the output of `openssl rand -hex 32`)",
        ),
        (o.scope in SCOPES, f"oauth.scope: expected {' or '.join(SCOPES)}"),
        (o.lang in ("zh_CN", "zh_TW", "en"), "oauth.lang: expected zh_CN, zh_TW or en"),
        (60 <= o.state_ttl <= 86400, "oauth.state_ttl: expected 60-86400 seconds"),
        (o.link_text, "oauth.link_text: must not be empty"),
    ]
    return (
        [message for ok, message in checks if not ok]
        + _public_url_problems(s.public_url)
        + _return_hosts_problems(o.return_hosts)
        + _wechat_path_problems(s.wechat_path)
        + _storage_problems(config.storage.url)
    )


def _public_url_problems(url: str) -> list[str]:
    """The callback is `public_url + /oauth/callback` and the bot serves its routes
    at the root, so public_url must be a bare origin."""
    parts = _http_parts(url)
    if parts is None:
        return ["server.public_url: expected an http(s) URL such as https://bot.example.com"]
    checks = [
        ("@" not in parts.netloc, "must not carry a user name or password"),
        (
            parts.path in ("", "/"),
            f"the bot serves its routes at the root, so the path {parts.path!r} would give "
            f"a callback it does not serve; expected an origin such as https://bot.example.com",
        ),
        (not parts.query and not parts.fragment, "must not carry a query or fragment"),
    ]
    return [f"server.public_url: {message}" for ok, message in checks if not ok]


def _return_hosts_problems(hosts: tuple[str, ...]) -> list[str]:
    return [
        f"oauth.return_hosts: {host!r} is not a host name; expected names only, such as "
        "shop.example.com (no scheme, port, path or wildcard)"
        for host in hosts
        if not _HOSTNAME.fullmatch(host)
    ]


def _wechat_path_problems(path: str) -> list[str]:
    if path.startswith("/") and routes.is_taken(path.rstrip("/") or "/"):
        return [f"server.wechat_path: {path!r} is one of the bot's own routes; use e.g. /wechat"]
    if not _PLAIN_PATH.fullmatch(path) or {".", ".."} & set(path.split("/")):
        return [
            f"server.wechat_path: {path!r} is not a plain path; expected letters, digits "
            "and - _ . ~ between slashes, such as /wechat"
        ]
    return []


def _storage_problems(url: str) -> list[str]:
    """SQLite or PostgreSQL only. The URL may hold a password: never echo it."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return ["storage.url: expected a SQLAlchemy URL such as sqlite:///data/bot.sqlite3"]
    if parsed.drivername not in STORAGE_SCHEMES:
        return [
            f"storage.url: {parsed.drivername}:// is not supported; expected "
            "sqlite:///PATH, or postgresql+psycopg://USER@HOST/DB for several instances"
        ]
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        return ["storage.url: in-memory SQLite is not shared between threads; give a file path"]
    return []


def _aes_ok(key: str) -> bool:
    return not key or bool(_AES_KEY.fullmatch(key))


def _http_url(url: str) -> bool:
    return _http_parts(url) is not None


def _http_parts(url: str) -> SplitResult | None:
    """The URL split, when it is http(s) with a well-formed host and port."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0  # .port raises beyond 0-65535
    except ValueError:
        return None
    host_ok = bool(parts.hostname and _HOST.fullmatch(parts.hostname))
    return parts if parts.scheme in ("http", "https") and host_ok and port_ok else None
