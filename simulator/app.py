"""The Simulator: WeChat's state plus the controls tests and scripts use."""

import dataclasses
import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from simulator.authorize import add_query
from simulator.avatars import DEFAULT_SIZE, avatar_path
from simulator.clock import Clock
from simulator.crypto import MessageCrypto, signature
from simulator.followers import (
    DEFAULT_OPENID,
    FIXTURE_FOLLOWERS,
    Follower,
    avatar_id,
    new_openid,
    random_nickname,
)
from simulator.jssdk import Tickets
from simulator.menu import Menu
from simulator.oauth import BasicTokens, OAuthStore
from simulator.pages import error_page
from simulator.push import (
    ATTEMPTS,
    MODES,
    NO_SERVICE,
    ReplyError,
    build_message,
    deliver,
    envelope,
    read_reply,
    type_fields,
)
from simulator.routes import Router
from simulator.server import HTTPServerThread
from simulator.tls import server_context

log = logging.getLogger("simulator")

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9]{3,32}")
ACCOUNT_NAME = "OAuth体验号"
FAULT_KINDS = ("busy", "slow", "http_error", "garbage", "html", "truncated", "reset")
TICKET = re.compile(r'name="ticket" value="([^"]+)"')
ERRCODE = re.compile(r'name="wechat-errcode" content="(-?\d+)"')
Call = tuple[str, dict[str, Any]]
TAPPABLE = {"view": "VIEW", "click": "CLICK"}  # menu button type -> the event it pushes


@dataclass
class AuthorizeResult:
    """Where WeChat sends the browser after an authorize link, or the error it shows."""

    location: str | None
    errcode: int | None
    html: str

    def _param(self, name: str) -> str | None:
        query = parse_qs(urlsplit(self.location or "").query, keep_blank_values=True)
        return query.get(name, [None])[0]

    @property
    def code(self) -> str | None:
        """The code in the redirect, None on refusal."""
        return self._param("code")

    @property
    def state(self) -> str | None:
        """The state echoed in the redirect."""
        return self._param("state")


@dataclass
class Fault:
    """A scripted failure for the next `times` requests to one path."""

    kind: str
    times: int
    seconds: float


