"""Encrypting fields at rest (growers' bank account numbers, webhook secrets) with keys from settings.

A data key setting may hold several keys, comma-separated (``new,old``): the first encrypts, every
one decrypts, so a key is rotated without losing what was stored under the one before. New values
are written under the new key; ``python -m <app> reencrypt`` (:mod:`common.reencrypt`) moves the
values stored earlier to it, after which the old key may be dropped from the list.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from common.settings import secret_list


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"cho-vuon-field-v1:" + secret.encode()).digest()))


class FieldCipher:
    """Fernet (AES-128-CBC + HMAC-SHA256) with keys derived from the app's secret(s)."""

    def __init__(self, secrets: str) -> None:
        keys = secret_list(secrets)
        if not keys:
            raise ValueError("no data key")
        self._fernet = MultiFernet([_fernet(k) for k in keys])
        self._first = _fernet(keys[0])

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("cannot decrypt: wrong key or damaged value") from None

    def reencrypt(self, token: str) -> str | None:
        """``token`` encrypted under the first key; None when it already is."""
        try:
            self._first.decrypt(token.encode())
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise ValueError("cannot decrypt: wrong key or damaged value") from None
