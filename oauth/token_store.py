"""What the OAuth flows need from persistence, and nothing more.

Protocol apart from persistence, as Authlib does it: the flows in `oauth/` talk to
these two small interfaces, and `storage.Store` satisfies both. `update_token` is
the hook a refresh calls the moment WeChat renews a token, so a token WeChat has
issued is kept whatever happens next in the visit.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from storage import Claim, Follower


@runtime_checkable
class TokenStore(Protocol):
    """Followers and their tokens."""

    def get_follower(self, openid: str) -> Follower | None: ...

    def save_follower(self, follower: Follower) -> None:
        """Store the follower as given: tokens, profile and all."""

    def update_token(self, follower: Follower) -> None:
        """Store only the tokens (and scope) of a follower WeChat just refreshed."""

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
