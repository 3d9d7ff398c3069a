"""Keeping a follower's tokens alive: refresh when expired, check on each visit,
and mark the follower for re-authorization when WeChat says the grant is gone."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from enum import Enum

from oauth.callback import apply_profile, has_userinfo
from oauth.client import WeChatOAuth
from oauth.errors import WeChatAPIError, WeChatUnavailable
from storage import Follower, Store

log = logging.getLogger(__name__)

EXPIRY_MARGIN = 60  # refresh a little early rather than get 42001 mid-visit


class Standing(Enum):
    FRESH = "fresh"  # tokens checked with WeChat just now
    REAUTHORIZE = "reauthorize"  # the grant is gone: show a new link
    OFFLINE = "offline"  # WeChat did not answer: show what we have


@dataclass(frozen=True)
class Visit:
    follower: Follower
    standing: Standing


class TokenLifecycle:
    def __init__(self, client: WeChatOAuth, store: Store, lang: str) -> None:
        self.client = client
        self.store = store
        self.lang = lang

    def visit(self, openid: str) -> Visit | None:
        """The follower as of now, tokens refreshed and checked; None if unknown."""
        follower = self.store.get_follower(openid)
        if follower is None:
            return None
        if follower.needs_reauth:
            return Visit(follower, Standing.REAUTHORIZE)
        try:
            return self._check(follower)
        except WeChatAPIError as exc:
            if exc.needs_reauthorization:
                log.info("openid=%s must authorize again (errcode %s)", openid, exc.errcode)
                self.store.mark_needs_reauth(openid)
                return Visit(replace(follower, needs_reauth=True), Standing.REAUTHORIZE)
            log.warning("token check failed: %s", exc)
            return Visit(follower, Standing.OFFLINE)
        except WeChatUnavailable as exc:
            log.warning("token check failed: %s", exc)
            return Visit(follower, Standing.OFFLINE)

    def _check(self, follower: Follower) -> Visit:
        refreshed = follower.access_expires_at <= time.time() + EXPIRY_MARGIN
        if refreshed:
            follower = self._refresh(follower)
        try:
            self._validate(follower)
        except WeChatAPIError as exc:
            if refreshed or not exc.token_invalid:
                raise
            follower, refreshed = self._refresh(follower), True  # revoked early: one more try
            self._validate(follower)
        finally:
            self.store.save_follower(follower)  # a refreshed token is kept even if the check failed
        return Visit(follower, Standing.FRESH)

    def _refresh(self, follower: Follower) -> Follower:
        grant = self.client.refresh(follower.refresh_token)
        return replace(
            follower,
            access_token=grant.access_token,
            access_expires_at=grant.access_expires_at,
            refresh_token=grant.refresh_token,
            scope=grant.scope or follower.scope,
            updated_at=grant.received_at,
        )

    def _validate(self, follower: Follower) -> None:
        """userinfo for a userinfo grant (fresh profile); sns/auth for a base one,
        which must never call userinfo (48001)."""
        if has_userinfo(follower.scope):
            apply_profile(
                follower, self.client.userinfo(follower.access_token, follower.openid, self.lang)
            )
        else:
            self.client.check_token(follower.access_token, follower.openid)
        follower.updated_at = int(time.time())
