"""Chaos: notify is down while 100 orders are placed. When it comes back, every order reaches the
grower's inbox, once. (The orders outbox keeps the events; the relay retries with backoff.)"""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.apps import make_app
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.events.stack import GROWER, ORDER
from tests.support.servers import free_port, serve_in_thread

ORDERS = 100


async def test_notify_down_while_orders_are_placed(db_urls) -> None:
    notify_port = free_port()
    notify_url = f"http://127.0.0.1:{notify_port}"
    catalog_app = make_app("catalog", db_urls, reservation_sweep_interval=0, notify_url=notify_url,
                           relay_poll_interval=0.5)
    with serve_in_thread(catalog_app) as catalog_url:
        orders_app = make_app("orders", db_urls, catalog_url=catalog_url, notify_url=notify_url,
                              reconcile_interval=1, relay_poll_interval=0.5)
        with serve_in_thread(orders_app) as orders_url:
            async with httpx.AsyncClient(base_url=orders_url, timeout=20) as orders, \
                    httpx.AsyncClient(base_url=catalog_url, timeout=20) as catalog:
                await catalog.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=GROWER)
                product = (await catalog.post("/api/v1/products", json={
                    **PRODUCT, "variants": [{**PRODUCT["variants"][0], "stock": 1000}]}, headers=GROWER)).json()
                line = [{"variant_id": product["variants"][0]["id"], "quantity": 2}]
                gate = asyncio.Semaphore(10)

                async def place() -> str:
                    async with gate:
                        resp = await orders.post("/api/v1/orders", json={**ORDER, "lines": line},
                                                 headers={"Idempotency-Key": uuid.uuid4().hex})
                        assert resp.status_code == 201, resp.text
                        return resp.json()["code"]

                codes = await asyncio.gather(*(place() for _ in range(ORDERS)))
                assert len(set(codes)) == ORDERS

                # notify comes back, on the address the relays were given
                with serve_in_thread(make_app("notify", db_urls), port=notify_port):
                    async with httpx.AsyncClient(base_url=notify_url, timeout=20) as notify:
                        seen: list[str] = []
                        for _ in range(600):
                            items, cursor = [], None
                            while True:
                                page = (await notify.get("/api/v1/notifications", headers=GROWER,
                                                         params={"limit": 100, **({"cursor": cursor} if cursor
                                                                                  else {})})).json()
                                items += page["items"]
                                cursor = page["next_cursor"]
                                if not cursor:
                                    break
                            seen = [i["data"]["code"] for i in items if i["type"] == "order.placed"]
                            if len(seen) >= ORDERS:
                                break
                            await asyncio.sleep(0.1)
                        assert sorted(seen) == sorted(codes), f"{len(seen)} of {ORDERS} arrived"
                        assert len(seen) == len(set(seen)), "no duplicates"
