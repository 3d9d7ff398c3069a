"""OAuth `state`: signed and expiring without a database write per message.

A state is 64 hex characters (inside WeChat's `a-zA-Z0-9`, ≤128 limit):
8 of issue time, 24 of randomness, 32 of HMAC-SHA256 over both. Single use is
enforced where it is spent, in the store, when the callback claims it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from oauth.errors import AuthorizationFailed

_SHAPE = re.compile(r"[0-9a-f]{64}")
_FUTURE_SKEW = 60


class StateSigner:
    def __init__(self, key: bytes, ttl: int) -> None:
        self._key = key
        self.ttl = ttl

    def issue(self, now: float | None = None) -> str:
        issued = f"{int(time.time() if now is None else now):08x}"
        body = issued + secrets.token_hex(12)
        return body + self._mac(body)

    def verify(self, state: str | None, now: float | None = None) -> int:
        """Return the state's expiry time, or raise AuthorizationFailed."""
        if not state:
            raise AuthorizationFailed("state_missing")
        if not _SHAPE.fullmatch(state) or not hmac.compare_digest(
            state[32:], self._mac(state[:32])
        ):
            raise AuthorizationFailed("state_forged")
        issued = int(state[:8], 16)
        now = time.time() if now is None else now
        if issued > now + _FUTURE_SKEW or now > issued + self.ttl:
            raise AuthorizationFailed("state_expired")
        return issued + self.ttl

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode("ascii"), hashlib.sha256).hexdigest()[:32]


def derive_key(app_secret: str, purpose: str) -> bytes:
    """A key per purpose from the app secret, so no extra secret needs managing
    and instances sharing an account agree; rotating the secret voids old ones."""
    return hmac.new(
        app_secret.encode("utf-8"), f"oauth-bot/{purpose}".encode(), hashlib.sha256
    ).digest()
