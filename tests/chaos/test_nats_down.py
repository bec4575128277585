"""Chaos: the NATS server is down for 30 seconds while buyers keep ordering. Orders are still taken
(their events wait in the outbox); once the server is back, on the same JetStream store, every order
placed before, during and after the outage reaches the grower's inbox, once.

A private nats-server (its own port and store folder) stands in for the bus, so the machine's shared
server is never stopped. Catalog, orders and notify run in threads, on PostgreSQL as in production."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from tests.apps import make_app
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.events.stack import GROWER, ORDER
from tests.support.databases import require
from tests.support.nats_server import PrivateNats, unavailable
from tests.support.servers import serve_in_thread

OUTAGE = 30.0  # seconds the bus is down
# When, during the outage, orders are placed (seconds after the server stopped), and how many.
DURING = [(0.0, 3), (10.0, 2), (20.0, 2), (OUTAGE - 2.0, 3)]


async def inbox_codes(notify: httpx.AsyncClient) -> list[str]:
    codes, cursor = [], None
    while True:
        resp = await notify.get("/api/v1/notifications", headers=GROWER,
                                params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        codes += [i["data"]["code"] for i in page["items"] if i["type"] == "order.placed"]
        cursor = page["next_cursor"]
        if not cursor:
            return codes


async def wait_inbox(notify: httpx.AsyncClient, count: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        codes = await inbox_codes(notify)
        if len(codes) >= count or time.monotonic() > deadline:
            return codes
        await asyncio.sleep(0.25)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_orders_placed_while_nats_is_down_reach_the_inbox_once(db_urls, tmp_path) -> None:
    why = unavailable()
    require(why is None, why or "")
    with PrivateNats(tmp_path) as bus:
        events = {"event_bus_url": bus.url, "event_namespace": "cvchaos"}
        with serve_in_thread(make_app("notify", db_urls, **events)) as notify_url:
            catalog_app = make_app("catalog", db_urls, reservation_sweep_interval=0, notify_url=notify_url,
                                   relay_poll_interval=0.5, **events)
            with serve_in_thread(catalog_app) as catalog_url:
                orders_app = make_app("orders", db_urls, catalog_url=catalog_url, notify_url=notify_url,
                                      reconcile_interval=1, relay_poll_interval=0.5, **events)
                with serve_in_thread(orders_app) as orders_url:
                    async with httpx.AsyncClient(base_url=orders_url, timeout=20) as orders, \
                            httpx.AsyncClient(base_url=catalog_url, timeout=20) as catalog, \
                            httpx.AsyncClient(base_url=notify_url, timeout=20) as notify:
                        assert (await catalog.post("/api/v1/shops", json={**SHOP, "bank": BANK},
                                                   headers=GROWER)).status_code == 201
                        product = (await catalog.post("/api/v1/products", headers=GROWER, json={
                            **PRODUCT, "variants": [{**PRODUCT["variants"][0], "stock": 1000}]})).json()
                        line = [{"variant_id": product["variants"][0]["id"], "quantity": 2}]

                        async def place(count: int) -> list[str]:
                            codes = []
                            for _ in range(count):
                                resp = await orders.post("/api/v1/orders", json={**ORDER, "lines": line},
                                                         headers={"Idempotency-Key": uuid.uuid4().hex})
                                assert resp.status_code == 201, resp.text
                                codes.append(resp.json()["code"])
                            return codes

                        before = await place(3)
                        assert sorted(await wait_inbox(notify, 3, timeout=30)) == sorted(before)

                        await asyncio.to_thread(bus.stop)
                        stopped = time.monotonic()
                        during: list[str] = []
                        for at, count in DURING:
                            await asyncio.sleep(max(0.0, stopped + at - time.monotonic()))
                            during += await place(count)  # taken while the bus is down
                        await asyncio.sleep(max(0.0, stopped + OUTAGE - time.monotonic()))
                        assert len(await inbox_codes(notify)) == 3, "nothing can arrive while the bus is down"
                        await asyncio.to_thread(bus.start)

                        after = await place(3)
                        placed = before + during + after
                        seen = await wait_inbox(notify, len(placed), timeout=90)
                        await asyncio.sleep(1.0)  # a duplicate would show up now
                        seen = await inbox_codes(notify)
                        missing = set(placed) - set(seen)
                        assert not missing, (f"{len(missing)} of {len(placed)} orders never reached the inbox, "
                                             f"{len(set(during) & missing)} of them placed during the outage")
                        assert sorted(seen) == sorted(placed), "each order once in the inbox"
