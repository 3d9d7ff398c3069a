"""WeChat sign-in in front of any web app: the samples in deploy/ run as shipped
(addresses, ports and paths swapped) with Debian's nginx and Caddy, in front of a
small app on loopback that answers with the headers it received. A follower walks
from a protected page through /login, WeChat's authorize page and the callback back
to that page, which then sees who they are; a client's own X-WeChat-* headers never
reach the app. And Traefik's forwarded headers, which only a server that passes them
on (gunicorn) lets through, give /auth the way back too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

import routes
from simulator.tls import self_signed
from tests import proxies
from tests.conftest import ROOT, free_port, write_config
from tests.proxies import swapped
from tests.test_cli import _wait_for

IDENTITY = ("x-wechat-openid", "x-wechat-scope", "x-wechat-unionid", "x-wechat-nickname")
WITH_UNIONID = "o6_bmasdasdsad6_2sgVt7hMZOPf"  # 张三🎉, a fixture follower with a unionid
# What a client may send to pass as someone: every identity header in several
# spellings, the bot's own answer header, a name of our family the bot never sends,
# and the underscore aliases CGI, WSGI and PHP read as the same variable.
FORGED = {
    "X-WeChat-OpenID": "o6_bForgedForgedForgedForged",
    "x-wechat-scope": "snsapi_userinfo",
    "X-WECHAT-UNIONID": "oForgedUnion",
    "X-Wechat-Nickname": "%E5%81%87",
    "X-WeChat-Login": "https://evil.example/",
    "X_WeChat_OpenID": "o6_bUnderscoreForgedForgedXX",
    "X_WECHAT_UNIONID": "oUnderscoreUnion",
}


# -- the protected app ----------------------------------------------------------------------


class App(ThreadingHTTPServer):
    """The operator's app: answers every request with the header names and values it
    received, as sent (no WSGI renaming), and the size of the body; remembers them."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[dict] = []
        super().__init__(("127.0.0.1", 0), _Echo)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = {
            "path": self.path,
            "headers": [[name, value] for name, value in self.headers.items()],
            "body": len(self.rfile.read(length)),
        }
        self.server.seen.append(received)
        body = json.dumps(received).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


def wechat_headers(received: dict) -> dict[str, list[str]]:
    """The X-WeChat-* (and X_WeChat_*) headers the app got, by lower-case name."""
    found: dict[str, list[str]] = {}
    for name, value in received["headers"]:
        if name.lower().replace("_", "-").startswith("x-wechat-"):
            found.setdefault(name.lower(), []).append(value)
    return found


# -- the proxies, as shipped ----------------------------------------------------------------


class Nginx(proxies.Nginx):
    """deploy/gateway-nginx.conf over TLS with a test certificate."""

    def __init__(self, prefix: Path, bot_port: int, app_port: int) -> None:
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        cert, key = self_signed(prefix, "app.example.com")
        self.verify = str(cert)
        site = swapped(
            "gateway-nginx.conf",
            {
                "listen 443 ssl;": f"listen 127.0.0.1:{port} ssl;",
                "listen [::]:443 ssl;": "",
                "/etc/letsencrypt/live/app.example.com/fullchain.pem": str(cert),
                "/etc/letsencrypt/live/app.example.com/privkey.pem": str(key),
                "server 127.0.0.1:8001;": f"server 127.0.0.1:{bot_port};",
                "server 127.0.0.1:8002;": "",
                "server 127.0.0.1:3000;": f"server 127.0.0.1:{app_port};",
            },
        )
        super().__init__(prefix, site)
        checked = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0 and "warn" not in checked.stderr, checked.stderr
        self.start(self.url, self.verify)


class Caddy(proxies.Caddy):
    """deploy/Caddyfile over plain HTTP."""

    verify = True

    def __init__(self, prefix: Path, bot_port: int, app_port: int) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        site = swapped(
            "Caddyfile",
            {
                "app.example.com {": f"{self.url} {{",
                "reverse_proxy 127.0.0.1:8001 127.0.0.1:8002 {": (
                    f"reverse_proxy 127.0.0.1:{bot_port} {{"
                ),
                "reverse_proxy 127.0.0.1:3000": f"reverse_proxy 127.0.0.1:{app_port}",
            },
        )
        super().__init__(prefix, site)
        self.start(self.url)


Proxy = Nginx | Caddy  # serving a sample in front of the app; `url` is the app's origin
PROXIES = {"nginx": Nginx, "caddy": Caddy}


@pytest.fixture
def app() -> Iterator[App]:
    running = App()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(params=list(PROXIES))
def proxy(request, tmp_path, bot, app) -> Iterator[Proxy]:
    running = PROXIES[request.param](tmp_path, bot.port, app.port)
    yield running
    running.stop()


def phone(proxy: Proxy) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would overrule the test certificate
    session.verify = proxy.verify
    return session


