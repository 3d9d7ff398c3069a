"""The ceiling: a bare WSGI app giving every request the same reply, its body left
unread: what gunicorn and wrk cost alone. The reply (a text reply, encrypted in safe
mode) is made once by the bench and given in BENCH_CEILING_REPLY."""

import os

REPLY_XML = os.environ.get("BENCH_CEILING_REPLY", "<xml></xml>").encode()
HEADERS = [("Content-Type", "application/xml"), ("Content-Length", str(len(REPLY_XML)))]


def ceiling(environ: dict, start_response) -> list[bytes]:
    start_response("200 OK", HEADERS)
    return [REPLY_XML]
