"""The WeChat simulator, tested over real HTTP like any client or bot would use it."""

import base64
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import pytest
import requests
from lxml import etree

from simulator import Simulator
from simulator.crypto import CryptoError, MessageCrypto, signature
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "wechat-crypto.json").read_text("utf-8"))
APP_ID = "wxsandbox0000000001"
SECRET = "sandboxsecret0123456789abcdef012"
TOKEN = "sandboxtoken42"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CALLBACK = "http://127.0.0.1:8888/oauth/callback"
NO_SERVICE = "该公众号暂时无法提供服务，请稍后再试"


def sha1_sorted(*parts: str) -> str:
    """WeChat's signature, written independently of simulator.crypto."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324


def fields_of(xml: bytes | str) -> dict[str, str]:
    data = xml.encode() if isinstance(xml, str) else xml
    return {child.tag: child.text or "" for child in etree.fromstring(data)}


class EchoBot:
    """A tiny bot: checks WeChat's signatures, echoes text, records every delivery."""

    def __init__(self, crypto: MessageCrypto | None = None) -> None:
        self.crypto = crypto
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.delays: list[float] = []
        self.answer = "plain"  # plain | encrypted | tampered | success | invalid | forbidden
        bot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                body = self.rfile.read(int(self.headers["Content-Length"]))
                bot.received.append((query, body))
                if bot.delays:
                    time.sleep(bot.delays.pop(0))
                status, reply = bot.respond(query, body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *args: Any) -> None:
                pass  # the simulator hangs up on slow answers; that is the point

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/wechat"

    def respond(self, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if query["signature"] != sha1_sorted(TOKEN, query["timestamp"], query["nonce"]):
            return 403, b"bad signature"
        fields = fields_of(body)
        if query.get("encrypt_type") == "aes":
            parts = (TOKEN, query["timestamp"], query["nonce"], fields["Encrypt"])
            if query["msg_signature"] != sha1_sorted(*parts):
                return 403, b"bad msg_signature"
            fields = fields_of(self.crypto.decrypt(fields["Encrypt"]))
        if self.answer in ("success", "invalid", "forbidden"):
            return {"success": 200, "invalid": 200, "forbidden": 403}[self.answer], {
                "success": b"success",
                "invalid": b"<xml><ToUserName>",
                "forbidden": b"",
            }[self.answer]
        text = f"你说：{fields.get('Content', fields.get('Event', ''))}"
        text = text.replace("]]>", "]]]]><![CDATA[>")
        reply = (
            f"<xml><ToUserName><![CDATA[{fields['FromUserName']}]]></ToUserName>"
            f"<FromUserName><![CDATA[{fields['ToUserName']}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content></xml>"
        )
        if self.answer == "plain":
            return 200, reply.encode()
        return 200, self.envelope(reply).encode()

    def envelope(self, reply: str) -> str:
        stamp, nonce = str(int(time.time())), "1320562132"
        encrypted = self.crypto.encrypt(reply)
        sig = sha1_sorted(TOKEN, stamp, nonce, encrypted)
        if self.answer == "tampered":
            sig = "0" * 40
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{sig}]]></MsgSignature>"
            f"<TimeStamp>{stamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(APP_ID, SECRET, TOKEN, bot_url="http://127.0.0.1:8888/wechat") as running:
        yield running


@pytest.fixture
def bot() -> Iterator[EchoBot]:
    echo = EchoBot(MessageCrypto(AES_KEY, APP_ID))
    yield echo
    echo.stop()


@pytest.fixture
def aes_sim(bot: EchoBot) -> Iterator[Simulator]:
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url, aes_key=AES_KEY) as running:
        yield running


def authorize_url(
    sim: Simulator, scope: str = "snsapi_base", state: str = "s1", redirect: str = CALLBACK
) -> str:
    return (
        f"{sim.url}/connect/oauth2/authorize?appid={APP_ID}"
        f"&redirect_uri={quote(redirect, safe='')}&response_type=code"
        f"&scope={scope}&state={state}#wechat_redirect"
    )


def get(sim: Simulator, path: str, **params: Any) -> requests.Response:
    return requests.get(sim.url + path, params=params, allow_redirects=False, timeout=5)


def body(response: requests.Response) -> dict[str, Any]:
    """What a correct client does: decode the bytes as UTF-8 whatever the headers say."""
    return json.loads(response.content.decode("utf-8"))


def errcode(response: requests.Response) -> int:
    return body(response).get("errcode", 0)


def tokens(sim: Simulator, scope: str = "snsapi_userinfo", openid: str | None = None) -> dict:
    code = sim.authorize(authorize_url(sim, scope), openid=openid).code
    response = get(
        sim, "/sns/oauth2/access_token", appid=APP_ID, secret=SECRET, code=code,
        grant_type="authorization_code",
    )  # fmt: skip
    return body(response)


# -- crypto against the shared vectors ------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["url_verification"])
def test_url_verification_signature_vectors(case: dict[str, str]) -> None:
    assert signature(case["token"], case["timestamp"], case["nonce"]) == case["signature"]


def test_decrypt_vector() -> None:
    case = VECTORS["decrypt"]
    encrypted = fields_of(case["body"])["Encrypt"]
    parts = (VECTORS["token"], case["timestamp"], case["nonce"], encrypted)
    assert signature(*parts) == case["msg_signature"]
    plain = MessageCrypto(VECTORS["encoding_aes_key"], VECTORS["app_id"]).decrypt(encrypted)
    fields = fields_of(plain)
    for name, value in case["plaintext_fields"].items():
        assert fields[name] == value


