"""The account's basic access_token (for menus, customer-service messages, JS-SDK
tickets and the operator's other services): a SharedCredential, one owner for every
instance.

Fetched lazily from `cgi-bin/stable_token` in normal mode (never `cgi-bin/token`,
whose every call replaces the token other callers hold), and read from the shared
store on every use, so that a token replaced on one instance is the one every
instance hands out next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from oauth.client import WeChatOAuth
from oauth.deadline import Deadline
from oauth.errors import WeChatAPIError
from oauth.shared_credential import SharedCredential
from oauth.token_store import AccountTokenStore
from storage import AccountToken

log = logging.getLogger(__name__)

KIND = "access_token"
# Seconds one renewal may wait on WeChat, the lock held (the other callers wait on it).
RENEWAL_DEADLINE = 5.0
T = TypeVar("T")


class BasicToken:
    def __init__(self, client: WeChatOAuth, store: AccountTokenStore) -> None:
        self.client = client
        self._shared = SharedCredential(KIND, store)

    def current(self) -> AccountToken:
        """The stored token while it is fresh, else renewed (see SharedCredential.current)."""
        return self._shared.current(self._fetch)

    def replace(self, rejected: str) -> AccountToken:
        """After WeChat answered 40001/42001 to the token `rejected`: a renewed token,
        unless another caller has already replaced it (then that one, no WeChat call)."""
        return self._shared.replace(rejected, self._fetch)

    def call(self, use: Callable[[str], T]) -> T:
        """`use(token)` with the current token, and once more with a replaced one when
        WeChat rejected it (40001/42001): what a cgi-bin call needs."""
        token = self.current().value
        try:
            return use(token)
        except WeChatAPIError as exc:
            if not exc.token_invalid:
                raise
            log.info("%s: the basic access_token was rejected (%s)", exc.endpoint, exc.errcode)
        return use(self.replace(token).value)

    def _fetch(self) -> AccountToken:
        grant = self.client.stable_token(Deadline(RENEWAL_DEADLINE))
        log.info("basic access_token from stable_token, expires in %d s", grant.expires_in)
        return AccountToken(grant.value, grant.expires_at)
