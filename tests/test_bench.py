"""`python -m bench` must not rot: every message-path contender answers the pre-signed
pushes over real HTTP under gunicorn, as WeChat would accept the answer, in both modes;
a one-second run through Debian's wrk comes out as a table, JSON and a PNG chart."""

from __future__ import annotations

import http.client
import json
import re
import socket
from pathlib import Path

import pytest

from bench import messages
from bench.__main__ import main
from bench.harness import Gunicorn, measure
from bench.pushes import OFFICIAL, PushWriter, openid
from bench.report import Options
from simulator.crypto import MessageCrypto
from simulator.push import read_reply

FAST = {"workers": 1, "threads": 2, "connections": 4}


def send(port: int, request: bytes) -> tuple[int, bytes]:
    """The request's bytes as wrk sends them; the answer's status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


@pytest.mark.parametrize("mode", messages.MODES)
@pytest.mark.parametrize("contender", messages.CONTENDERS)
def test_every_contender_answers_a_pre_signed_push_with_a_text_reply(contender, mode, tmp_path):
    options = Options(seconds=0.1, workdir=tmp_path, **FAST)
    load = messages.load(contender, mode, options)
    load.prepare()
    account = messages.MODES[mode]
    writer = PushWriter(account, messages.CONTENDERS[contender][1], first_id=10**15)
    crypto = MessageCrypto(account.aes_key, account.app_id) if account.aes_key else None
    with Gunicorn(load.app, options) as server:
        status, body = send(server.port, writer.request())
    assert status == 200, body
    wechat_mode = "safe" if crypto else "plain"
    reply = read_reply(body, wechat_mode, crypto, account.token, (openid(10**15), OFFICIAL))
    assert reply is not None
    assert reply["MsgType"] == "text"
    assert "网页授权" in reply["Content"]


def test_a_wrong_signature_is_refused_so_the_pushes_signatures_count(tmp_path):
    options = Options(seconds=0.1, workdir=tmp_path, **FAST)
    load = messages.load("ours", "plaintext", options)
    load.prepare()
    request = PushWriter(messages.MODES["plaintext"], "/wechat", first_id=1).request()
    forged = request.replace(b"signature=", b"signature=0", 1)
    with Gunicorn(load.app, options) as server:
        status, _ = send(server.port, forged)
    assert status == 403


def test_a_run_short_of_pushes_is_made_again_with_more(tmp_path):
    options = Options(seconds=1, rounds=1, workdir=tmp_path, **FAST)
    load = messages.load("ceiling", "plaintext", options)
    load.prepare.budget = 100  # 150 pushes a thread: far fewer than a second takes
    row = messages.measure_with_enough(load, options)
    assert row.errors == 0
    assert row.extras["requests"] > 2 * 150
    assert load.prepare.budget >= 1.5 * row.rps


def test_one_second_run_prints_the_table_and_writes_json_and_chart(tmp_path, capsys):
    json_path, png_path = tmp_path / "bench.json", tmp_path / "bench.png"
    argv = ["messages", "--seconds", "1", "--rounds", "1", "--mode", "plaintext"]
    argv += ["--contender", "ours", "--contender", "werobot-bare"]
    argv += ["--workers", "1", "--threads", "2", "--connections", "4"]
    assert main([*argv, "--json", str(json_path), "--png", str(png_path)]) == 0
    document = json.loads(json_path.read_text())
    rows = {row["contender"]: row for row in document["rows"]}
    assert set(rows) == {"ours", "werobot-bare"}
    for row in rows.values():
        assert row["scenario"] == "messages" and row["mode"] == "plaintext"
        assert row["rps"] > 0 and row["errors"] == 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["peak_rss_mib"] > 10
        assert 0 < row["load_generator_cpu_share"] < 1
    targets = {target["name"] for target in document["targets"]}
    assert "messages plaintext: ours / werobot-bare rps" in targets
    assert document["machine"]["cores"] >= 1 and document["machine"]["packages"]["wechatpy"]
    assert png_path.read_bytes().startswith(b"\x89PNG")
    printed = capsys.readouterr().out
    assert "| messages | plaintext | ours |" in printed
    assert "ours / werobot-bare rps" in printed


def test_measure_counts_answers_that_are_not_a_reply(tmp_path):
    options = Options(seconds=1, rounds=1, workdir=tmp_path, **FAST)
    load = messages.load("werobot-bare", "plaintext", options)
    load.environ["BENCH_EXPECT"] = "<Encrypt>"  # a plaintext reply is not what is expected
    row = measure(load, options)
    assert row.errors == row.extras["requests"] > 0


def test_the_pushes_never_repeat_a_msg_id(tmp_path: Path):
    writer = PushWriter(messages.MODES["plaintext"], "/wechat", first_id=7)
    writer.write(tmp_path / "pushes", 50)
    data = (tmp_path / "pushes").read_bytes()
    requests = []
    while data:
        size = int(data[:6])
        requests.append(data[6 : 6 + size])
        data = data[6 + size :]
    assert [re.search(rb"<MsgId>(\d+)</MsgId>", r)[1] for r in requests] == [
        b"%d" % number for number in range(7, 57)
    ]
