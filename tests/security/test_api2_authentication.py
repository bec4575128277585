"""API2 Broken Authentication: forged, stale and misused tokens, through the gateway to every service.

tests/test_tokens_at_services.py sends its bad tokens (expired, alg none, wrong key, wrong audience or
issuer, HS256, unknown role, no expiry, garbage) straight at each service. Here the same tokens, and
the key-confusion attacks on the real public key, go through the gateway to the gateway's own routes
and to one route of each service; and the two kinds of token cannot stand in for each other.
"""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.keys import jwk, key_id, unb64url
from tests.security.conftest import PROBLEM, Market
from tests.test_tokens_at_services import BAD_TOKENS

# One route of each service, and the gateway's own, that need a signed-in caller.
PROTECTED = ["/api/v1/me", "/api/v1/shops/mine", "/api/v1/orders", "/api/v1/notifications", "/api/v1/webhooks"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _compact(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)])


def _claims(**overrides) -> dict:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return {"iss": "cho-vuon", "aud": "cho-vuon-api", "sub": "acc-1", "role": "admin", "kind": "user",
            "iat": now, "exp": now + 300, **overrides}


def key_confusion_tokens(public_x: str, kid: str) -> dict[str, str]:
    """Tokens an attacker can make knowing only the public key (it is published in the JWKS)."""
    import hashlib
    import hmac

    def hs256(secret: bytes) -> str:
        head = {"alg": "HS256", "typ": "JWT", "kid": kid}
        signing_input = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(_claims()).encode())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = jwk(attacker.public_key())
    return {
        "HS256 keyed with the JWKS x": hs256(public_x.encode()),
        "HS256 keyed with the raw public key": hs256(unb64url(public_x)),
        "alg None (capitalised)": _compact({"alg": "None", "typ": "JWT", "kid": kid}, _claims()),
        "alg none, our kid, a signature": _compact({"alg": "none", "kid": kid}, _claims(), b"x" * 64),
        "embedded jwk of the attacker": jwt.encode(_claims(), attacker, algorithm="EdDSA",
                                                   headers={"kid": kid, "jwk": attacker_jwk}),
        "jku pointing at the attacker": jwt.encode(_claims(), attacker, algorithm="EdDSA",
                                                   headers={"kid": key_id(attacker.public_key()),
                                                            "jku": "https://evil.example/jwks.json"}),
        "kid with a path": jwt.encode(_claims(), attacker, algorithm="EdDSA", headers={"kid": "../../dev/null"}),
        "no kid": jwt.encode(_claims(), attacker, algorithm="EdDSA"),
    }


def test_bad_tokens_are_refused_through_the_gateway_at_every_service(market: Market) -> None:
    jwks = market.gw.get("/.well-known/jwks.json").json()["keys"][0]
    bad = {why: make() for why, make in BAD_TOKENS.items()}
    bad |= key_confusion_tokens(jwks["x"], jwks["kid"])
    control = market.register("grower")
    for path in PROTECTED:
        for why, value in bad.items():
            resp = market.gw.get(path, headers={"Authorization": f"Bearer {value}"})
            assert resp.status_code == 401, (path, why, resp.status_code, resp.text[:200])
            assert resp.headers["content-type"] == PROBLEM, (path, why)
            assert resp.headers["www-authenticate"].startswith("Bearer"), (path, why)
        # The control: a real account's token gets through (404: it has no shop yet).
        ok = market.gw.get(path, headers=control.headers)
        assert ok.status_code in (200, 404), (path, ok.status_code, ok.text[:200])


def test_key_confusion_is_refused_directly_at_each_service(market: Market) -> None:
    jwks = market.gw.get("/.well-known/jwks.json").json()["keys"][0]
    for name, path in {"catalog": "/api/v1/shops/mine", "orders": "/api/v1/orders",
                       "notify": "/api/v1/webhooks"}.items():
        for why, value in key_confusion_tokens(jwks["x"], jwks["kid"]).items():
            resp = market.direct[name].get(path, headers={"Authorization": f"Bearer {value}"})
            assert resp.status_code == 401, (name, why, resp.text[:200])
            assert resp.headers["content-type"] == PROBLEM


def test_refresh_and_access_tokens_do_not_stand_in_for_each_other(market: Market) -> None:
    account = market.register("grower")
    as_access = market.gw.get("/api/v1/me", headers={"Authorization": f"Bearer {account.refresh_token}"})
    assert as_access.status_code == 401
    assert market.gw.get("/api/v1/shops/mine", headers={"Authorization": f"Bearer {account.refresh_token}"}
                         ).status_code == 401
    as_refresh = market.gw.post("/api/v1/auth/refresh", json={"refresh_token": account.access_token[:200]})
    assert as_refresh.status_code in (401, 422)
    # The refresh token still works for what it is for, once.
    rotated = market.gw.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert rotated.status_code == 200
    replayed = market.gw.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert replayed.status_code == 401 and replayed.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("header", [
    "Bearer", "Basic dXNlcjpwYXNz", "bearer  x.y.z", "Bearer " + "A" * 8000, "Token abc",
    "Bearer eyJhbGciOiJFZERTQSJ9..",
])
def test_malformed_authorization_headers_are_401_never_500(market: Market, header: str) -> None:
    for path in PROTECTED:
        resp = market.gw.get(path, headers={"Authorization": header})
        assert resp.status_code == 401, (path, header[:30], resp.status_code)
        assert resp.headers["content-type"] == PROBLEM


def test_header_bytes_above_ascii_are_not_a_500(market: Market) -> None:
    for path in PROTECTED:
        resp = market.gw.get(path, headers={"Authorization": "Bearer \u00e9\u00e9".encode()})
        assert resp.status_code == 401, (path, resp.status_code)
    public = market.gw.get("/api/v1/products", headers={"User-Agent": "Nông dân/1.0".encode()})
    assert public.status_code == 200, public.text[:200]
