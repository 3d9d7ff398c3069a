"""HTTP routes: WeChat's endpoints in WeChat's exact shapes, and the /api controls."""

import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulator.assets import static_file
from simulator.authorize import AuthorizeError, AuthorizeLink, add_query, parse_link
from simulator.avatars import parse_path, svg
from simulator.followers import Follower, virtual_openid
from simulator.pages import consent_page, error_page
from simulator.push import MODES
from simulator.server import Request, Response
from simulator.wxapi import ERROR_TYPE, JSON_TYPE, WeChatError, dumps, error_body

if TYPE_CHECKING:
    from simulator.app import Simulator

API_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
JSSDK_PATH = "/open/js/jweixin-1.6.0.js"  # https://res.wx.qq.com/open/js/jweixin-1.6.0.js
LANGS = ("zh_CN", "zh_TW", "en")
SECRET_KEYS = ("secret", "access_token", "refresh_token")
PUSH_KEYS = ("openid", "type", "content", "event", "mode", "msg_id", "create_time", "fields")
GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
GARBAGE = "<html><body>系统繁忙，请稍后再试</body></html>".encode()
# What a captive portal or an interfering proxy hands back instead of the API's answer.
PORTAL_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>网络认证</title></head>'
    "<body><p>请登录后继续上网。</p></body></html>"
).encode()
FAULTS: dict[str, Callable[[], Response]] = {
    "busy": lambda: Response(200, error_body(-1), ERROR_TYPE),
    "http_error": lambda: Response(502, GATEWAY_PAGE, "text/html"),
    "garbage": lambda: Response(200, GARBAGE, JSON_TYPE),
    "html": lambda: Response(200, PORTAL_PAGE, HTML_TYPE),
    "reset": lambda: Response(reset=True),
}

Handler = Callable[[Request], Response]


def api_json(body: Any, status: int = 200) -> Response:
    """A control-API answer: ordinary, correctly labelled JSON (unlike WeChat's)."""
    return Response(status, json.dumps(body, ensure_ascii=False).encode(), API_TYPE)


def html_page(text: str) -> Response:
    """An HTML page; WeChat shows even its errors with HTTP 200."""
    return Response(200, text.encode(), HTML_TYPE)


def redirect(location: str) -> Response:
    """A 302 the browser follows."""
    return Response(302, b"", None, [("Location", location)])


def wechat_api(endpoint: Callable[[Request], dict], content_type: str = JSON_TYPE) -> Handler:
    """Wrap an endpoint: success as WeChat JSON, WeChatError as a text/plain errcode body."""

    def run(request: Request) -> Response:
        try:
            return Response(200, dumps(endpoint(request)), content_type)
        except WeChatError as exc:
            return Response(200, error_body(exc.errcode), ERROR_TYPE)

    return run


def call_params(request: Request) -> dict[str, Any]:
    """Query parameters merged with a JSON or form body, for the call log."""
    params: dict[str, Any] = dict(request.query)
    if request.body:
        try:
            params.update(request.json())
        except ValueError:
            params.update(request.form)
    return params


