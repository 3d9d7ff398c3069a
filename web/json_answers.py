"""The bot's JSON routes (the internal API, /jssdk/config): bare WSGI apps whose answers
are a status, a JSON document and extra headers, and one way of saying that WeChat or
the storage failed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from oauth import WeChatAPIError, WeChatUnavailable
from storage import StorageError

log = logging.getLogger(__name__)

JSON = "application/json"
Headers = list[tuple[str, str]]
Answer = tuple[str, dict, Headers]


def send(answer: Answer, start_response: Callable) -> list[bytes]:
    status, document, extra = answer
    body = json.dumps(document).encode()
    start_response(status, [("Content-Type", JSON), ("Content-Length", str(len(body))), *extra])
    return [body]


def error(status: str, message: str, headers: Headers | None = None, **fields: int) -> Answer:
    return status, {"error": message, **fields}, headers or []


def from_wechat(what: str, produce: Callable[[], dict]) -> Answer:
    """200 with `produce()`'s document, or 502 when WeChat refused or failed to hand out
    `what` (a token, a ticket), 503 when the storage is unavailable."""
    try:
        return "200 OK", produce(), []
    except WeChatAPIError as exc:
        log.warning("%s: WeChat refused (errcode %s)", what, exc.errcode)
        return error("502 Bad Gateway", f"WeChat refused the {what}", errcode=exc.errcode)
    except WeChatUnavailable as exc:
        log.warning("%s: %s", what, exc)
        return error("502 Bad Gateway", "WeChat did not answer")
    except StorageError as exc:
        log.error("%s: %s", what, exc)
        return error("503 Service Unavailable", "the storage is unavailable")
