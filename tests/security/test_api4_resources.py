"""API4 Unrestricted Resource Consumption: page sizes, body sizes, absurd numbers, long strings and
deeply nested JSON are refused cheaply (4xx problem+json), through the gateway and at each service.

Elsewhere: uploads over their limit (tests/gateway/test_proxy.py::test_uploads_have_their_own_limit,
tests/catalog/test_photos.py::test_over_the_size_limit_is_413 and ::test_too_many_pixels_is_refused_before_decoding),
slow bodies (test_proxy.py::test_slow_client_cannot_hold_the_pool), a full upstream pool
(::test_pool_exhaustion_is_503_and_recovers), the rate limiter's own memory (tests/gateway/test_ratelimit.py).
"""

from __future__ import annotations

import uuid

import pytest

from tests.catalog.helpers import PRODUCT
from tests.security.conftest import ORDER, PASSWORD, PROBLEM, Market

ONE_MB = 1_048_576


def test_no_list_gives_more_than_100_a_page(market: Market) -> None:
    grower, _, _ = market.grower_with_shop()
    doc = market.gw.get("/openapi.json").json()
    lists = [path for path, item in doc["paths"].items()
             if "{" not in path and any(p.get("name") == "limit" for p in item.get("get", {}).get("parameters", []))]
    assert {"/api/v1/products", "/api/v1/shops", "/api/v1/orders", "/api/v1/notifications", "/api/v1/webhooks",
            "/api/v1/api-keys"} <= set(lists), lists
    for path in lists:
        too_many = market.gw.get(path, params={"limit": 101}, headers=grower.headers)
        assert too_many.status_code == 422, (path, too_many.status_code)
        assert too_many.headers["content-type"] == PROBLEM
        assert [e["field"] for e in too_many.json()["errors"]] == ["query.limit"], path
        for limit in (0, -1, 10**12, "all"):
            assert market.gw.get(path, params={"limit": limit}, headers=grower.headers).status_code == 422, \
                (path, limit)
        assert market.gw.get(path, params={"limit": 100}, headers=grower.headers).status_code == 200, path


GATEWAY_OWN = ["/api/v1/auth/register", "/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/api-keys"]
PROXIED = {"catalog": "/api/v1/products", "orders": "/api/v1/orders", "notify": "/api/v1/webhooks"}


def _chunks(size: int, piece: int = 64 * 1024):
    sent = 0
    while sent < size:
        yield b" " * min(piece, size - sent)
        sent += piece


@pytest.mark.parametrize("how", ["declared", "chunked"])
def test_json_bodies_over_a_megabyte_are_413_everywhere(market: Market, how: str) -> None:
    size = ONE_MB + 1024

    def body():
        return b" " * size if how == "declared" else _chunks(size)

    headers = {"content-type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
    targets = [(market.gw, p) for p in [*GATEWAY_OWN, *PROXIED.values()]]
    targets += [(market.direct[name], path) for name, path in PROXIED.items()]
    for client, path in targets:
        resp = client.post(path, content=body(), headers=headers)
        assert resp.status_code == 413, (str(client.base_url), path, resp.status_code, resp.text[:200])
        assert resp.headers["content-type"] == PROBLEM
        assert resp.json()["type"].endswith("/payload-too-large")
    # Just under the limit is read (and then judged on what it says).
    under = market.gw.post("/api/v1/auth/token", content=b'{"login": "x", "password": "y"}' + b" " * (ONE_MB - 64),
                           headers={"content-type": "application/json"})
    assert under.status_code == 401


def test_absurd_numbers_and_long_strings_are_422(market: Market) -> None:
    grower, _, product = market.grower_with_shop()
    variant = product["variants"][0]["id"]
    long = "x" * 200_000
    cases = {
        "quantity 10^9": market.place(variant, quantity=10**9),
        "quantity 2^63": market.place(variant, quantity=2**63),
        "quantity -1": market.place(variant, quantity=-1),
        "quantity 1.5": market.place(variant, quantity=1.5),
        "51 lines": market.gw.post("/api/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
            **ORDER, "lines": [{"variant_id": variant, "quantity": 1}] * 51}),
        "long note": market.place(variant, note=long),
        "long street": market.place(variant, address={**ORDER["address"], "street": long}),
        "long name": market.gw.post("/api/v1/auth/register", json={"role": "buyer", "name": long,
                                                                   "phone": "0914000001", "password": PASSWORD}),
        "long password": market.gw.post("/api/v1/auth/token", json={"login": "0914000001", "password": long}),
        "long login": market.gw.post("/api/v1/auth/token", json={"login": long, "password": PASSWORD}),
        "long refresh token": market.gw.post("/api/v1/auth/refresh", json={"refresh_token": long}),
        "long description": market.gw.post("/api/v1/products", headers=grower.headers,
                                           json={**PRODUCT, "description": long}),
        "price 10^12": market.gw.post("/api/v1/products", headers=grower.headers, json={
            **PRODUCT, "variants": [{**PRODUCT["variants"][0], "retail_price": 10**12}]}),
        "21 variants": market.gw.post("/api/v1/products", headers=grower.headers,
                                      json={**PRODUCT, "variants": [PRODUCT["variants"][1]] * 21}),
        "long webhook url": market.gw.post("/api/v1/webhooks", headers=grower.headers, json={
            "url": "https://8.8.8.8/" + "a" * 5000, "event_types": ["stock.low"]}),
        "long search": market.gw.get("/api/v1/products", params={"q": "hoa " * 2000}),
        "long cursor": market.gw.get("/api/v1/products", params={"cursor": "A" * 5000}),
        "long idempotency key": market.gw.post("/api/v1/orders", headers={"Idempotency-Key": "k" * 4000},
                                               json={**ORDER, "lines": [{"variant_id": variant, "quantity": 1}]}),
        "id past 64 bits": market.gw.get(f"/api/v1/products/{2**70}"),
    }
    for why, resp in cases.items():
        assert resp.status_code in (400, 422), (why, resp.status_code, resp.text[:200])
        assert resp.headers["content-type"] == PROBLEM, why
    assert market.gw.get("/api/v1/products", params={"mine": True}, headers=grower.headers).json()["items"][0][
        "variants"][0]["stock"] == PRODUCT["variants"][0]["stock"], "no stock was taken by any of it"


DEPTH = 200_000  # well inside the 1 MB limit: "[" * DEPTH + "]" * DEPTH


@pytest.mark.parametrize("shape", ["arrays", "objects", "inside a field"])
def test_deeply_nested_json_is_refused_not_a_crash(market: Market, shape: str) -> None:
    if shape == "arrays":
        body = "[" * DEPTH + "]" * DEPTH
    elif shape == "objects":
        body = '{"a":' * (DEPTH // 6) + "1" + "}" * (DEPTH // 6)
    else:
        body = '{"name": ' + "[" * DEPTH + "]" * DEPTH + ', "lines": []}'
    headers = {"content-type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
    targets = [(market.gw, p) for p in [*GATEWAY_OWN[:2], *PROXIED.values()]]
    targets += [(market.direct[name], path) for name, path in PROXIED.items()]
    for client, path in targets:
        resp = client.post(path, content=body, headers=headers)
        assert resp.status_code in (400, 401, 422), (str(client.base_url), path, resp.status_code, resp.text[:200])
        assert resp.headers["content-type"] == PROBLEM
        assert "Recursion" not in resp.text and "Traceback" not in resp.text
    assert market.gw.get("/healthz").status_code == 200
