"""Signing a follower in from the callback: state → code exchange → profile → store.

Framework-free: the web route hands in the query's `code` and `state` and the
Browser that sent them, and gets the follower, or an AuthorizationFailed whose reason
picks the page; `destination` says where a state /login minted leads. A
snapshot-page grant (WeChat's 快照页: a virtual follower) is neither stored nor
signed in, and leaves the state usable for the real authorization that follows it.

A state is used once. For REPLAY_GRACE seconds after a success the same code and
state land on /me again (a refresh, the back button, WeChat's double redirect), but
only for the browser that sent them first: its User-Agent and address are folded
into the claim's code hash, so the same URL from another client reads as used. A
browser already signed in as the follower the state authorized also lands on /me.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from oauth import profile
from oauth.client import TokenGrant, WeChatOAuth
from oauth.deadline import Deadline
from oauth.errors import AuthorizationFailed, OAuthError, WeChatAPIError
from oauth.state import StateSigner
from oauth.token_store import DestinationLedger, StateLedger, TokenStore
from storage import Claim, Follower

log = logging.getLogger(__name__)

# How long after a success the same code+state still lands on /me for the same
# browser (page refresh, back button, WeChat's double redirect).
REPLAY_GRACE = 120
# How often a second request looks whether the first one, still talking to WeChat, is done.
IN_FLIGHT_POLL = 0.1
CODE_LIFETIME = 300  # WeChat's codes die after 5 minutes


@dataclass(frozen=True)
class Browser:
    """The client behind a callback request, as far as the bot can tell clients apart."""

    user_agent: str
    address: str
    signed_in: str | None = None  # the openid its valid sign-in cookie names

    def code_hash(self, code: str) -> str:
        """The code bound to this browser: another client's request hashes differently."""
        material = "\n".join((code, self.user_agent, self.address))
        return hashlib.sha256(material.encode("utf-8")).hexdigest()


class SignIn:
    def __init__(
        self,
        client: WeChatOAuth,
        ledger: StateLedger,
        tokens: TokenStore,
        destinations: DestinationLedger,
        signer: StateSigner,
        lang: str,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.tokens = tokens
        self.destinations = destinations
        self.signer = signer
        self.lang = lang

    def destination(self, state: str | None) -> str | None:
        """Where a state /login minted leads, as stored under it; None for any other
        state (a chat link's: /me), and for one whose destination is gone."""
        if not self.signer.names_destination(state):
            return None
        return self.destinations.destination(state)

    def complete(
        self,
        code: str | None,
        state: str | None,
        destination: str | None,
        browser: Browser,
        deadline: Deadline,
    ) -> Follower:
        """Finish the authorization of `state`, whose `destination` is what
        `destination(state)` said; WeChat's calls and any wait for a duplicate request
        end by `deadline`."""
        try:
            expires_at = self.signer.verify(state, destination)
        except AuthorizationFailed as exc:
            if exc.reason == "state_expired" and code and browser.signed_in:
                return self._tapped_again(state, code, browser, deadline, exc.reason)
            raise
        if not code:
            raise AuthorizationFailed("denied")  # the state stays usable: they may tap again
        try:
            return self._redeem(state, code, expires_at, browser, deadline)
        except AuthorizationFailed as exc:
            if exc.reason == "state_used" and browser.signed_in:
                return self._tapped_again(state, code, browser, deadline, exc.reason)
            raise

    def _tapped_again(
        self, state: str, code: str, browser: Browser, deadline: Deadline, reason: str
    ) -> Follower:
        """A signed-in follower tapping an old link from the chat (used or expired).

        WeChat's fresh code names whoever is tapping: if that is the follower the
        browser is signed in as, they land on /me with fresh tokens. Anything else
        (another follower, a code already spent) keeps the old link refused. The
        code gets a claim of its own, so duplicates still exchange it once.
        """
        key = "again-" + hashlib.sha256(f"{state}:{code}".encode()).hexdigest()
        expires_at = int(time.time()) + CODE_LIFETIME
        try:
            return self._redeem(key, code, expires_at, browser, deadline, only=browser.signed_in)
        except AuthorizationFailed as exc:
            if exc.reason in ("wechat_failed", "snapshot"):
                raise
            raise AuthorizationFailed(reason) from None

    def _redeem(
        self,
        key: str,
        code: str,
        expires_at: int,
        browser: Browser,
        deadline: Deadline,
        only: str | None = None,
    ) -> Follower:
        """Claim `key` for this browser's code, exchange the code once, store the
        follower; with `only`, a grant naming anyone else is dropped (state_used).
        A snapshot-page grant frees the claim: the real authorization comes next."""
        claimed_openid = self._claim(key, browser, code, expires_at, deadline)
        if claimed_openid:
            return self._known(claimed_openid)
        grant = self._exchange(key, code, deadline)
        if grant.is_snapshotuser:
            log.info("a snapshot-page grant: neither stored nor signed in")
            self.ledger.release_state(key)
            raise AuthorizationFailed("snapshot")
        if only is not None and grant.openid != only:
            log.info("a link tapped again named another follower: not signed in")
            self.ledger.release_state(key)
            raise AuthorizationFailed("state_used")
        follower = self._follower(grant, deadline)
        self.ledger.complete_authorization(key, follower)
        log.info("authorized openid=%s scope=%s", follower.openid, follower.scope)
        return follower

    def _known(self, openid: str) -> Follower:
        """The follower an earlier request for this claim stored."""
        follower = self.tokens.get_follower(openid)
        if follower is None:  # removed since: the link is as good as used
            raise AuthorizationFailed("state_used")
        return follower

    def _claim(
        self, key: str, browser: Browser, code: str, expires_at: int, deadline: Deadline
    ) -> str | None:
        """Claim the key; the openid if this browser's request already completed it."""
        code_hash = browser.code_hash(code)
        while True:
            claim, openid = self.ledger.claim_state(
                key, code_hash, expires_at, REPLAY_GRACE, browser.signed_in
            )
            if claim is Claim.NEW:
                return None
            if claim is Claim.DONE:
                return openid
            if claim is Claim.USED:
                raise AuthorizationFailed("state_used")
            if not deadline.allows(IN_FLIGHT_POLL):  # the first request is slow: so is WeChat
                raise AuthorizationFailed("wechat_failed")
            time.sleep(IN_FLIGHT_POLL)  # IN_FLIGHT: the first request is still talking to WeChat

    def _exchange(self, key: str, code: str, deadline: Deadline) -> TokenGrant:
        """The code's tokens; on any failure the claim is freed, so a reload can retry."""
        try:
            return self.client.exchange_code(code, deadline)
        except OAuthError as exc:
            log.warning("code exchange failed: %s", exc)
            self.ledger.release_state(key)
            if isinstance(exc, WeChatAPIError) and exc.code_rejected:
                raise AuthorizationFailed("code_rejected") from None
            raise AuthorizationFailed("wechat_failed") from None

    def _follower(self, grant: TokenGrant, deadline: Deadline) -> Follower:
        """The new tokens, with a fresh profile when the grant allows one and time is left."""
        follower = profile.from_grant(grant, self.tokens.get_follower(grant.openid))
        if not profile.has_userinfo(grant.scope):
            return follower
        try:
            answer = self.client.userinfo(grant.access_token, grant.openid, self.lang, deadline)
        except OAuthError as exc:  # /me fetches it later; the tokens are what matter now
            log.warning("userinfo after authorization failed: %s", exc)
            return follower
        return profile.with_profile(follower, answer, grant.received_at)
