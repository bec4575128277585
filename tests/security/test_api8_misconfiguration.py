"""API8 Security Misconfiguration: the cross-origin policy, errors that say nothing about the insides,
and nothing for operators on the public port.

CORS policy (docs/security.md): the public API is for server-side integrators and for Chợ Vườn's own
pages, which are served by the gateway on the same origin. So the gateway grants no cross-origin
access at all: no ``Access-Control-Allow-*`` header on any reply, to a preflight or to a plain request,
whatever the ``Origin``; a browser on another site can neither read a reply nor send a credentialed
non-simple request.

Elsewhere: an unhandled exception is a 500 problem with the request id and no trace
(tests/test_service_basics.py::test_unhandled_error_is_500_without_trace), every error of every app is
problem+json (::test_errors_are_problem_json), secrets that are development defaults are refused
outside development (tests/test_settings_and_logs.py).
"""

from __future__ import annotations

import re
import uuid

from tests.catalog.helpers import PRODUCT
from tests.security.conftest import PASSWORD, PROBLEM, Market
from tests.support.auth import auth

ORIGINS = ["https://evil.example", "null", "https://cho-vuon.vn.evil.example", "http://localhost:8000.evil.example"]
CORS_PATHS = ["/api/v1/auth/token", "/api/v1/me", "/api/v1/products", "/api/v1/orders", "/api/v1/webhooks",
              "/api/v1/notifications/stream", "/openapi.json", "/"]


def test_no_cross_origin_access_is_granted(market: Market) -> None:
    grower = market.register("grower")
    for origin in ORIGINS:
        for path in CORS_PATHS:
            preflight = market.gw.options(path, headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
            plain = market.gw.get(path, headers={"Origin": origin, **grower.headers}) \
                if path != "/api/v1/notifications/stream" else None
            for resp in filter(None, (preflight, plain)):
                granted = {k: v for k, v in resp.headers.items() if k.lower().startswith("access-control-allow")}
                assert not granted, (origin, path, resp.request.method, granted)
            assert preflight.status_code >= 400 or preflight.status_code == 204, (path, preflight.status_code)
    # Credentials, simple request: the reply is not shared with a foreign origin.
    signed_in = market.gw.post("/api/v1/auth/token", headers={"Origin": ORIGINS[0]},
                               json={"login": grower.phone, "password": PASSWORD})
    assert signed_in.status_code == 200
    assert "access-control-allow-origin" not in signed_in.headers
    assert "access-control-allow-credentials" not in signed_in.headers


INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|/work/|site-packages|\b[A-Z][A-Za-z]*(Error|Exception)\b|sqlalchemy|asyncpg|"
    r"aiosqlite|sqlite3|psycopg|pydantic_core|starlette\.|uvicorn\.|line \d+", re.IGNORECASE)


def _no_internals(resp, what: str) -> None:
    assert resp.headers["content-type"] == PROBLEM, (what, resp.status_code, resp.headers.get("content-type"))
    body = resp.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), (what, body)
    assert body["status"] == resp.status_code, what
    found = INTERNALS.search(resp.text)
    assert found is None, f"{what}: {found.group(0)!r} in {resp.text[:300]}"