def test_encrypt_vector_with_fixed_random() -> None:
    case = VECTORS["encrypt"]
    crypto = MessageCrypto(VECTORS["encoding_aes_key"], VECTORS["app_id"])
    encrypted = crypto.encrypt(case["reply"], random16=case["random16"].encode())
    expected = fields_of(case["expected"])
    assert encrypted == expected["Encrypt"]
    parts = (VECTORS["token"], case["timestamp"], case["nonce"], encrypted)
    assert signature(*parts) == expected["MsgSignature"]


def test_decrypt_checks_app_id_and_round_trips_chinese() -> None:
    crypto = MessageCrypto(AES_KEY, APP_ID)
    for message in ("", "x" * 11, "你好😀" * 50):  # 11 + 20 + 19 = 50: pad spans blocks
        assert crypto.decrypt(crypto.encrypt(message)) == message
    with pytest.raises(CryptoError):
        MessageCrypto(AES_KEY, "wxsomeoneelse00001").decrypt(crypto.encrypt("hi"))


def test_padding_is_a_full_block_when_aligned() -> None:
    crypto = MessageCrypto(AES_KEY, APP_ID)
    aligned = "x" * (64 - 20 - len(APP_ID))  # the plaintext is exactly 64 bytes
    assert len(base64.b64decode(crypto.encrypt(aligned))) == 96
    assert len(base64.b64decode(crypto.encrypt(aligned[1:]))) == 64


# -- followers -----------------------------------------------------------------------


def test_fixture_followers(sim: Simulator) -> None:
    followers = list(sim.followers.values())
    assert len(followers) >= 3
    assert sim.default_openid in sim.followers
    assert all(len(f.openid) == 28 and f.openid.startswith("o6_b") for f in followers)
    assert any(f.unionid for f in followers)
    assert any(ord(ch) > 0xFFFF for f in followers for ch in f.nickname)  # emoji
    new = sim.add_follower()
    assert sim.followers[new.openid] is new and len(new.openid) == 28
    assert any("\u4e00" <= ch <= "\u9fff" for ch in new.nickname)


# -- the authorize page --------------------------------------------------------------


def test_base_scope_redirects_at_once_with_code_and_state(sim: Simulator) -> None:
    response = get(sim, authorize_url(sim).split("#")[0][len(sim.url) :])
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["s1"] and len(query["code"][0]) >= 16


def test_redirect_uri_with_query_gets_ampersand(sim: Simulator) -> None:
    result = sim.authorize(authorize_url(sim, redirect=CALLBACK + "?next=%2Fme"))
    assert result.location.startswith(CALLBACK + "?next=%2Fme&code=")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("redirect_uri={cb}&appid={app}&response_type=code&scope=snsapi_base&state=a", 10003),
        ("appid={app}&redirect_uri={cb}&response_type=code&state=a&scope=snsapi_base", 10003),
        ("appid={app}&redirect_uri={cb}&response_type=code&scope=snsapi_base&state=a&x=1", 10003),
        ("appid={app}&redirect_uri={cb}&response_type=token&scope=snsapi_base&state=a", 10003),
        ("appid=&redirect_uri={cb}&response_type=code&scope=snsapi_base&state=a", 10012),
        ("appid=wxother&redirect_uri={cb}&response_type=code&scope=snsapi_base&state=a", 10012),
        ("appid={app}&redirect_uri=&response_type=code&scope=snsapi_base&state=a", 10011),
        ("appid={app}&redirect_uri={cb}&response_type=code&scope=&state=a", 10010),
        ("appid={app}&redirect_uri={cb}&response_type=code&scope=snsapi_all&state=a", 10010),
        ("appid={app}&redirect_uri={cb}&response_type=code&scope=snsapi_login&state=a", 10005),
        ("appid={app}&redirect_uri={cb}&response_type=code&scope=snsapi_base&state=a-b", 10013),
        ("appid={app}&redirect_uri={cb}&response_type=code&scope=snsapi_base&state=a%20b", 10013),
        ("appid={app}&redirect_uri={cb}&response_type=code&scope=snsapi_base&state=" + "a" * 129,
         10013),
        ("appid={app}&redirect_uri={cb2}&response_type=code&scope=snsapi_base&state=a", 10003),
        ("appid={app}&redirect_uri={sub}&response_type=code&scope=snsapi_base&state=a", 10003),
        ("appid={app}&redirect_uri=%2Foauth%2Fcallback&response_type=code&scope=snsapi_base",
         10003),
    ],
)  # fmt: skip
def test_authorize_errors_are_pages_with_errcode(sim: Simulator, query: str, expected: int) -> None:
    raw = query.format(
        app=APP_ID,
        cb=quote(CALLBACK, safe=""),
        cb2=quote(quote(CALLBACK, safe=""), safe=""),  # double encoding
        sub=quote("http://www.127.0.0.1:8888/oauth/callback", safe=""),
    )
    result = sim.authorize(f"{sim.url}/connect/oauth2/authorize?{raw}#wechat_redirect")
    assert result.location is None and result.errcode == expected
    assert f'<meta name="wechat-errcode" content="{expected}">' in result.html
    assert "错误码" in result.html
    response = get(sim, f"/connect/oauth2/authorize?{raw}")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")


def test_accepted_variants(sim: Simulator) -> None:
    base = authorize_url(sim).split("#")[0]
    for suffix in ("&forcePopup=true", "&connect_redirect=1", "&forceSnapShot=true"):
        assert sim.authorize(f"{base}{suffix}#wechat_redirect").code
    assert sim.authorize(authorize_url(sim, state="")).state == ""
    assert sim.authorize(authorize_url(sim, state="A1" * 64)).code  # 128 characters
    unencoded = authorize_url(sim).replace(quote(CALLBACK, safe=""), CALLBACK)
    assert sim.authorize(unencoded).code  # WeChat decodes once; a plain URL survives that


