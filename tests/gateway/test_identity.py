"""Accounts, passwords, tokens, refresh rotation, API keys and sign-in limits, through the gateway app."""

from __future__ import annotations

import contextlib
import json
import uuid

import jwt
import pytest
from sqlalchemy import select

from common.keys import unb64url
from gateway.identity.models import Account, ApiKey
from gateway.ratelimit import RedisRateLimiter
from tests.apps import make_app
from tests.conftest import asgi_client
from tests.support.databases import require

PROBLEM = "application/problem+json"
PASSWORD = "Sen-hong-Dong-Thap-7"


def grower(phone: str = "0912 345 678", **extra) -> dict:
    return {"role": "grower", "name": "Cô Ba Sen", "phone": phone, "password": PASSWORD, **extra}


@contextlib.asynccontextmanager
async def gateway_client(db_urls, **settings):
    app = make_app("gateway", db_urls, **settings)
    async with asgi_client(app) as client:
        client.app = app
        yield client


async def sign_in(client, login: str, password: str = PASSWORD) -> dict:
    resp = await client.post("/api/v1/auth/token", json={"login": login, "password": password})
    assert resp.status_code == 200, resp.text
    return resp.json()


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def test_register_and_sign_in_with_any_spelling_of_the_phone(db_urls) -> None:
    async with gateway_client(db_urls) as client:
        resp = await client.post("/api/v1/auth/register", json=grower(email="Co.Ba@Example.VN"))
        assert resp.status_code == 201, resp.text
        account = resp.json()
        assert account["phone"] == "+84912345678" and account["email"] == "co.ba@example.vn"
        assert "password" not in resp.text and "hash" not in resp.text
        for spelling in ("+84 912345678", "(+84) 0912345678"):
            again = await client.post("/api/v1/auth/register", json=grower(spelling))
            assert again.status_code == 409
        for login in ("0912 345 678", "+84 912345678", "(+84) 0912345678", "CO.BA@example.vn"):
            tokens = await sign_in(client, login)
            assert claims_of(tokens["access_token"])["sub"] == account["id"]


async def test_password_hashed_with_argon2id_owasp(db_urls) -> None:
    async with gateway_client(db_urls) as client:
        await client.post("/api/v1/auth/register", json=grower())
        async with client.app.state.db.sessionmaker() as session:
            row = await session.scalar(select(Account))
    assert row.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.parametrize("phone,hint", [
    ("0292 3812 345", "landline"),
    ("01686123456", "0386123456"),
    ("+1 650 253 0000", "Vietnamese"),
    ("0912", "valid"),
])
async def test_bad_phones_refused_with_a_hint(db_urls, phone: str, hint: str) -> None:
    async with gateway_client(db_urls) as client:
        resp = await client.post("/api/v1/auth/register", json=grower(phone))
    assert resp.status_code == 422
    error = resp.json()["errors"][0]
    assert error["field"] == "body.phone" and hint in error["message"]


@pytest.mark.parametrize("password,why", [
    ("short7", "at least 8"),
    ("password123", "common"),
    ("matkhau123", "common"),
    ("aaaaaaaaaa", "repeats"),
    ("x0912345678", "phone"),
    ("p" * 129, "at most 128"),
])
async def test_weak_passwords_refused(db_urls, password: str, why: str) -> None:
    async with gateway_client(db_urls) as client:
        resp = await client.post("/api/v1/auth/register", json={**grower(), "password": password})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert why in json.dumps(resp.json()), resp.json()


async def test_names_nfc_emoji_ok_nul_and_oversize_refused(db_urls) -> None:
    decomposed = "Co\u0302 Ba\u0300 🌸"  # "Cô Bà" typed with combining accents, and a flower
    async with gateway_client(db_urls) as client:
        ok = await client.post("/api/v1/auth/register", json={**grower(), "name": decomposed})
        assert ok.status_code == 201 and ok.json()["name"] == "Cô Bà 🌸"
        for name in ("Ba\x00", "x" * 101, "", "   "):
            bad = await client.post("/api/v1/auth/register", json={**grower("0987654321"), "name": name})
            assert bad.status_code == 422, name
        admin = await client.post("/api/v1/auth/register", json={**grower("0987654321"), "role": "admin"})
        assert admin.status_code == 422


