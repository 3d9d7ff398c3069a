"""JS-SDK for the operator's pages opened inside WeChat: `wx.config`'s parameters,
signed with the account's jsapi_ticket.

The ticket comes from `cgi-bin/ticket/getticket?type=jsapi` with the shared basic
access_token (replaced once when WeChat rejects it). It is a SharedCredential: stored
for every instance, renewed near expiry under the store's lock, and held in memory by
each process, since every page view asks for a signature: a signature costs no
WeChat call and no database read.

What is signed is the page's URL exactly as the page has it, minus its `#fragment`
(the rules behind most `invalid signature` reports, see `PageURLs`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from oauth.basic_token import RENEWAL_DEADLINE, BasicToken
from oauth.client import WeChatOAuth
from oauth.deadline import Deadline
from oauth.shared_credential import SharedCredential
from oauth.token_store import AccountTokenStore
from storage import AccountToken

log = logging.getLogger(__name__)

KIND = "jsapi_ticket"
NONCE_LENGTH = 16
NONCE_ALPHABET = string.ascii_letters + string.digits
MAX_URL = 4096
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")  # never in a location.href
_HTTP = re.compile(r"https?://")  # as a browser writes a page's scheme: lower case


class BadPageURL(ValueError):
    """A URL the bot will not sign; the message says why, for the page's developer."""


def signature(ticket: str, noncestr: str, timestamp: str, url: str) -> str:
    """sha1 of `jsapi_ticket=T&noncestr=N&timestamp=TS&url=U`: keys in this order, values raw."""
    text = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - WeChat's algorithm


class PageURLs:
    """Which pages may be signed (on public_url's host or a host of oauth.return_hosts,
    any port), and the URL to sign for each.

    - The `#fragment` is removed: WeChat signs the URL without it.
    - The URL is signed exactly as given, never rebuilt from the bot's own request: a
      page served as https by a TLS proxy must be signed as https, so the caller passes
      the page's own `location.href.split('#')[0]`.
    - `&amp;` is refused, not decoded: it means an HTML-escaped URL, which is not the
      page's (decoding would hide the bug where the page's URL really holds it).
    - Spaces, control characters and backslashes are refused: no location.href has them.
    """

    def __init__(self, public_url: str, return_hosts: Iterable[str] = ()) -> None:
        own = urlsplit(public_url).hostname or ""
        self.hosts = frozenset(host.lower() for host in (own, *return_hosts))

    def to_sign(self, raw: str) -> str:
        """The URL to sign for the page at `raw`, or BadPageURL."""
        if not raw:
            raise BadPageURL("url is missing: pass location.href.split('#')[0], URL-encoded")
        if len(raw) > MAX_URL or _UNSAFE.search(raw):
            raise BadPageURL("url is too long, or holds a space, control or backslash")
        if "&amp;" in raw:
            raise BadPageURL(
                "url holds '&amp;', an HTML-escaped URL: pass the page's own location.href"
            )
        url = raw.split("#", 1)[0]
        if not _HTTP.match(url) or not self.allows(url):
            raise BadPageURL("url is not an http(s) page on an allowed host")
        return url

    def allows(self, url: str) -> bool:
        """Whether `url` (a page or an Origin) is http(s) on an allowed host."""
        if _UNSAFE.search(url):
            return False
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not one
        except ValueError:
            return False
        return (
            parts.scheme in ("http", "https")
            and "@" not in parts.netloc
            and (parts.hostname or "") in self.hosts
        )


class JsapiTicket:
    """The account's jsapi_ticket: one owner for every instance, held in memory."""

    def __init__(self, client: WeChatOAuth, basic_token: BasicToken, store: AccountTokenStore):
        self._client = client
        self._basic = basic_token
        self._shared = SharedCredential(KIND, store, in_memory=True)

    def current(self) -> AccountToken:
        """The fresh ticket; else one renewed with the basic token, itself got outside
        the ticket's lock (and replaced once if WeChat rejects it)."""
        return self._shared.fresh() or self._basic.call(self._renew_with)

    def _renew_with(self, access_token: str) -> AccountToken:
        return self._shared.current(lambda: self._fetch(access_token))

    def _fetch(self, access_token: str) -> AccountToken:
        ticket = self._client.jsapi_ticket(access_token, Deadline(RENEWAL_DEADLINE))
        log.info("jsapi_ticket from getticket, expires in %d s", ticket.expires_in)
        return AccountToken(ticket.value, ticket.expires_at)


@dataclass(frozen=True)
class JsConfig:
    """`wx.config`'s signed parameters for one page."""

    app_id: str
    timestamp: int
    nonce_str: str
    signature: str

    def as_json(self) -> dict[str, str | int]:
        """The names wx.config takes."""
        return {
            "appId": self.app_id,
            "timestamp": self.timestamp,
            "nonceStr": self.nonce_str,
            "signature": self.signature,
        }


class JsSdk:
    def __init__(self, app_id: str, ticket: JsapiTicket, pages: PageURLs) -> None:
        self.app_id = app_id
        self.ticket = ticket
        self.pages = pages

    def config(self, url: str = "") -> JsConfig:
        """wx.config's parameters for the page at `url`: BadPageURL for a page the bot
        will not sign, OAuthError when no ticket can be had from WeChat."""
        page = self.pages.to_sign(url)
        ticket = self.ticket.current().value
        nonce = "".join(secrets.choice(NONCE_ALPHABET) for _ in range(NONCE_LENGTH))
        timestamp = int(time.time())
        return JsConfig(
            self.app_id, timestamp, nonce, signature(ticket, nonce, str(timestamp), page)
        )