def test_domain_rules(sim: Simulator) -> None:
    sim.callback_domain = "bot.example.com"
    good = authorize_url(sim, redirect="https://bot.example.com/oauth/callback")
    assert sim.authorize(good).code
    for bad in (
        "https://bot.example.com:8443/oauth/callback",  # a port only on loopback
        "https://x.bot.example.com/oauth/callback",
        "https://example.com/oauth/callback",
        "ftp://bot.example.com/oauth/callback",
    ):
        assert sim.authorize(authorize_url(sim, redirect=bad)).errcode == 10003


def test_default_callback_domain_is_bot_host() -> None:
    sim = Simulator(APP_ID, SECRET, TOKEN, bot_url="http://localhost:8888/wechat")
    assert sim.callback_domain == "localhost"


def test_link_without_wechat_redirect_is_refused(sim: Simulator) -> None:
    result = sim.authorize(authorize_url(sim).split("#")[0])
    assert result.location is None and result.errcode is not None
    assert sim.calls.paths() == []


def test_userinfo_consent_allow_and_deny(sim: Simulator) -> None:
    page = get(sim, authorize_url(sim, "snsapi_userinfo").split("#")[0][len(sim.url) :])
    html = page.content.decode("utf-8")
    assert page.status_code == 200 and "允许" in html and "小明😀" in html
    assert "snsapi_userinfo" in html
    allowed = sim.authorize(authorize_url(sim, "snsapi_userinfo", state="xyz"))
    assert allowed.code and allowed.state == "xyz" and "小明😀" in allowed.html
    denied = sim.authorize(authorize_url(sim, "snsapi_userinfo", state="xyz"), decision="deny")
    assert denied.location == f"{CALLBACK}?state=xyz" and denied.code is None


def test_consent_page_escapes_nickname(sim: Simulator) -> None:
    tricky = next(f for f in sim.followers.values() if "<" in f.nickname)
    html = sim.authorize(authorize_url(sim, "snsapi_userinfo"), openid=tricky.openid).html
    assert "&lt;b&gt;熊猫&lt;/b&gt;&amp;🐼" in html and "<b>熊猫" not in html


def test_cookie_chooses_the_follower(sim: Simulator) -> None:
    other = next(f for f in sim.followers.values() if f.unionid)
    assert tokens(sim, openid=other.openid)["openid"] == other.openid
    assert tokens(sim)["openid"] == sim.default_openid
    chosen = requests.post(sim.url + "/api/follower", json={"openid": other.openid}, timeout=5)
    assert chosen.cookies["sim_openid"] == other.openid
    page = get(sim, authorize_url(sim).split("#")[0][len(sim.url) :])
    assert page.status_code == 302  # no cookie sent: default follower
    with_cookie = requests.get(
        authorize_url(sim).split("#")[0], cookies=chosen.cookies, allow_redirects=False, timeout=5
    )
    code = parse_qs(urlsplit(with_cookie.headers["Location"]).query)["code"][0]
    exchanged = get(
        sim, "/sns/oauth2/access_token", appid=APP_ID, secret=SECRET, code=code,
        grant_type="authorization_code",
    )  # fmt: skip
    assert body(exchanged)["openid"] == other.openid


# -- /sns/oauth2/access_token --------------------------------------------------------


def exchange(sim: Simulator, **overrides: str) -> requests.Response:
    params = {"appid": APP_ID, "secret": SECRET, "grant_type": "authorization_code"}
    params.update(overrides)
    return get(sim, "/sns/oauth2/access_token", **params)


def test_code_exchange_and_headers(sim: Simulator) -> None:
    response = exchange(sim, code=sim.authorize(authorize_url(sim)).code)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; encoding=utf-8"
    data = body(response)
    assert data["expires_in"] == 7200 and data["scope"] == "snsapi_base"
    assert data["openid"] == sim.default_openid and "unionid" not in data
    assert set(data) == {"access_token", "expires_in", "refresh_token", "openid", "scope"}


def test_unionid_only_for_userinfo_scope(sim: Simulator) -> None:
    other = next(f for f in sim.followers.values() if f.unionid)
    assert tokens(sim, "snsapi_userinfo", other.openid)["unionid"] == other.unionid
    assert "unionid" not in tokens(sim, "snsapi_base", other.openid)


def test_code_errors(sim: Simulator) -> None:
    code = sim.authorize(authorize_url(sim)).code
    assert errcode(exchange(sim, code=code, appid="wxother")) == 40013
    assert errcode(exchange(sim, code=code, secret="wrong")) == 40125
    assert errcode(exchange(sim, code=code, grant_type="client_credential")) == 40002
    assert errcode(exchange(sim)) == 41008
    assert errcode(exchange(sim, code="nosuchcode")) == 40029
    first = exchange(sim, code=code)
    assert "access_token" in body(first)
    again = exchange(sim, code=code)
    assert errcode(again) == 40163
    assert again.status_code == 200 and again.headers["Content-Type"] == "text/plain"
    errmsg = body(again)["errmsg"]
    assert errmsg.startswith("code been used, rid: ") and len(errmsg.split("-")) == 3


def test_code_expires_after_five_minutes(sim: Simulator) -> None:
    fresh, stale = (sim.authorize(authorize_url(sim)).code for _ in range(2))
    sim.clock.advance(299)
    assert "access_token" in body(exchange(sim, code=fresh))
    sim.clock.advance(2)
    assert errcode(exchange(sim, code=stale)) == 42003


