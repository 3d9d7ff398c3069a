"""The OAuth client against the simulator over HTTP: no mocks."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from oauth import Deadline, WeChatAPIError, WeChatOAuth, WeChatUnavailable
from oauth.urls import authorize_url
from tests.conftest import APP_ID, APP_SECRET, FAST


@pytest.fixture
def client(sim):
    client = WeChatOAuth(APP_ID, APP_SECRET, api_base=sim.url, timeout=(2, FAST.read_timeout))
    yield client
    client.close()


def code_for(sim, client, scope="snsapi_userinfo", openid=None) -> str:
    url = authorize_url(sim.url, APP_ID, "http://127.0.0.1:8888/oauth/callback", scope, "abc123")
    location = sim.authorize(url, openid=openid).location
    return parse_qs(urlsplit(location).query)["code"][0]


def test_authorize_url_shape():
    url = authorize_url(
        "https://open.weixin.qq.com",
        APP_ID,
        "https://bot.example.com/oauth/callback?a=1&b=2",
        "snsapi_base",
        "S1",
    )
    assert url == (
        "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx0123456789abcdef"
        "&redirect_uri=https%3A%2F%2Fbot.example.com%2Foauth%2Fcallback%3Fa%3D1%26b%3D2"
        "&response_type=code&scope=snsapi_base&state=S1#wechat_redirect"
    )


def test_simulator_accepts_our_authorize_url(sim):
    url = authorize_url(
        sim.url, APP_ID, "http://127.0.0.1:8888/oauth/callback", "snsapi_base", "abc"
    )
    result = sim.authorize(url)
    assert result.errcode is None
    assert result.location.startswith("http://127.0.0.1:8888/oauth/callback?code=")


def test_exchange_userinfo_and_check(sim, client):
    follower = sim.followers[sim.default_openid]
    grant = client.exchange_code(code_for(sim, client))
    assert grant.openid == follower.openid
    assert grant.scope == "snsapi_userinfo"
    assert grant.expires_in == 7200
    profile = client.userinfo(grant.access_token, grant.openid)
    assert profile["nickname"] == follower.nickname  # Chinese and emoji intact
    assert profile["headimgurl"].startswith(sim.url + "/mmopen/")
    client.check_token(grant.access_token, grant.openid)


def test_refresh_renews_a_live_token_and_replaces_a_dead_one(sim, client):
    grant = client.exchange_code(code_for(sim, client))
    renewed = client.refresh(
        grant.refresh_token
    )  # WeChat: a live token is kept, its expiry renewed
    assert renewed.access_token == grant.access_token
    sim.expire_access_tokens(grant.openid)
    fresh = client.refresh(grant.refresh_token)
    assert fresh.access_token != grant.access_token
    assert fresh.openid == grant.openid
    client.userinfo(fresh.access_token, fresh.openid)


@pytest.mark.parametrize(
    ("setup", "errcode"),
    [
        (lambda sim, client, code: code + "x", 40029),
        (lambda sim, client, code: (client.exchange_code(code), code)[1], 40163),
        (lambda sim, client, code: (sim.clock.advance(301), code)[1], 42003),
    ],
)
def test_code_errors_are_typed(sim, client, setup, errcode):
    code = setup(sim, client, code_for(sim, client))
    with pytest.raises(WeChatAPIError) as caught:
        client.exchange_code(code)
    assert caught.value.errcode == errcode
    assert caught.value.code_rejected


def test_wrong_secret_is_40125_and_never_echoed(sim):
    wrong = WeChatOAuth(APP_ID, "wrongsecretwrongsecretwrongsecr", api_base=sim.url)
    with pytest.raises(WeChatAPIError) as caught:
        wrong.exchange_code("whatever")
    assert caught.value.errcode == 40125
    assert "wrongsecret" not in str(caught.value)
    assert "wrongsecret" not in repr(wrong)


def test_base_grant_gets_48001_from_userinfo(sim, client):
    grant = client.exchange_code(code_for(sim, client, scope="snsapi_base"))
    with pytest.raises(WeChatAPIError) as caught:
        client.userinfo(grant.access_token, grant.openid)
    assert caught.value.errcode == 48001


@pytest.mark.parametrize(
    ("control", "errcode", "reauth"),
    [("expire_refresh_tokens", 42002, True), ("invalidate_tokens", 42007, True)],
)
def test_refresh_errors(sim, client, control, errcode, reauth):
    grant = client.exchange_code(code_for(sim, client))
    getattr(sim, control)(grant.openid)
    with pytest.raises(WeChatAPIError) as caught:
        client.refresh(grant.refresh_token)
    assert caught.value.errcode == errcode
    assert caught.value.needs_reauthorization is reauth


def test_unknown_refresh_token_is_40030(client):
    with pytest.raises(WeChatAPIError) as caught:
        client.refresh("nonsense")
    assert caught.value.errcode == 40030
    assert caught.value.needs_reauthorization


def test_expired_access_token(sim, client):
    grant = client.exchange_code(code_for(sim, client))
    sim.expire_access_tokens(grant.openid)
    with pytest.raises(WeChatAPIError) as caught:
        client.check_token(grant.access_token, grant.openid)
    assert caught.value.token_invalid


@pytest.mark.parametrize("kind", ["http_error", "garbage", "reset"])
def test_broken_answers_are_unavailable(sim, client, kind):
    sim.fault("/sns/oauth2/access_token", kind)
    with pytest.raises(WeChatUnavailable) as caught:
        client.exchange_code("abc")
    assert APP_SECRET not in str(caught.value)


def test_busy_is_typed(sim, client):
    sim.fault("/sns/oauth2/access_token", "busy")
    with pytest.raises(WeChatAPIError) as caught:
        client.exchange_code("abc")
    assert caught.value.busy


def test_busy_exchange_is_never_asked_again(sim, client):
    sim.fault("/sns/oauth2/access_token", "busy", times=3)
    with pytest.raises(WeChatAPIError):
        client.exchange_code(code_for(sim, client))
    assert sim.calls.paths().count("/sns/oauth2/access_token") == 1


def test_busy_refresh_is_asked_again_until_it_answers(sim, client):
    grant = client.exchange_code(code_for(sim, client))
    sim.fault("/sns/oauth2/refresh_token", "busy", times=2)
    assert client.refresh(grant.refresh_token).openid == grant.openid
    assert sim.calls.paths().count("/sns/oauth2/refresh_token") == 3


def test_no_call_once_the_deadline_has_passed(sim, client):
    with pytest.raises(WeChatUnavailable) as caught:
        client.userinfo("t", "o", deadline=Deadline(0))
    assert "deadline" in str(caught.value)
    assert sim.calls.paths() == []


def test_busy_is_not_asked_again_past_the_deadline(sim, client):
    sim.fault("/sns/auth", "busy", times=3)
    with pytest.raises(WeChatAPIError) as caught:
        client.check_token("t", "o", deadline=Deadline(0.3))  # no time for a pause and a call
    assert caught.value.busy
    assert sim.calls.paths() == ["/sns/auth"]


def test_slow_answer_times_out(sim, client):
    sim.fault("/sns/userinfo", "slow", seconds=FAST.read_timeout * 1.5)
    with pytest.raises(WeChatUnavailable) as caught:
        client.userinfo("t", "o")
    assert "timed out" in str(caught.value)


def test_unreachable_wechat_is_unavailable_without_secret():
    client = WeChatOAuth(APP_ID, APP_SECRET, api_base="http://127.0.0.1:9", timeout=(1, 1))
    with pytest.raises(WeChatUnavailable) as caught:
        client.exchange_code("abc")
    assert APP_SECRET not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
