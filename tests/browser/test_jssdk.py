"""docs/jssdk-sample.html, the page operators copy, in a real browser: served from
loopback as the operator's own app would serve it, signed by the bot (/jssdk/config,
across origins), checked by the simulator's stand-in for WeChat's jweixin-1.6.0.js."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import Phone
from tests.conftest import ROOT

pytestmark = pytest.mark.browser

SAMPLE = ROOT / "docs" / "jssdk-sample.html"
WECHAT_JS = "https://res.wx.qq.com"
SAMPLE_BOT = 'const BOT = "https://bot.example.com";'


class OperatorsApp:
    """The operator's web app on loopback: the sample page at every path, with its two
    addresses pointed at the simulator (WeChat's JS file) and the test's bot."""

    def __init__(self, page: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def operators_app(sim, bot) -> Iterator[OperatorsApp]:
    text = SAMPLE.read_text("utf-8")
    assert WECHAT_JS in text and SAMPLE_BOT in text
    text = text.replace(WECHAT_JS, sim.url).replace(SAMPLE_BOT, f'const BOT = "{bot.url}";')
    app = OperatorsApp(text.encode())
    yield app
    app.stop()


def status(page: Page):
    return page.get_by_test_id("jssdk-status")


def test_a_signed_page_gets_wx_ready(phone: Phone, operators_app, sim):
    page = phone.page
    page.goto(f"http://127.0.0.1:{operators_app.port}/shop/order?id=42&from=menu#/cart")
    expect(status(page)).to_have_attribute("data-state", "ready")
    expect(status(page)).to_have_text("已连接微信")
    assert sim.calls.paths().count("/cgi-bin/ticket/getticket") == 1


def tamper(route: Route) -> None:
    answer = route.fetch()
    signed = answer.json()
    signed["signature"] = signed["signature"][::-1]
    route.fulfill(response=answer, body=json.dumps(signed))


def test_a_tampered_signature_gets_wx_error(phone: Phone, operators_app, bot):
    page = phone.page
    page.route(f"{bot.url}/jssdk/config*", tamper)
    page.goto(f"http://127.0.0.1:{operators_app.port}/shop/order?id=42")
    expect(status(page)).to_have_attribute("data-state", "error")
    expect(status(page)).to_contain_text("63002,invalid signature")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        # the scheme a TLS proxy's page does not have: WeChat refuses the signature
        (lambda url: url.replace("http://", "https://"), "63002,invalid signature"),
        # an HTML-escaped URL: the bot refuses to sign it
        (lambda url: url + "&amp;utm=menu", "&amp;"),
    ],
    ids=["scheme", "amp"],
)
def test_signing_another_url_than_the_pages_fails(
    phone: Phone, operators_app, bot, change: Callable[[str], str], said: str
):
    """What happens when the URL sent is not the page's own (the rules in the README)."""

    def send_another_url(route: Route) -> None:
        prefix, _, encoded = route.request.url.partition("?url=")
        route.continue_(url=f"{prefix}?url={quote(change(unquote(encoded)), safe='')}")

    page = phone.page
    page.route(f"{bot.url}/jssdk/config*", send_another_url)
    page.goto(f"http://127.0.0.1:{operators_app.port}/shop/order?id=42")
    expect(status(page)).to_have_attribute("data-state", "error")
    expect(status(page)).to_contain_text(said)


def test_a_page_on_a_host_the_bot_does_not_sign_gets_no_signature(phone: Phone, operators_app):
    page = phone.page
    page.goto(f"http://localhost:{operators_app.port}/shop/order")
    expect(status(page)).to_have_attribute("data-state", "error")
    expect(status(page)).to_contain_text("无法取得签名")