# -- /sns/userinfo and /sns/auth -----------------------------------------------------


def test_userinfo_body_and_encoding(sim: Simulator) -> None:
    granted = tokens(sim)
    response = get(
        sim, "/sns/userinfo", access_token=granted["access_token"], openid=granted["openid"],
        lang="en",
    )  # fmt: skip
    assert "小明😀".encode() in response.content  # raw UTF-8, no \u escapes
    served_here = sim.url.replace("/", "\\/") + "\\/mmopen\\/vi_32\\/"
    assert served_here.encode() in response.content  # slashes escaped as WeChat does
    assert b"\\u" not in response.content
    data = body(response)
    assert data["nickname"] == "小明😀" and data["language"] == "en"
    assert data["sex"] == 0 and data["privilege"] == [] and data["headimgurl"].endswith("/132")
    assert data["province"] == data["city"] == data["country"] == ""
    assert response.json()["nickname"] != "小明😀"  # what a naive client gets


def test_userinfo_errors(sim: Simulator) -> None:
    granted = tokens(sim)
    token, openid = granted["access_token"], granted["openid"]
    assert errcode(get(sim, "/sns/userinfo", access_token="nope", openid=openid)) == 40001
    other = next(o for o in sim.followers if o != openid)
    assert errcode(get(sim, "/sns/userinfo", access_token=token, openid=other)) == 40003
    base = tokens(sim, "snsapi_base")
    base_info = get(sim, "/sns/userinfo", access_token=base["access_token"], openid=openid)
    assert errcode(base_info) == 48001
    sim.expire_access_tokens(openid)
    assert errcode(get(sim, "/sns/userinfo", access_token=token, openid=openid)) == 42001


# -- the snapshot page (快照页) --------------------------------------------------------


def test_a_follower_in_snapshot_mode_gets_a_virtual_account(sim: Simulator) -> None:
    real = sim.followers[sim.default_openid]
    sim.snapshot_mode(real.openid)
    page = sim.authorize(authorize_url(sim, "snsapi_userinfo"), openid=real.openid)
    assert page.location and page.code  # no consent page: the snapshot grants at once
    granted = body(exchange(sim, code=page.code))
    assert granted["is_snapshotuser"] == 1
    assert granted["openid"] != real.openid and granted["openid"] not in sim.followers
    assert granted["openid"] == tokens(sim, openid=real.openid)["openid"]  # stable
    info = get(sim, "/sns/userinfo", access_token=granted["access_token"], openid=granted["openid"])
    assert errcode(info) == 48001
    checked = get(sim, "/sns/auth", access_token=granted["access_token"], openid=granted["openid"])
    assert errcode(checked) == 0
    assert "is_snapshotuser" not in body(refresh(sim, granted["refresh_token"]))
    assert "is_snapshotuser" not in tokens(sim, "snsapi_base", real.openid)  # userinfo only


def test_tapping_use_the_full_service_leaves_snapshot_mode(sim: Simulator) -> None:
    openid = sim.default_openid
    assert sim.snapshot_mode(openid).snapshot
    assert not sim.snapshot_mode(openid, on=False).snapshot
    page = sim.authorize(authorize_url(sim, "snsapi_userinfo"), openid=openid)
    granted = body(exchange(sim, code=page.code))
    assert granted["openid"] == openid and "is_snapshotuser" not in granted


def test_force_snapshot_in_the_link_shows_the_snapshot_page(sim: Simulator) -> None:
    link = authorize_url(sim, "snsapi_userinfo").replace("#", "&forceSnapShot=true#")
    granted = body(exchange(sim, code=sim.authorize(link).code))
    assert granted["is_snapshotuser"] == 1 and granted["openid"] != sim.default_openid


def test_snapshot_mode_over_http(sim: Simulator) -> None:
    def post(**payload: Any) -> requests.Response:
        return requests.post(sim.url + "/api/snapshot", json=payload, timeout=5)

    turned = post(openid=sim.default_openid, on=True)
    assert turned.status_code == 200 and turned.json()["snapshot"] is True
    listed = requests.get(sim.url + "/api/followers", timeout=5).json()["followers"]
    assert {f["openid"]: f["snapshot"] for f in listed}[sim.default_openid] is True
    assert post(openid=sim.default_openid, on=False).json()["snapshot"] is False
    assert post(openid="o6_bnobody", on=True).status_code == 400
    assert post(openid=sim.default_openid, on="yes").status_code == 400
    assert post(on=True).status_code == 400


def test_sns_auth(sim: Simulator) -> None:
    granted = tokens(sim, "snsapi_base")
    token, openid = granted["access_token"], granted["openid"]
    ok = get(sim, "/sns/auth", access_token=token, openid=openid)
    assert body(ok) == {"errcode": 0, "errmsg": "ok"}
    assert errcode(get(sim, "/sns/auth", access_token="nope", openid=openid)) == 40001
    other = next(o for o in sim.followers if o != openid)
    assert errcode(get(sim, "/sns/auth", access_token=token, openid=other)) == 40003
    sim.clock.advance(7200)
    assert errcode(get(sim, "/sns/auth", access_token=token, openid=openid)) == 42001


def test_access_token_ttl(sim: Simulator) -> None:
    sim.access_token_ttl = 60
    granted = tokens(sim)
    assert granted["expires_in"] == 60
    sim.clock.advance(61)
    auth = get(sim, "/sns/auth", access_token=granted["access_token"], openid=granted["openid"])
    assert errcode(auth) == 42001


# -- /sns/oauth2/refresh_token -------------------------------------------------------


