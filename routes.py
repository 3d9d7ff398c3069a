"""Every path the bot serves besides `server.wechat_path`: the one table of routes.

The web app mounts these, the configuration refuses a `wechat_path` that would
shadow one of them, and the callback URL is built from `CALLBACK`.
"""

from __future__ import annotations

HOME = "/"
CALLBACK = "/oauth/callback"  # WeChat sends the follower back here with code and state
ME = "/me"  # the follower's own page
HEALTH = "/healthz"  # storage answers → 200, else 503
LOGIN = "/login"  # the stable sign-in entry for menus and the operator's pages
AUTH = "/auth"  # a reverse proxy's sub-request: who is signed in
LOGOUT = "/logout"
JSSDK_CONFIG = "/jssdk/config"  # wx.config signatures for the operator's pages
API = "/api"  # the internal API (`/api/access-token`, ...): everything under it is ours
ACCESS_TOKEN = API + "/access-token"  # the account's basic access_token, for its other services
STATIC = "/static"  # the pages' stylesheet, script and images: everything under it is ours
FAVICON = "/favicon.ico"

PAGES = (HOME, CALLBACK, ME, HEALTH, LOGIN, AUTH, LOGOUT, JSSDK_CONFIG, FAVICON)
TREES = (API, STATIC)


def is_taken(path: str) -> bool:
    """True when `path` is one of the bot's own routes or lies under one of `TREES`."""
    return path in PAGES or any(is_under(path, tree) for tree in TREES)


def is_under(path: str, tree: str) -> bool:
    """True when `path` is `tree` or lies under it."""
    return path == tree or path.startswith(tree + "/")