def test_errors_of_every_kind_say_nothing_of_the_insides(market: Market) -> None:
    grower, shop, product = market.grower_with_shop()
    buyer = market.register("buyer")
    order = market.place(product["variants"][0]["id"], buyer.headers).json()
    json_ct = {"content-type": "application/json"}
    gw = market.gw
    cases = {
        "unknown route": (gw.get("/api/v1/nothing-here"), 404),
        "unknown service path": (gw.get("/api/v1/products/1/nothing"), 404),
        "internal path": (gw.get("/internal/reservations"), 404),
        "wrong method": (gw.put("/api/v1/products", json={}), 405),
        "gateway's own route, wrong method": (gw.delete("/api/v1/auth/token"), 405),
        "TRACE": (gw.request("TRACE", "/api/v1/products"), (404, 405)),
        "malformed JSON": (gw.post("/api/v1/products", content=b'{"name": ', headers={**json_ct, **grower.headers}),
                           400),
        "malformed JSON at the gateway": (gw.post("/api/v1/auth/token", content=b"{,}", headers=json_ct), 400),
        "not UTF-8": (gw.post("/api/v1/auth/token", content=b'{"login": "\xff\xfe"}', headers=json_ct), 400),
        "a number too long to parse": (gw.post("/api/v1/auth/token", content=b'{"login": 1' + b"0" * 5000 + b"}",
                                               headers=json_ct), 400),
        "validation": (gw.post("/api/v1/products", json={**PRODUCT, "variants": []}, headers=grower.headers), 422),
        "path type": (gw.get("/api/v1/orders/abc", headers=buyer.headers), (404, 422)),
        "NUL in path": (gw.get("/api/v1/products/%00"), 404),
        "bad cursor": (gw.get("/api/v1/products", params={"cursor": "eyJpZCI6IngifQ"}), 422),
        "no token": (gw.get("/api/v1/me"), 401),
        "bad token": (gw.get("/api/v1/orders", headers={"Authorization": "Bearer a.b.c"}), 401),
        "expired token": (gw.get("/api/v1/shops/mine", headers=auth(grower.id, ttl=-60)), 401),
        "wrong role": (gw.post("/api/v1/products", json=PRODUCT, headers=buyer.headers), 403),
        "not theirs": (gw.get(f"/api/v1/orders/{order['id']}", headers=market.register("buyer").headers), 404),
        "duplicate": (gw.post("/api/v1/auth/register", json={"role": "buyer", "name": "X", "phone": buyer.phone,
                                                             "password": PASSWORD}), 409),
        "no Idempotency-Key": (gw.post("/api/v1/orders", json={"lines": []}), 422),
        "illegal move": (gw.post(f"/api/v1/orders/{order['id']}/deliver", headers=grower.headers), 409),
        "out of stock": (market.place(product["variants"][1]["id"], quantity=10_000), 409),
        "too large": (gw.post("/api/v1/orders", content=b" " * 1_100_000, headers=json_ct), 413),
        "not a photo": (gw.post(f"/api/v1/products/{product['id']}/photos", headers=grower.headers,
                                files={"file": ("a.jpg", b"%PDF-1.4 not a photo", "image/jpeg")}), 415),
        "wrong credential at a service": (market.direct["catalog"].post("/internal/reservations", json={}), 401),
        "unknown route at a service": (market.direct["orders"].get("/nothing"), 404),
        "malformed JSON at a service": (market.direct["notify"].post("/api/v1/webhooks", content=b"[",
                                                                     headers={**json_ct, **grower.headers}), 400),
        "validation at a service": (market.direct["orders"].post(
            "/api/v1/orders", json={"lines": "x"}, headers={"Idempotency-Key": uuid.uuid4().hex}), 422),
    }
    for what, (resp, status) in cases.items():
        expected = status if isinstance(status, tuple) else (status,)
        assert resp.status_code in expected, (what, resp.status_code, resp.text[:200])
        _no_internals(resp, what)


def test_operators_endpoints_are_not_on_the_public_port(market: Market) -> None:
    resp = market.gw.get("/metrics")
    assert resp.status_code == 404
    assert "http_requests_total" not in resp.text
    wrong = market.gw.get("/metrics", headers={"Authorization": "Bearer not-the-service-token"})
    assert wrong.status_code == 404
    settings = market.apps["gateway"].state.settings
    service = settings.service_token.get_secret_value()  # the credential that may delete accounts
    for headers in ({"Authorization": f"Bearer {service}"}, {"X-Service-Token": service}):
        assert market.gw.get("/metrics", headers=headers).status_code == 404
    token = settings.metrics_token.get_secret_value()
    scraped = market.gw.get("/metrics", headers={"Authorization": f"Bearer {token}"})  # the scraper
    assert scraped.status_code == 200 and "http_requests_total" in scraped.text
