"""WeChat's four sns OAuth calls, and the account's `cgi-bin` calls (stable_token, the
jsapi_ticket, the custom menu), over one pooled `requests.Session`.

Knows nothing of the web framework: callers hand in codes and tokens (and the
page's Deadline) and get dataclasses or typed errors back. Each call's timeout is
capped by the deadline; a busy WeChat (errcode -1) is asked again after a short
pause, within the deadline, except for the code exchange: a code is single use.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Timeout

from oauth.deadline import Deadline
from oauth.errors import WeChatAPIError, WeChatUnavailable

CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 5.0
REFRESH_TOKEN_LIFETIME = 30 * 24 * 3600  # WeChat does not say it in the answer
BUSY_PAUSES = (0.2, 0.5)  # before the 2nd and 3rd try of a call WeChat answered with -1
# urllib3 logs every request line at DEBUG (and retries, redirects), query string and
# all: a DEBUG log would hold the app secret, the tokens and the codes. Its loggers
# that write URLs get a filter that masks them, whatever level the operator picks.
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager")
_SECRET_PARAMETERS = re.compile(r"(?<![\w])((?:secret|access_token|refresh_token|code)=)[^&\s'\"]+")
JSON_BODY = {"Content-Type": "application/json; charset=utf-8"}


class MaskSecrets(logging.Filter):
    """Replaces the values of secret query parameters in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = _SECRET_PARAMETERS.sub(r"\1***", record.getMessage()), ()
        return True


for _name in URLLIB3_LOGGERS:
    logging.getLogger(_name).addFilter(MaskSecrets())


@dataclass(frozen=True)
class TokenGrant:
    """What access_token and refresh_token calls return."""

    openid: str
    scope: str
    access_token: str
    refresh_token: str
    expires_in: int
    unionid: str | None = None
    is_snapshotuser: bool = False
    received_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def access_expires_at(self) -> int:
        return self.received_at + self.expires_in


@dataclass(frozen=True)
class Expiring:
    """A credential of the account that `cgi-bin` hands out for a while: the basic
    access_token (stable_token), a jsapi_ticket (getticket)."""

    value: str = field(repr=False)
    expires_in: int
    received_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def expires_at(self) -> int:
        return self.received_at + self.expires_in


