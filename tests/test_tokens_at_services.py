"""Services verify tokens themselves: a request that skips the gateway gets no further than one
through it. And /internal/* needs a service credential."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends

from common.auth import CurrentPrincipal, ServiceCaller, require
from common.keys import key_id
from tests.apps import SIGNING_KEY, make_app
from tests.conftest import asgi_client

SERVICES = ["catalog", "orders", "notify"]


def token(key=SIGNING_KEY, alg="EdDSA", **overrides) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {"iss": "cho-vuon", "aud": "cho-vuon-api", "sub": "acc-1", "role": "grower", "kind": "user",
              "iat": now, "exp": now + dt.timedelta(minutes=5)}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": key_id(SIGNING_KEY.public_key())})


def unsigned(**overrides) -> str:
    import base64
    import json

    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"iss": "cho-vuon", "aud": "cho-vuon-api", "sub": "acc-1", "role": "admin", "iat": now,
              "exp": now + 300, **overrides}
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': key_id(SIGNING_KEY.public_key())})}.{part(claims)}."


def protected_app(name: str, db_urls):
    app = make_app(name, db_urls)

    @app.get("/test/whoami")
    async def whoami(principal: CurrentPrincipal) -> dict:
        return {"sub": principal.sub, "role": principal.role, "kind": principal.kind}

    @app.get("/test/catalog-writer", dependencies=[Depends(require("grower", scope="catalog:write"))])
    async def writer() -> dict:
        return {"ok": True}

    @app.get("/internal/test", dependencies=[ServiceCaller])
    async def internal() -> dict:
        return {"ok": True}

    return app


BAD_TOKENS = {
    "expired": lambda: token(exp=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
                             iat=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)),
    "alg none": lambda: unsigned(),
    "wrong key": lambda: token(key=Ed25519PrivateKey.generate()),
    "wrong audience": lambda: token(aud="someone-else"),
    "wrong issuer": lambda: token(iss="evil"),
    "HS256 with the public key": lambda: jwt.encode(
        {"iss": "cho-vuon", "aud": "cho-vuon-api", "sub": "x", "role": "admin", "iat": 1, "exp": 4102444800},
        "not-the-key", algorithm="HS256", headers={"kid": key_id(SIGNING_KEY.public_key())}),
    "unknown role": lambda: token(role="superuser"),
    "no expiry": lambda: token(exp=None),
    "garbage": lambda: "not.a.jwt",
}


@pytest.mark.parametrize("name", SERVICES)
async def test_services_refuse_bad_tokens_directly(name: str, db_urls) -> None:
    async with asgi_client(protected_app(name, db_urls)) as client:
        assert (await client.get("/test/whoami")).status_code == 401
        for why, make in BAD_TOKENS.items():
            resp = await client.get("/test/whoami", headers={"Authorization": f"Bearer {make()}"})
            assert resp.status_code == 401, why
            assert resp.headers["content-type"] == "application/problem+json"
        good = await client.get("/test/whoami", headers={"Authorization": f"Bearer {token()}"})
    assert good.status_code == 200 and good.json() == {"sub": "acc-1", "role": "grower", "kind": "user"}


@pytest.mark.parametrize("name", SERVICES)
async def test_api_key_tokens_are_held_to_their_scopes(name: str, db_urls) -> None:
    async with asgi_client(protected_app(name, db_urls)) as client:
        reader = token(kind="api_key", scopes=["catalog:read"])
        writer = token(kind="api_key", scopes=["catalog:write"])
        buyer = token(role="buyer")
        assert (await client.get("/test/catalog-writer", headers={"Authorization": f"Bearer {reader}"})
                ).status_code == 403
        assert (await client.get("/test/catalog-writer", headers={"Authorization": f"Bearer {buyer}"})
                ).status_code == 403
        assert (await client.get("/test/catalog-writer", headers={"Authorization": f"Bearer {writer}"})
                ).status_code == 200
        assert (await client.get("/test/catalog-writer", headers={"Authorization": f"Bearer {token()}"})
                ).status_code == 200


@pytest.mark.parametrize("name", SERVICES)
async def test_internal_routes_need_the_service_credential(name: str, db_urls) -> None:
    app = protected_app(name, db_urls)
    secret = app.state.settings.service_token.get_secret_value()
    async with asgi_client(app) as client:
        assert (await client.get("/internal/test")).status_code == 401
        assert (await client.get("/internal/test", headers={"X-Service-Token": "guess"})).status_code == 401
        assert (await client.get("/internal/test", headers={"Authorization": f"Bearer {token(role='admin')}"})
                ).status_code == 401
        assert (await client.get("/internal/test", headers={"X-Service-Token": secret})).status_code == 200
