"""The soak script (bench/soak.py) must not rot: a few seconds of it against a real bot
process, and its lost-write check shown to find every kind of lost or torn write."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bench import soak
from tests.conftest import APP_ID, Follower


def test_short_soak_has_no_unexpected_error_and_no_lost_write():
    report = soak.run(followers=3, seconds=3, faults=4.0)
    assert report["journeys_completed"] > 0
    assert report["unexpected_errors"] == 0, report["unexpected"]
    assert report["lost_writes"] == 0, report["lost"]
    assert "journeys completed" in soak.render(report)


def _execute(database: Path, sql: str, **params: str) -> None:
    with closing(sqlite3.connect(database)) as db, db:
        db.execute(sql, params)


def _refresh_token(database: Path, openid: str) -> str:
    with closing(sqlite3.connect(database)) as db:
        sql = "SELECT refresh_token FROM followers WHERE openid = ?"
        return db.execute(sql, (openid,)).fetchone()[0]


@pytest.fixture
def signed_in(sim, bot, tmp_path) -> tuple[Follower, Path]:
    """A follower who authorized and saw /me; the bot's database."""
    follower = Follower(sim, bot, sim.default_openid)
    assert follower.authorize().status_code == 303
    assert follower.me().status_code == 200
    return follower, tmp_path / "bot.sqlite3"


def _check(sim, follower: Follower, database: Path, fresh: bool = True) -> list[str]:
    nicknames = {follower.openid: sim.followers[follower.openid].nickname}
    return soak.check_writes(
        database, sim.url, APP_ID, nicknames, {follower.openid} if fresh else set()
    )


TAMPERING = {
    "not stored": "DELETE FROM followers WHERE openid = :openid",
    "stored nickname": "UPDATE followers SET nickname = 'someone' WHERE openid = :openid",
    "re-authorization": "UPDATE followers SET needs_reauth = 1 WHERE openid = :openid",
    "access token refused": "UPDATE followers SET access_token = 'gone' WHERE openid = :openid",
    "refresh token refused": "UPDATE followers SET refresh_token = 'gone' WHERE openid = :openid",
}


@pytest.mark.parametrize("problem", TAMPERING)
def test_a_lost_write_is_found(sim, signed_in, problem):
    follower, database = signed_in
    _execute(database, TAMPERING[problem], openid=follower.openid)
    [found] = _check(sim, follower, database)
    assert follower.openid in found and problem in found


def test_a_torn_write_is_found(sim, bot, tmp_path):
    """The access token of one grant stored beside the refresh token of an older one."""
    follower, database = Follower(sim, bot, sim.default_openid), tmp_path / "bot.sqlite3"
    assert follower.authorize().status_code == 303
    older = _refresh_token(database, follower.openid)
    assert follower.authorize().status_code == 303
    _execute(database, "UPDATE followers SET refresh_token = :older", older=older)
    [found] = _check(sim, follower, database)
    assert "different grants" in found


def test_an_expired_access_token_counts_only_after_a_checked_visit(sim, signed_in):
    follower, database = signed_in
    assert _check(sim, follower, database) == []
    sim.expire_access_tokens(follower.openid)
    assert _check(sim, follower, database, fresh=False) == []  # the refresh token renews it
    [found] = _check(sim, follower, database, fresh=True)
    assert "errcode 42001" in found
