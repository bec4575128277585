"""Cursors cannot break a list: every list in the public document, handed a cursor made by hand, is a
422 naming ``query.cursor`` (never a 500), on SQLite and on PostgreSQL; the cursors the API gives out
still page through without gaps or repeats."""

from __future__ import annotations

import base64

import orjson

from tests.catalog.helpers import PRODUCT, SHOP
from tests.support.fullstack import full_stack

HAND_MADE = [{"id": "x"}, {"id": [1]}, {"id": 1e30}, {"id": None}, {"id": True}, {"id": -1}, {"id": 2**40},
             {"id": 1, "k": "x"}, {"k": 1.5, "id": 1e30}, {"s": "newest", "id": 1, "t": 7}, [1], "x", 5]


def token(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


async def test_a_hand_made_cursor_is_a_422_on_every_list(db_urls) -> None:
    async with full_stack(db_urls) as s:
        grower = await s.register("grower", "0912 700 001")
        assert (await s.gw.post("/api/v1/shops", json=SHOP, headers=grower["headers"])).status_code == 201
        product = (await s.gw.post("/api/v1/products", json=PRODUCT, headers=grower["headers"])).json()
        endpoint = (await s.gw.post("/api/v1/webhooks", headers=grower["headers"],
                                    json={"url": "https://8.8.8.8/hooks", "event_types": ["stock.low"]})).json()
        ids = {"endpoint_id": endpoint["id"], "product_id": product["id"]}
        doc = (await s.gw.get("/openapi.json")).json()
        lists = [path for path, item in doc["paths"].items()
                 if any(p["name"] == "cursor" for p in item.get("get", {}).get("parameters", []))]
        assert len(lists) >= 7, lists  # api-keys, shops, products, orders, notifications, webhooks, deliveries
        # The lists whose order has more keys than the id: each sort and search with its own cursor.
        queries = [(path.format(**ids), {}) for path in lists] + [
            ("/api/v1/products", {"sort": sort}) for sort in ("relevance", "price_asc", "price_desc")] + [
            ("/api/v1/products", {"q": "sung"}), ("/api/v1/shops", {"q": "sen"})]
        for path, params in queries:
            for value in HAND_MADE:
                resp = await s.gw.get(path, params={**params, "cursor": token(value)}, headers=grower["headers"])
                assert resp.status_code == 422, (path, params, value, resp.status_code, resp.text)
                assert resp.headers["content-type"] == "application/problem+json"
                assert resp.json()["errors"][0]["field"] == "query.cursor", resp.text
            garbage = await s.gw.get(path, params={**params, "cursor": "!!not base64!!"}, headers=grower["headers"])
            assert garbage.status_code == 422, (path, garbage.text)
        # A cursor of one listing is not one of another: the price sort's cursor under `newest`.
        priced = (await s.gw.get("/api/v1/products", params={"sort": "price_asc", "limit": 1})).json()
        assert priced["next_cursor"] is None  # one variety: one page
        for i in range(3):
            extra = {**PRODUCT, "name": f"Súng số {i}"}
            assert (await s.gw.post("/api/v1/products", json=extra, headers=grower["headers"])).status_code == 201
        first = (await s.gw.get("/api/v1/products", params={"sort": "price_asc", "limit": 2})).json()
        mixed = await s.gw.get("/api/v1/products", params={"sort": "newest", "cursor": first["next_cursor"]})
        assert mixed.status_code == 422, mixed.text


async def test_the_cursors_given_out_page_through_every_list(db_urls) -> None:
    async with full_stack(db_urls) as s:
        grower = await s.register("grower", "0912 700 002")
        assert (await s.gw.post("/api/v1/shops", json=SHOP, headers=grower["headers"])).status_code == 201
        for i in range(5):
            extra = {**PRODUCT, "name": f"Súng số {i}"}
            assert (await s.gw.post("/api/v1/products", json=extra, headers=grower["headers"])).status_code == 201
        for i in range(5):
            key = {"name": f"khoá {i}", "scopes": ["catalog:read"]}
            assert (await s.gw.post("/api/v1/api-keys", json=key, headers=grower["headers"])).status_code == 201
        for path, params in [("/api/v1/products", {}), ("/api/v1/products", {"sort": "price_desc"}),
                             ("/api/v1/products", {"q": "sung"}), ("/api/v1/api-keys", {})]:
            seen: list[int] = []
            cursor = None
            while True:
                page = await s.gw.get(path, params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})},
                                      headers=grower["headers"])
                assert page.status_code == 200, page.text
                seen += [item["id"] for item in page.json()["items"]]
                cursor = page.json()["next_cursor"]
                if cursor is None:
                    break
            assert len(seen) == 5 and len(set(seen)) == 5, (path, params, seen)
