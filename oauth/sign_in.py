"""Signing a follower in from the callback: state → code exchange → profile → store.

Framework-free: the web route hands in the query's `code` and `state` and gets
the follower's openid, or an AuthorizationFailed whose reason picks the page.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import NoReturn

from oauth import profile
from oauth.client import TokenGrant, WeChatOAuth
from oauth.deadline import Deadline
from oauth.errors import AuthorizationFailed, OAuthError, WeChatAPIError, WeChatUnavailable
from oauth.state import StateSigner
from oauth.token_store import StateLedger, TokenStore
from storage import Claim, Follower

log = logging.getLogger(__name__)

# How long after a success the same code+state still lands on /me (page
# refresh, back button, WeChat's double redirect); later it is a used state.
REPLAY_GRACE = 120
# How often a second request looks whether the first one, still talking to WeChat, is done.
IN_FLIGHT_POLL = 0.1


class SignIn:
    def __init__(
        self,
        client: WeChatOAuth,
        ledger: StateLedger,
        tokens: TokenStore,
        signer: StateSigner,
        lang: str,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.tokens = tokens
        self.signer = signer
        self.lang = lang

    def complete(self, code: str | None, state: str | None, deadline: Deadline) -> str:
        """Finish the authorization and return the follower's openid; WeChat's
        calls and any wait for a duplicate request end by `deadline`."""
        expires_at = self.signer.verify(state)
        if not code:
            raise AuthorizationFailed("denied")  # the state stays usable: they may tap again
        claimed_openid = self._claim(state, _digest(code), expires_at, deadline)
        if claimed_openid:
            return claimed_openid
        try:
            grant = self.client.exchange_code(code, deadline)
        except WeChatAPIError as exc:
            if exc.code_rejected:
                raise AuthorizationFailed("code_rejected") from None
            self._give_back(state, exc)
        except WeChatUnavailable as exc:
            self._give_back(state, exc)
        follower = self._follower(grant, deadline)
        self.ledger.complete_authorization(state, follower)
        log.info("authorized openid=%s scope=%s", follower.openid, follower.scope)
        return follower.openid

    def _claim(self, state: str, code_hash: str, expires_at: int, deadline: Deadline) -> str | None:
        """Claim the state; the openid if an identical request already completed it."""
        while True:
            claim, openid = self.ledger.claim_state(state, code_hash, expires_at, REPLAY_GRACE)
            if claim is Claim.NEW:
                return None
            if claim is Claim.DONE:
                return openid
            if claim is Claim.USED:
                raise AuthorizationFailed("state_used")
            if not deadline.allows(IN_FLIGHT_POLL):  # the first request is slow: so is WeChat
                raise AuthorizationFailed("wechat_failed")
            time.sleep(IN_FLIGHT_POLL)  # IN_FLIGHT: the first request is still talking to WeChat

    def _give_back(self, state: str, exc: OAuthError) -> NoReturn:
        """A passing failure: free the state so reloading the page can retry."""
        log.warning("code exchange failed: %s", exc)
        self.ledger.release_state(state)
        raise AuthorizationFailed("wechat_failed") from None

    def _follower(self, grant: TokenGrant, deadline: Deadline) -> Follower:
        """The new tokens, with a fresh profile when the grant allows one and time is left."""
        follower = profile.from_grant(grant, self.tokens.get_follower(grant.openid))
        if not profile.has_userinfo(grant.scope) or grant.is_snapshotuser:
            return follower
        try:
            answer = self.client.userinfo(grant.access_token, grant.openid, self.lang, deadline)
        except OAuthError as exc:  # /me fetches it later; the tokens are what matter now
            log.warning("userinfo after authorization failed: %s", exc)
            return follower
        return profile.with_profile(follower, answer, grant.received_at)


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()