NO_FOLLOW = {"allow_redirects": False, "timeout": 15}


def sign_in_through(proxy: Proxy, sim, bot, session: requests.Session, page: str, openid: str):
    """From a protected page, not signed in, through WeChat and back: the page's answer."""
    asked = proxy.url + page
    first = session.get(asked, **NO_FOLLOW)
    assert first.status_code == 302, first.text
    sign_in = first.headers["Location"]
    wanted = requests.Request("GET", asked).prepare().url
    assert sign_in == f"{bot.url}{routes.LOGIN}?next={quote(wanted, safe='')}"
    to_wechat = session.get(sign_in, **NO_FOLLOW)
    assert to_wechat.status_code == 302
    callback = sim.authorize(to_wechat.headers["Location"], openid=openid).location
    landed = session.get(callback, **NO_FOLLOW)
    assert landed.status_code == 303 and landed.headers["Location"] == wanted
    return session.get(landed.headers["Location"], **NO_FOLLOW)


# -- the walk ------------------------------------------------------------------------------


def test_a_follower_walks_from_a_protected_page_through_wechat_back_to_it(sim, bot, app, proxy):
    session = phone(proxy)
    page = sign_in_through(proxy, sim, bot, session, "/orders/7?tab=二&x=1", WITH_UNIONID)
    assert page.status_code == 200
    follower = sim.followers[WITH_UNIONID]
    assert wechat_headers(page.json()) == {
        "x-wechat-openid": [WITH_UNIONID],
        "x-wechat-scope": ["snsapi_userinfo"],
        "x-wechat-unionid": [follower.unionid],
        "x-wechat-nickname": [quote(follower.nickname, safe="")],
    }
    assert [seen["path"] for seen in app.seen] == ["/orders/7?tab=%E4%BA%8C&x=1"]
    posted = session.post(proxy.url + "/orders/7", data=b"x" * 5000, **NO_FOLLOW)
    assert posted.status_code == 200 and posted.json()["body"] == 5000  # the body goes through


def test_signed_out_nothing_reaches_the_app_whatever_it_claims(sim, bot, app, proxy):
    for method in ("GET", "POST"):
        answer = phone(proxy).request(method, proxy.url + "/admin", headers=FORGED, **NO_FOLLOW)
        assert answer.status_code == 302
        assert answer.headers["Location"].startswith(bot.url + routes.LOGIN + "?next=")
    assert app.seen == []


def test_a_clients_own_identity_headers_never_reach_the_app(sim, bot, app, proxy):
    session = phone(proxy)
    openid = sim.default_openid  # 小明😀: no unionid, so the bot sends none
    assert sign_in_through(proxy, sim, bot, session, "/", openid).status_code == 200
    page = session.get(proxy.url + "/account", headers=FORGED, **NO_FOLLOW)
    assert page.status_code == 200
    received = wechat_headers(page.json())
    assert received["x-wechat-openid"] == [openid]
    assert "x-wechat-unionid" not in received and "x-wechat-login" not in received
    assert [name for name in received if "_" in name] == []
    assert set(received) <= set(IDENTITY)


def test_logout_ends_the_sign_in_behind_the_proxy(sim, bot, app, proxy):
    session = phone(proxy)
    assert sign_in_through(proxy, sim, bot, session, "/", sim.default_openid).status_code == 200
    out = session.get(bot.url + routes.LOGOUT, **NO_FOLLOW)
    assert out.status_code == 303
    again = session.get(proxy.url + "/", **NO_FOLLOW)
    assert again.status_code == 302 and again.headers["Location"].startswith(bot.url)


# -- Traefik's forwarded headers -------------------------------------------------------------


def test_traefiks_forwarded_headers_give_the_way_back_under_gunicorn(tmp_path, sim):
    """What Traefik's forwardAuth sends /auth: X-Forwarded-Proto, -Host and -Uri. gunicorn
    passes them to the bot (waitress drops the first two from an untrusted proxy)."""
    port = free_port()
    config = write_config(tmp_path / "config.toml", port, sim.url)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    environ |= {"BOT_CONFIG": str(config), "BOT_OAUTH_RETURN_HOSTS": "app.example.com"}
    command = [sys.executable, "-m", "gunicorn", "bot:app", "--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command, cwd=ROOT, env=environ, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        assert _wait_for(url + routes.HEALTH).status_code == 200
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com"}
        forwarded["X-Forwarded-Uri"] = "/orders?id=1"
        answer = requests.get(url + routes.AUTH, headers=forwarded, timeout=15)
        assert answer.status_code == 401
        back = quote("https://app.example.com/orders?id=1", safe="")
        assert answer.headers["X-WeChat-Login"] == f"{url}{routes.LOGIN}?next={back}"
        assert f'url={url}{routes.LOGIN}?next={back}"' in answer.text  # Traefik shows this page
    finally:
        process.terminate()
        process.wait(timeout=30)
