"""The message server's wire: signatures, XML in, XML out, retry dedupe."""

from wechat.dedupe import RetryGuard
from wechat.server import MessageServer

__all__ = ["MessageServer", "RetryGuard"]
