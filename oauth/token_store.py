"""What the OAuth flows need from persistence, and nothing more.

Protocol apart from persistence, as Authlib does it: the flows in `oauth/` talk to
these small interfaces, and `storage.Store` satisfies them all. `update_token` is
the hook a refresh calls the moment WeChat renews a token, so a token WeChat has
issued is kept whatever happens next in the visit. `begin_refresh` lets one caller
at a time, across every instance on the database, refresh a follower's tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from storage import AccountToken, Claim, Follower


@runtime_checkable
class TokenStore(Protocol):
    """Followers and their tokens."""

    def get_follower(self, openid: str) -> Follower | None: ...

    def save_profile(self, follower: Follower) -> None:
        """Store only the follower's profile (nickname, avatar, unionid)."""

    def begin_refresh(self, follower: Follower, until: int) -> bool:
        """Whether this caller may refresh the tokens now: the stored access token is
        still `follower`'s and nobody else is refreshing it (until `until`, Unix seconds)."""

    def end_refresh(self, openid: str) -> None:
        """Give up a refresh that failed, so another caller may try."""

    def update_token(self, follower: Follower, replacing: Follower) -> None:
        """Store the tokens (and scope) WeChat just issued in place of those `replacing`
        holds, unless newer ones were stored since; this ends the refresh."""

    def mark_needs_reauth(self, openid: str) -> None: ...


@runtime_checkable
class StateLedger(Protocol):
    """Single use of a state: claimed once, completed atomically with its follower."""

    def claim_state(
        self,
        state: str,
        code_hash: str,
        expires_at: int,
        grace: int,
        signed_in: str | None = None,
    ) -> tuple[Claim, str | None]:
        """Claim `state` for `code_hash` (a code bound to its client), or say what an
        earlier claim left: DONE only for the same client, or one already signed in
        as the follower it authorized, within `grace` seconds (see Claim)."""

    def release_state(self, state: str) -> None:
        """Forget an unfinished claim, so a retry may claim the state again."""

    def complete_authorization(self, state: str, follower: Follower) -> None:
        """Store the follower and close the state, all or nothing."""


@runtime_checkable
class AccountTokenStore(Protocol):
    """The account's own tokens, shared by every instance, renewed under one lock."""

    def account_token(self, kind: str) -> AccountToken | None:
        """The stored token of `kind`, expired or not (a plain read, no lock)."""

    def renew_account_token(
        self, kind: str, renew: Callable[[AccountToken | None], AccountToken]
    ) -> AccountToken:
        """Call `renew(stored)` under a lock every instance honours and store its answer:
        concurrent callers queue, and each sees what the one before it stored."""


@runtime_checkable
class DestinationLedger(Protocol):
    """Where a state minted by /login leads (the state's HMAC covers it, see oauth.state)."""

    def remember_destination(self, state: str, destination: str, keep_until: int) -> None:
        """Store `destination` for `state` until `keep_until` (Unix seconds)."""

    def destination(self, state: str) -> str | None:
        """The destination stored for `state`, None when there is none (any more)."""
