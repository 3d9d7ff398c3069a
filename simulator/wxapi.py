"""WeChat-shaped API bodies: errcodes, errmsg with a rid, and the exact headers."""

import json
import secrets
from typing import Any

JSON_TYPE = "application/json; encoding=utf-8"  # sic: WeChat says encoding=, not charset=
ERROR_TYPE = "text/plain"  # no charset, so naive clients decode as ISO-8859-1

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40020: "invalid button url size",
    40023: "invalid sub button size",
    40024: "invalid sub button type",
    40025: "invalid sub button name size",
    40026: "invalid sub button key size",
    40027: "invalid sub button url size",
    40029: "invalid code",
    40030: "invalid refresh_token",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40054: "invalid sub button url domain",
    40055: "invalid button url domain",
    40097: "invalid args",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    41002: "appid missing",
    41003: "refresh_token missing",
    41004: "appsecret missing",
    41008: "missing code",
    41009: "missing openid",
    42001: "access_token expired",
    42002: "refresh_token expired",
    42003: "code expired",
    42007: "access_token and refresh_token exception",
    43001: "require GET method",
    43002: "require POST method",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit mustslower retry next minute",
    46003: "menu no exist",
    47001: "data format error",
    48001: "api unauthorized",
}


class WeChatError(Exception):
    """An API failure that WeChat reports as HTTP 200 with an errcode."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode


def rid() -> str:
    """The request id WeChat appends to every errmsg."""
    return "-".join(secrets.token_hex(4) for _ in range(3))


def dumps(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON with raw non-ASCII and every `/` escaped as `\\/`, like WeChat."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return text.replace("/", "\\/").encode()


def error_body(errcode: int) -> bytes:
    """An error body; errmsg carries a rid suffix, so clients must compare errcode only."""
    return dumps({"errcode": errcode, "errmsg": f"{ERRMSG[errcode]}, rid: {rid()}"})