def refresh(sim: Simulator, token: str, **overrides: str) -> requests.Response:
    params = {"appid": APP_ID, "grant_type": "refresh_token", "refresh_token": token}
    params.update(overrides)
    return get(sim, "/sns/oauth2/refresh_token", **params)


def test_refresh_renews_live_token_and_replaces_expired_one(sim: Simulator) -> None:
    granted = tokens(sim)
    sim.clock.advance(7000)
    renewed = body(refresh(sim, granted["refresh_token"]))
    assert renewed["access_token"] == granted["access_token"]  # still live: extended
    assert renewed["refresh_token"] == granted["refresh_token"]
    assert renewed["expires_in"] == 7200 and renewed["openid"] == granted["openid"]
    sim.clock.advance(7000)  # past the original 7200 s, still inside the renewal
    auth = get(sim, "/sns/auth", access_token=granted["access_token"], openid=granted["openid"])
    assert errcode(auth) == 0
    sim.expire_access_tokens()
    replaced = body(refresh(sim, granted["refresh_token"]))
    assert replaced["access_token"] != granted["access_token"]
    fresh = get(sim, "/sns/auth", access_token=replaced["access_token"], openid=granted["openid"])
    assert errcode(fresh) == 0


def test_refresh_errors(sim: Simulator) -> None:
    granted = tokens(sim)
    assert errcode(refresh(sim, "nope")) == 40030
    assert errcode(refresh(sim, granted["refresh_token"], appid="wxother")) == 40013
    assert errcode(refresh(sim, granted["refresh_token"], grant_type="code")) == 40002
    sim.clock.advance(30 * 86400)
    assert errcode(refresh(sim, granted["refresh_token"])) == 42002


def test_expire_refresh_tokens(sim: Simulator) -> None:
    granted = tokens(sim)
    sim.expire_refresh_tokens(granted["openid"])
    assert errcode(refresh(sim, granted["refresh_token"])) == 42002


def test_invalidated_tokens(sim: Simulator) -> None:
    granted = tokens(sim)
    token, openid = granted["access_token"], granted["openid"]
    sim.invalidate_tokens(openid)
    assert errcode(refresh(sim, granted["refresh_token"])) == 42007
    assert errcode(get(sim, "/sns/userinfo", access_token=token, openid=openid)) == 40001
    assert errcode(get(sim, "/sns/auth", access_token=token, openid=openid)) == 40001
    assert "access_token" in tokens(sim)  # a new authorization works again


# -- basic access tokens -------------------------------------------------------------


def basic(sim: Simulator, **overrides: str) -> requests.Response:
    params = {"grant_type": "client_credential", "appid": APP_ID, "secret": SECRET}
    params.update(overrides)
    return get(sim, "/cgi-bin/token", **params)


def check_basic(sim: Simulator, token: str) -> int:
    return errcode(get(sim, "/cgi-bin/getcallbackip", access_token=token))


def test_cgi_bin_token_overlap(sim: Simulator) -> None:
    first = body(basic(sim))
    assert first["expires_in"] == 7200
    second = body(basic(sim))
    assert second["access_token"] != first["access_token"]
    sim.clock.advance(299)
    assert check_basic(sim, first["access_token"]) == 0
    sim.clock.advance(2)
    assert check_basic(sim, first["access_token"]) == 40001
    assert check_basic(sim, second["access_token"]) == 0
    sim.clock.advance(7200)
    assert check_basic(sim, second["access_token"]) == 42001


def test_cgi_bin_token_errors(sim: Simulator) -> None:
    assert errcode(basic(sim, appid="wxother")) == 40013
    assert errcode(basic(sim, secret="wrong")) == 40125
    assert errcode(basic(sim, grant_type="authorization_code")) == 40002


def stable_token(sim: Simulator, **extra: Any) -> dict[str, Any]:
    payload = {"grant_type": "client_credential", "appid": APP_ID, "secret": SECRET, **extra}
    return body(requests.post(sim.url + "/cgi-bin/stable_token", json=payload, timeout=5))


def test_stable_token(sim: Simulator) -> None:
    def stable(**extra: Any) -> dict[str, Any]:
        return stable_token(sim, **extra)

    first = stable()
    assert first["expires_in"] == 7200
    sim.clock.advance(100)
    again = stable()
    assert again["access_token"] == first["access_token"]
    assert 7090 < again["expires_in"] <= 7100  # what is left of it
    sim.clock.advance(6850)  # under 5 minutes left: a new one, the old still works
    renewed = stable()
    assert renewed["access_token"] != first["access_token"]
    assert renewed["expires_in"] == 7200
    assert check_basic(sim, first["access_token"]) == 0
    forced = stable(force_refresh=True)
    assert forced["access_token"] != renewed["access_token"]
    assert check_basic(sim, renewed["access_token"]) == 40001
    assert stable(secret="wrong")["errcode"] == 40125
    assert errcode(get(sim, "/cgi-bin/stable_token")) == 43002
    garbled = requests.post(sim.url + "/cgi-bin/stable_token", data=b"{", timeout=5)
    assert errcode(garbled) == 47001
    assert stable(appid="wxother")["errcode"] == 40013
    assert stable(grant_type="authorization_code")["errcode"] == 40002


def test_stable_token_force_refresh_is_30_s_apart_and_20_a_day(sim: Simulator) -> None:
    forced = stable_token(sim, force_refresh=True)["access_token"]
    sim.clock.advance(29)
    assert stable_token(sim, force_refresh=True)["errcode"] == 45011
    assert stable_token(sim)["access_token"] == forced  # normal mode is not limited by it
    for _ in range(19):
        sim.clock.advance(30)
        assert "access_token" in stable_token(sim, force_refresh=True)
    sim.clock.advance(30)
    assert stable_token(sim, force_refresh=True)["errcode"] == 45009  # the 21st of the day
    assert "access_token" in stable_token(sim)
    sim.clock.advance(86400)
    assert "access_token" in stable_token(sim, force_refresh=True)  # a new day


