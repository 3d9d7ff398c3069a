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
import json
import logging
from collections.abc import Callable, Iterable

import routes
from oauth import BasicToken, WeChatAPIError, WeChatUnavailable
from storage import StorageError

log = logging.getLogger(__name__)

JSON = "application/json"
REALM = 'Bearer realm="wechat-bot"'
REJECTED = "HTTP_X_REJECTED_TOKEN"  # the X-Rejected-Token header, as WSGI names it
Answer = tuple[str, dict, list[tuple[str, str]]]


class InternalAPI:
    def __init__(self, tokens: BasicToken, api_key: str) -> None:
        if not api_key:
            raise ValueError("the internal API needs server.api_key")
        self._tokens = tokens
        self._key = api_key.encode()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        status, document, extra = self._answer(environ)
        body = json.dumps(document).encode()
        start_response(status, [("Content-Type", JSON), ("Content-Length", str(len(body))), *extra])
        return [body]

    def _answer(self, environ: dict) -> Answer:
        credentials = environ.get("HTTP_AUTHORIZATION", "")
        if not credentials:
            missing = [("WWW-Authenticate", REALM)]
            return _error("401 Unauthorized", "Authorization: Bearer API_KEY is missing", missing)
        if not self._authorized(credentials):
            wrong = [("WWW-Authenticate", REALM + ', error="invalid_token"')]
            return _error("401 Unauthorized", "the API key is wrong", wrong)
        if environ.get("PATH_INFO") != routes.ACCESS_TOKEN:
            return _error("404 Not Found", "no such API")
        if environ.get("REQUEST_METHOD") != "GET":
            return _error("405 Method Not Allowed", "use GET", [("Allow", "GET")])
        return self._access_token(environ.get(REJECTED, "").strip())

    def _authorized(self, credentials: str) -> bool:
        scheme, _, key = credentials.strip().partition(" ")
        # WSGI hands headers over as latin-1 strings; anything else cannot be the key.
        offered = key.strip().encode("latin-1", "replace")
        return scheme.lower() == "bearer" and hmac.compare_digest(offered, self._key)

    def _access_token(self, rejected: str) -> Answer:
        try:
            token = self._tokens.replace(rejected) if rejected else self._tokens.current()
        except WeChatAPIError as exc:
            log.warning("basic access_token: WeChat refused (errcode %s)", exc.errcode)
            return _error("502 Bad Gateway", "WeChat refused the token", errcode=exc.errcode)
        except WeChatUnavailable as exc:
            log.warning("basic access_token: %s", exc)
            return _error("502 Bad Gateway", "WeChat did not answer")
        except StorageError as exc:
            log.error("basic access_token: %s", exc)
            return _error("503 Service Unavailable", "the storage is unavailable")
        return "200 OK", {"access_token": token.value, "expires_at": token.expires_at}, []


def _error(
    status: str, message: str, headers: list[tuple[str, str]] | None = None, **fields: int
) -> Answer:
    return status, {"error": message, **fields}, headers or []
