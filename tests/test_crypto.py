"""Compatible and safe modes: the AES envelope against WeChat's vectors and the
simulator's own encryption, then end to end over real HTTP.

The hostile envelopes (bad padding, truncated, not base64...) are in
tests/test_catalogue.py.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from simulator.crypto import MessageCrypto as WeChatSide
from tests.conftest import AES_KEY, ANCHOR, APP_ID, OLD_AES_KEY, TOKEN
from tests.test_cli import run
from tests.test_wire import signed_query, text_xml
from wechat.crypto import AESKey, MessageCrypto, describe_modes
from wechat.errors import BadSignature, UndecryptableMessage, WrongAccount
from wechat.parser import parse_fields
from wechat.signature import sign

VECTORS = json.loads((Path(__file__).parent / "vectors" / "wechat-crypto.json").read_text("utf-8"))
OTHER_KEY = "Th1rdKeyTh1rdKeyTh1rdKeyTh1rdKeyTh1rdKeyTh1"


def vector_crypto() -> MessageCrypto:
    return MessageCrypto(VECTORS["token"], VECTORS["app_id"], VECTORS["encoding_aes_key"])


def raw_aes(key: str, sealed: bytes) -> bytes:
    """AES-256-CBC decryption with IV = key[:16], padding left on: an independent view."""
    raw = base64.b64decode(key + "=")
    decryptor = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).decryptor()
    return decryptor.update(sealed) + decryptor.finalize()


# --- the vectors ---------------------------------------------------------------------


def test_decrypts_the_vector_and_checks_its_msg_signature():
    case = VECTORS["decrypt"]
    encrypt = etree.fromstring(case["body"].encode()).findtext("Encrypt")
    xml, _ = vector_crypto().open(encrypt, case["timestamp"], case["nonce"], case["msg_signature"])
    fields = parse_fields(xml)
    assert {k: fields[k] for k in case["plaintext_fields"]} == case["plaintext_fields"]


def test_the_vector_with_a_wrong_msg_signature_is_refused():
    case = VECTORS["decrypt"]
    encrypt = etree.fromstring(case["body"].encode()).findtext("Encrypt")
    with pytest.raises(BadSignature):
        vector_crypto().open(encrypt, case["timestamp"], case["nonce"], "0" * 40)


def test_encrypts_the_vector_byte_for_byte():
    case = VECTORS["encrypt"]
    expected = etree.fromstring(case["expected"].encode())
    crypto = vector_crypto()
    encrypt = crypto.encrypt(case["reply"].encode(), random16=case["random16"].encode())
    assert encrypt == expected.findtext("Encrypt")
    signature = sign(VECTORS["token"], case["timestamp"], case["nonce"], encrypt)
    assert signature == expected.findtext("MsgSignature")


def test_the_vector_under_another_appid_is_another_account():
    case = VECTORS["decrypt"]
    encrypt = etree.fromstring(case["body"].encode()).findtext("Encrypt")
    other = MessageCrypto(VECTORS["token"], APP_ID, VECTORS["encoding_aes_key"])
    with pytest.raises(WrongAccount):
        other.decrypt(encrypt)


# --- the envelope against the simulator's (WeChat's side) ------------------------------


@pytest.mark.parametrize("size", [0, 1, 11, 12, 13, 44, 500, 3000])
def test_round_trips_with_the_simulator_both_ways(size):
    xml = "<xml>" + "长" * size + "</xml>"
    ours, theirs = MessageCrypto(TOKEN, APP_ID, AES_KEY), WeChatSide(AES_KEY, APP_ID)
    assert ours.decrypt(theirs.encrypt(xml))[0].decode() == xml
    assert theirs.decrypt(ours.encrypt(xml.encode())) == xml


def test_an_aligned_message_gets_a_whole_block_of_padding():
    crypto = MessageCrypto(TOKEN, APP_ID, AES_KEY)
    message = b"x" * (64 - 20 - len(APP_ID))  # 20 + message + AppID = 64 bytes exactly
    sealed = raw_aes(AES_KEY, base64.b64decode(crypto.encrypt(message)))
    assert len(sealed) == 96
    assert sealed[-32:] == bytes([32]) * 32


def test_the_previous_key_opens_what_the_current_one_cannot():
    rotated = MessageCrypto(TOKEN, APP_ID, AES_KEY, OLD_AES_KEY)
    xml, key = rotated.decrypt(WeChatSide(OLD_AES_KEY, APP_ID).encrypt("<xml/>"))
    assert xml == b"<xml/>"
    assert key is rotated.keys[1]  # the reply goes back under the key WeChat used
    with pytest.raises(UndecryptableMessage):
        MessageCrypto(TOKEN, APP_ID, AES_KEY).decrypt(WeChatSide(OLD_AES_KEY, APP_ID).encrypt("x"))


def test_a_key_is_43_characters():
    with pytest.raises(ValueError):
        AESKey("tooshort")


# --- end to end: the bot on waitress, the simulator pushing ----------------------------


@pytest.mark.parametrize("mode", ["safe", "compatible"])
def test_encrypted_push_gets_an_encrypted_reply_with_the_link(aes_sim, mode):
    answer = aes_sim.push(aes_sim.default_openid, type="text", content="你好", mode=mode)
    assert answer["status"] == 200, answer
    assert "error" not in answer, answer  # the simulator checked MsgSignature and AppID
    root = etree.fromstring(answer["raw"].encode())
    assert [child.tag for child in root] == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
    assert ANCHOR.search(answer["reply"]["Content"])
    assert answer["reply"]["ToUserName"] == aes_sim.default_openid


def test_compatible_mode_believes_the_encrypted_copy(aes_bot):
    """The plaintext copy of a compatible push is covered by no signature: the
    decrypted message decides. Here the plaintext says "text" (which would get
    the link) and the encrypted copy says "unsubscribe" (which gets nothing)."""
    inner = (
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[o6_bF]]>"
        "</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[unsubscribe]]></Event></xml>"
    )
    encrypt = WeChatSide(AES_KEY, APP_ID).encrypt(inner)
    query = signed_query(encrypt_type="aes")
    query["msg_signature"] = sign(TOKEN, query["timestamp"], query["nonce"], encrypt)
    body = text_xml().replace("</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
    answer = requests.post(aes_bot.wechat_url, params=query, data=body.encode(), timeout=10)
    assert answer.status_code == 200
    assert answer.text == "success"


def test_retry_of_an_encrypted_push_is_encrypted_too(aes_sim):
    first = aes_sim.push(aes_sim.default_openid, type="text", mode="safe", msg_id=77777777)
    retry = aes_sim.push(aes_sim.default_openid, type="text", mode="safe", msg_id=77777777)
    assert "error" not in retry, retry
    assert retry["reply"]["Content"] == first["reply"]["Content"]
    assert retry["raw"] != first["raw"]  # sealed afresh for each delivery


def test_no_reply_stays_a_plain_success(aes_sim):
    answer = aes_sim.push(aes_sim.default_openid, type="event", event="unsubscribe", mode="safe")
    assert answer["status"] == 200
    assert answer["raw"] == "success"


def test_plaintext_push_still_works_on_an_aes_bot(sim, aes_bot):
    sim.bot_url = aes_bot.wechat_url
    answer = sim.push(sim.default_openid, type="text", content="你好")
    assert answer["status"] == 200
    assert answer["raw"].startswith("<xml><ToUserName>")  # answered in kind: plaintext
    assert ANCHOR.search(answer["reply"]["Content"])


def test_message_raw_is_the_decrypted_xml(aes_sim, aes_bot):
    seen = []
    aes_bot.app.robot.add_handler(lambda message: seen.append(message.raw), type="image")
    aes_sim.push(aes_sim.default_openid, type="image", mode="safe")
    assert len(seen) == 1
    assert seen[0].startswith("<xml><ToUserName>") and "<MsgType><![CDATA[image]]>" in seen[0]
    assert "Encrypt" not in seen[0]


@pytest.mark.parametrize("mode", ["safe", "compatible"])
def test_key_rotation_loses_no_message(make_sim, start_bot, mode):
    bot = start_bot(
        BOT_WECHAT_ENCODING_AES_KEY=AES_KEY, BOT_WECHAT_PREVIOUS_ENCODING_AES_KEY=OLD_AES_KEY
    )
    for key in (OLD_AES_KEY, AES_KEY):  # WeChat still on the old key, then on the new one
        wechat = make_sim(aes_key=key, bot_url=bot.wechat_url)
        answer = wechat.push(wechat.default_openid, type="text", mode=mode)
        assert answer["status"] == 200 and "error" not in answer, answer
        assert ANCHOR.search(answer["reply"]["Content"])


def test_a_key_that_matches_neither_is_400(make_sim, start_bot):
    bot = start_bot(
        BOT_WECHAT_ENCODING_AES_KEY=AES_KEY, BOT_WECHAT_PREVIOUS_ENCODING_AES_KEY=OLD_AES_KEY
    )
    wechat = make_sim(aes_key=OTHER_KEY, bot_url=bot.wechat_url)
    answer = wechat.push(wechat.default_openid, type="text", mode="safe")
    assert answer["status"] == 400
    assert "does not decrypt" in answer["raw"]


def test_another_accounts_push_is_403(make_sim, aes_bot):
    other = make_sim(app_id="wxffffffffffffffff", aes_key=AES_KEY, bot_url=aes_bot.wechat_url)
    answer = other.push(other.default_openid, type="text", mode="safe")
    assert answer["status"] == 403
    assert "another AppID" in answer["raw"]


def test_encrypted_push_without_a_key_is_400_with_one_warning(make_sim, bot, caplog):
    wechat = make_sim(aes_key=AES_KEY, bot_url=bot.wechat_url)
    with caplog.at_level(logging.WARNING, logger="wechat.server"):
        answers = [wechat.push(wechat.default_openid, mode="safe") for _ in range(2)]
    assert [a["status"] for a in answers] == [400, 400]
    assert "no EncodingAESKey" in answers[0]["raw"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "wechat.server"]
    assert len(warnings) == 1 and "wechat.encoding_aes_key" in warnings[0]
    assert AES_KEY not in caplog.text


# --- what `check` and `serve` say ------------------------------------------------------


def test_modes_described_without_the_keys():
    assert describe_modes("", "").startswith("plaintext only")
    both = describe_modes(AES_KEY, OLD_AES_KEY)
    assert both.startswith("plaintext, compatible and safe") and "rotation" in both
    assert AES_KEY not in both and OLD_AES_KEY not in both
    assert "rotation" not in describe_modes(AES_KEY, "")
    assert "ignored" in describe_modes("", OLD_AES_KEY)


def test_check_says_which_modes_are_accepted(tmp_path, sim):
    from tests.conftest import free_port, write_config

    path = write_config(tmp_path / "config.toml", free_port(), sim.url)
    plain = run("--config", str(path), "check")
    assert "plaintext only" in plain.stdout
    env = {
        "BOT_WECHAT_ENCODING_AES_KEY": AES_KEY,
        "BOT_WECHAT_PREVIOUS_ENCODING_AES_KEY": OLD_AES_KEY,
    }
    rotating = run("--config", str(path), "check", env=env)
    assert "plaintext, compatible and safe" in rotating.stdout
    assert "rotation" in rotating.stdout
    assert OLD_AES_KEY not in rotating.stdout + rotating.stderr


def test_safe_push_timestamp_is_checked_like_any_other(aes_sim):
    aes_sim.clock.advance(3600)  # WeChat's clock an hour ahead: a stale or forged stamp
    answer = aes_sim.push(aes_sim.default_openid, type="text", mode="safe")
    assert answer["status"] == 403
