"""storage.Store as the OAuth flows see it: through oauth.token_store's two interfaces."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from oauth import StateLedger, TokenStore
from storage import Claim, Store
from tests.test_storage import _follower

pytestmark = pytest.mark.backends("sqlite", "postgresql")


def test_store_satisfies_both_interfaces(db_url):
    store = Store.from_url(db_url)
    assert isinstance(store, TokenStore)
    assert isinstance(store, StateLedger)


def test_update_token_stores_tokens_and_leaves_the_profile(db_url):
    store = Store.from_url(db_url)
    before = _follower("o1")
    store.save_follower(before)
    renewed = replace(
        before,
        access_token="AT-new",
        access_expires_at=before.access_expires_at + 60,
        refresh_token="RT-new",
        nickname="not stored by update_token",
        updated_at=before.updated_at + 1,
    )
    store.update_token(renewed, replacing=before)
    after = store.get_follower("o1")
    assert (after.access_token, after.refresh_token) == ("AT-new", "RT-new")
    assert after.access_expires_at == renewed.access_expires_at
    assert after.nickname == before.nickname and after.profile == before.profile
    # a refresh that started from the old token loses to the tokens stored since
    store.update_token(replace(renewed, access_token="AT-late"), replacing=before)
    assert store.get_follower("o1").access_token == "AT-new"
    store.update_token(replace(renewed, openid="o-unknown"), replacing=renewed)
    assert store.get_follower("o-unknown") is None  # never creates a follower


def test_one_caller_at_a_time_refreshes_a_follower(db_url):
    store = Store.from_url(db_url)
    follower = _follower("o1")
    store.save_follower(follower)
    until = int(time.time()) + 10
    assert store.begin_refresh(follower, until)
    assert not store.begin_refresh(follower, until)  # held
    store.end_refresh("o1")  # WeChat failed: someone else may try
    assert store.begin_refresh(follower, until)
    renewed = replace(follower, access_expires_at=follower.access_expires_at + 60)
    store.update_token(renewed, replacing=follower)  # the same token, renewed in place
    assert not store.begin_refresh(follower, until)  # already renewed
    assert store.begin_refresh(renewed, int(time.time()) - 1)  # a holder that died...
    assert store.begin_refresh(renewed, until)  # ...loses the refresh once it lapses
    granted = replace(follower, access_token="AT-granted")
    store.save_follower(granted)  # authorized again: a refresh in flight is superseded
    assert store.begin_refresh(granted, until)
    assert not store.begin_refresh(replace(granted, openid="o-unknown"), until)


def test_a_profile_update_leaves_the_tokens_and_the_mark(db_url):
    store = Store.from_url(db_url)
    stale = _follower("o1")
    store.save_follower(stale)
    store.update_token(replace(stale, access_token="AT-new"), replacing=stale)
    store.mark_needs_reauth("o1")
    store.save_profile(replace(stale, nickname="新名字", profile={"nickname": "新名字"}))
    after = store.get_follower("o1")
    assert (after.nickname, after.profile) == ("新名字", {"nickname": "新名字"})
    assert after.access_token == "AT-new" and after.needs_reauth


def test_a_claim_is_done_only_for_its_client_or_the_follower_it_signed_in(db_url):
    store = Store.from_url(db_url)
    state, expires = "s" * 64, int(time.time()) + 600
    assert store.claim_state(state, "mine", expires, 120) == (Claim.NEW, None)
    assert store.claim_state(state, "mine", expires, 120) == (Claim.IN_FLIGHT, None)
    assert store.claim_state(state, "theirs", expires, 120, "o1") == (Claim.USED, None)
    store.complete_authorization(state, _follower("o1"))
    assert store.claim_state(state, "mine", expires, 120) == (Claim.DONE, "o1")
    assert store.claim_state(state, "theirs", expires, 120) == (Claim.USED, None)
    assert store.claim_state(state, "theirs", expires, 120, "o2") == (Claim.USED, None)
    assert store.claim_state(state, "theirs", expires, 120, "o1") == (Claim.DONE, "o1")
