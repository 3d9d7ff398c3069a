"""JS-SDK: jsapi_tickets from `cgi-bin/ticket/getticket`, and the check `wx.config` makes
of a page's signature (the stand-in of static/jweixin-1.6.0.js asks for it).

WeChat documents a ticket's 7200 s and little else. The simulator hands every caller
the same ticket while it has more than 5 minutes left (as stable_token does with the
basic token), then a new one; a ticket keeps working until it expires. The basic
access_token in the call is checked as every cgi-bin API checks it.
"""

import hashlib
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from simulator.clock import Clock
from simulator.oauth import ALNUM, OVERLAP, BasicTokens
from simulator.wxapi import WeChatError

TICKET_TTL = 7200
INVALID_ARGS = 40097
# What wx.config reports to wx.error, as WeChat's 1.6.0 SDK words it.
FAILURE = "config:fail,Error: 系统错误，错误码：{errcode},{text} [{when}][]"
INVALID_SIGNATURE = (63002, "invalid signature")
INVALID_DOMAIN = (40048, "invalid url domain")
INVALID_APPID = (40013, "invalid appid")


def signature(ticket: str, noncestr: str, timestamp: str, url: str) -> str:
    """sha1 of `jsapi_ticket=T&noncestr=N&timestamp=TS&url=U`: keys in this order, raw values."""
    text = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - WeChat's algorithm


class Tickets:
    """The account's jsapi_tickets on the simulator clock."""

    def __init__(self, clock: Clock, app_id: str, basic_tokens: BasicTokens) -> None:
        self.clock = clock
        self.app_id = app_id
        self.basic_tokens = basic_tokens
        self.ttl = TICKET_TTL  # lifetime of new tickets, for tests to shorten
        self._expiry: dict[str, float] = {}  # ticket -> time it stops working
        self._latest = ""
        self._lock = threading.Lock()

    def get(self, params: dict[str, str]) -> dict[str, Any]:
        """getticket: the current ticket, or a new one when it has 5 minutes left or less."""
        self.basic_tokens.check(params.get("access_token", ""))
        if params.get("type") != "jsapi":
            raise WeChatError(INVALID_ARGS)
        now = self.clock.now()
        with self._lock:
            left = self._expiry.get(self._latest, 0) - now
            if left <= OVERLAP:
                self._latest = "".join(secrets.choice(ALNUM) for _ in range(86))
                self._expiry[self._latest] = now + self.ttl
                left = self.ttl
            return {"errcode": 0, "errmsg": "ok", "ticket": self._latest, "expires_in": int(left)}

    def check_config(self, config: dict[str, Any], domains: tuple[str, ...]) -> str:
        """wx.config's verdict on `config` (appId, timestamp, nonceStr, signature and the
        page's `url`): `config:ok`, or the errMsg wx.error receives."""
        url = str(config.get("url", ""))
        if config.get("appId") != self.app_id:
            return _failure(*INVALID_APPID)
        if (urlsplit(url).hostname or "") not in domains:
            return _failure(*INVALID_DOMAIN)
        values = (str(config.get(key, "")) for key in ("nonceStr", "timestamp", "signature"))
        nonce, timestamp, signed = values
        now = self.clock.now()
        with self._lock:
            live = [ticket for ticket, expiry in self._expiry.items() if now < expiry]
        if any(signature(ticket, nonce, timestamp, url) == signed for ticket in live):
            return "config:ok"
        return _failure(*INVALID_SIGNATURE)


def _failure(errcode: int, text: str) -> str:
    when = time.strftime("%Y%m%d %H:%M:%S")
    return FAILURE.format(errcode=errcode, text=text, when=when)
