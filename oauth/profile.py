"""A follower as WeChat describes them: built from a token grant, updated from a profile."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from oauth.client import REFRESH_TOKEN_LIFETIME, TokenGrant
from oauth.urls import USERINFO
from storage import Follower


def has_userinfo(scope: str) -> bool:
    """Whether a grant of this scope may call sns/userinfo (a base one gets 48001)."""
    return USERINFO in scope.split(",")


def grants(granted: str, wanted: str) -> bool:
    """Whether a grant of scope `granted` gives what `wanted` asks (userinfo gives base too)."""
    return wanted == granted or has_userinfo(granted)


def from_grant(grant: TokenGrant, known: Follower | None) -> Follower:
    """The follower a fresh authorization makes: new tokens, the profile we already had."""
    tokens = {
        "scope": grant.scope,
        "access_token": grant.access_token,
        "access_expires_at": grant.access_expires_at,
        "refresh_token": grant.refresh_token,
        "refresh_expires_at": grant.received_at + REFRESH_TOKEN_LIFETIME,
        "needs_reauth": False,
        "updated_at": grant.received_at,
    }
    if known is not None:
        return replace(known, unionid=grant.unionid or known.unionid, **tokens)
    return Follower(
        openid=grant.openid, unionid=grant.unionid, authorized_at=grant.received_at, **tokens
    )


def refreshed(follower: Follower, grant: TokenGrant) -> Follower:
    """The follower with the tokens a refresh returned."""
    return replace(
        follower,
        access_token=grant.access_token,
        access_expires_at=grant.access_expires_at,
        refresh_token=grant.refresh_token,
        scope=grant.scope or follower.scope,
        updated_at=grant.received_at,
    )


def with_profile(follower: Follower, profile: dict[str, Any], now: int) -> Follower:
    """The follower with a userinfo answer applied."""
    return replace(
        follower,
        profile=profile,
        nickname=profile.get("nickname"),
        headimgurl=profile.get("headimgurl"),
        unionid=profile.get("unionid") or follower.unionid,
        updated_at=now,
    )
