"""Minting access tokens (Ed25519 JWTs), refresh tokens and API keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.auth import ALGORITHM, AUDIENCE, ISSUER
from common.keys import jwk, key_id

API_KEY_PREFIX = "cvk_"
REFRESH_PREFIX = "cvr_"


class Signer:
    """Signs with the first key; the JWKS lists them all, so that tokens signed by a key being
    retired still verify where the JWKS is used."""

    def __init__(self, private_keys: list[Ed25519PrivateKey], access_ttl: int) -> None:
        self.keys = private_keys
        self.key = self.keys[0]
        self.kid = key_id(self.key.public_key())
        self.access_ttl = access_ttl

    def access_token(self, *, sub: str, role: str, kind: str = "user", scopes: list[str] | None = None,
                     ttl: int | None = None) -> str:
        now = dt.datetime.now(dt.UTC)
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "role": role, "kind": kind,
                  "iat": now, "nbf": now, "exp": now + dt.timedelta(seconds=ttl or self.access_ttl),
                  "jti": uuid.uuid4().hex}
        if scopes is not None:
            claims["scopes"] = scopes
        return jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def jwks(self) -> dict:
        return {"keys": [jwk(k.public_key()) for k in self.keys]}


def digest(secret: str) -> str:
    """Refresh tokens and API keys are 256-bit random strings: a plain SHA-256 is enough to store."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str]:
    """(prefix, key): ``cvk_AbCd1234`` is shown in lists, the whole key only once."""
    prefix = API_KEY_PREFIX + secrets.token_hex(4)
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


PREFIX_LENGTH = len(API_KEY_PREFIX) + 8


def api_key_prefix(key: str) -> str | None:
    """The visible prefix of something that looks like one of our keys, else None."""
    if not key.startswith(API_KEY_PREFIX) or len(key) > 100 or key[PREFIX_LENGTH:PREFIX_LENGTH + 1] != "_":
        return None
    return key[:PREFIX_LENGTH]