async def test_wrong_password_unknown_and_locked_answer_alike(db_urls) -> None:
    async with gateway_client(db_urls) as client:
        await client.post("/api/v1/auth/register", json=grower())
        await client.post("/api/v1/auth/register", json=grower("0987 654 321"))
        async with client.app.state.db.sessionmaker() as session:
            locked = await session.scalar(select(Account).where(Account.phone == "+84987654321"))
            locked.locked = True
            await session.commit()
        replies = [await client.post("/api/v1/auth/token", json={"login": login, "password": password})
                   for login, password in (("0912345678", "Wrong-password-1"), ("0933333333", PASSWORD),
                                           ("nobody@example.vn", PASSWORD), ("0987654321", PASSWORD))]
    assert {r.status_code for r in replies} == {401}
    bodies = [{k: v for k, v in r.json().items() if k != "request_id"} for r in replies]
    assert all(b == bodies[0] for b in bodies), bodies


async def test_access_token_shape_and_jwks(db_urls) -> None:
    async with gateway_client(db_urls) as client:
        await client.post("/api/v1/auth/register", json=grower())
        tokens = await sign_in(client, "0912345678")
        jwks = (await client.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA"
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    public = Ed25519PublicKey.from_public_bytes(unb64url(key["x"]))
    claims = jwt.decode(tokens["access_token"], public, algorithms=["EdDSA"], audience="cho-vuon-api",
                        issuer="cho-vuon")
    assert claims["role"] == "grower"
    assert 0 < claims["exp"] - claims["iat"] <= 900
    assert tokens["expires_in"] <= 900 and tokens["token_type"] == "bearer"


async def test_refresh_rotates_and_reuse_revokes_the_family(db_urls) -> None:
    async with gateway_client(db_urls) as client:
        await client.post("/api/v1/auth/register", json=grower())
        first = await sign_in(client, "0912345678")
        second = (await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
        assert second["refresh_token"] != first["refresh_token"]
        third = await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert third.status_code == 200
        # The first token is replayed (stolen?): refused, and every token of its family with it.
        replay = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert replay.status_code == 401
        latest = await client.post("/api/v1/auth/refresh", json={"refresh_token": third.json()["refresh_token"]})
        assert latest.status_code == 401
        # Another sign-in is another family, untouched.
        other = await sign_in(client, "0912345678")
        assert (await client.post("/api/v1/auth/refresh",
                                  json={"refresh_token": other["refresh_token"]})).status_code == 200


async def test_logout_revokes(db_urls) -> None:
    async with gateway_client(db_urls) as client:
        await client.post("/api/v1/auth/register", json=grower())
        tokens = await sign_in(client, "0912345678")
        assert (await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
                ).status_code == 204
        after = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert after.status_code == 401


async def test_me_needs_a_valid_token(db_urls) -> None:
    async with gateway_client(db_urls) as client:
        await client.post("/api/v1/auth/register", json=grower())
        tokens = await sign_in(client, "0912345678")
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200 and me.json()["phone"] == "+84912345678"
        none = await client.get("/api/v1/me")
        assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
        assert none.headers["content-type"] == PROBLEM
        tampered = tokens["access_token"][:-4] + ("AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB")
        assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tampered}"})).status_code == 401
        patched = await client.patch("/api/v1/me", json={"locale": "en", "name": "Ba Sen"},
                                     headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert patched.json()["locale"] == "en" and patched.json()["name"] == "Ba Sen"


async def test_api_keys_shown_once_listed_by_prefix_revocable(db_urls) -> None:
    async with gateway_client(db_urls) as client:
        await client.post("/api/v1/auth/register", json=grower())
        await client.post("/api/v1/auth/register", json={**grower("0987654321"), "role": "buyer"})
        auth = {"Authorization": f"Bearer {(await sign_in(client, '0912345678'))['access_token']}"}
        buyer = {"Authorization": f"Bearer {(await sign_in(client, '0987654321'))['access_token']}"}
        created = await client.post("/api/v1/api-keys", json={"name": "Kho hàng", "scopes": ["catalog:read",
                                                                                              "orders:read"]},
                                    headers=auth)
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        assert key.startswith(created.json()["prefix"] + "_")
        listed = (await client.get("/api/v1/api-keys", headers=auth)).json()["items"]
        assert [k["prefix"] for k in listed] == [created.json()["prefix"]]
        assert key not in json.dumps(listed)
        async with client.app.state.db.sessionmaker() as session:
            stored = await session.scalar(select(ApiKey))
        assert key not in stored.key_hash and len(stored.key_hash) == 64
        assert (await client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["catalog:read"]},
                                  headers=buyer)).status_code == 403
        assert (await client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["root"]},
                                  headers=auth)).status_code == 422
        # A key cannot be used to manage keys.
        assert (await client.get("/api/v1/api-keys", headers={"X-API-Key": key})).status_code == 401
        # Another grower cannot revoke it: it does not exist for them.
        await client.post("/api/v1/auth/register", json=grower("0977111222"))
        other = {"Authorization": f"Bearer {(await sign_in(client, '0977111222'))['access_token']}"}
        key_id = created.json()["id"]
        assert (await client.delete(f"/api/v1/api-keys/{key_id}", headers=other)).status_code == 404
        assert (await client.delete(f"/api/v1/api-keys/{key_id}", headers=auth)).status_code == 204
        assert (await client.get("/api/v1/api-keys", headers=auth)).json()["items"][0]["revoked_at"]


