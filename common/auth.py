"""Who is calling: access tokens verified by every service itself, and service credentials.

The gateway signs short-lived EdDSA (Ed25519) JWTs; services verify them with the public key, so a
request that skips the gateway gets no further than one through it. Principals are users (growers,
buyers, admins) or integrators' API keys, which the gateway turns into tokens that carry scopes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, Request

from common.errors import Forbidden, Unauthorized
from common.keys import dev_private_key, key_id, public_key_from_text
from common.openapi import BEARER, SERVICE, declares

ISSUER = "cho-vuon"
AUDIENCE = "cho-vuon-api"
ALGORITHM = "EdDSA"
ROLES = ("grower", "buyer", "admin")
SCOPES = ("catalog:read", "catalog:write", "orders:read", "orders:write", "webhooks")
SERVICE_TOKEN_HEADER = "x-service-token"


@dataclass(frozen=True)
class Principal:
    sub: str
    role: str
    kind: str = "user"  # "user" or "api_key"
    scopes: frozenset[str] = field(default_factory=frozenset)

    def allows(self, scope: str) -> bool:
        """Users act with their role's full rights; API keys only within their scopes."""
        return self.kind == "user" or scope in self.scopes


class TokenVerifier:
    def __init__(self, public_keys: list[Ed25519PublicKey]) -> None:
        self.keys = {key_id(k): k for k in public_keys}

    @classmethod
    def from_setting(cls, value: str) -> TokenVerifier:
        if value.strip():
            return cls([public_key_from_text(v) for v in value.split(",") if v.strip()])
        return cls([dev_private_key().public_key()])

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.get(header.get("kid", ""))
            if key is None or header.get("alg") != ALGORITHM:
                raise jwt.InvalidTokenError("unknown key or algorithm")
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "aud", "iss"]}, leeway=5)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The access token has expired", headers=_challenge("invalid_token")) from None
        except jwt.PyJWTError:
            raise Unauthorized("The access token is not valid", headers=_challenge("invalid_token")) from None
        role = claims.get("role")
        if role not in ROLES:
            raise Unauthorized("The access token is not valid", headers=_challenge("invalid_token"))
        kind = claims.get("kind", "user")
        scopes = frozenset(s for s in claims.get("scopes", []) if s in SCOPES)
        return Principal(sub=str(claims["sub"]), role=role, kind=kind, scopes=scopes)


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="cho-vuon"'
    if error:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@declares(401, security=[{}, {BEARER: []}])
async def optional_principal(request: Request) -> Principal | None:
    token = bearer_token(request)
    if token is None:
        return None
    return request.app.state.verifier.verify(token)


@declares(401, security=[{BEARER: []}])
async def current_principal(request: Request) -> Principal:
    principal = await optional_principal(request)
    if principal is None:
        raise Unauthorized("Sign in, or send an API key", headers=_challenge())
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(role: str | tuple[str, ...] | None = None, scope: str | None = None):
    """A dependency: the caller has one of ``role`` and, for API keys, ``scope``."""
    roles = (role,) if isinstance(role, str) else role

    @declares(401, 403, security=[{BEARER: []}])
    async def check(principal: CurrentPrincipal) -> Principal:
        if roles and principal.role not in roles and principal.role != "admin":
            raise Forbidden(f"This needs a {' or '.join(roles)} account")
        if scope and not principal.allows(scope):
            raise Forbidden(f"This API key lacks the {scope} scope", scope=scope)
        return principal

    return check


@declares(401, security=[{SERVICE: []}])
async def require_service(request: Request) -> None:
    """For ``/internal/*``: the caller presents this app's service token."""
    expected = request.app.state.settings.service_token.get_secret_value().encode()
    given = request.headers.get(SERVICE_TOKEN_HEADER, "").encode()
    if not given or not hmac.compare_digest(given, expected):
        raise Unauthorized("A service credential is required")


ServiceCaller = Depends(require_service)
