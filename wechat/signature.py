"""Request signatures WeChat puts on every push, checked in constant time."""

import hashlib
import hmac
import time


def sign(*parts: str) -> str:
    """sha1 of the sorted parts joined: `signature` over (token, timestamp, nonce),
    `msg_signature` with the Encrypt text added."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's scheme


def verify(token: str, timestamp: str, nonce: str, signature: str, max_skew: int) -> bool:
    """True when the signature matches and the timestamp is within `max_skew` of now."""
    if not (timestamp.isdigit() and nonce and signature):
        return False
    if abs(time.time() - int(timestamp)) > max_skew:
        return False
    return hmac.compare_digest(sign(token, timestamp, nonce), signature.lower())
