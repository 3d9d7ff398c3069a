"""OAuth `state`: signed and expiring without a database write per message.

A chat link's state is 64 hex characters (inside WeChat's `a-zA-Z0-9`, ≤128 limit):
8 of issue time, 24 of randomness, 32 of HMAC-SHA256 over both; its callback ends
on /me. A state minted by /login for another destination is the letter `D` and the
same 64, its HMAC covering the destination too: a URL does not fit in 128 letters
and digits, so /login stores it under the state, and the HMAC keeps anyone from
swapping the stored one for another. Single use is enforced where a state is spent,
in the store, when the callback claims it.

Every message's reply carries a fresh state, so its randomness comes from
os.urandom a page at a time: one system call, during which the other threads
take the GIL, per 341 states instead of one per state.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time

from oauth.errors import AuthorizationFailed

DESTINATION_MARK = "D"
_SHAPE = re.compile(DESTINATION_MARK + r"?[0-9a-f]{64}")
_FUTURE_SKEW = 60
_RANDOM_BYTES = 12
_POOL_BYTES = 4096


class _RandomPool:
    """os.urandom's bytes, handed out once each. A forked child starts with none:
    it must never hand out its parent's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._used = 0
        os.register_at_fork(after_in_child=self._empty)

    def hex(self, size: int) -> str:
        with self._lock:
            if self._used + size > len(self._pool):
                self._pool, self._used = os.urandom(_POOL_BYTES), 0
            start = self._used
            self._used += size
            return self._pool[start : self._used].hex()

    def _empty(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._used = b"", 0


_random = _RandomPool()


class StateSigner:
    def __init__(self, key: bytes, ttl: int) -> None:
        self._key = key
        self.ttl = ttl

    def issue(self, destination: str | None = None, now: float | None = None) -> str:
        """A fresh state; with `destination`, one whose HMAC covers it (store it yourself)."""
        issued = f"{int(time.time() if now is None else now):08x}"
        body = issued + _random.hex(_RANDOM_BYTES)
        mark = "" if destination is None else DESTINATION_MARK
        return mark + body + self._mac(body, destination)

    @staticmethod
    def names_destination(state: str | None) -> bool:
        """Whether `state` is well formed and leads somewhere stored under it."""
        return bool(state and state.startswith(DESTINATION_MARK) and _SHAPE.fullmatch(state))

    def verify(
        self, state: str | None, destination: str | None = None, now: float | None = None
    ) -> int:
        """Return the state's expiry time, or raise AuthorizationFailed. A state that
        names a destination verifies only with the destination stored for it."""
        if not state:
            raise AuthorizationFailed("state_missing")
        marked = state.startswith(DESTINATION_MARK)
        body, mac = state[len(DESTINATION_MARK) if marked else 0 :][:32], state[-32:]
        if (
            not _SHAPE.fullmatch(state)
            or marked != (destination is not None)
            or not hmac.compare_digest(mac, self._mac(body, destination))
        ):
            raise AuthorizationFailed("state_forged")
        issued = int(body[:8], 16)
        now = time.time() if now is None else now
        if issued > now + _FUTURE_SKEW or now > issued + self.ttl:
            raise AuthorizationFailed("state_expired")
        return issued + self.ttl

    def _mac(self, body: str, destination: str | None) -> str:
        message = body if destination is None else f"{body}\n{destination}"
        return hmac.new(self._key, message.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def derive_key(app_secret: str, purpose: str) -> bytes:
    """A key per purpose from the app secret, so no extra secret needs managing
    and instances sharing an account agree; rotating the secret voids old ones."""
    return hmac.new(
        app_secret.encode("utf-8"), f"oauth-bot/{purpose}".encode(), hashlib.sha256
    ).digest()
