"""Validation of authorize links, as strict as WeChat's in-app browser."""

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

CANONICAL = ("appid", "redirect_uri", "response_type", "scope", "state")
EXTRAS = ("forcePopup", "forceSnapShot", "connect_redirect")
SCOPES = ("snsapi_base", "snsapi_userinfo")
FOREIGN_SCOPES = ("snsapi_login", "snsapi_privateinfo")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
STATE = re.compile(r"[A-Za-z0-9]{0,128}")
MALFORMED = "redirect_uri 参数错误"  # WeChat's older catch-all text for a malformed link


class AuthorizeError(Exception):
    """A link WeChat refuses: shown as an error page in the app, never redirected."""

    def __init__(self, errcode: int, text: str) -> None:
        super().__init__(errcode, text)
        self.errcode = errcode
        self.text = text


@dataclass(frozen=True)
class AuthorizeLink:
    """The accepted parts of an authorize link."""

    redirect_uri: str
    scope: str
    state: str
    force_snapshot: bool = False  # forceSnapShot=true: show the snapshot page (快照页)


def parse_link(raw_query: str, app_id: str, callback_domain: str) -> AuthorizeLink:
    """Check order and values of the raw query string; raise AuthorizeError on failure."""
    pairs = [piece.partition("=") for piece in raw_query.split("&") if piece]
    _check_order([key for key, _, _ in pairs])
    raw = {key: value for key, _, value in pairs}
    if not raw.get("appid"):
        raise AuthorizeError(10012, "appid 不能为空")
    if unquote(raw["appid"]) != app_id:
        raise AuthorizeError(10012, "appid 参数错误")
    if not raw.get("redirect_uri"):
        raise AuthorizeError(10011, "redirect_uri 不能为空")
    if raw.get("response_type") != "code":
        raise AuthorizeError(10003, MALFORMED + "（response_type 必须为 code）")
    scope = unquote(raw.get("scope", ""))
    if scope in FOREIGN_SCOPES:
        raise AuthorizeError(10005, "此公众号并没有这些 scope 的权限")
    if scope not in SCOPES:
        raise AuthorizeError(10010, "scope 参数错误或没有 scope 权限")
    state = raw.get("state", "")
    if not STATE.fullmatch(state):
        raise AuthorizeError(10013, "state 参数错误")
    redirect_uri = unquote(raw["redirect_uri"])
    _check_redirect(redirect_uri, callback_domain)
    return AuthorizeLink(redirect_uri, scope, state, raw.get("forceSnapShot") == "true")


def _check_order(keys: list[str]) -> None:
    """WeChat matches the link with a fixed pattern: known keys, once each, in order."""
    ranks = []
    for key in keys:
        if key in CANONICAL:
            ranks.append(CANONICAL.index(key))
        elif key in EXTRAS:
            ranks.append(len(CANONICAL))
        else:
            raise AuthorizeError(10003, f"{MALFORMED}（未知参数 {key}）")
    if len(set(keys)) != len(keys) or ranks != sorted(ranks):
        raise AuthorizeError(10003, f"{MALFORMED}（参数顺序必须为 {'、'.join(CANONICAL)}）")


def _check_redirect(redirect_uri: str, callback_domain: str) -> None:
    """An absolute http(s) URL on exactly the callback domain; ports only on loopback."""
    mismatch = AuthorizeError(10003, "redirect_uri 域名与后台配置不一致")
    parts = urlsplit(redirect_uri)
    try:
        port = parts.port
    except ValueError as exc:
        raise mismatch from exc
    host = parts.hostname or ""
    if (
        parts.scheme not in ("http", "https")
        or host != callback_domain.lower()
        or (port is not None and host not in LOOPBACK)
    ):
        raise mismatch


def add_query(url: str, **params: str) -> str:
    """The redirect target: `url` with params appended (`?` or `&` as needed)."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))
