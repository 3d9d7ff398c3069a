"""Minting authorize links: a fresh signed state in WeChat's strict URL shape.

A chat link costs an HMAC and no storage, so the message path that hands them out
stays fast; its state leads to /me and is spent later, when the callback claims it.
A link /login mints for another destination stores that destination under its
state (one write, off the message path).
"""

from __future__ import annotations

import time

import routes
from oauth.sign_in import REPLAY_GRACE
from oauth.state import StateSigner
from oauth.token_store import DestinationLedger
from oauth.urls import authorize_url


class AuthorizeLinks:
    def __init__(
        self,
        open_base: str,
        app_id: str,
        callback_url: str,
        scope: str,
        signer: StateSigner,
        ledger: DestinationLedger,
    ) -> None:
        self.open_base = open_base
        self.app_id = app_id
        self.callback_url = callback_url
        self.scope = scope
        self.signer = signer
        self.ledger = ledger

    def link(self, scope: str | None = None) -> str:
        """A fresh authorize URL for `scope` (the configured one by default), leading to /me."""
        return self._url(scope, self.signer.issue())

    def leading_to(self, destination: str, scope: str | None = None) -> str:
        """A fresh authorize URL whose callback ends at `destination` (a checked one:
        see web.destinations). Kept as long as the state lives, and the callback's
        grace after that."""
        if destination == routes.ME:
            return self.link(scope)
        now = time.time()
        state = self.signer.issue(destination, now)
        keep_until = int(now) + self.signer.ttl + REPLAY_GRACE
        self.ledger.remember_destination(state, destination, keep_until)
        return self._url(scope, state)

    def _url(self, scope: str | None, state: str) -> str:
        return authorize_url(
            self.open_base, self.app_id, self.callback_url, scope or self.scope, state
        )
