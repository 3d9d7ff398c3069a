"""The authorize URL, built exactly as WeChat's strict link pattern wants it."""

from functools import lru_cache
from urllib.parse import quote

BASE = "snsapi_base"  # silent: the openid only
USERINFO = "snsapi_userinfo"  # asks the follower: nickname and avatar too
SCOPES = (BASE, USERINFO)


def authorize_url(open_base: str, app_id: str, redirect_uri: str, scope: str, state: str) -> str:
    """Parameters in WeChat's order, `redirect_uri` encoded once as a whole
    (`/ : ? &` included), `#wechat_redirect` last; any other shape fails to open."""
    return f"{_prefix(open_base, app_id, redirect_uri, scope)}{state}#wechat_redirect"


@lru_cache(maxsize=16)
def _prefix(open_base: str, app_id: str, redirect_uri: str, scope: str) -> str:
    """Everything before the state; the same for every link, so built once (hot path)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    return (
        f"{open_base.rstrip('/')}/connect/oauth2/authorize"
        f"?appid={app_id}"
        f"&redirect_uri={quote(redirect_uri, safe='')}"
        f"&response_type=code"
        f"&scope={scope}"
        "&state="
    )
