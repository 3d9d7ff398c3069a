"""The authorize URL, built exactly as WeChat's strict link pattern wants it."""

from urllib.parse import quote

SCOPES = ("snsapi_base", "snsapi_userinfo")


def authorize_url(open_base: str, app_id: str, redirect_uri: str, scope: str, state: str) -> str:
    """Parameters in WeChat's order, `redirect_uri` encoded once as a whole
    (`/ : ? &` included), `#wechat_redirect` last; any other shape fails to open."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    return (
        f"{open_base.rstrip('/')}/connect/oauth2/authorize"
        f"?appid={app_id}"
        f"&redirect_uri={quote(redirect_uri, safe='')}"
        f"&response_type=code"
        f"&scope={scope}"
        f"&state={state}"
        "#wechat_redirect"
    )
