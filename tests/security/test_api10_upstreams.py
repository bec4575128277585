"""API10 Unsafe Consumption of APIs: what one of our services reads from another is checked before it
is used. The orders service takes prices and shop terms from the catalog's reservation reply; a reply
that is not what the contract says (not JSON, another shape, impossible prices, another reservation,
a refusal that is not about the order, too slow) is the catalog being unavailable: a 503 problem,
nothing stored, the Idempotency-Key free to retry. Never a 500, never the catalog's words about our
credentials passed on to a buyer.

The catalog here is a hostile stand-in (the real one is tested against the contract in
tests/orders/ and tests/catalog/test_reservations.py); the line's variant id picks how it misbehaves.

Elsewhere: webhook receivers are upstreams too — their redirects are never followed and their bodies
never read (tests/events/test_webhooks.py::test_redirects_are_not_followed_and_the_address_is_checked_again_at_send),
the gateway leaves /internal paths of a service's OpenAPI out of the merge
(tests/gateway/test_proxy.py::test_merged_openapi_and_docs), an upstream that is down, slow or cuts the
connection is a 503, 504 or 502 (test_proxy.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.apps import make_app
from tests.security.conftest import ORDER, PROBLEM
from tests.support.auth import auth
from tests.support.databases import sqlite_urls
from tests.support.servers import serve_in_thread

BUYER = auth("buyer-api10", role="buyer")
SHOP = {"id": 7, "owner_id": "grower-api10", "name": "Vườn", "slug": "vuon", "phone": "+84912345678",
        "delivery": {"pickup": True, "flat_fee": 30000, "fee_by_province": {}, "free_above": None},
        "min_order_value": 0, "bank_bin": None, "bank_account": None, "bank_holder": None}
LINE = {"variant_id": 1, "product_id": 1, "product_name": "Súng", "variant_label": "Củ", "quantity": 1,
        "unit_price": 45000, "price_kind": "retail", "weight_grams": None}


def reservation(rid: str, shop: dict | None = None, **line) -> dict:
    return {"id": rid, "status": "held", "expires_at": "2030-01-01T00:00:00Z", "shop": shop or SHOP,
            "lines": [{**LINE, **line}]}


# variant id → what the hostile catalog answers to a reservation
MODES = {
    2: lambda rid: Response("<html><body>502 Bad Gateway</body></html>", 200, media_type="text/html"),
    3: lambda rid: JSONResponse([]),
    4: lambda rid: JSONResponse({"id": rid, "lines": []}),
    5: lambda rid: JSONResponse(reservation(rid, unit_price=-45000)),
    6: lambda rid: JSONResponse(reservation(rid, unit_price="rẻ")),
    7: lambda rid: JSONResponse(reservation("someone-elses-reservation")),
    8: lambda rid: JSONResponse(reservation(rid, shop={**SHOP, "delivery": {"flat_fee": "x"}})),
    9: lambda rid: JSONResponse(reservation(rid, price_kind="free")),
    10: lambda rid: JSONResponse({"type": "/problems/unauthorized", "title": "Authentication required",
                                 "status": 401, "detail": "A service credential is required"}, 401),
    11: lambda rid: Response("<h1>Not Found</h1>", 404, media_type="text/html"),
    12: lambda rid: Response("rate limited", 429, headers={"Retry-After": "1"}),
    13: lambda rid: JSONResponse(reservation(rid, quantity=0)),
    14: lambda rid: JSONResponse(reservation(rid, shop={**SHOP, "min_order_value": None})),
    15: lambda rid: Response(b"\xff\xfe{", 200, media_type="application/json"),
}
SLOW = 99  # answers after the orders service has given up


class HostileCatalog:
    def __init__(self) -> None:
        async def reserve(request: Request) -> Response:
            body = await request.json()
            variant = body["lines"][0]["variant_id"]
            if variant == SLOW:
                await asyncio.sleep(3)
                return JSONResponse(reservation(body["id"]))
            if variant == 1:  # the control: a well-formed reply
                return JSONResponse(reservation(body["id"]))
            return MODES[variant](body["id"])

        async def settle(_: Request) -> Response:
            return JSONResponse({"status": "ok"})

        async def shops(request: Request) -> Response:
            return JSONResponse({"shops": "not a map"})

        async def health(_: Request) -> Response:
            return JSONResponse({"status": "ok"})

        self.app = Starlette(routes=[
            Route("/internal/reservations", reserve, methods=["POST"]),
            Route("/internal/reservations/{rid}/{action}", settle, methods=["POST"]),
            Route("/internal/variants/shops", shops, methods=["POST"]),
            Route("/healthz", health), Route("/readyz", health)])


@pytest.fixture(scope="module")
def orders_url(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("api10")
    with serve_in_thread(HostileCatalog().app) as catalog_url:
        app = make_app("orders", sqlite_urls(folder), catalog_url=catalog_url, catalog_timeout=1.0,
                       reconcile_interval=0, relay_poll_interval=0)
        with serve_in_thread(app) as url:
            yield url


def place(client: httpx.Client, variant: int, key: str | None = None, path: str = "/api/v1/orders") -> httpx.Response:
    return client.post(path, headers={**BUYER, "Idempotency-Key": key or uuid.uuid4().hex},
                       json={**ORDER, "lines": [{"variant_id": variant, "quantity": 1}]})


def test_a_catalog_reply_out_of_contract_is_a_503_and_nothing_is_stored(orders_url: str) -> None:
    with httpx.Client(base_url=orders_url, timeout=10) as client:
        for variant in [*MODES, SLOW]:
            key = uuid.uuid4().hex
            resp = place(client, variant, key)
            assert resp.status_code == 503, (variant, resp.status_code, resp.text[:300])
            assert resp.headers["content-type"] == PROBLEM
            assert resp.json()["service"] == "catalog" and resp.headers["retry-after"]
            assert "credential" not in resp.text and "html" not in resp.text.lower(), (variant, resp.text)
            again = place(client, variant, key)  # the key was given up: a retry is not "in flight"
            assert again.status_code == 503, (variant, again.status_code)
        checkout = place(client, 1, path="/api/v1/checkouts")
        assert checkout.status_code == 503 and checkout.headers["content-type"] == PROBLEM
        assert client.get("/api/v1/orders", headers=BUYER).json()["items"] == []
        # The control: a reply that keeps the contract places the order, at the catalog's price.
        ok = place(client, 1)
        assert ok.status_code == 201, ok.text
        assert ok.json()["lines"][0]["unit_price"] == 45000 and ok.json()["total"] == 75000


def test_a_refusal_in_an_unexpected_shape_is_passed_on_safely(tmp_path) -> None:
    async def refuse(_: Request) -> Response:
        return JSONResponse({"type": 5, "title": ["x"], "detail": {"a": 1}, "status": "409", "errors": []}, 409)

    catalog = Starlette(routes=[Route("/internal/reservations", refuse, methods=["POST"])])
    with serve_in_thread(catalog) as catalog_url:
        app = make_app("orders", sqlite_urls(tmp_path), catalog_url=catalog_url, reconcile_interval=0)
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            resp = place(client, 1)
    assert resp.status_code == 409, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert isinstance(body["title"], str) and isinstance(body["detail"], str) and body["status"] == 409
