"""Encrypting fields at rest (growers' bank account numbers) with a key from settings."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class FieldCipher:
    """Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from the app's secret."""

    def __init__(self, secret: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(b"cho-vuon-field-v1:" + secret.encode()).digest())
        self._fernet = Fernet(key)

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("cannot decrypt: wrong key or damaged value") from None
