"""Access tokens for tests, signed with the test key the apps are built with (tests/apps.py)."""

from __future__ import annotations

import datetime as dt
import uuid

import jwt

from common.keys import key_id
from tests.apps import SIGNING_KEY


def token(sub: str | None = None, role: str = "grower", kind: str = "user", scopes: list[str] | None = None,
          ttl: int = 6 * 3600) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {"iss": "cho-vuon", "aud": "cho-vuon-api", "sub": sub or str(uuid.uuid4()), "role": role,
              "kind": kind, "iat": now, "exp": now + dt.timedelta(seconds=ttl)}
    if scopes is not None:
        claims["scopes"] = scopes
    return jwt.encode(claims, SIGNING_KEY, algorithm="EdDSA", headers={"kid": key_id(SIGNING_KEY.public_key())})


def auth(sub: str | None = None, role: str = "grower", **kw) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, role, **kw)}"}
