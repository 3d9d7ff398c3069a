"""The follower's login cookie: openid, issue time and an HMAC, HttpOnly."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

NAME = "oauthbot"
MAX_AGE = 30 * 24 * 3600  # as long as a refresh_token lives
_OPENID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ISSUED = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() also takes "²"


class CookieSigner:
    def __init__(self, key: bytes, secure: bool) -> None:
        self._key = key
        self.secure = secure

    def value(self, openid: str, now: float | None = None) -> str:
        body = f"{openid}.{int(time.time() if now is None else now)}"
        return f"{body}.{self._mac(body)}"

    def header(self, openid: str) -> str:
        """A complete Set-Cookie value."""
        flags = "; Secure" if self.secure else ""
        return (
            f"{NAME}={self.value(openid)}; Max-Age={MAX_AGE}; Path=/; HttpOnly; SameSite=Lax{flags}"
        )

    def openid(self, value: str | None, now: float | None = None) -> str | None:
        """The openid a cookie vouches for, or None if absent, forged or too old."""
        parts = (value or "").split(".")
        if len(parts) != 3 or not _OPENID.fullmatch(parts[0]) or not _ISSUED.fullmatch(parts[1]):
            return None
        if not hmac.compare_digest(parts[2], self._mac(f"{parts[0]}.{parts[1]}")):
            return None
        age = (time.time() if now is None else now) - int(parts[1])
        return parts[0] if age + 60 >= 0 and age <= MAX_AGE else None

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode("ascii"), hashlib.sha256).hexdigest()
