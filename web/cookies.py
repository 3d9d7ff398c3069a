"""The sign-in cookie: who the follower is, signed, with its issue time; never a token.

Its value is `openid|scope|unionid|nickname|issued|mac`: scope, unionid and
nickname percent-encoded UTF-8 (the nickname cut to its first NICKNAME_LIMIT
characters), unionid and nickname empty when unknown, `issued`
in Unix seconds, and `mac` the first 32 hex digits of HMAC-SHA256 over the rest.
About 120 bytes, under 900 at most: far below browsers' 4096. It is HttpOnly,
SameSite=Lax, Secure when public_url is https, on Path=/ and, with
`server.cookie_domain`, on that Domain. A sign-in lasts `server.sign_in_ttl`
seconds from `issued`: shortening it ends older sign-ins at once, and rotating the
app secret ends all of them.

Everything /auth answers comes from here, so reading one is plain string work and
one HMAC: no framework, no database.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote

from storage import Follower

NAME = "oauthbot"
NICKNAME_LIMIT = 64  # characters kept of a nickname: at most 768 bytes encoded
CANDIDATES = 4  # cookies of our name looked at, at most (a host one and a Domain one)
_OPENID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ISSUED = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() also takes "²"
_MAC = re.compile(r"[0-9a-f]{32}")
_FUTURE_SKEW = 60


@dataclass(frozen=True)
class Identity:
    """Whom a sign-in names: what /auth tells the protected app."""

    openid: str
    scope: str
    unionid: str | None = None
    nickname: str | None = None

    @classmethod
    def of(cls, follower: Follower) -> Identity:
        return cls(follower.openid, follower.scope, follower.unionid, follower.nickname)


class CookieSigner:
    def __init__(self, key: bytes, secure: bool, ttl: int, domain: str = "") -> None:
        self._key = key
        self.ttl = ttl
        host_only = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        self._flags = (f"; Domain={domain}" if domain else "") + host_only
        # Ending a sign-in clears the cookie where it was set; with a Domain, also a
        # host-only one left from before the Domain was configured.
        self._cleared = [f"{NAME}=; Max-Age=0{self._flags}"]
        if domain:
            self._cleared.append(f"{NAME}=; Max-Age=0{host_only}")

    def value(self, identity: Identity, now: float | None = None) -> str:
        nickname = quote((identity.nickname or "")[:NICKNAME_LIMIT], safe="")
        issued = int(time.time() if now is None else now)
        unionid = quote(identity.unionid or "", safe="")
        body = "|".join((identity.openid, quote(identity.scope, safe=""), unionid, nickname))
        body = f"{body}|{issued}"
        return f"{body}|{self._mac(body)}"

    def header(self, identity: Identity) -> str:
        """A complete Set-Cookie value that signs `identity` in."""
        return f"{NAME}={self.value(identity)}; Max-Age={self.ttl}{self._flags}"

    def clearing(self) -> list[str]:
        """The Set-Cookie values that end a sign-in."""
        return list(self._cleared)

    def read(self, header: str | None, now: float | None = None) -> Identity | None:
        """Whom a request's Cookie header signs in: None if no cookie of ours is
        genuine and young enough."""
        fields = self.fields(header, now)
        if fields is None:
            return None
        openid, scope, unionid, nickname = fields
        return Identity(openid, unquote(scope), unquote(unionid) or None, unquote(nickname) or None)

    def fields(self, header: str | None, now: float | None = None) -> list[str] | None:
        """`read`'s answer as the cookie holds it: openid, then scope, unionid and
        nickname percent-encoded ('' when unknown). What /auth sends, as it is."""
        for value in _ours(header or ""):
            parts = value.split("|")
            if len(parts) == 6 and self._genuine(value, parts, now):
                return parts[:4]
        return None

    def _genuine(self, value: str, parts: list[str], now: float | None) -> bool:
        if (
            not _OPENID.fullmatch(parts[0])
            or not _ISSUED.fullmatch(parts[4])
            or not _MAC.fullmatch(parts[5])
            or not hmac.compare_digest(parts[5], self._mac(value.rpartition("|")[0]))
        ):
            return False
        age = (time.time() if now is None else now) - int(parts[4])
        return -_FUTURE_SKEW <= age <= self.ttl

    def _mac(self, body: str) -> str:
        return hmac.digest(self._key, body.encode("utf-8"), "sha256")[:16].hex()


def _ours(header: str) -> list[str]:
    """The values of the cookies named NAME in a Cookie header (the first few)."""
    found = []
    for pair in header.split(";"):
        name, _, value = pair.strip().partition("=")
        if name == NAME:
            found.append(value)
            if len(found) == CANDIDATES:
                break
    return found
