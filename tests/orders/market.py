"""A running catalog (real HTTP, in a thread) with a shop and its varieties, and the orders app in front."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from dataclasses import dataclass, field

import httpx

from tests.apps import make_app
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.conftest import asgi_client
from tests.support.auth import auth
from tests.support.servers import serve_in_thread

GROWER_ID = "grower-orders-1"
GROWER = auth(GROWER_ID)
BUYER_ID = "buyer-1"
BUYER = auth(BUYER_ID, role="buyer")

ORDER = {
    "contact": {"name": "Chị Hoa", "phone": "0987 654 321", "email": "hoa@example.vn"},
    "address": {"province_code": "01", "ward_code": "00004", "street": "5 Hàng Bạc"},
    "payment_method": "cod",
    "consent": True,
}


@dataclass
class Market:
    orders: httpx.AsyncClient
    catalog: httpx.AsyncClient
    orders_app: object
    catalog_app: object
    shop: dict
    product: dict
    tuber: int = 0
    pot: int = 0
    extra: dict = field(default_factory=dict)

    async def place(self, lines, key: str | None = None, headers: dict | None = None, **body) -> httpx.Response:
        payload = {**ORDER, "lines": lines, **body}
        hdrs = {"Idempotency-Key": key or uuid.uuid4().hex, **(headers or {})}
        if key == "":
            hdrs.pop("Idempotency-Key")
        return await self.orders.post("/api/v1/orders", json=payload, headers=hdrs)

    async def reservations_settled(self, timeout: float = 10.0) -> None:
        """Wait until the reconciler, woken by each stored order, has committed (or released) every
        order's reservation."""
        from sqlalchemy import func, select

        from services.orders.orders.models import Order

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self.orders_app.state.db.sessionmaker() as session:
                open_ = await session.scalar(select(func.count()).select_from(Order).where(
                    Order.reservation_state.in_(("held", "release-pending"))))
            if not open_:
                return
            assert asyncio.get_running_loop().time() < deadline, f"{open_} reservations still open"
            await asyncio.sleep(0.02)

    @contextlib.contextmanager
    def failing(self, step: str, fault):
        """The order's path calls ``fault()`` (and awaits what it returns) at ``step``, injected where the
        path depends on something: the catalog client (``before_reserve``; ``after_reserve``: the catalog
        has reserved, its reply is not handled yet), the orders database (``storing``: the order's
        ``INSERT`` fails, so ``fault`` must raise) or the reconciler (``after_store``: the stored order's
        wake fails instead of waking it)."""
        from sqlalchemy import event

        state = self.orders_app.state
        engine = state.db.engine.sync_engine
        real_reserve, real_wake = state.catalog.reserve, state.reconciler.wake

        async def call() -> None:
            if inspect.isawaitable(result := fault()):
                await result

        async def reserve(*args, **kwargs):
            if step == "before_reserve":
                await call()
            reply = await real_reserve(*args, **kwargs)
            if step == "after_reserve":
                await call()
            return reply

        def on_execute(_conn, _cursor, statement: str, *_args) -> None:
            if "INSERT INTO orders " in statement:  # on its own, or a CTE of the one statement
                fault()

        state.catalog.reserve = reserve
        if step == "storing":
            event.listen(engine, "before_cursor_execute", on_execute)
        if step == "after_store":
            state.reconciler.wake = fault
        try:
            yield
        finally:
            state.catalog.reserve, state.reconciler.wake = real_reserve, real_wake
            if step == "storing":
                event.remove(engine, "before_cursor_execute", on_execute)

    async def stock(self, variant_id: int, owner: dict = GROWER) -> int:
        resp = await self.catalog.get("/api/v1/products", params={"mine": True}, headers=owner)
        for product in resp.json()["items"]:
            for variant in product["variants"]:
                if variant["id"] == variant_id:
                    return variant["stock"]
        raise KeyError(variant_id)


@contextlib.asynccontextmanager
async def market(db_urls, **orders_settings):
    catalog_app = make_app("catalog", db_urls, reservation_sweep_interval=0)
    with serve_in_thread(catalog_app) as catalog_url:
        orders_app = make_app("orders", db_urls, catalog_url=catalog_url,
                              **{"reconcile_interval": 0, "relay_poll_interval": 0, **orders_settings})
        async with asgi_client(orders_app) as orders, httpx.AsyncClient(base_url=catalog_url) as catalog:
            shop = (await catalog.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=GROWER)).json()
            product = (await catalog.post("/api/v1/products", json=PRODUCT, headers=GROWER)).json()
            m = Market(orders=orders, catalog=catalog, orders_app=orders_app, catalog_app=catalog_app, shop=shop,
                       product=product, tuber=product["variants"][0]["id"], pot=product["variants"][1]["id"])
            yield m