@pytest.fixture(params=["memory", "redis"])
def limiter_url(request) -> str:
    if request.param == "memory":
        return ""
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/14", socket_timeout=1).ping()
    except redis.RedisError as exc:
        require(False, f"Redis at 127.0.0.1:6379 is not reachable: {exc}")
    return "redis://127.0.0.1:6379/14"


async def test_sign_in_limited_per_account_and_per_ip(db_urls, limiter_url: str) -> None:
    unique = uuid.uuid4().hex[:8]
    limits = {"login-account": (3, 60), "login-ip": (5, 60), "register-ip": (50, 60), "api-key": (5, 60),
              "order-ip": (5, 60)}
    async with gateway_client(db_urls, redis_url=limiter_url, rate_limits=limits) as client:
        if limiter_url:  # Redis outlives the test: this run counts under its own prefix
            assert isinstance(client.app.state.limiter, RedisRateLimiter)
            await client.app.state.limiter.aclose()
            client.app.state.limiter = RedisRateLimiter(limiter_url, prefix=f"cv:test:{unique}:")
        login = f"limit-{unique}@example.vn"
        codes = [(await client.post("/api/v1/auth/token", json={"login": login, "password": "Wrong-pass-1"})
                  ).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        refused = await client.post("/api/v1/auth/token", json={"login": login, "password": "Wrong-pass-1"})
        assert refused.headers["content-type"] == PROBLEM
        assert int(refused.headers["retry-after"]) > 0
        assert refused.headers["ratelimit-policy"] == '"login-account";q=3;w=60'
        assert refused.headers["ratelimit"].startswith('"login-account";r=0;t=')
        # Per address: other logins from the same address run out too (5 per window in all).
        other = await client.post("/api/v1/auth/token", json={"login": f"x{unique}@e.vn", "password": "x"})
        assert other.status_code == 429 and other.json()["policy"] == "login-ip"

