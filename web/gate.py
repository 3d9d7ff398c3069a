"""/auth: whom a request's sign-in names, for a reverse proxy's sub-request (nginx
auth_request, Traefik forwardAuth, Caddy forward_auth).

The proxy asks before every request of the app it protects, so this is a bare WSGI
app answered from the sign-in cookie alone: one HMAC, no framework, no database,
no call to WeChat. Any method is answered alike, and a request body is never read.

- A valid sign-in: 200 with X-WeChat-OpenID, X-WeChat-Scope, X-WeChat-UnionID (when
  known) and X-WeChat-Nickname (percent-encoded UTF-8; empty when unknown).
- Otherwise 401, with X-WeChat-Login: the absolute URL of /login that comes back to
  the page that was asked for, when the proxy says which (see `_asked_for`) and it
  is an allowed destination, else plain /login. The nginx and Caddy samples redirect
  to it; Traefik hands the 401 to the browser as it is, so its body is a short page
  that goes there by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import quote

import routes
from web.app import EVERY_RESPONSE
from web.cookies import CookieSigner
from web.destinations import BadDestination, Destinations
from web.render import render

COMMON = [("Content-Length", "0"), *EVERY_RESPONSE.items()]
LOGIN_PAGE = [
    ("Content-Type", "text/html; charset=utf-8"),
    *EVERY_RESPONSE.items(),
    ("Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'"),
]


class Gate:
    def __init__(self, cookies: CookieSigner, destinations: Destinations, public_url: str) -> None:
        self.cookies = cookies
        self.destinations = destinations
        self.login = public_url.rstrip("/") + routes.LOGIN

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        fields = self.cookies.fields(environ.get("HTTP_COOKIE"))
        if fields is not None:
            start_response("200 OK", identity_headers(*fields))
            return [b""]
        login = self.login_url(environ)
        body = render("sign_in_first", login=login).encode("utf-8")
        headers = [("X-WeChat-Login", login), ("Content-Length", str(len(body))), *LOGIN_PAGE]
        start_response("401 Unauthorized", headers)
        return [body]

    def login_url(self, environ: dict) -> str:
        """/login, coming back to the URL the proxy says was asked for when it may."""
        asked = _asked_for(environ)
        if asked is None:
            return self.login
        try:
            destination = self.destinations.check(asked)
        except BadDestination:
            return self.login
        return f"{self.login}?next={quote(destination, safe='')}"


def _asked_for(environ: dict) -> str | None:
    """The URL the proxy says the browser asked for: X-Original-URL (the nginx and
    Caddy samples set it), else X-Forwarded-Proto, -Host and -Uri together (Traefik
    sends them; a server that does not trust the proxy drops the first two, as
    waitress does unless told otherwise)."""
    original = environ.get("HTTP_X_ORIGINAL_URL")
    if original:
        return original
    proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[0].strip()
    host = environ.get("HTTP_X_FORWARDED_HOST", "").split(",")[0].strip()
    uri = environ.get("HTTP_X_FORWARDED_URI", "")
    return f"{proto}://{host}{uri}" if proto and host and uri.startswith("/") else None


def identity_headers(openid: str, scope: str, unionid: str, nickname: str) -> list:
    """The answer's headers, from the cookie's fields as they are: the openid, and the
    scope, unionid and nickname percent-encoded (so every value is ASCII)."""
    headers = [("X-WeChat-OpenID", openid), ("X-WeChat-Scope", scope)]
    if unionid:
        headers.append(("X-WeChat-UnionID", unionid))
    return [*headers, ("X-WeChat-Nickname", nickname), *COMMON]