def test_stable_token_calls_are_limited_per_minute(sim: Simulator) -> None:
    sim.basic_tokens.quotas.per_minute = 3  # 10,000 in WeChat's documentation
    answers = [stable_token(sim) for _ in range(4)]
    assert [a.get("errcode", 0) for a in answers] == [0, 0, 0, 45011]
    sim.clock.advance(60)
    assert "access_token" in stable_token(sim)
    assert sim.calls.paths().count("/cgi-bin/stable_token") == 5  # the call log counts them


# -- pushes --------------------------------------------------------------------------


def test_plain_text_push(bot: EchoBot) -> None:
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url) as sim:
        result = sim.push(sim.default_openid, content="你好 ]]> 世界")
    assert result["status"] == 200 and result["attempts"] == 1 and "error" not in result
    assert result["reply"]["Content"] == "你说：你好 ]]> 世界"
    assert result["reply"]["ToUserName"] == sim.default_openid
    assert all(isinstance(value, str) for value in result["reply"].values())
    assert "你说" in result["raw"]
    query, raw = bot.received[0]
    assert set(query) == {"signature", "timestamp", "nonce", "openid"}
    assert query["openid"] == sim.default_openid
    assert b"]]]]><![CDATA[>" in raw
    fields = fields_of(raw)
    assert list(fields) == [
        "ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId",
    ]  # fmt: skip
    assert fields["ToUserName"] == sim.gh_id and fields["ToUserName"].startswith("gh_")
    assert int(fields["MsgId"]) == result["msg_id"] and 0 < result["msg_id"] < 2**64
    assert int(fields["CreateTime"]) == result["create_time"]


def test_event_push_and_replay(bot: EchoBot) -> None:
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url) as sim:
        result = sim.push(sim.default_openid, type="event", event="subscribe")
        replay = sim.push(sim.default_openid, content="hi", msg_id=42, create_time=1700000000)
        image = sim.push(sim.default_openid, type="image")
        qr = sim.push(sim.default_openid, "event", event="SCAN", fields={"EventKey": "123"})
    fields = fields_of(bot.received[0][1])
    assert fields["MsgType"] == "event" and fields["Event"] == "subscribe"
    assert fields["EventKey"] == "" and "MsgId" not in fields and result["msg_id"] is None
    assert result["reply"]["Content"] == "你说：subscribe"
    replayed = fields_of(bot.received[1][1])
    assert replayed["MsgId"] == "42" and replayed["CreateTime"] == "1700000000"
    assert replay["msg_id"] == 42
    pic = fields_of(bot.received[2][1])
    assert pic["MsgType"] == "image" and pic["PicUrl"].startswith("http") and pic["MediaId"]
    assert image["status"] == 200
    assert fields_of(bot.received[3][1])["EventKey"] == "123" and qr["status"] == 200


def test_unknown_openid_becomes_a_follower(bot: EchoBot) -> None:
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url) as sim:
        newcomer = "o6_bNewcomer00000000000000001"[:28]
        sim.push(newcomer, content="hi")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in sim.followers[newcomer].nickname)


@pytest.mark.parametrize(
    ("answer", "reply", "error"),
    [("success", None, None), ("invalid", None, NO_SERVICE), ("forbidden", None, NO_SERVICE)],
)
def test_no_reply_and_bad_replies(bot: EchoBot, answer: str, reply: Any, error: Any) -> None:
    bot.answer = answer
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url) as sim:
        result = sim.push(sim.default_openid, content="hi")
    assert result["reply"] == reply and result.get("error") == error


def test_reply_to_wrong_user_is_rejected(bot: EchoBot) -> None:
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url, gh_id="gh_aaaaaaaaaaaa") as sim:
        bot.respond = lambda q, b: (200, b"<xml><ToUserName>x</ToUserName></xml>")  # type: ignore[method-assign]
        result = sim.push(sim.default_openid, content="hi")
    assert result["reply"] is None and result["error"] == NO_SERVICE and result["detail"]


def test_safe_mode_round_trip(bot: EchoBot, aes_sim: Simulator) -> None:
    bot.answer = "encrypted"
    result = aes_sim.push(aes_sim.default_openid, content="加密的你好", mode="safe")
    assert result["reply"]["Content"] == "你说：加密的你好" and "error" not in result
    assert "<Encrypt>" in result["raw"]
    query, raw = bot.received[0]
    assert query["encrypt_type"] == "aes" and "msg_signature" in query
    assert list(fields_of(raw)) == ["ToUserName", "Encrypt"]


def test_safe_mode_rejects_plain_and_tampered_replies(bot: EchoBot, aes_sim: Simulator) -> None:
    for answer in ("plain", "tampered"):
        bot.answer = answer
        result = aes_sim.push(aes_sim.default_openid, content="hi", mode="safe")
        assert result["reply"] is None and result["error"] == NO_SERVICE


def test_compatible_mode(bot: EchoBot, aes_sim: Simulator) -> None:
    for answer in ("plain", "encrypted"):
        bot.answer = answer
        result = aes_sim.push(aes_sim.default_openid, content="兼容", mode="compatible")
        assert result["reply"]["Content"] == "你说：兼容"
    fields = fields_of(bot.received[0][1])
    assert fields["Content"] == "兼容" and fields["Encrypt"]
    inner = fields_of(MessageCrypto(AES_KEY, APP_ID).decrypt(fields["Encrypt"]))
    assert inner["Content"] == "兼容" and inner["MsgId"] == fields["MsgId"]