class WeChatOAuth:
    def __init__(
        self,
        app_id: str,
        app_secret: str,
        api_base: str = "https://api.weixin.qq.com",
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        busy_pauses: tuple[float, ...] = BUSY_PAUSES,
    ) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.busy_pauses = busy_pauses
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_maxsize=32))
        self.session.mount("https://", HTTPAdapter(pool_maxsize=32))

    def __repr__(self) -> str:  # never show the secret
        return f"WeChatOAuth(app_id={self.app_id!r}, api_base={self.api_base!r})"

    def exchange_code(self, code: str, deadline: Deadline | None = None) -> TokenGrant:
        """Never retried: a code is single use, and WeChat may have spent it already."""
        data = self._get(
            "sns/oauth2/access_token",
            deadline,
            retry=False,
            appid=self.app_id,
            secret=self._secret,
            code=code,
            grant_type="authorization_code",
        )
        return _grant(data)

    def refresh(self, refresh_token: str, deadline: Deadline | None = None) -> TokenGrant:
        data = self._get(
            "sns/oauth2/refresh_token",
            deadline,
            appid=self.app_id,
            grant_type="refresh_token",
            refresh_token=refresh_token,
        )
        return _grant(data)

    def userinfo(
        self, access_token: str, openid: str, lang: str = "zh_CN", deadline: Deadline | None = None
    ) -> dict[str, Any]:
        """The profile; needs a `snsapi_userinfo` grant (a base one gets 48001)."""
        return self._get(
            "sns/userinfo", deadline, access_token=access_token, openid=openid, lang=lang
        )

    def check_token(self, access_token: str, openid: str, deadline: Deadline | None = None) -> None:
        """sns/auth: return if the token is valid, raise WeChatAPIError if not."""
        self._get("sns/auth", deadline, access_token=access_token, openid=openid)

    def stable_token(self, deadline: Deadline | None = None) -> Expiring:
        """The account's basic access_token in normal mode: WeChat hands every caller the
        same token until about 5 minutes before it expires (never `cgi-bin/token`, whose
        every call replaces the token the other callers hold)."""
        body = {
            "grant_type": "client_credential",
            "appid": self.app_id,
            "secret": self._secret,
            "force_refresh": False,
        }
        data = self._call("cgi-bin/stable_token", deadline, payload=body)
        return _expiring("stable_token", data, "access_token")

    def jsapi_ticket(self, access_token: str, deadline: Deadline | None = None) -> Expiring:
        """The account's JS-SDK ticket (`cgi-bin/ticket/getticket?type=jsapi`)."""
        data = self._get(
            "cgi-bin/ticket/getticket", deadline, access_token=access_token, type="jsapi"
        )
        return _expiring("getticket", data, "ticket")

    def create_menu(self, access_token: str, menu: dict[str, Any]) -> None:
        """Install the custom menu (`cgi-bin/menu/create`), replacing the one installed."""
        self._call("cgi-bin/menu/create", None, params={"access_token": access_token}, payload=menu)

    def menu(self, access_token: str) -> dict[str, Any]:
        """The installed custom menu as WeChat gives it (`cgi-bin/menu/get`): `{"menu":
        {"button": [...]}}`; WeChatAPIError 46003 when there is none."""
        return self._get("cgi-bin/menu/get", None, access_token=access_token)

    def close(self) -> None:
        self.session.close()

    def _get(
        self, endpoint: str, deadline: Deadline | None, retry: bool = True, **params: str
    ) -> dict[str, Any]:
        return self._call(endpoint, deadline, retry, params=params)

    def _call(
        self,
        endpoint: str,
        deadline: Deadline | None,
        retry: bool = True,
        params: dict[str, str] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One call (GET with `params`, or POST of JSON `payload`), asked again after a pause
        while WeChat is busy and time allows."""
        deadline = deadline or Deadline()
        for pause in self.busy_pauses if retry else ():
            try:
                return self._once(endpoint, deadline, params, payload)
            except WeChatAPIError as exc:
                if not exc.busy or not deadline.allows(pause):
                    raise
            time.sleep(pause)
        return self._once(endpoint, deadline, params, payload)

    def _once(
        self,
        endpoint: str,
        deadline: Deadline,
        params: dict[str, str] | None,
        payload: dict[str, Any] | None,
    ) -> dict[str, Any]:
        if not deadline.allows():
            raise WeChatUnavailable(f"{endpoint}: the page's deadline has passed")
        left, (connect, read) = deadline.remaining(), self.timeout
        timeout = Timeout(total=left, connect=min(connect, left), read=min(read, left))
        try:
            response = self.session.request(
                "GET" if payload is None else "POST",
                f"{self.api_base}/{endpoint}",
                params=params,
                data=None if payload is None else _utf8_json(payload),
                headers=None if payload is None else JSON_BODY,
                timeout=timeout,
            )
        except requests.Timeout:
            raise WeChatUnavailable(f"{endpoint}: timed out") from None
        except requests.RequestException as exc:
            raise WeChatUnavailable(f"{endpoint}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise WeChatUnavailable(f"{endpoint}: HTTP {response.status_code}")
        data = _decode(endpoint, response.content)
        errcode = data.get("errcode", 0)
        if errcode:
            raise WeChatAPIError(endpoint, _int(errcode), str(data.get("errmsg", "")))
        return data


def _decode(endpoint: str, body: bytes) -> dict[str, Any]:
    # WeChat labels bodies `text/plain` or `encoding=utf-8`; requests would then
    # guess ISO-8859-1 and garble nicknames. The bytes are always UTF-8.
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WeChatUnavailable(f"{endpoint}: answer is not JSON") from None
    if not isinstance(data, dict):
        raise WeChatUnavailable(f"{endpoint}: answer is not a JSON object")
    return data


def _utf8_json(payload: dict[str, Any]) -> bytes:
    # Raw UTF-8: WeChat refuses a body that spells a character as \uXXXX (40033), which
    # is what requests' json= (json.dumps' default) writes for a Chinese menu name.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _expiring(endpoint: str, data: dict[str, Any], name: str) -> Expiring:
    try:
        return Expiring(str(data[name]), int(data["expires_in"]))
    except (KeyError, TypeError, ValueError):
        raise WeChatUnavailable(f"{endpoint} answer lacks {name} or expires_in") from None


def _grant(data: dict[str, Any]) -> TokenGrant:
    try:
        return TokenGrant(
            openid=str(data["openid"]),
            scope=str(data.get("scope", "")),
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            expires_in=int(data.get("expires_in", 7200)),
            unionid=data.get("unionid"),
            is_snapshotuser=bool(data.get("is_snapshotuser")),
        )
    except (KeyError, TypeError, ValueError):
        raise WeChatUnavailable(
            "token answer lacks access_token, refresh_token or openid"
        ) from None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
