"""The chat greets a follower who has authorized by name, says when their grant has
lapsed, and keeps the link; all for one primary-key read and no write per message."""

from __future__ import annotations

import time
from dataclasses import replace

from sqlalchemy import event, text

from tests.conftest import ANCHOR, Follower


def anchors(content: str) -> list[str]:
    return ANCHOR.findall(content)


def test_a_stranger_is_invited(follower):
    content = follower.say()["Content"]
    assert content.startswith("你好！\n点击下面的链接完成网页授权")
    assert len(anchors(content)) == 1


def test_an_authorized_follower_is_greeted_by_name_and_the_link_leads_to_me(sim, follower):
    nickname = sim.followers[follower.openid].nickname
    assert follower.authorize().status_code == 303
    content = follower.say()["Content"]
    assert content.startswith(f"{nickname}，你好！\n点击下面的链接查看你的资料")
    callback = follower.open(follower.tap(follower.link()))
    assert callback.status_code == 303 and callback.headers["Location"] == "/me"
    assert nickname in follower.me().text


def test_welcome_back_and_other_messages_by_name(sim, follower):
    nickname = sim.followers[follower.openid].nickname
    assert follower.authorize().status_code == 303
    welcome = sim.push(follower.openid, type="event", event="subscribe")["reply"]["Content"]
    assert welcome.startswith(f"欢迎回来，{nickname}！🎉\n")
    later = int(time.time()) + 1  # events are told apart by sender and CreateTime
    other = sim.push(follower.openid, type="event", event="LOCATION", create_time=later)
    other = other["reply"]["Content"]
    assert other.startswith(f"{nickname}，目前只能回复文字消息哦。\n")
    assert len(anchors(welcome)) == len(anchors(other)) == 1


def test_a_silent_authorization_is_greeted_without_a_name(sim, start_bot):
    follower = Follower(sim, start_bot(scope="snsapi_base"), sim.default_openid)
    assert follower.authorize().status_code == 303
    assert follower.say()["Content"].startswith("你好！\n点击下面的链接查看你的资料")


def test_a_nickname_never_becomes_markup_in_the_reply(sim, bot):
    panda = next(f for f in sim.followers.values() if "<b>" in f.nickname)
    follower = Follower(sim, bot, panda.openid)
    assert follower.authorize().status_code == 303
    content = follower.say()["Content"]
    assert content.startswith("＜b＞熊猫＜/b＞&🐼，你好！")
    assert len(anchors(content)) == 1 and "<b>" not in content


def test_a_revoked_grant_is_told_in_the_reply(sim, follower):
    assert follower.authorize().status_code == 303
    sim.invalidate_tokens(follower.openid)  # the follower changed their password
    assert "授权已失效" in follower.me().text  # the bot finds out on a visit
    content = follower.say()["Content"]
    assert "你之前的授权已失效，点击下面的链接重新授权" in content
    assert len(anchors(content)) == 1
    assert follower.authorize().status_code == 303  # authorizing again: greeted as before
    assert "点击下面的链接查看你的资料" in follower.say()["Content"]


def test_a_grant_past_its_refresh_tokens_life_is_told_in_the_reply(bot, follower):
    assert follower.authorize().status_code == 303
    store = bot.app.store
    known = store.get_follower(follower.openid)
    store.save_follower(replace(known, refresh_expires_at=int(time.time()) - 1))
    assert "你之前的授权已失效" in follower.say()["Content"]


def test_a_reply_reads_one_row_by_its_key_and_writes_nothing(sim, bot, follower):
    """SQLite's own trace of every statement the store's connections run during a push
    (the delivery ledger has an engine and a file of its own)."""
    assert follower.authorize().status_code == 303
    engine = bot.app.store.engine
    statements: list[str] = []

    def trace(dbapi_connection, _record) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    event.listen(engine, "connect", trace)
    engine.dispose()  # every connection from now on is traced
    readers = [reader.dbapi_connection for reader in bot.app.store._readers]
    for reader in readers:  # and so are the threads' own, opened by the pushes before
        reader.set_trace_callback(statements.append)
    try:
        assert follower.say()["Content"].startswith(sim.followers[follower.openid].nickname)
    finally:
        event.remove(engine, "connect", trace)
        for reader in readers:
            reader.set_trace_callback(None)
        engine.dispose()
    assert len(statements) == 1, statements  # no BEGIN, no write, no second read
    query = " ".join(statements[0].split())
    assert query.startswith("SELECT followers.nickname")
    assert query.endswith(f"FROM followers WHERE followers.openid = '{follower.openid}'")


def test_a_database_outage_still_answers_with_the_link(sim, bot, follower):
    assert follower.authorize().status_code == 303
    with bot.app.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE followers RENAME TO followers_elsewhere"))
    content = follower.say()["Content"]
    assert content.startswith("你好！\n") and len(anchors(content)) == 1
    with bot.app.store.engine.begin() as conn:  # back: the next reply greets by name again
        conn.execute(text("ALTER TABLE followers_elsewhere RENAME TO followers"))
    nickname = sim.followers[follower.openid].nickname
    assert all(follower.say()["Content"].startswith(nickname) for _ in range(8))
