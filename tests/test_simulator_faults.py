"""The simulator's `html` and `truncated` faults, seen from a plain HTTP client."""

import json
import socket
from urllib.parse import quote, urlsplit

import pytest
import requests

from simulator import Simulator
from tests.conftest import APP_ID, APP_SECRET

CALLBACK = "http://127.0.0.1:8888/oauth/callback"


def exchange_url(sim: Simulator) -> str:
    link = (
        f"{sim.url}/connect/oauth2/authorize?appid={APP_ID}&redirect_uri={quote(CALLBACK, safe='')}"
        "&response_type=code&scope=snsapi_base&state=s1#wechat_redirect"
    )
    code = sim.authorize(link).code
    return (
        f"{sim.url}/sns/oauth2/access_token?appid={APP_ID}&secret={APP_SECRET}"
        f"&code={code}&grant_type=authorization_code"
    )


def raw_get(url: str) -> bytes:
    """Everything the server sends before it hangs up, headers included."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        request = f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n"
        conn.sendall(request.encode())
        received = b""
        while chunk := conn.recv(4096):
            received += chunk
    return received


def test_html_fault_is_a_page_with_200(sim: Simulator) -> None:
    sim.fault("/sns/oauth2/access_token", "html")
    answer = requests.get(exchange_url(sim), timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.content.startswith(b"<!DOCTYPE html>")
    with pytest.raises(ValueError):
        json.loads(answer.content.decode("utf-8"))


def test_truncated_fault_serves_the_request_and_cuts_the_answer(sim: Simulator) -> None:
    url = exchange_url(sim)
    sim.fault("/sns/oauth2/access_token", "truncated", times=2)
    head, _, body = raw_get(url).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = int(next(line for line in lines if line.startswith(b"Content-Length:"))[15:])
    assert lines[0].split()[1] == b"200"
    assert body.startswith(b'{"access_token":') and 0 < len(body) < length
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=5)  # a client that checks the length sees the short read
    spent = requests.get(url, timeout=5)  # the first cut request spent the code
    assert json.loads(spent.content.decode("utf-8"))["errcode"] == 40163
