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
    store.update_token(renewed)
    after = store.get_follower("o1")
    assert (after.access_token, after.refresh_token) == ("AT-new", "RT-new")
    assert after.access_expires_at == renewed.access_expires_at
    assert after.nickname == before.nickname and after.profile == before.profile
    store.update_token(replace(renewed, openid="o-unknown"))  # never creates a follower
    assert store.get_follower("o-unknown") is None


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
