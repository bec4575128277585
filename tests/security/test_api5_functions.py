"""API5 Broken Function Level Authorization: buyers cannot use growers' functions, an API key only
what its scopes allow (and never the account functions), and every /internal route of every service
refuses a caller without the service credential, whatever token it brings.

Elsewhere: the role and scope checks on a test route of each service
(tests/test_tokens_at_services.py::test_api_key_tokens_are_held_to_their_scopes), a key cannot manage
keys (tests/gateway/test_identity.py::test_api_keys_shown_once_listed_by_prefix_revocable).
"""

from __future__ import annotations

import re
import uuid

from fastapi import routing

from tests.catalog.helpers import PRODUCT, SHOP
from tests.security.conftest import ORDER, PROBLEM, Market
from tests.support.auth import token


def test_buyers_cannot_use_growers_functions(market: Market) -> None:
    grower, shop, product = market.grower_with_shop()
    buyer = market.register("buyer")
    order = market.place(product["variants"][0]["id"], buyer.headers).json()
    h = buyer.headers
    refused = {
        "open a shop": market.gw.post("/api/v1/shops", headers=h, json=SHOP),
        "list a variety": market.gw.post("/api/v1/products", headers=h, json=PRODUCT),
        "my varieties": market.gw.get("/api/v1/products", headers=h, params={"mine": True}),
        "create an API key": market.gw.post("/api/v1/api-keys", headers=h, json={"name": "k", "scopes": ["webhooks"]}),
        "list API keys": market.gw.get("/api/v1/api-keys", headers=h),
        "order counts": market.gw.get("/api/v1/orders/counts", headers=h),
        "orders CSV": market.gw.get("/api/v1/orders/export.csv", headers=h),
        "packing list": market.gw.get("/api/v1/orders/packing-list", headers=h),
        "phone order": market.gw.post("/api/v1/orders/phone", headers={**h, "Idempotency-Key": uuid.uuid4().hex},
                                      json={**ORDER, "lines": [{"variant_id": product["variants"][0]["id"],
                                                                "quantity": 1}]}),
        "register a webhook": market.gw.post("/api/v1/webhooks", headers=h,
                                             json={"url": "https://8.8.8.8/h", "event_types": ["order.placed"]}),
    }
    for what, resp in refused.items():
        assert resp.status_code == 403, (what, resp.status_code, resp.text[:200])
        assert resp.headers["content-type"] == PROBLEM
    # On their own order a buyer may cancel, and nothing a grower does.
    for action in ("confirm", "ship", "deliver", "mark-paid"):
        resp = market.gw.post(f"/api/v1/orders/{order['id']}/{action}", headers=h)
        assert resp.status_code in (403, 409), (action, resp.status_code)
    seen = market.gw.get(f"/api/v1/orders/{order['id']}", headers=grower.headers).json()
    assert (seen["status"], seen["payment_status"]) == ("placed", "unpaid")
    assert market.gw.get(f"/api/v1/shops/{shop['id']}").json()["name"] == shop["name"]


def test_api_keys_do_only_what_their_scopes_allow(market: Market) -> None:
    grower, shop, product = market.grower_with_shop()
    buyer = market.register("buyer")
    order = market.place(product["variants"][0]["id"], buyer.headers).json()

    def key(*scopes: str) -> dict:
        created = market.gw.post("/api/v1/api-keys", headers=grower.headers,
                                 json={"name": "tích hợp", "scopes": list(scopes)})
        assert created.status_code == 201, created.text
        return {"X-API-Key": created.json()["key"]}

    catalog_reader, orders_reader = key("catalog:read"), key("orders:read")
    refused = {
        "catalog:read lists a variety": market.gw.post("/api/v1/products", headers=catalog_reader, json=PRODUCT),
        "catalog:read changes the shop": market.gw.patch(f"/api/v1/shops/{shop['id']}", headers=catalog_reader,
                                                         json={"name": "Bị đổi"}),
        "catalog:read archives": market.gw.delete(f"/api/v1/products/{product['id']}", headers=catalog_reader),
        "catalog:read reads orders": market.gw.get("/api/v1/orders", headers=catalog_reader),
        "catalog:read registers a webhook": market.gw.post("/api/v1/webhooks", headers=catalog_reader, json={
            "url": "https://8.8.8.8/h", "event_types": ["order.placed"]}),
        "orders:read confirms": market.gw.post(f"/api/v1/orders/{order['id']}/confirm", headers=orders_reader),
        "orders:read marks paid": market.gw.post(f"/api/v1/orders/{order['id']}/mark-paid", headers=orders_reader),
        "orders:read changes a variety": market.gw.patch(f"/api/v1/products/{product['id']}", headers=orders_reader,
                                                         json={"name": "Bị đổi"}),
        "a key exports the account": market.gw.get("/api/v1/me/export", headers=orders_reader),
        "a key deletes the account": market.gw.delete("/api/v1/me", headers=orders_reader),
        "a key makes a key": market.gw.post("/api/v1/api-keys", headers=orders_reader,
                                            json={"name": "k2", "scopes": ["orders:write"]}),
    }
    for what, resp in refused.items():
        assert resp.status_code in (401, 403), (what, resp.status_code, resp.text[:200])
        assert resp.headers["content-type"] == PROBLEM
    assert market.gw.get("/api/v1/orders", headers=orders_reader).status_code == 200
    assert market.gw.get("/api/v1/products", params={"mine": True}, headers=catalog_reader).status_code == 200
    seen = market.gw.get(f"/api/v1/orders/{order['id']}", headers=grower.headers).json()
    assert (seen["status"], seen["payment_status"]) == ("placed", "unpaid")
    assert market.gw.get(f"/api/v1/products/{product['id']}").json()["name"] == product["name"]
    assert market.gw.get("/api/v1/me", headers=grower.headers).status_code == 200


def _internal_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the app routes under /internal, from its routing table (not its docs)."""
    found = []
    for route in routing.iter_route_contexts(app.routes):
        path = getattr(route, "path", "")
        if path.startswith("/internal"):
            found += [(method, re.sub(r"\{[^}]+\}", "1", path)) for method in sorted(route.methods or ())]
    return found


def test_every_internal_route_needs_the_service_credential(market: Market) -> None:
    expected = {"catalog": {"/internal/reservations", "/internal/accounts/1"}, "orders": {"/internal/accounts/1"},
                "notify": {"/internal/events", "/internal/accounts/1"}}
    for name in ("catalog", "orders", "notify"):
        client, app = market.direct[name], market.apps[name]
        routes = _internal_routes(app)
        assert expected[name] <= {p for _, p in routes}, routes
        wrong = [{}, {"X-Service-Token": "guess"}, {"X-Service-Token": market.service_token(app)[:-1]},
                 {"Authorization": f"Bearer {token(role='admin')}"},
                 {"Authorization": f"Bearer {market.service_token(app)}"},
                 {"x-service-token": market.service_token(app).upper()}]
        for method, path in routes:
            for headers in wrong:
                resp = client.request(method, path, headers=headers, json={})
                assert resp.status_code == 401, (name, method, path, headers, resp.status_code)
                assert resp.headers["content-type"] == PROBLEM
            # The control: with the credential the route is reached (it then judges the request).
            ok = client.request(method, path, headers={"X-Service-Token": market.service_token(app)}, json={})
            assert ok.status_code != 401, (name, method, path)
