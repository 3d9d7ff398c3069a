"""The internal API under `/api`, for the operator's other services: they ask the bot,
never WeChat, for the account's basic access_token, so the account has one owner.

A bare WSGI app (no page framework: its answers are JSON), mounted only when
`server.api_key` is set. Every request carries that key as `Authorization: Bearer
KEY`, compared in constant time. A service whose call WeChat answered 40001/42001
sends the token it used back in `X-Rejected-Token`: the bot then renews it once for
everybody, or hands out the one another caller already got in its place.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

import routes
from oauth import BasicToken
from web.json_answers import Answer, error, from_wechat, send

REALM = 'Bearer realm="wechat-bot"'
REJECTED = "HTTP_X_REJECTED_TOKEN"  # the X-Rejected-Token header, as WSGI names it


class InternalAPI:
    def __init__(self, tokens: BasicToken, api_key: str) -> None:
        if not api_key:
            raise ValueError("the internal API needs server.api_key")
        self._tokens = tokens
        self._key = api_key.encode()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        return send(self._answer(environ), start_response)

    def _answer(self, environ: dict) -> Answer:
        credentials = environ.get("HTTP_AUTHORIZATION", "")
        if not credentials:
            missing = [("WWW-Authenticate", REALM)]
            return error("401 Unauthorized", "Authorization: Bearer API_KEY is missing", missing)
        if not self._authorized(credentials):
            wrong = [("WWW-Authenticate", REALM + ', error="invalid_token"')]
            return error("401 Unauthorized", "the API key is wrong", wrong)
        if environ.get("PATH_INFO") != routes.ACCESS_TOKEN:
            return error("404 Not Found", "no such API")
        if environ.get("REQUEST_METHOD") != "GET":
            return error("405 Method Not Allowed", "use GET", [("Allow", "GET")])
        return self._access_token(environ.get(REJECTED, "").strip())

    def _authorized(self, credentials: str) -> bool:
        scheme, _, key = credentials.strip().partition(" ")
        # WSGI hands headers over as latin-1 strings; anything else cannot be the key.
        offered = key.strip().encode("latin-1", "replace")
        return scheme.lower() == "bearer" and hmac.compare_digest(offered, self._key)

    def _access_token(self, rejected: str) -> Answer:
        def hand_out() -> dict:
            token = self._tokens.replace(rejected) if rejected else self._tokens.current()
            return {"access_token": token.value, "expires_at": token.expires_at}

        return from_wechat("token", hand_out)
