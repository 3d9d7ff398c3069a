"""A credential of the account as a whole, fetched from WeChat and shared by every
instance: one owner per kind (the basic access_token of oauth/basic_token.py, the
jsapi_ticket of oauth/jssdk.py).

Kept in the shared store (a row per kind), and asked of WeChat again only when it nears
expiry, or when a caller reports that WeChat rejected it. The renewal runs under the
store's lock for that kind, so concurrent callers on any instance make one WeChat call:
each waiter finds what the first one stored. A kind read on every page view may also be
held in memory until it nears expiry, the store staying the source of truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeGuard

from oauth.errors import OAuthError, WeChatAPIError
from oauth.token_store import AccountTokenStore
from storage import AccountToken

log = logging.getLogger(__name__)

# Renew this long before expiry. stable_token hands out a new token only in the last
# 5 minutes of the old one: asked earlier, it gives the same token back.
RENEW_BEFORE = 120

Fetch = Callable[[], AccountToken]  # asks WeChat for a new one (the lock held)


class SharedCredential:
    def __init__(self, kind: str, store: AccountTokenStore, in_memory: bool = False) -> None:
        self.kind = kind
        self._store = store
        self._in_memory = in_memory
        self._held: AccountToken | None = None

    def fresh(self) -> AccountToken | None:
        """The credential while it is fresh (held in memory when `in_memory`, else as
        stored); None when it must be renewed. Never calls WeChat."""
        if self._in_memory and _fresh(self._held):
            return self._held
        stored = self._store.account_token(self.kind)
        return self._hold(stored) if _fresh(stored) else None

    def current(self, fetch: Fetch) -> AccountToken:
        """The fresh credential, else renewed with `fetch` (one WeChat call for every
        caller at that moment). If WeChat fails while the stored one still works, the
        stored one; raises OAuthError when there is none that works, and whenever WeChat
        rejected the credential `fetch` used (40001/42001: its caller replaces that one)."""
        return self.fresh() or self._renew(fetch)

    def replace(self, rejected: str, fetch: Fetch) -> AccountToken:
        """After WeChat rejected the credential `rejected`: a renewed one, unless another
        caller has already replaced it (then that one, no WeChat call)."""

        def renew(stored: AccountToken | None) -> AccountToken:
            if stored is not None and stored.value != rejected and _fresh(stored):
                return stored
            renewed = fetch()
            if renewed.value == rejected:
                log.warning("WeChat gave back the %s reported rejected", self.kind)
            return renewed

        return self._hold(self._store.renew_account_token(self.kind, renew))

    def _renew(self, fetch: Fetch) -> AccountToken:
        stored = self._store.account_token(self.kind)
        try:
            renewed = self._store.renew_account_token(
                self.kind, lambda locked: locked if _fresh(locked) else fetch()
            )
        except OAuthError as exc:
            if stored is None or stored.expires_at <= time.time() or _rejected(exc):
                raise
            log.warning("%s not renewed (%s); the stored one still works", self.kind, exc)
            return stored
        return self._hold(renewed)

    def _hold(self, credential: AccountToken) -> AccountToken:
        self._held = credential
        return credential


def _fresh(credential: AccountToken | None) -> TypeGuard[AccountToken]:
    return credential is not None and credential.expires_at - RENEW_BEFORE > time.time()


def _rejected(exc: OAuthError) -> bool:
    """WeChat refused the credential the fetch was made with (not the one being fetched)."""
    return isinstance(exc, WeChatAPIError) and exc.token_invalid
