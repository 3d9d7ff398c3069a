"""Compatible and safe modes: the AES envelope around a push and its reply.

key = base64decode(EncodingAESKey + "="), AES-256-CBC with IV = key[:16];
plaintext = 16 random bytes + 4-byte big-endian length + XML + AppID, padded
PKCS#7-style to a multiple of 32 bytes (a full 32-byte block when aligned).

`msg_signature` is checked before anything is decrypted, so only someone who
holds the token ever reaches the padding check: there is no padding oracle.
The current key is tried first, then the previous one, so a key rotation loses
no message; the reply is sealed with the key that opened the request, the one
that side of WeChat is using. Keys never appear in messages or logs.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
import time

from wechat.errors import BadSignature, UndecryptableMessage, WrongAccount
from wechat.signature import matches, sign

BLOCK = 32  # WeChat pads to 32 bytes, not to AES's 16
_HEAD = 20  # 16 random bytes + the 4-byte length


class AESKey:
    """One EncodingAESKey, its cipher built once (encryptor/decryptor are per call)."""

    __slots__ = ("_cipher",)

    def __init__(self, encoding_aes_key: str) -> None:
        # cryptography (about 7 MiB a process) loads with the first key: a bot in
        # plaintext mode never needs it
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        key = base64.b64decode(encoding_aes_key + "=")
        if len(key) != 32:
            raise ValueError("an EncodingAESKey is 43 letters or digits")
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def seal(self, plain: bytes) -> bytes:
        pad = BLOCK - len(plain) % BLOCK
        encryptor = self._cipher.encryptor()
        return encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()

    def unseal(self, sealed: bytes) -> bytes:
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(sealed) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise UndecryptableMessage("Encrypt does not decrypt (bad padding)")
        return plain[:-pad]


class MessageCrypto:
    """The envelope of one account: its token, AppID, current and previous key."""

    def __init__(self, token: str, app_id: str, key: str, previous_key: str = "") -> None:
        self.token = token
        self.app_id = app_id.encode()
        self.keys = (AESKey(key),) + ((AESKey(previous_key),) if previous_key else ())

    def open(
        self, encrypt: str, timestamp: str, nonce: str, msg_signature: str
    ) -> tuple[bytes, AESKey]:
        """(the XML inside, the key that opened it), once `msg_signature` is right."""
        if not matches(sign(self.token, timestamp, nonce, encrypt), msg_signature):
            raise BadSignature("invalid msg_signature")
        return self.decrypt(encrypt)

    def seal(self, reply: bytes, key: AESKey) -> bytes:
        """The encrypted, signed reply WeChat expects in compatible and safe modes."""
        encrypt = self.encrypt(reply, key)
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(9 * 10**9) + 10**9)
        signature = sign(self.token, timestamp, nonce, encrypt)
        return (
            f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        ).encode()

    def decrypt(self, encrypt: str) -> tuple[bytes, AESKey]:
        """The XML inside `encrypt` and the key that opened it: the current key,
        else the previous one. Another AppID inside wins over "does not decrypt"."""
        sealed = _b64decode(encrypt)
        failures: list[UndecryptableMessage | WrongAccount] = []
        for key in self.keys:
            try:
                return self._unwrap(key.unseal(sealed)), key
            except (UndecryptableMessage, WrongAccount) as exc:
                failures.append(exc)
        raise next((f for f in failures if isinstance(f, WrongAccount)), failures[0])

    def encrypt(self, message: bytes, key: AESKey | None = None, random16: bytes = b"") -> str:
        """The base64 `Encrypt` value; `random16` is fixed only to reproduce test vectors."""
        head = random16 or os.urandom(16)
        plain = head + struct.pack(">I", len(message)) + message + self.app_id
        return base64.b64encode((key or self.keys[0]).seal(plain)).decode("ascii")

    def _unwrap(self, plain: bytes) -> bytes:
        if len(plain) < _HEAD:
            raise UndecryptableMessage("Encrypt does not decrypt (too short)")
        (length,) = struct.unpack_from(">I", plain, 16)
        end = _HEAD + length
        tail = plain[end:]
        if end > len(plain) or not (tail.isalnum() and tail.isascii()):
            raise UndecryptableMessage("Encrypt does not decrypt (bad length)")
        if tail != self.app_id:
            raise WrongAccount("the message was encrypted for another AppID")
        return plain[_HEAD:end]


def _b64decode(encrypt: str) -> bytes:
    try:
        sealed = base64.b64decode(encrypt, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise UndecryptableMessage("Encrypt is not base64") from None
    if not sealed or len(sealed) % BLOCK:
        raise UndecryptableMessage("Encrypt is not a whole number of 32-byte blocks")
    return sealed


def message_crypto(token: str, app_id: str, key: str, previous_key: str) -> MessageCrypto | None:
    """The account's envelope, or None when no key is set (plaintext mode only)."""
    return MessageCrypto(token, app_id, key, previous_key) if key else None


def describe_modes(key: str, previous_key: str) -> str:
    """Which of WeChat's message modes a configuration accepts, in one line (no key in it)."""
    if not key:
        ignored = (
            " (wechat.previous_encoding_aes_key is ignored without it)" if previous_key else ""
        )
        return (
            "plaintext only (明文模式); set wechat.encoding_aes_key for compatible and safe"
            f" modes{ignored}"
        )
    rotation = (
        "; pushes sealed with wechat.previous_encoding_aes_key are accepted too (key rotation)"
        if previous_key
        else ""
    )
    return f"plaintext, compatible and safe (明文、兼容、安全模式){rotation}"
