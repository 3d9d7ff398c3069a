"""Keeping a follower's tokens alive: refresh when expired, check on each visit,
and mark the follower for re-authorization when WeChat says the grant is gone."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from enum import Enum

from oauth import profile
from oauth.client import WeChatOAuth
from oauth.deadline import Deadline
from oauth.errors import OAuthError, WeChatAPIError, WeChatUnavailable
from oauth.token_store import TokenStore
from storage import Follower

log = logging.getLogger(__name__)

EXPIRY_MARGIN = 60  # refresh a little early rather than get 42001 mid-visit
REFRESH_POLL = 0.1  # how often a request waiting for another's refresh looks again


class Standing(Enum):
    FRESH = "fresh"  # tokens checked with WeChat just now
    REAUTHORIZE = "reauthorize"  # the grant is gone: show a new link
    OFFLINE = "offline"  # WeChat did not answer: show what we have


@dataclass(frozen=True)
class Visit:
    follower: Follower
    standing: Standing


class TokenUpkeep:
    def __init__(self, client: WeChatOAuth, tokens: TokenStore, lang: str) -> None:
        self.client = client
        self.tokens = tokens
        self.lang = lang

    def visit(self, openid: str, deadline: Deadline) -> Visit | None:
        """The follower as of now, tokens refreshed and checked by `deadline`; None if
        unknown. WeChat failing or out of time gives the stored follower, OFFLINE."""
        follower = self.tokens.get_follower(openid)
        if follower is None:
            return None
        if follower.needs_reauth:
            return Visit(follower, Standing.REAUTHORIZE)
        try:
            return Visit(self._check(follower, deadline), Standing.FRESH)
        except WeChatAPIError as exc:
            if exc.needs_reauthorization:
                log.info("openid=%s must authorize again (errcode %s)", openid, exc.errcode)
                self.tokens.mark_needs_reauth(openid)
                return Visit(replace(follower, needs_reauth=True), Standing.REAUTHORIZE)
            log.warning("token check failed: %s", exc)
            return Visit(follower, Standing.OFFLINE)
        except WeChatUnavailable as exc:
            log.warning("token check failed: %s", exc)
            return Visit(follower, Standing.OFFLINE)

    def _check(self, follower: Follower, deadline: Deadline) -> Follower:
        if follower.access_expires_at <= time.time() + EXPIRY_MARGIN:
            return self._validate(self._refresh(follower, deadline), deadline)
        try:
            return self._validate(follower, deadline)
        except WeChatAPIError as exc:
            if not exc.token_invalid:
                raise
        renewed = self._refresh(follower, deadline)  # revoked early: one more try
        return self._validate(renewed, deadline)

    def _refresh(self, follower: Follower, deadline: Deadline) -> Follower:
        """Renew the tokens, one caller at a time across every instance: the one that
        takes the refresh asks WeChat and stores the tokens at once (the update_token
        hook), so they are kept even if the check after it fails; the others wait
        for those tokens instead of asking WeChat again."""
        until = int(time.time() + deadline.remaining()) + 1  # it lapses should we die
        while not self.tokens.begin_refresh(follower, until):
            current = self.tokens.get_follower(follower.openid)
            if current is not None and _tokens(current) != _tokens(follower):
                return current  # renewed by another request, here or on another instance
            if not deadline.allows(REFRESH_POLL):
                raise WeChatUnavailable("refresh: another request is still refreshing")
            time.sleep(REFRESH_POLL)
        try:
            grant = self.client.refresh(follower.refresh_token, deadline)
        except OAuthError:
            self.tokens.end_refresh(follower.openid)
            raise
        renewed = profile.refreshed(follower, grant)
        self.tokens.update_token(renewed, replacing=follower)
        return renewed

    def _validate(self, follower: Follower, deadline: Deadline) -> Follower:
        """userinfo for a userinfo grant (fresh profile); sns/auth for a base one,
        which must never call userinfo (48001). Stores the outcome."""
        now = int(time.time())
        if profile.has_userinfo(follower.scope):
            answer = self.client.userinfo(
                follower.access_token, follower.openid, self.lang, deadline
            )
            checked = profile.with_profile(follower, answer, now)
        else:
            self.client.check_token(follower.access_token, follower.openid, deadline)
            checked = replace(follower, updated_at=now)
        self.tokens.save_profile(checked)
        return checked


def _tokens(follower: Follower) -> tuple[str, int]:
    """The access token as stored: WeChat may renew a live one in place, with a new expiry."""
    return follower.access_token, follower.access_expires_at
