"""Catalog, orders and notify as real servers (threads), wired by HTTP push or by NATS JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

import httpx

from tests.apps import make_app
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.support.auth import auth
from tests.support.databases import require
from tests.support.servers import serve_in_thread

NATS_URL = "nats://127.0.0.1:4222"
GROWER_ID = "grower-events-1"
GROWER = auth(GROWER_ID)
ORDER = {
    "contact": {"name": "Anh Tư", "phone": "0987 654 321", "email": "tu@example.vn"},
    "address": {"province_code": "92", "ward_code": "31135", "street": "9 Mậu Thân"},
    "payment_method": "cod", "consent": True,
}


async def nats_namespace() -> str:
    """A fresh namespace (stream and subjects) on the local NATS server, or skip/fail if it is down."""
    import nats

    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        await nc.close()
    except Exception as exc:  # noqa: BLE001
        require(False, f"NATS at {NATS_URL} is not reachable: {exc}")
    return "t" + uuid.uuid4().hex[:10]


async def drop_stream(namespace: str) -> None:
    import nats

    from common.bus import Names

    nc = await nats.connect(NATS_URL)
    with contextlib.suppress(Exception):
        await nc.jetstream().delete_stream(Names(namespace).stream)
    await nc.close()


@dataclass
class Stack:
    orders: httpx.AsyncClient
    catalog: httpx.AsyncClient
    notify: httpx.AsyncClient
    apps: dict
    shop: dict
    product: dict

    async def place(self, quantity: int = 2, variant: int = 0, key: str | None = None,
                    headers: dict | None = None, **fields) -> httpx.Response:
        """Place an order (as a guest unless ``headers`` sign someone in); ``fields`` replace ORDER's."""
        lines = [{"variant_id": self.product["variants"][variant]["id"], "quantity": quantity}]
        return await self.orders.post("/api/v1/orders", json={**ORDER, "lines": lines, **fields},
                                      headers={"Idempotency-Key": key or uuid.uuid4().hex, **(headers or {})})

    async def inbox(self, headers=GROWER) -> dict:
        return (await self.notify.get("/api/v1/notifications", params={"limit": 100}, headers=headers)).json()

    async def wait_inbox(self, count: int, timeout: float = 10.0) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            inbox = await self.inbox()
            if len(inbox["items"]) >= count or asyncio.get_running_loop().time() > deadline:
                return inbox
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def stack(db_urls, transport: str, **notify_settings):
    namespace = await nats_namespace() if transport == "nats" else "cv"
    bus = {"event_bus_url": NATS_URL if transport == "nats" else "", "event_namespace": namespace}
    notify_app = make_app("notify", db_urls, **bus, **notify_settings)
    try:
        with serve_in_thread(notify_app) as notify_url:
            catalog_app = make_app("catalog", db_urls, reservation_sweep_interval=0, notify_url=notify_url,
                                   relay_poll_interval=0.5, **bus)
            with serve_in_thread(catalog_app) as catalog_url:
                orders_app = make_app("orders", db_urls, catalog_url=catalog_url, notify_url=notify_url,
                                      reconcile_interval=1, relay_poll_interval=0.5, **bus)
                with serve_in_thread(orders_app) as orders_url:
                    async with httpx.AsyncClient(base_url=orders_url, timeout=10) as orders, \
                            httpx.AsyncClient(base_url=catalog_url, timeout=10) as catalog, \
                            httpx.AsyncClient(base_url=notify_url, timeout=10) as notify:
                        shop = (await catalog.post("/api/v1/shops", json={**SHOP, "bank": BANK},
                                                   headers=GROWER)).json()
                        product = (await catalog.post("/api/v1/products", json=PRODUCT, headers=GROWER)).json()
                        yield Stack(orders, catalog, notify, {"orders": orders_app, "catalog": catalog_app,
                                                              "notify": notify_app}, shop, product)
    finally:
        if transport == "nats":
            await drop_stream(namespace)