class Router:
    """Dispatches every request: call log, scripted faults, then the route."""

    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim
        self._tickets: dict[str, tuple[AuthorizeLink, str]] = {}
        self._lock = threading.Lock()
        self.wechat: dict[str, tuple[str, Handler]] = {
            "/connect/oauth2/authorize": ("GET", self.authorize),
            "/connect/oauth2/authorize/confirm": ("POST", self.confirm),
            "/sns/oauth2/access_token": ("GET", wechat_api(self.access_token)),
            "/sns/oauth2/refresh_token": ("GET", wechat_api(self.refresh_token)),
            # Observed: userinfo answers text/plain without charset, so naive clients garble it.
            "/sns/userinfo": ("GET", wechat_api(self.userinfo, ERROR_TYPE)),
            "/sns/auth": ("GET", wechat_api(self.auth)),
            "/cgi-bin/token": ("GET", wechat_api(self.basic_token)),
            "/cgi-bin/stable_token": ("POST", wechat_api(self.stable_token)),
            "/cgi-bin/getcallbackip": ("GET", wechat_api(self.callback_ip)),
            "/cgi-bin/ticket/getticket": ("GET", wechat_api(self.ticket)),
            "/cgi-bin/menu/create": ("POST", wechat_api(self.create_menu)),
            "/cgi-bin/menu/get": ("GET", wechat_api(self.get_menu)),
        }
        # GET routes by prefix: files and avatars, as a CDN serves them.
        self.files: dict[str, Handler] = {"/static/": self.static, "/mmopen/": self.avatar}
        self.control: dict[tuple[str, str], Handler] = {
            ("GET", "/"): lambda _: redirect("/phone"),
            ("GET", "/phone"): self.phone,
            # WeChat's JS-SDK as pages load it from res.wx.qq.com, and what its wx.config asks
            ("GET", JSSDK_PATH): self.jssdk_script,
            ("POST", "/api/jssdk/config"): self.check_jssdk_config,
            ("GET", "/api/menu"): self.show_menu,
            ("POST", "/api/menu/tap"): self.tap_menu,
            ("GET", "/api/account"): self.account,
            ("GET", "/api/followers"): self.list_followers,
            ("POST", "/api/follower"): self.choose_follower,
            ("POST", "/api/snapshot"): self.snapshot,
            ("POST", "/api/push"): self.push,
            ("POST", "/api/authorize"): self.browse,
            ("POST", "/api/clock/advance"): self.advance_clock,
            ("POST", "/api/fault"): self.add_fault,
            ("POST", "/api/faults/clear"): self.clear_faults,
            ("POST", "/api/tokens/expire"): self.expire_tokens,
            ("POST", "/api/tokens/invalidate"): self.invalidate_tokens,
            ("GET", "/api/calls"): self.list_calls,
        }

    def handle(self, request: Request) -> Response:
        """The server's single entry point."""
        if request.path in self.wechat:
            self.sim.calls.append((request.path, call_params(request)))
        fault = self.sim.take_fault(request.path)
        if fault and fault.kind == "slow":
            time.sleep(fault.seconds)
        elif fault and fault.kind == "truncated":
            # The request is served (a code is spent, a token renewed), the answer is lost mid-way.
            answer = self._route(request)
            return dataclasses.replace(answer, cut=len(answer.body) // 2)
        elif fault:
            return FAULTS[fault.kind]()
        return self._route(request)

    def _route(self, request: Request) -> Response:
        if request.path in self.wechat:
            return self._wechat(request)
        handler = self.control.get((request.method, request.path))
        prefix = next((p for p in self.files if request.path.startswith(p)), None)
        if handler is None and prefix and request.method == "GET":
            handler = self.files[prefix]
        if handler is None:
            return Response(404, b"not found")
        try:
            return handler(request)
        except (ValueError, KeyError, TypeError) as exc:
            return api_json({"error": str(exc)}, 400)

    def _wechat(self, request: Request) -> Response:
        method, handler = self.wechat[request.path]
        if request.method == method:
            return handler(request)
        if request.path.startswith("/connect/"):
            return Response(405, b"method not allowed")
        return Response(200, error_body(43001 if method == "GET" else 43002), ERROR_TYPE)

    # -- the authorize page ---------------------------------------------------------

    def _browser_follower(self, request: Request) -> Follower:
        """Who holds the phone: the sim_openid cookie, else the default fixture follower."""
        chosen = self.sim.followers.get(request.cookies.get("sim_openid", ""))
        return chosen or self.sim.followers[self.sim.default_openid]

    def authorize(self, request: Request) -> Response:
        """snsapi_base redirects at once; snsapi_userinfo shows the consent page, or on a
        snapshot page (the follower's mode, or forceSnapShot) grants a virtual account."""
        try:
            link = parse_link(request.raw_query, self.sim.app_id, self.sim.callback_domain)
        except AuthorizeError as exc:
            return html_page(error_page(exc.errcode, exc.text))
        follower = self._browser_follower(request)
        if link.scope == "snsapi_base":
            return self._grant(link, follower.openid)
        if follower.snapshot or link.force_snapshot:
            return self._grant(link, virtual_openid(follower.openid), snapshot=True)
        ticket = secrets.token_urlsafe(16)
        with self._lock:
            self._tickets[ticket] = (link, follower.openid)
        return html_page(
            consent_page(
                follower.nickname,
                self.sim.avatar_url(follower),
                self.sim.account_name,
                self.sim.avatar_url(),
                link.scope,
                ticket,
            )
        )

    def confirm(self, request: Request) -> Response:
        """The consent form: allow → code and state; deny → state only."""
        form = request.form
        with self._lock:
            pending = self._tickets.pop(form.get("ticket", ""), None)
        if pending is None:
            return html_page(error_page(None, "授权页面已失效，请重新打开链接"))
        link, openid = pending
        if form.get("decision") == "allow":
            return self._grant(link, openid)
        return redirect(add_query(link.redirect_uri, state=link.state))

    def _grant(self, link: AuthorizeLink, openid: str, snapshot: bool = False) -> Response:
        code = self.sim.oauth.issue_code(openid, link.scope, snapshot)
        return redirect(add_query(link.redirect_uri, code=code, state=link.state))

    # -- /sns and /cgi-bin ---------------------------------------------------------

    def access_token(self, request: Request) -> dict[str, Any]:
        """Code → tokens; unionid only for snsapi_userinfo and a follower who has one."""
        body = self.sim.oauth.exchange(request.query)
        follower = self.sim.followers.get(body["openid"])
        if body["scope"] == "snsapi_userinfo" and follower and follower.unionid:
            body["unionid"] = follower.unionid
        return body

    def refresh_token(self, request: Request) -> dict[str, Any]:
        """Renew the web access token (no secret needed)."""
        return self.sim.oauth.refresh(request.query)

    def userinfo(self, request: Request) -> dict[str, Any]:
        """The follower's profile, as WeChat has served it since late 2021."""
        token = self.sim.oauth.check_access(request.query)
        if token.scope != "snsapi_userinfo" or token.snapshot:
            raise WeChatError(48001)
        follower = self.sim.followers[token.openid]
        lang = request.query.get("lang", "")
        body: dict[str, Any] = {
            "openid": follower.openid,
            "nickname": follower.nickname,
            "sex": 0,
            "language": lang if lang in LANGS else "zh_CN",
            "city": "",
            "province": "",
            "country": "",
            "headimgurl": self.sim.avatar_url(follower),
            "privilege": [],
        }
        if follower.unionid:
            body["unionid"] = follower.unionid
        return body

    def auth(self, request: Request) -> dict[str, Any]:
        """Is this web access token still good for this openid?"""
        self.sim.oauth.check_access(request.query)
        return {"errcode": 0, "errmsg": "ok"}

    def basic_token(self, request: Request) -> dict[str, Any]:
        """A new basic access token; the previous one lives 5 more minutes."""
        self.sim.basic_tokens.check_app(request.query)
        return self.sim.basic_tokens.token()

    def stable_token(self, request: Request) -> dict[str, Any]:
        """The shared basic access token, renewed only near expiry or when forced."""
        try:
            data = request.json()
        except ValueError as exc:
            raise WeChatError(47001) from exc
        self.sim.basic_tokens.check_app(data)
        return self.sim.basic_tokens.stable(data.get("force_refresh") is True)

    def callback_ip(self, request: Request) -> dict[str, Any]:
        """The cheapest cgi-bin call: a way to check a basic access token."""
        self.sim.basic_tokens.check(request.query.get("access_token", ""))
        return {"ip_list": ["127.0.0.1"]}

    def ticket(self, request: Request) -> dict[str, Any]:
        """A jsapi_ticket for the basic access token's account."""
        return self.sim.tickets.get(request.query)

    def create_menu(self, request: Request) -> dict[str, Any]:
        """Install the custom menu, checked as WeChat checks it."""
        self.sim.basic_tokens.check(request.query.get("access_token", ""))
        self.sim.menu.create(request.body)
        return {"errcode": 0, "errmsg": "ok"}

    def get_menu(self, request: Request) -> dict[str, Any]:
        """The installed menu, 46003 when there is none."""
        self.sim.basic_tokens.check(request.query.get("access_token", ""))
        return self.sim.menu.get()

    # -- controls for people and scripts ---------------------------------------------

    def phone(self, request: Request) -> Response:
        """The chat page (its script drives the /api controls)."""
        return self.static(dataclasses.replace(request, path="/static/phone.html"))

    def static(self, request: Request) -> Response:
        """A file of simulator/static."""
        found = static_file(request.path.removeprefix("/static/"))
        if found is None:
            return Response(404, b"not found")
        body, content_type = found
        return Response(200, body, content_type, [("Cache-Control", "no-cache")])

    def avatar(self, request: Request) -> Response:
        """A follower's or the account's avatar, at one of WeChat's sizes."""
        wanted = parse_path(request.path)
        name = wanted and self.sim.avatar_owner(wanted[0])
        if not wanted or name is None:
            return Response(404, b"not found")
        headers = [("Cache-Control", "max-age=86400")]
        return Response(200, svg(wanted[0], name, wanted[1]), "image/svg+xml", headers)

    def jssdk_script(self, request: Request) -> Response:
        """The stand-in for WeChat's jweixin-1.6.0.js, loaded by pages of any origin."""
        return self.static(dataclasses.replace(request, path="/static/jweixin-1.6.0.js"))

    def check_jssdk_config(self, request: Request) -> Response:
        """wx.config's check of a page's signature: `{"errMsg"}`. Called from the page's
        origin with a text/plain body, so no preflight; any origin may read the answer."""
        verdict = self.sim.tickets.check_config(request.json(), self.sim.js_domains)
        response = api_json({"errMsg": verdict})
        response.headers.append(("Access-Control-Allow-Origin", "*"))
        return response

    def show_menu(self, request: Request) -> Response:
        """The installed menu's buttons as created, for the phone page ([] when none)."""
        return api_json({"button": self.sim.menu.buttons})

    def tap_menu(self, request: Request) -> Response:
        """`{"openid", "button": [top] or [top, sub], "mode"?}`: tap a menu button (see
        Simulator.tap_menu)."""
        data = request.json()
        top, *sub = data["button"]
        mode = data.get("mode", "plain")
        return api_json(self.sim.tap_menu(data["openid"], top, *sub, mode=mode))

    def account(self, request: Request) -> Response:
        """What the phone page shows of the account, and the message modes on offer."""
        encrypted = self.sim.crypto is not None
        return api_json(
            {
                "name": self.sim.account_name,
                "gh_id": self.sim.gh_id,
                "headimgurl": self.sim.avatar_url(),
                "modes": list(reversed(MODES)) if encrypted else ["plain"],
            }
        )

    def _describe(self, follower: Follower) -> dict[str, Any]:
        return follower.as_dict(self.sim.avatar_url(follower))

    def list_followers(self, request: Request) -> Response:
        """All followers, and the one this browser acts as."""
        followers = [self._describe(f) for f in list(self.sim.followers.values())]
        current = self._browser_follower(request).openid
        return api_json({"followers": followers, "current": current})

    def choose_follower(self, request: Request) -> Response:
        """`{"openid"}` picks a follower, `{"nickname"?, "subscribed"?}` creates one;
        sets the cookie."""
        data = request.json()
        if data.get("openid"):
            follower = self.sim.followers.get(data["openid"])
            if follower is None:
                return api_json({"error": "unknown follower"}, 404)
        else:
            nickname = data.get("nickname")
            if nickname is not None and not isinstance(nickname, str):
                raise ValueError("nickname must be a string")
            subscribed = data.get("subscribed", True)
            if not isinstance(subscribed, bool):
                raise ValueError("subscribed must be true or false")
            follower = self.sim.add_follower(nickname and nickname.strip(), subscribed=subscribed)
        response = api_json(self._describe(follower))
        cookie = f"sim_openid={follower.openid}; Path=/; SameSite=Lax"
        response.headers.append(("Set-Cookie", cookie))
        return response

    def snapshot(self, request: Request) -> Response:
        """`{"openid", "on"}`: pages open as snapshots (快照页) for the follower, or no longer."""
        data = request.json()
        if not isinstance(data.get("on"), bool):
            raise ValueError("on must be true or false")
        follower = self.sim.snapshot_mode(data["openid"], data["on"])
        return api_json(self._describe(follower))

    def push(self, request: Request) -> Response:
        """Push a message or event to the bot (see Simulator.push)."""
        data = request.json()
        unknown = set(data) - set(PUSH_KEYS)
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        return api_json(self.sim.push(**data))

    def browse(self, request: Request) -> Response:
        """Open an authorize link in the simulated in-app browser."""
        data = request.json()
        result = self.sim.authorize(data["url"], data.get("openid"), data.get("decision", "allow"))
        return api_json({**dataclasses.asdict(result), "code": result.code})

    def advance_clock(self, request: Request) -> Response:
        """Move the simulator clock forward by `seconds`."""
        self.sim.clock.advance(float(request.json()["seconds"]))
        return api_json({"now": self.sim.clock.now()})

    def add_fault(self, request: Request) -> Response:
        """Script a fault: `{"path", "kind", "times"?, "seconds"?}`."""
        data = request.json()
        times, seconds = int(data.get("times", 1)), float(data.get("seconds", 0))
        self.sim.fault(data["path"], data["kind"], times, seconds)
        return api_json({"ok": True})

    def clear_faults(self, request: Request) -> Response:
        """Remove all faults."""
        self.sim.clear_faults()
        return api_json({"ok": True})

    def expire_tokens(self, request: Request) -> Response:
        """`{"kind": "access" | "refresh", "openid"?}`: expire web tokens now."""
        data = request.json()
        expire = {
            "access": self.sim.expire_access_tokens,
            "refresh": self.sim.expire_refresh_tokens,
        }[data["kind"]]
        expire(data.get("openid"))
        return api_json({"ok": True})

    def invalidate_tokens(self, request: Request) -> Response:
        """`{"openid"}`: the follower's tokens are revoked (42007 on refresh)."""
        self.sim.invalidate_tokens(request.json()["openid"])
        return api_json({"ok": True})

    def list_calls(self, request: Request) -> Response:
        """The call log, secrets masked."""
        calls = [
            {
                "path": path,
                "params": {k: "***" if k in SECRET_KEYS else v for k, v in params.items()},
            }
            for path, params in self.sim.calls
        ]
        return api_json({"calls": calls})
