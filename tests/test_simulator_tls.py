"""The simulator over HTTPS with a network's round trip injected (`--tls-cert`,
`--tls-key`, `--round-trip`), as the benchmark runs it: real TLS on loopback."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from http.client import HTTPSConnection
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from simulator import Simulator
from simulator.tls import self_signed
from tests.conftest import free_port
from tests.test_simulator import APP_ID, SECRET, TOKEN, authorize_url

ROOT = Path(__file__).resolve().parents[1]
ROUND_TRIP = 0.1  # seconds
TOKEN_QUERY = {"grant_type": "client_credential", "appid": APP_ID, "secret": SECRET}


@pytest.fixture
def https_simulator(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`python -m simulator` serving HTTPS with a 100 ms round trip: its URL and CA file."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    command = [
        sys.executable, "-m", "simulator", "--port", str(port),
        "--bot-url", "http://127.0.0.1:8888/wechat", "--app-id", APP_ID,
        "--app-secret", SECRET, "--token", TOKEN, "--tls-cert", str(cert),
        "--tls-key", str(key), "--round-trip", str(ROUND_TRIP * 1000),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        yield _wait_for(f"https://127.0.0.1:{port}", cert), cert
    finally:
        process.terminate()
        process.communicate(timeout=5)


def _wait_for(url: str, cert: Path) -> str:
    for _ in range(200):
        try:
            requests.get(url + "/api/account", verify=str(cert), timeout=5)  # verify= wins
            return url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("the simulator never answered over HTTPS")


def test_https_with_round_trips(https_simulator: tuple[str, Path]) -> None:
    url, cert = https_simulator
    with pytest.raises(requests.exceptions.SSLError):  # not a certificate anyone trusts
        requests.get(url + "/cgi-bin/token", params=TOKEN_QUERY, timeout=5, verify=True)
    path = "/cgi-bin/token?" + urlencode(TOKEN_QUERY)
    connection = HTTPSConnection(urlsplit(url).netloc, timeout=5, context=trusting(cert))
    try:
        started = time.monotonic()
        first = answer(connection, path)
        connecting = time.monotonic() - started
        kept = connection.sock
        started = time.monotonic()
        again = answer(connection, path)
        reusing = time.monotonic() - started
        assert connection.sock is kept  # kept alive: the second call reused the connection
    finally:
        connection.close()
    assert "access_token" in first and "access_token" in again
    # Lower bounds only: a new connection waits for TCP's and TLS's handshakes and the
    # request's own round trip, a kept-alive one for the request's.
    assert connecting >= 3 * ROUND_TRIP and reusing >= ROUND_TRIP


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def answer(connection: HTTPSConnection, path: str) -> dict:
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Connection") != "close"
    return json.loads(response.read())


def test_in_process_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    options = {"app_id": APP_ID, "app_secret": SECRET, "token": TOKEN}
    with Simulator(**options, callback_domain="127.0.0.1", tls=(str(cert), str(key))) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        result = sim.authorize(authorize_url(sim, scope="snsapi_userinfo"))
        answer = requests.get(
            sim.url + "/sns/oauth2/access_token",
            params={
                "appid": APP_ID,
                "secret": SECRET,
                "code": result.code,
                "grant_type": "authorization_code",
            },
            verify=str(cert),
            timeout=5,
        )
    assert result.state == "s1" and answer.json()["scope"] == "snsapi_userinfo"
