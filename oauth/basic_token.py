"""The account's basic access_token (for menus, customer-service messages, JS-SDK
tickets and the operator's other services): one owner for every instance.

Fetched lazily from `cgi-bin/stable_token` in normal mode (never `cgi-bin/token`,
whose every call replaces the token other callers hold), kept in the shared store,
and asked for again only when it nears expiry, or when a caller reports that WeChat
rejected it (40001/42001). The renewal runs under the store's lock, so concurrent
callers on any instance make one WeChat call: each waiter finds the token the first
one stored.
"""

from __future__ import annotations

import logging
import time
from typing import TypeGuard

from oauth.client import WeChatOAuth
from oauth.deadline import Deadline
from oauth.errors import OAuthError
from oauth.token_store import AccountTokenStore
from storage import AccountToken

log = logging.getLogger(__name__)

KIND = "access_token"
# Renew this long before expiry. stable_token hands out a new token only in the last
# 5 minutes of the old one: asked earlier, it gives the same token back.
RENEW_BEFORE = 120
# Seconds one renewal may wait on WeChat, the lock held (the other callers wait on it).
RENEWAL_DEADLINE = 5.0


class BasicToken:
    def __init__(self, client: WeChatOAuth, store: AccountTokenStore) -> None:
        self.client = client
        self.store = store

    def current(self) -> AccountToken:
        """The stored token while it is fresh, else renewed (one WeChat call for every
        caller at that moment). If WeChat fails while the stored token still works, the
        stored token; raises OAuthError when there is none that works."""
        stored = self.store.account_token(KIND)
        if _fresh(stored):
            return stored
        try:
            return self.store.renew_account_token(KIND, self._renew_unless_fresh)
        except OAuthError as exc:
            if stored is None or stored.expires_at <= time.time():
                raise
            log.warning("basic access_token not renewed (%s); the stored one still works", exc)
            return stored

    def replace(self, rejected: str) -> AccountToken:
        """After WeChat answered 40001/42001 to the token `rejected`: a renewed token,
        unless another caller has already replaced it (then that one, no WeChat call)."""

        def renew(stored: AccountToken | None) -> AccountToken:
            if stored is not None and stored.value != rejected and _fresh(stored):
                return stored
            renewed = self._fetch()
            if renewed.value == rejected:
                log.warning("stable_token gave back the basic access_token reported rejected")
            return renewed

        return self.store.renew_account_token(KIND, renew)

    def _renew_unless_fresh(self, stored: AccountToken | None) -> AccountToken:
        return stored if _fresh(stored) else self._fetch()

    def _fetch(self) -> AccountToken:
        grant = self.client.stable_token(Deadline(RENEWAL_DEADLINE))
        log.info("basic access_token from stable_token, expires in %d s", grant.expires_in)
        return AccountToken(grant.access_token, grant.expires_at)


def _fresh(token: AccountToken | None) -> TypeGuard[AccountToken]:
    return token is not None and token.expires_at - RENEW_BEFORE > time.time()