class CallLog(Sequence[Call]):
    """A thread-safe record of (path, params) for every WeChat-side request."""

    def __init__(self) -> None:
        self._items: list[Call] = []
        self._lock = threading.Lock()

    def append(self, call: Call) -> None:
        """Record one request."""
        with self._lock:
            self._items.append(call)

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._items.clear()

    def paths(self) -> list[str]:
        """Just the paths, in order."""
        return [path for path, _ in self]

    def __getitem__(self, index: Any) -> Any:
        with self._lock:
            return self._items[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[Call]:
        with self._lock:
            return iter(list(self._items))


class Simulator:
    """A local WeChat official-account platform: OAuth, API and pushes to the bot."""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        token: str,
        bot_url: str | None = None,
        callback_domain: str | None = None,
        aes_key: str = "",
        push_timeout: float = 5.0,
        gh_id: str | None = None,
        account_name: str = ACCOUNT_NAME,
        tls: tuple[str, str] | None = None,
        round_trip: float = 0.0,
    ) -> None:
        if not TOKEN_PATTERN.fullmatch(token):
            raise ValueError("token must be 3-32 letters or digits")
        self.app_id = app_id
        self.app_secret = app_secret
        self.token = token
        self.bot_url = bot_url
        self._callback_domain = callback_domain
        self.push_timeout = push_timeout
        # A CA file trusted for pushes to an https bot_url instead of the system's (a test
        # bot behind a TLS proxy with a certificate of its own); WeChat checks certificates.
        self.trusted_ca: str | None = None
        self.gh_id = gh_id or "gh_" + hashlib.sha1(app_id.encode()).hexdigest()[:12]  # noqa: S324
        self.account_name = account_name
        # HTTPS with this (certificate, key) pair of PEM files, as WeChat's servers speak
        # it; and the network's round trip (seconds) to sleep per request and handshake.
        self.tls = tls
        self.round_trip = round_trip
        self.crypto = MessageCrypto(aes_key, app_id) if aes_key else None
        self.clock = Clock()
        self.oauth = OAuthStore(self.clock, app_id, app_secret)
        self.basic_tokens = BasicTokens(self.clock, app_id, app_secret)
        self.tickets = Tickets(self.clock, app_id, self.basic_tokens)
        self.menu = Menu()
        self._js_domains: tuple[str, ...] | None = None
        self.followers = {f.openid: dataclasses.replace(f) for f in FIXTURE_FOLLOWERS}
        self.default_openid = DEFAULT_OPENID
        self.calls = CallLog()
        self.pushed = CallLog()  # every delivery to the bot: (MsgType, its fields)
        self.faults: dict[str, list[Fault]] = {}
        self._lock = threading.Lock()
        self._server: HTTPServerThread | None = None
        self._url: str | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "Simulator":
        """Serve on a background thread (port 0 picks a free one); a second call is a no-op."""
        if self._server is None:
            context = server_context(*self.tls) if self.tls else None
            self._server = HTTPServerThread(
                host, port, Router(self).handle, context, self.round_trip
            )
            bracketed = f"[{host}]" if ":" in host else host
            scheme = "https" if self.tls else "http"
            self._url = f"{scheme}://{bracketed}:{self._server.port}"
        return self

    def stop(self) -> None:
        """Stop serving; pending pushes and sockets close with it."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port actually bound."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return self._server.port

    @property
    def url(self) -> str:
        """Base URL for both open_base and api_base, e.g. http://127.0.0.1:PORT. It stays
        what it was once stopped (a request still being answered may need it)."""
        if self._url is None:
            raise RuntimeError("the simulator is not started")
        return self._url

    @property
    def callback_domain(self) -> str:
        """The 授权回调域名: as configured, else the host of bot_url."""
        return self._callback_domain or urlsplit(self.bot_url or "").hostname or "127.0.0.1"

    @callback_domain.setter
    def callback_domain(self, domain: str | None) -> None:
        self._callback_domain = domain

    @property
    def js_domains(self) -> tuple[str, ...]:
        """The JS接口安全域名 (hosts whose pages wx.config accepts): as set, else the
        callback domain."""
        return self._js_domains or (self.callback_domain,)

    @js_domains.setter
    def js_domains(self, domains: tuple[str, ...] | None) -> None:
        self._js_domains = domains

    @property
    def access_token_ttl(self) -> int:
        """Lifetime of new web access tokens (and the expires_in they report)."""
        return self.oauth.access_token_ttl

    @access_token_ttl.setter
    def access_token_ttl(self, seconds: int) -> None:
        self.oauth.access_token_ttl = seconds

    # -- followers -----------------------------------------------------------------

    def add_follower(
        self, nickname: str | None = None, openid: str | None = None, subscribed: bool = True
    ) -> Follower:
        """A new follower; nickname and openid are generated when not given. One who has
        not `subscribed` yet is someone who found the account and may now follow it."""
        with self._lock:
            openid = openid or new_openid()
            if openid in self.followers:
                raise ValueError(f"follower {openid} already exists")
            follower = Follower(openid, nickname or random_nickname(), subscribed=subscribed)
            self.followers[openid] = follower
        return follower

    def snapshot_mode(self, openid: str, on: bool = True) -> Follower:
        """Whether pages open as WeChat's snapshot (快照页) for the follower: a userinfo
        authorization then grants a virtual account (`is_snapshotuser: 1`, userinfo
        48001) until they tap 「使用完整服务」, which `on=False` stands for."""
        with self._lock:
            follower = self.followers.get(openid)
            if follower is None:
                raise ValueError(f"unknown follower {openid}")
            follower.snapshot = on
        return follower

    def avatar_url(self, follower: Follower | None = None, size: str = DEFAULT_SIZE) -> str:
        """The follower's `headimgurl` (the account's avatar when None), served here."""
        owner = follower.avatar_id if follower else avatar_id(self.gh_id)
        return self.url + avatar_path(owner, size)

    def avatar_owner(self, wanted: str) -> str | None:
        """The name whose first character the avatar `wanted` shows, None when unknown."""
        if wanted == avatar_id(self.gh_id):
            return self.account_name
        with self._lock:
            followers = list(self.followers.values())
        return next((f.nickname for f in followers if f.avatar_id == wanted), None)

    def _follower(self, openid: str) -> Follower:
        """The follower, created on first contact like a new user messaging the account."""
        with self._lock:
            known = self.followers.get(openid)
        return known or self.add_follower(openid=openid)

    # -- pushes --------------------------------------------------------------------

    def push(
        self,
        openid: str,
        type: str = "text",
        content: str | None = None,
        event: str | None = None,
        mode: str = "plain",
        msg_id: int | str | None = None,
        create_time: int | None = None,
        fields: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Deliver one message or event to the bot as WeChat would; report what came back."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if not self.bot_url:
            raise ValueError("bot_url is not set")
        body = type_fields(type, content, event)
        follower = self._follower(openid)
        if type == "event" and event in ("subscribe", "unsubscribe"):
            follower.subscribed = event == "subscribe"
        if type == "event":
            msg_id = None
        elif msg_id is None:
            msg_id = secrets.randbelow(9 * 10**18) + 10**18
        created = int(self.clock.now() if create_time is None else create_time)
        head = [("ToUserName", self.gh_id), ("FromUserName", openid), ("CreateTime", str(created))]
        message = build_message(head, type, body, fields or {}, msg_id)
        self.pushed.append((type, dict(message)))
        stamp = (str(int(self.clock.now())), str(secrets.randbelow(9 * 10**9) + 10**9))
        xml, extra = envelope(message, mode, self.crypto, self.token, stamp)
        query = {"signature": signature(self.token, *stamp), "timestamp": stamp[0]}
        query.update(nonce=stamp[1], openid=openid, **extra)
        response, attempts = deliver(
            add_query(self.bot_url, **query), xml.encode(), self.push_timeout, self.trusted_ca
        )
        result = {"status": None, "reply": None, "raw": "", "attempts": attempts}
        result.update(msg_id=msg_id, create_time=created)
        result.update(self._outcome(response, mode, follower.openid, type))
        log.info("push %s from %s (%s): %s", type, openid, mode, result.get("detail", "ok"))
        return result

    def _outcome(
        self, response: requests.Response | None, mode: str, openid: str, pushed: str
    ) -> dict:
        """status/raw/reply, or the error the follower would see and why."""
        if response is None:
            detail = f"no answer in {ATTEMPTS} attempts of {self.push_timeout:g} s"
            return {"error": NO_SERVICE, "detail": detail}
        outcome: dict[str, Any] = {"status": response.status_code}
        outcome["raw"] = response.content.decode("utf-8", "replace")
        if response.status_code != 200:
            return {**outcome, "error": NO_SERVICE, "detail": f"HTTP {response.status_code}"}
        try:
            parties = (openid, self.gh_id)
            outcome["reply"] = read_reply(
                response.content, mode, self.crypto, self.token, parties, pushed
            )
        except ReplyError as exc:
            outcome.update(error=NO_SERVICE, detail=str(exc))
        return outcome

    def tap_menu(
        self, openid: str, top: int, sub: int | None = None, mode: str = "plain"
    ) -> dict[str, Any]:
        """The follower taps a button of the account's menu: WeChat pushes `VIEW` (EventKey:
        the URL, which the phone then opens) or `CLICK` (EventKey: the key) to the bot.
        The push's outcome, with the button's `url` for a view button."""
        button = self.menu.button(top, sub)
        kind = button.get("type")
        if kind not in TAPPABLE:
            raise ValueError(f"the simulator taps click and view buttons, not {kind}")
        key = button["url"] if kind == "view" else button["key"]
        pushed = self.push(
            openid, "event", event=TAPPABLE[kind], mode=mode, fields={"EventKey": key}
        )
        return {**pushed, "url": button.get("url")}

    # -- the in-app browser --------------------------------------------------------

    def authorize(
        self, url: str, openid: str | None = None, decision: str = "allow"
    ) -> AuthorizeResult:
        """Open an authorize link as WeChat's in-app browser would, for `openid`."""
        if decision not in ("allow", "deny"):
            raise ValueError("decision must be allow or deny")
        if openid is not None and openid not in self.followers:
            raise ValueError(f"unknown follower {openid}")
        parts = urlsplit(url)
        if parts.fragment != "wechat_redirect":
            text = "该链接无法访问（缺少 #wechat_redirect）"
            return AuthorizeResult(None, 10003, error_page(10003, text))
        with requests.Session() as browser:
            browser.trust_env = False
            browser.verify = self.tls[0] if self.tls else True  # its own certificate
            if openid:
                browser.cookies.set("sim_openid", openid)
            page = browser.get(f"{self.url}{parts.path}?{parts.query}", allow_redirects=False)
            html = page.content.decode("utf-8")
            ticket = TICKET.search(html)
            if ticket:
                form = {"ticket": ticket.group(1), "decision": decision}
                confirm = f"{self.url}/connect/oauth2/authorize/confirm"
                page = browser.post(confirm, data=form, allow_redirects=False)
        errcode = ERRCODE.search(page.content.decode("utf-8"))
        return AuthorizeResult(
            page.headers.get("Location"), int(errcode.group(1)) if errcode else None, html
        )

    # -- scripted conditions -------------------------------------------------------

    def expire_access_tokens(self, openid: str | None = None) -> None:
        """Web access tokens (of one follower, or all) expire now: 42001."""
        self.oauth.expire("access", openid)

    def expire_refresh_tokens(self, openid: str | None = None) -> None:
        """Refresh tokens expire now: 42002, the follower must authorize again."""
        self.oauth.expire("refresh", openid)

    def invalidate_tokens(self, openid: str) -> None:
        """The follower changed their password: 42007 on refresh, 40001 elsewhere."""
        self.oauth.invalidate(openid)

    def fault(self, path: str, kind: str, times: int = 1, seconds: float = 0.0) -> None:
        """Make the next `times` requests to `path` fail as `kind` (see FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self.faults.setdefault(path, []).append(Fault(kind, times, seconds))

    def clear_faults(self) -> None:
        """Remove every scripted fault."""
        with self._lock:
            self.faults.clear()

    def take_fault(self, path: str) -> Fault | None:
        """The fault due for this request to `path`, used up by one."""
        with self._lock:
            queue = self.faults.get(path, [])
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault
