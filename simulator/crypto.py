"""Signatures and the AES message envelope WeChat uses in compatible and safe modes."""

import base64
import binascii
import hashlib
import os
import re
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeChat pads to 32 bytes, not to the AES block size of 16
AES_KEY_PATTERN = re.compile(r"[A-Za-z0-9]{43}")


class CryptoError(ValueError):
    """An envelope that does not decrypt, or that was made for another AppID."""


def signature(*parts: str) -> str:
    """SHA-1 of the sorted, concatenated parts: both `signature` and `msg_signature`."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 - WeChat's scheme


class MessageCrypto:
    """AES-256-CBC with IV = key[:16]; plaintext = random16 + length + message + AppID."""

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        if not AES_KEY_PATTERN.fullmatch(encoding_aes_key):
            raise ValueError("EncodingAESKey must be 43 letters or digits")
        self._key = base64.b64decode(encoding_aes_key + "=")
        self._app_id = app_id.encode()

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: str, random16: bytes | None = None) -> str:
        """The base64 `Encrypt` value; `random16` is fixed only to reproduce test vectors."""
        body = message.encode()
        plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body + self._app_id
        pad = BLOCK - len(plain) % BLOCK
        encryptor = self._cipher().encryptor()
        sealed = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
        return base64.b64encode(sealed).decode()

    def decrypt(self, encrypted: str) -> str:
        """The message inside an `Encrypt` value, after checking padding and AppID."""
        try:
            sealed = base64.b64decode(encrypted, validate=True)
        except binascii.Error as exc:
            raise CryptoError("Encrypt is not base64") from exc
        if not sealed or len(sealed) % 16:
            raise CryptoError("Encrypt has a wrong length")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(sealed) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding (wrong EncodingAESKey?)")
        plain = plain[:-pad]
        (length,) = struct.unpack(">I", plain[16:20])
        message, app_id = plain[20 : 20 + length], plain[20 + length :]
        if len(message) != length or app_id != self._app_id:
            raise CryptoError("the envelope was not made for this AppID")
        try:
            return message.decode()
        except UnicodeDecodeError as exc:
            raise CryptoError("the message is not UTF-8") from exc
