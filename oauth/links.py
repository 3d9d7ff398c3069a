"""Minting authorize links: a fresh signed state in WeChat's strict URL shape.

A link costs an HMAC and no storage, so the message path that hands them out
stays fast; the state is spent later, when the callback claims it.
"""

from __future__ import annotations

from oauth.state import StateSigner
from oauth.urls import authorize_url


class AuthorizeLinks:
    def __init__(
        self, open_base: str, app_id: str, callback_url: str, scope: str, signer: StateSigner
    ) -> None:
        self.open_base = open_base
        self.app_id = app_id
        self.callback_url = callback_url
        self.scope = scope
        self.signer = signer

    def link(self, scope: str | None = None) -> str:
        """A fresh authorize URL for `scope` (the configured one by default)."""
        return authorize_url(
            self.open_base, self.app_id, self.callback_url, scope or self.scope, self.signer.issue()
        )
