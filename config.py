"""Configuration: `config.toml`, overridden key by key by `BOT_<SECTION>_<KEY>`.

Every problem is collected before start-up stops, so an operator fixes them all
in one pass instead of one traceback at a time.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent
DEFAULT_PATH = ROOT / "config.toml"

# The sandbox account that ships in config.toml: fine against the simulator,
# useless against the real platform, so `serve` warns when it sees them.
SANDBOX_APP_ID = "wxsandbox000000001"
SANDBOX_APP_SECRET = "sandboxsecret0000000000000000001"  # noqa: S105 - public sandbox
SANDBOX_TOKEN = "sandboxtoken"  # noqa: S105 - public sandbox


class ConfigError(Exception):
    """A configuration that cannot run; `problems` holds one line per fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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


@dataclass(frozen=True)
class OAuth:
    scope: str = "snsapi_userinfo"
    lang: str = "zh_CN"
    state_ttl: int = 3600
    link_text: str = "单击这里体验OAuth授权"


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

    @property
    def callback_url(self) -> str:
        return self.server.public_url.rstrip("/") + "/oauth/callback"

    @property
    def callback_domain(self) -> str:
        """What goes into 网页授权回调域名: the bare host, no scheme, no port."""
        return urlsplit(self.server.public_url).hostname or ""

    @property
    def is_sandbox(self) -> bool:
        return self.wechat.app_id == SANDBOX_APP_ID or self.wechat.app_secret == SANDBOX_APP_SECRET


SECTIONS = {"wechat": WeChat, "server": Server, "oauth": OAuth, "storage": Storage}

_TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")
_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_APP_ID = re.compile(r"wx[0-9a-zA-Z]{16}")


def load(
    path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> Config:
    """Read the file (if any), apply the environment, validate everything."""
    environ = os.environ if environ is None else environ
    chosen = Path(path or environ.get("BOT_CONFIG") or DEFAULT_PATH)
    problems: list[str] = []
    raw = _read_file(chosen, explicit=bool(path or environ.get("BOT_CONFIG")), problems=problems)
    sections = {}
    for name, cls in SECTIONS.items():
        table = raw.pop(name, {})
        if not isinstance(table, dict):
            problems.append(f"[{name}]: must be a table")
            table = {}
        sections[name] = _build(name, cls, table, environ, problems)
    problems += [f"[{name}]: unknown section" for name in raw]
    config = Config(**sections, source=str(chosen))
    problems += validate(config)
    if problems:
        raise ConfigError(problems)
    return config


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
        env_name = f"BOT_{section}_{name}".upper()
        value = environ[env_name] if env_name in environ else table.get(name, spec.default)
        where = f"{section}.{name}" + (f" ({env_name})" if env_name in environ else "")
        values[name] = _coerce(value, spec.default, where, problems)
    return cls(**values)


def _coerce(value: Any, default: Any, where: str, problems: list[str]) -> Any:
    """The value in the key's type; on failure a problem, and the default so that
    validation does not report the same key twice."""
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
            _http_url(s.public_url),
            "server.public_url: expected an http(s) URL such as https://bot.example.com",
        ),
        (
            not urlsplit(s.public_url).query and not urlsplit(s.public_url).fragment,
            "server.public_url: must not carry a query or fragment",
        ),
        (
            s.wechat_path.startswith("/") and s.wechat_path not in ("/", "/me", "/healthz"),
            "server.wechat_path: expected a path such as /wechat",
        ),
        (
            o.scope in ("snsapi_base", "snsapi_userinfo"),
            "oauth.scope: expected snsapi_base or snsapi_userinfo",
        ),
        (o.lang in ("zh_CN", "zh_TW", "en"), "oauth.lang: expected zh_CN, zh_TW or en"),
        (60 <= o.state_ttl <= 86400, "oauth.state_ttl: expected 60-86400 seconds"),
        (o.link_text, "oauth.link_text: must not be empty"),
        (
            "://" in config.storage.url,
            "storage.url: expected a SQLAlchemy URL such as sqlite:///data/bot.sqlite3",
        ),
        (
            config.storage.url.rstrip("/") not in ("sqlite:", "sqlite:///:memory:"),
            "storage.url: in-memory SQLite is not shared between threads; give a file path",
        ),
    ]
    return [message for ok, message in checks if not ok]


def _aes_ok(key: str) -> bool:
    return not key or bool(_AES_KEY.fullmatch(key))


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