def test_encrypted_modes_need_a_key(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="aes_key"):
        sim.push(sim.default_openid, content="hi", mode="safe")


def test_push_retries_identical_delivery_on_timeout(bot: EchoBot) -> None:
    bot.delays = [0.5, 0.5]
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url, push_timeout=0.2) as sim:
        result = sim.push(sim.default_openid, content="重试")
    assert result["attempts"] == 3 and result["reply"]["Content"] == "你说：重试"
    assert len(bot.received) == 3 and len(set(map(repr, bot.received))) == 1


def test_push_gives_up_after_three_attempts(bot: EchoBot) -> None:
    bot.delays = [0.5, 0.5, 0.5]
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url, push_timeout=0.2) as sim:
        result = sim.push(sim.default_openid, content="hi")
    assert result["status"] is None and result["reply"] is None and result["attempts"] == 3
    assert result["error"] == NO_SERVICE and len(bot.received) == 3


def test_push_to_a_closed_port(sim: Simulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        sim.bot_url = f"http://127.0.0.1:{probe.getsockname()[1]}/wechat"
    result = sim.push(sim.default_openid, content="hi")
    assert result["status"] is None and result["attempts"] == 3


def test_push_over_http(bot: EchoBot, aes_sim: Simulator) -> None:
    payload = {"openid": aes_sim.default_openid, "content": "你好", "mode": "compatible"}
    response = requests.post(aes_sim.url + "/api/push", json=payload, timeout=10)
    assert response.json()["reply"]["Content"] == "你说：你好"
    bad = requests.post(aes_sim.url + "/api/push", json={"openid": "x", "mode": "x"}, timeout=5)
    assert bad.status_code == 400 and "mode" in bad.json()["error"]


# -- what WeChat makes of each reply type ----------------------------------------------


def answer_with(bot: EchoBot, msg_type: str, inner: str) -> None:
    """The bot answers every push with a `msg_type` reply whose fields after MsgType
    are `inner`, addressed back to the sender."""

    def respond(query: dict[str, str], body: bytes) -> tuple[int, bytes]:
        fields = fields_of(body)
        return 200, (
            f"<xml><ToUserName><![CDATA[{fields['FromUserName']}]]></ToUserName>"
            f"<FromUserName><![CDATA[{fields['ToUserName']}]]></FromUserName>"
            f"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
            f"{inner}</xml>"
        ).encode()

    bot.respond = respond  # type: ignore[method-assign]


def news(count: int, declared: object = None) -> str:
    items = "".join(
        f"<item><Title><![CDATA[标题{n} ]]]]><![CDATA[>]]></Title>"
        f"<Description>描述{n}</Description><PicUrl><![CDATA[http://img/{n}]]></PicUrl>"
        f"<Url><![CDATA[http://url/{n}]]></Url></item>"
        for n in range(count)
    )
    declared = count if declared is None else declared
    return f"<ArticleCount>{declared}</ArticleCount><Articles>{items}</Articles>"


def article(n: int) -> dict[str, str]:
    return {"Title": f"标题{n} ]]>", "Description": f"描述{n}",
            "PicUrl": f"http://img/{n}", "Url": f"http://url/{n}"}  # fmt: skip


def test_news_shows_one_article_for_a_message_up_to_eight_for_an_event(bot: EchoBot) -> None:
    answer_with(bot, "news", news(10))
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url) as sim:
        to_text = sim.push(sim.default_openid, content="hi")
        to_link = sim.push(sim.default_openid, type="link")
        to_click = sim.push(sim.default_openid, type="event", event="CLICK")
        answer_with(bot, "news", news(1))
        single = sim.push(sim.default_openid, type="event", event="subscribe")
    assert "error" not in to_text and to_text["reply"]["ArticleCount"] == "10"
    assert to_text["reply"]["Articles"] == to_link["reply"]["Articles"] == [article(0)]
    assert to_click["reply"]["Articles"] == [article(n) for n in range(8)]
    assert single["reply"]["Articles"] == [article(0)]


@pytest.mark.parametrize(
    ("msg_type", "inner", "shown"),
    [
        ("image", "<Image><MediaId><![CDATA[m1]]></MediaId></Image>", {"Image": {"MediaId": "m1"}}),
        ("voice", "<Voice><MediaId>v1</MediaId></Voice>", {"Voice": {"MediaId": "v1"}}),
        ("video", "<Video><MediaId>v2</MediaId><Title>片名</Title></Video>",
         {"Video": {"MediaId": "v2", "Title": "片名"}}),
        ("music", "<Music><Title>歌</Title><MusicUrl>http://m</MusicUrl></Music>",
         {"Music": {"Title": "歌", "MusicUrl": "http://m"}}),
        ("transfer_customer_service", "<TransInfo><KfAccount>kf@gh</KfAccount></TransInfo>",
         {"TransInfo": {"KfAccount": "kf@gh"}}),
        ("transfer_customer_service", "", {}),
    ],
)  # fmt: skip
def test_media_music_and_transfer_replies(
    bot: EchoBot, msg_type: str, inner: str, shown: dict[str, Any]
) -> None:
    answer_with(bot, msg_type, inner)
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url) as sim:
        result = sim.push(sim.default_openid, content="hi")
    assert "error" not in result, result
    assert result["reply"]["MsgType"] == msg_type
    assert {key: result["reply"][key] for key in shown} == shown


