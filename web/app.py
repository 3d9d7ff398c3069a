"""The follower-facing routes: thin Bottle glue over `oauth/` and `storage/`.

/login, /oauth/callback, /me, /logout, /healthz and the pages' static files live
here; the message endpoint (`wechat.MessageServer`) and /auth (`web.gate.Gate`) are
bare WSGI apps of their own that `bot.py` mounts beside this.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs, quote

from bottle import Bottle, HTTPResponse, request, response

import routes
from oauth import (
    PAGE_DEADLINE,
    AuthorizationFailed,
    AuthorizeLinks,
    Browser,
    Deadline,
    SignIn,
    Standing,
    TokenUpkeep,
)
from oauth.profile import grants
from oauth.urls import SCOPES, USERINFO
from storage import StorageError, Store
from web import assets, pages
from web.cookies import CookieSigner, Identity
from web.destinations import BadDestination, Destinations

log = logging.getLogger(__name__)

# On every response (pages, redirects, errors, JSON): URLs carry codes and states and
# pages carry a follower's data, so nothing is cached and nothing leaks through Referer.
EVERY_RESPONSE = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    # The bot's own stylesheet, script and icons; avatars from wherever WeChat keeps them.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' https: http:; "
        "base-uri 'none'; form-action 'none'"
    ),
}
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


def html(status: int, body: str, **headers: str) -> HTTPResponse:
    return HTTPResponse(body=body, status=status, headers={**PAGE_HEADERS, **headers})


def create_web_app(
    links: AuthorizeLinks,
    sign_in: SignIn,
    upkeep: TokenUpkeep,
    cookies: CookieSigner,
    store: Store,
    destinations: Destinations,
    page_deadline: float = PAGE_DEADLINE,
) -> WSGIApp:
    """`page_deadline`: the seconds a page may spend on WeChat's calls, all together."""
    app = Bottle()
    app.config["catchall"] = True

    @app.get(routes.LOGIN)
    def login() -> HTTPResponse:
        try:
            destination = destinations.check(_one("next") or routes.ME)
            scope = _one("scope") or links.scope
        except (BadQuery, BadDestination) as exc:
            log.info("login refused: %s", exc)
            return html(*pages.bad_destination())
        if scope not in SCOPES:
            return html(*pages.bad_destination())
        identity = cookies.read(request.environ.get("HTTP_COOKIE"))
        if identity is not None and grants(identity.scope, scope):
            return html(303, "", Location=destination)
        return html(302, "", Location=links.leading_to(destination, scope))

    @app.get(routes.CALLBACK)
    def callback() -> HTTPResponse:
        destination = None
        try:
            code, state = _only("code"), _only("state")
            destination = sign_in.destination(state)
            follower = sign_in.complete(
                code, state, destination, _browser(cookies), Deadline(page_deadline)
            )
        except AuthorizationFailed as exc:
            log.info("callback refused: %s", exc.reason)
            if exc.reason == "snapshot":
                return html(200, pages.snapshot())
            return html(*pages.failure(exc.reason, _again(links, destination)))
        allowed = destination is not None and destinations.allows(destination)
        cookie = cookies.header(Identity.of(follower))
        return html(
            303, "", Location=destination if allowed else routes.ME, **{"Set-Cookie": cookie}
        )

    @app.get(routes.LOGOUT)
    def logout() -> HTTPResponse:
        answer = html(303, "", Location=routes.ME)
        for cleared in cookies.clearing():
            answer.add_header("Set-Cookie", cleared)
        return answer

    @app.get(routes.ME)
    def me() -> HTTPResponse:
        identity = cookies.read(request.environ.get("HTTP_COOKIE"))
        visit = upkeep.visit(identity.openid, Deadline(page_deadline)) if identity else None
        if visit is None:
            return html(200, pages.not_authorized(links.link()))
        if visit.standing is Standing.REAUTHORIZE:
            return html(200, pages.reauthorize(links.link()))
        offline = visit.standing is Standing.OFFLINE
        return html(200, pages.profile(visit.follower, offline, links.link(USERINFO)))

    @app.get(routes.HEALTH)
    def healthz() -> HTTPResponse:
        ok = store.ping()
        body = json.dumps({"status": "ok" if ok else "unavailable"})
        return HTTPResponse(body, 200 if ok else 503, {"Content-Type": "application/json"})

    @app.get(routes.STATIC + "/<name>")
    def static(name: str) -> HTTPResponse:
        return assets.response(name)

    @app.get(routes.FAVICON)
    def favicon() -> HTTPResponse:
        return assets.response("favicon.ico")

    _install_error_pages(app)
    app.install(storage_guard)
    return with_every_response_headers(app)


def with_every_response_headers(app: WSGIApp) -> WSGIApp:
    """EVERY_RESPONSE's headers on whatever `app` answers, Bottle's own errors included."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info=None):
            present = {name.lower() for name, _ in headers}
            missing = [(k, v) for k, v in EVERY_RESPONSE.items() if k.lower() not in present]
            return start_response(status, [*headers, *missing], exc_info)

        return app(environ, start)

    return wrapped


class BadQuery(ValueError):
    """A query parameter given twice, or not UTF-8."""


def _one(name: str) -> str | None:
    """The query parameter `name` as text (UTF-8, percent-decoded), None when absent;
    BadQuery when it is given twice or is no UTF-8."""
    try:
        query = request.environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8")
        values = parse_qs(query, keep_blank_values=True, errors="strict").get(name, [])
    except UnicodeError:
        raise BadQuery(f"{name} is not UTF-8") from None
    if len(values) > 1:
        raise BadQuery(f"{name} given {len(values)} times")
    return values[0] if values else None


def _only(name: str) -> str | None:
    """The callback's query parameter `name`, None when absent. WeChat never sends one
    twice: a repeated one is a forged link, refused whichever copy a proxy would read."""
    values = request.query.getall(name)
    if len(values) > 1:
        raise AuthorizationFailed("state_forged")
    return values[0] if values else None


def _again(links: AuthorizeLinks, destination: str | None) -> str:
    """A fresh way to authorize after a failed callback: through /login to where the
    state led, else a new link to /me."""
    if destination is None:
        return links.link()
    return f"{routes.LOGIN}?next={quote(destination, safe='')}"


def _browser(cookies: CookieSigner) -> Browser:
    """The client, as the callback tells clients apart: the raw User-Agent (never
    decoded, so any bytes do), the peer's address (not X-Forwarded-For, which anyone
    can send) and whom its sign-in cookie names."""
    identity = cookies.read(request.environ.get("HTTP_COOKIE"))
    return Browser(
        request.environ.get("HTTP_USER_AGENT", ""),
        request.environ.get("REMOTE_ADDR", ""),
        identity.openid if identity else None,
    )


def _install_error_pages(app: Bottle) -> None:
    def error_page(status: int, title: str, text: str):
        def render(_error) -> str:
            for name, value in PAGE_HEADERS.items():
                response.set_header(name, value)
            return pages.message(status, title, text)[1]

        return render

    app.error_handler.update(
        {
            404: error_page(404, "页面不存在", "你访问的页面不存在。"),
            405: error_page(405, "请求方式不支持", "这个地址不支持该请求方式。"),
            500: error_page(500, "服务出错了", "服务暂时出了点问题，请稍后再试。"),
        }
    )


def storage_guard(callback):
    """Bottle plugin: a database outage is a readable 503 page, not a 500."""

    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except StorageError as exc:
            log.error("storage unavailable: %s", exc)
            return html(*pages.message(503, "服务暂时不可用", "存储暂时不可用，请稍后再试。"))

    return wrapper
