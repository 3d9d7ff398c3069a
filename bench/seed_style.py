"""The OAuth journey in the seed's style, as issue 9 names it: the contender the
journey scenario of `python -m bench` measures the bot against.

What a reader of WeChat's OAuth docs writes first, on the Bottle the seed used:
every WeChat call is a new `requests.get` (no Session, so no pool: a new TCP
connection and TLS handshake each time, the CA bundle loaded again), with no
timeout, its answer read with `json.loads(response.text)`. (The seed's own client,
commit 723b703, already held one pooled Session with timeouts: this is the style
the issue describes, not that code.) It makes the same WeChat
calls as the bot (the code exchange and userinfo on the callback, userinfo on each
visit of /me) and keeps followers in SQLite (WAL), so the two differ in how they
talk to WeChat, not in what they ask. The state is signed with its time (not
single-use); the sign-in cookie is the openid, signed.

Served by gunicorn as `bench.seed_style:create()`, configured by SEED_API_BASE (the
simulator), SEED_APP_ID, SEED_APP_SECRET, SEED_PUBLIC_URL and SEED_DATABASE.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
import sqlite3
import time
from collections.abc import Mapping
from urllib.parse import quote

import requests
from bottle import Bottle, HTTPResponse, request

STATE_TTL = 600
COOKIE = "seed"
PAGE = (
    '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>我的资料</title>'
    '</head><body><img src="{avatar}" alt=""><h1>{nickname}</h1></body></html>'
)


def create(settings: Mapping[str, str] | None = None) -> Bottle:
    """The app, configured from `settings` (default: the environment)."""
    settings = os.environ if settings is None else settings
    api = settings["SEED_API_BASE"].rstrip("/")
    app_id, secret = settings["SEED_APP_ID"], settings["SEED_APP_SECRET"]
    callback = settings["SEED_PUBLIC_URL"].rstrip("/") + "/oauth/callback"
    database = settings["SEED_DATABASE"]
    key = hashlib.sha256(secret.encode()).digest()
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS followers (openid TEXT PRIMARY KEY, "
            "access_token TEXT, refresh_token TEXT, nickname TEXT, headimgurl TEXT)"
        )

    def sign(value: str) -> str:
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def wechat(path: str, **params: str) -> dict:
        response = requests.get(api + path, params=params)  # noqa: S113 - the seed's style
        return json.loads(response.text)

    app = Bottle()

    @app.get("/login")
    def login() -> HTTPResponse:
        stamp = f"{int(time.time()):010d}{os.urandom(8).hex()}"  # WeChat: letters, digits
        state = stamp + sign(stamp)
        link = (
            f"{api}/connect/oauth2/authorize?appid={app_id}"
            f"&redirect_uri={quote(callback, safe='')}&response_type=code"
            f"&scope=snsapi_userinfo&state={state}#wechat_redirect"
        )
        return HTTPResponse(status=302, headers={"Location": link})

    @app.get("/oauth/callback")
    def oauth_callback() -> HTTPResponse:
        state = request.query.get("state", "")
        stamp, mac, issued = state[:26], state[26:], state[:10]
        fresh = issued.isdigit() and time.time() - int(issued) < STATE_TTL
        if not (fresh and hmac.compare_digest(mac, sign(stamp))):
            return HTTPResponse("链接无效", status=400)
        tokens = wechat(
            "/sns/oauth2/access_token",
            appid=app_id,
            secret=secret,
            code=request.query.get("code", ""),
            grant_type="authorization_code",
        )
        if "errcode" in tokens:
            return HTTPResponse("授权失败", status=400)
        info = wechat("/sns/userinfo", access_token=tokens["access_token"], openid=tokens["openid"])
        with sqlite3.connect(database, timeout=10) as db:
            db.execute(
                "INSERT OR REPLACE INTO followers VALUES (?, ?, ?, ?, ?)",
                (
                    tokens["openid"],
                    tokens["access_token"],
                    tokens["refresh_token"],
                    info.get("nickname"),
                    info.get("headimgurl"),
                ),
            )
        cookie = f"{COOKIE}={tokens['openid']}.{sign(tokens['openid'])}; Path=/; HttpOnly"
        return HTTPResponse(status=303, headers={"Location": "/me", "Set-Cookie": cookie})

    @app.get("/me")
    def me() -> HTTPResponse:
        openid, _, mac = request.get_cookie(COOKIE, "").partition(".")
        if not openid or not hmac.compare_digest(mac, sign(openid)):
            return HTTPResponse("请先授权", status=401)
        with sqlite3.connect(database, timeout=10) as db:
            row = db.execute(
                "SELECT access_token FROM followers WHERE openid = ?", (openid,)
            ).fetchone()
        if row is None:
            return HTTPResponse("请先授权", status=401)
        info = wechat("/sns/userinfo", access_token=row[0], openid=openid)
        with sqlite3.connect(database, timeout=10) as db:
            db.execute(
                "UPDATE followers SET nickname = ?, headimgurl = ? WHERE openid = ?",
                (info.get("nickname"), info.get("headimgurl"), openid),
            )
        body = PAGE.format(
            avatar=html.escape(info.get("headimgurl", "")),
            nickname=html.escape(info.get("nickname", "")),
        )
        return HTTPResponse(body, headers={"Content-Type": "text/html; charset=utf-8"})

    return app
