"""Where a sign-in may send the follower back to: the one place that decides.

A destination is either a path on `public_url` (`/me`, `/orders?id=1#top`), or an
absolute http(s) URL whose host is public_url's or one of `oauth.return_hosts` (any
port; https only when public_url is https). Anything else is refused, and so is
whatever a browser, a proxy or the operator's app might read as another host:
`//host`, `/\\host`, `/%2F%2Fhost`, `/ /host`, `https:host`, user names (`https://a@b`),
a control character anywhere (browsers drop tabs and newlines from URLs), a
backslash anywhere, a host that is not plain ASCII or ends with a dot.

What comes back is the Location to send: the path as given, or the URL rebuilt from
its checked parts (scheme and host in lower case), other characters percent-encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

MAX_LENGTH = 2048  # longer is no link a person follows; WeChat's menu URLs stop at 1024
# Control characters, DEL and the backslash: refused wherever they are (a space is encoded).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]")
# What RFC 3986 allows in a URL, the percent sign included: the rest gets encoded.
_URL_CHARACTERS = "!#$%&'()*+,/:;=?@[]~"
_ABSOLUTE = re.compile(r"(?i)(https?)://([^/?#]*)(.*)", re.DOTALL)
_AUTHORITY = re.compile(
    r"(?i)(?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
)


class BadDestination(ValueError):
    """A destination the bot will not send anyone to."""


class Destinations:
    def __init__(self, public_url: str, return_hosts: Iterable[str] = ()) -> None:
        parts = urlsplit(public_url)
        self.hosts = frozenset(h.lower() for h in (parts.hostname or "", *return_hosts))
        self.schemes = ("https",) if parts.scheme == "https" else ("http", "https")

    def check(self, raw: str) -> str:
        """The Location for `raw`, or BadDestination."""
        if not raw or len(raw) > MAX_LENGTH or _UNSAFE.search(raw):
            raise BadDestination("empty, too long, or holds a space, control or backslash")
        if raw.startswith("/"):
            return _path(raw)
        return self._absolute(raw)

    def allows(self, location: str) -> bool:
        """Whether `location` passes `check` unchanged (a stored destination is re-checked
        before use: the configuration may have changed since it was stored)."""
        try:
            return self.check(location) == location
        except BadDestination:
            return False

    def _absolute(self, raw: str) -> str:
        match = _ABSOLUTE.fullmatch(raw)
        if match is None:
            raise BadDestination("neither a path nor an http(s) URL")
        scheme, authority, rest = match.group(1).lower(), match.group(2), match.group(3)
        parts = _AUTHORITY.fullmatch(authority)
        if parts is None:
            raise BadDestination("the host is not a plain host name with an optional port")
        host, port = parts.group("host").lower(), parts.group("port")
        if scheme not in self.schemes or host.strip("[]") not in self.hosts:
            raise BadDestination("another host, or http where public_url is https")
        if port is not None and not 0 < int(port) < 65536:
            raise BadDestination("no such port")
        netloc = host + (f":{port}" if port else "")
        return f"{scheme}://{netloc}{_encoded(rest)}"


def _path(raw: str) -> str:
    """A path on public_url: never one a browser or a decoding app reads as `//host`."""
    head = _INVISIBLE.sub("", unquote(raw[:32])).replace("\\", "/")
    if head.startswith("//"):
        raise BadDestination("a path that reads as another host")
    return _encoded(raw)


def _encoded(text: str) -> str:
    """`text` with every character outside RFC 3986's set percent-encoded (UTF-8)."""
    return quote(text, safe=_URL_CHARACTERS)
