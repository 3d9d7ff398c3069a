"""`GET /jssdk/config?url=URL`: `wx.config`'s parameters for the operator's page at URL,
as JSON `{"appId", "timestamp", "nonceStr", "signature"}`.

A bare WSGI app (its answers are JSON). A page on another allowed host (oauth.return_hosts)
calls it across origins: its Origin, when allowed, gets `Access-Control-Allow-Origin`,
so the page can read the answer (a plain GET, no preflight).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

from oauth.jssdk import BadPageURL, JsSdk
from web.json_answers import Answer, Headers, error, from_wechat, send


class JsSdkConfig:
    def __init__(self, jssdk: JsSdk) -> None:
        self._jssdk = jssdk

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        status, document, extra = self._answer(environ)
        return send((status, document, [*extra, *self._cors(environ)]), start_response)

    def _answer(self, environ: dict) -> Answer:
        if environ.get("REQUEST_METHOD") != "GET":
            return error("405 Method Not Allowed", "use GET", [("Allow", "GET")])
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        urls = query.pop("url", [])
        if query or len(urls) > 1:
            return error(
                "400 Bad Request",
                "pass one parameter, url, percent-encoded (encodeURIComponent): "
                "else the page URL's own & and = are cut off into other parameters",
            )
        try:  # the URL is checked before WeChat is asked for anything
            return from_wechat("ticket", lambda: self._jssdk.config(*urls).as_json())
        except BadPageURL as exc:
            return error("400 Bad Request", str(exc))

    def _cors(self, environ: dict) -> Headers:
        origin = environ.get("HTTP_ORIGIN", "")
        allowed = (
            [("Access-Control-Allow-Origin", origin)] if self._jssdk.pages.allows(origin) else []
        )
        return [*allowed, ("Vary", "Origin")]