@pytest.mark.parametrize(
    ("msg_type", "inner", "detail"),
    [
        ("image", "", "Image/MediaId"),
        ("image", "<Image><MediaId></MediaId></Image>", "Image/MediaId"),
        ("voice", "<Voice>v1</Voice>", "Voice/MediaId"),
        ("video", "<MediaId>v2</MediaId>", "Video/MediaId"),
        ("music", "<Title>歌</Title>", "Music"),
        ("news", news(0), "item"),
        ("news", "<ArticleCount>1</ArticleCount><Articles><item>x</item></Articles>", "item"),
        ("news", news(3, declared=2), "ArticleCount"),
        ("news", news(1, declared="one"), "ArticleCount"),
        ("text", "<Content><b>no text</b></Content>", "Content"),
        ("markdown", "<Content>x</Content>", "MsgType"),
    ],
)  # fmt: skip
def test_replies_wechat_would_not_show(
    bot: EchoBot, msg_type: str, inner: str, detail: str
) -> None:
    answer_with(bot, msg_type, inner)
    with Simulator(APP_ID, SECRET, TOKEN, bot_url=bot.url) as sim:
        result = sim.push(sim.default_openid, content="hi")
    assert result["reply"] is None and result["error"] == NO_SERVICE
    assert detail in result["detail"]


# -- faults and the call log ---------------------------------------------------------


def test_faults(sim: Simulator) -> None:
    sim.fault("/cgi-bin/token", "busy", times=2)
    for _ in range(2):
        busy = basic(sim)
        assert errcode(busy) == -1 and busy.headers["Content-Type"] == "text/plain"
    assert "access_token" in body(basic(sim))
    sim.fault("/cgi-bin/token", "http_error")
    gateway = basic(sim)
    assert gateway.status_code == 502 and b"<html>" in gateway.content
    sim.fault("/cgi-bin/token", "garbage")
    garbage = basic(sim)
    assert garbage.status_code == 200
    with pytest.raises(ValueError):
        body(garbage)
    sim.fault("/cgi-bin/token", "reset")
    with pytest.raises(requests.ConnectionError):
        basic(sim)
    sim.fault("/cgi-bin/token", "slow", seconds=0.3)
    started = time.monotonic()
    assert "access_token" in body(basic(sim))
    assert time.monotonic() - started >= 0.3
    sim.fault("/cgi-bin/token", "busy", times=5)
    sim.clear_faults()
    assert "access_token" in body(basic(sim))
    with pytest.raises(ValueError):
        sim.fault("/cgi-bin/token", "meltdown")


def test_call_log(sim: Simulator) -> None:
    granted = tokens(sim, "snsapi_base")
    get(sim, "/sns/auth", access_token=granted["access_token"], openid=granted["openid"])
    paths = sim.calls.paths()
    assert paths == ["/connect/oauth2/authorize", "/sns/oauth2/access_token", "/sns/auth"]
    assert "/sns/userinfo" not in paths
    assert sim.calls[1][1]["secret"] == SECRET and sim.calls[1][1]["grant_type"]
    over_http = requests.get(sim.url + "/api/calls", timeout=5).json()["calls"]
    assert over_http[1]["params"]["secret"] == "***"
    sim.calls.clear()
    assert len(sim.calls) == 0


# -- controls over HTTP -------------------------------------------------------------------


def test_http_controls(sim: Simulator) -> None:
    def post(route: str, **payload: Any) -> requests.Response:
        return requests.post(sim.url + route, json=payload, timeout=5)

    created = post("/api/follower", nickname="新来的🐣").json()
    assert created["nickname"] == "新来的🐣" and created["openid"] in sim.followers
    listed = requests.get(sim.url + "/api/followers", timeout=5).json()
    assert created["openid"] in {f["openid"] for f in listed["followers"]}
    assert post("/api/follower", openid="o6_bnobody").status_code == 404
    granted = tokens(sim)
    post("/api/tokens/expire", kind="access")
    auth = get(sim, "/sns/auth", access_token=granted["access_token"], openid=granted["openid"])
    assert errcode(auth) == 42001
    post("/api/tokens/invalidate", openid=granted["openid"])
    assert errcode(refresh(sim, granted["refresh_token"])) == 42007
    code = sim.authorize(authorize_url(sim)).code
    assert post("/api/clock/advance", seconds=301).status_code == 200
    assert errcode(exchange(sim, code=code)) == 42003
    post("/api/fault", path="/sns/auth", kind="busy")
    assert errcode(get(sim, "/sns/auth", access_token="x", openid="y")) == -1
    browsed = post("/api/authorize", url=authorize_url(sim), decision="allow").json()
    assert browsed["code"] and browsed["errcode"] is None


# -- the command line ----------------------------------------------------------------


def test_cli_serves_and_logs_without_secrets() -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "simulator", "--port", str(port),
        "--bot-url", "http://127.0.0.1:8888/wechat", "--app-id", APP_ID,
        "--app-secret", SECRET, "--token", TOKEN, "--aes-key", AES_KEY,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                response = requests.get(base + "/cgi-bin/token", timeout=1, params={
                    "grant_type": "client_credential", "appid": APP_ID, "secret": SECRET,
                })  # fmt: skip
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert "access_token" in json.loads(response.content)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=5)
    assert "/cgi-bin/token" in stderr and "secret=***" in stderr and SECRET not in stderr


def test_cli_rejects_a_bad_key() -> None:
    command = [
        sys.executable, "-m", "simulator", "--port", "0", "--bot-url", "http://127.0.0.1:1/",
        "--app-id", APP_ID, "--app-secret", SECRET, "--token", TOKEN, "--aes-key", "short",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and "EncodingAESKey" in done.stderr
