"""Every push the message endpoint refuses, in one hierarchy.

Each class carries the HTTP status it is answered with; the text of the
exception is the plain-text body, so it must never hold a secret (a key, the
token) or echo much of what the client sent.
"""


class MessageRejected(Exception):
    """A request to the message endpoint that gets a 4xx and runs nothing."""

    status = "400 Bad Request"
    headers: tuple[tuple[str, str], ...] = ()


class MalformedMessage(MessageRejected):
    """The body is not a WeChat message; the text says what is wrong."""


class UndecryptableMessage(MalformedMessage):
    """`Encrypt` does not open with the current or the previous EncodingAESKey."""


class EncryptionNotConfigured(MessageRejected):
    """`encrypt_type=aes`, but no `wechat.encoding_aes_key` is configured."""


class BadSignature(MessageRejected):
    """`signature` or `msg_signature` wrong, or the timestamp too far from now."""

    status = "403 Forbidden"


class WrongAccount(MessageRejected):
    """The envelope opened but was sealed for another AppID (another account's push)."""

    status = "403 Forbidden"


class MethodNotAllowed(MessageRejected):
    """Anything but GET (URL verification) and POST (a push)."""

    status = "405 Method Not Allowed"
    headers = (("Allow", "GET, POST"),)


class LengthRequired(MessageRejected):
    """A POST that does not say how long its body is (WeChat always does)."""

    status = "411 Length Required"


class BodyTooLarge(MessageRejected):
    """A body over the cap; WeChat's pushes are a few hundred bytes."""

    status = "413 Payload Too Large"
