"""The message server's wire: signatures, XML in, AES envelopes, XML out, retry dedupe."""

from wechat.dedupe import RetryGuard
from wechat.errors import MessageRejected
from wechat.server import MessageServer

__all__ = ["MessageRejected", "MessageServer", "RetryGuard"]
