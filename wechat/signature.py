"""Request signatures WeChat puts on every push, checked in constant time."""

import hashlib
import hmac
import time

MAX_STAMP_DIGITS = 12  # int() of a long digit string is slow, and past 4300 digits an error


def sign(*parts: str) -> str:
    """sha1 of the sorted parts joined: `signature` over (token, timestamp, nonce),
    `msg_signature` with the Encrypt text added."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's scheme


def matches(expected: str, given: str) -> bool:
    """Constant-time comparison that any text a client sends can go through."""
    return hmac.compare_digest(expected.encode(), given.lower().encode("utf-8", "replace"))


def verify(token: str, timestamp: str, nonce: str, signature: str, max_skew: int) -> bool:
    """True when the signature matches and the timestamp is within `max_skew` of now."""
    if not (
        timestamp.isascii()
        and timestamp.isdigit()
        and len(timestamp) <= MAX_STAMP_DIGITS
        and nonce
        and signature
    ):
        return False
    if abs(time.time() - int(timestamp)) > max_skew:
        return False
    return matches(sign(token, timestamp, nonce), signature)
