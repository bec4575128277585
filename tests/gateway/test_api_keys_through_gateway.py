"""An integrator's API key through the gateway: swapped for a short token with the key's scopes,
refused as soon as it is revoked, its last use recorded; the key never reaches a service."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
from sqlalchemy import select

from common.db import Database
from gateway.identity.models import ApiKey
from tests.apps import make_app
from tests.gateway.test_proxy import StandIn
from tests.support.servers import free_port, serve_in_thread

PASSWORD = "Sen-hong-Dong-Thap-7"


async def _last_used(url: str):
    db = Database(url)
    try:
        async with db.sessionmaker() as session:
            return (await session.scalar(select(ApiKey))).last_used_at
    finally:
        await db.dispose()


def test_api_key_becomes_a_scoped_token_and_revocation_is_immediate(db_urls) -> None:
    upstream = StandIn()
    dead = f"http://127.0.0.1:{free_port()}"
    with serve_in_thread(upstream.app) as stub:
        app = make_app("gateway", db_urls, catalog_url=dead, orders_url=dead, notify_url=stub,
                       routes={"/api/v1/stub": "notify"})
        with serve_in_thread(app) as gw:
            account = httpx.post(f"{gw}/api/v1/auth/register", json={
                "role": "grower", "name": "Ba", "phone": "0912345678", "password": PASSWORD}).json()
            tokens = httpx.post(f"{gw}/api/v1/auth/token",
                                json={"login": "0912345678", "password": PASSWORD}).json()
            auth = {"Authorization": f"Bearer {tokens['access_token']}"}
            created = httpx.post(f"{gw}/api/v1/api-keys", json={"name": "sync", "scopes": ["orders:read"]},
                                 headers=auth).json()
            key = created["key"]

            for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
                seen = httpx.get(f"{gw}/api/v1/stub/x", headers=headers)
                assert seen.status_code == 200
                echoed = seen.json()
                assert key not in " ".join(echoed["header_values"]), "the key itself never reaches a service"
                claims = jwt.decode(echoed["authorization"].removeprefix("Bearer "),
                                    options={"verify_signature": False})
                assert claims["kind"] == "api_key" and claims["scopes"] == ["orders:read"]
                assert claims["sub"] == account["id"] and claims["role"] == "grower"
                assert claims["exp"] - claims["iat"] <= 60

            # A user's own token passes through untouched.
            passed = httpx.get(f"{gw}/api/v1/stub/x", headers=auth).json()
            assert passed["authorization"] == auth["Authorization"]

            assert httpx.get(f"{gw}/api/v1/stub/x", headers={"X-API-Key": key[:-2] + "xx"}).status_code == 401
            assert httpx.get(f"{gw}/api/v1/stub/x", headers={"X-API-Key": "cvk_nothing"}).status_code == 401

            assert httpx.delete(f"{gw}/api/v1/api-keys/{created['id']}", headers=auth).status_code == 204
            started = time.monotonic()
            revoked = httpx.get(f"{gw}/api/v1/stub/x", headers={"X-API-Key": key})
            assert revoked.status_code == 401 and time.monotonic() - started < 1.0
            assert revoked.headers["content-type"] == "application/problem+json"

    assert asyncio.run(_last_used(db_urls["gateway"])) is not None


def test_each_api_key_has_its_own_rate_limit(db_urls) -> None:
    upstream = StandIn()
    dead = f"http://127.0.0.1:{free_port()}"
    limits = {"login-account": (10, 60), "login-ip": (30, 60), "register-ip": (10, 60), "api-key": (2, 60),
              "order-ip": (10, 60)}
    with serve_in_thread(upstream.app) as stub:
        app = make_app("gateway", db_urls, catalog_url=dead, orders_url=dead, notify_url=stub,
                       routes={"/api/v1/stub": "notify"}, rate_limits=limits)
        with serve_in_thread(app) as gw:
            httpx.post(f"{gw}/api/v1/auth/register", json={"role": "grower", "name": "Ba", "phone": "0912345678",
                                                           "password": PASSWORD})
            tokens = httpx.post(f"{gw}/api/v1/auth/token", json={"login": "0912345678", "password": PASSWORD}).json()
            auth = {"Authorization": f"Bearer {tokens['access_token']}"}
            keys = [httpx.post(f"{gw}/api/v1/api-keys", json={"name": f"k{i}", "scopes": ["orders:read"]},
                               headers=auth).json()["key"] for i in range(2)]
            first = [httpx.get(f"{gw}/api/v1/stub/x", headers={"X-API-Key": keys[0]}).status_code for _ in range(3)]
            second = httpx.get(f"{gw}/api/v1/stub/x", headers={"X-API-Key": keys[1]})
            limited = httpx.get(f"{gw}/api/v1/stub/x", headers={"X-API-Key": keys[0]})
    assert first == [200, 200, 429]
    assert second.status_code == 200, "another key has its own allowance"
    assert limited.json()["policy"] == "api-key" and limited.headers["retry-after"]
