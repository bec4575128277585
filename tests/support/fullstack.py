"""The whole marketplace for a test: notify, catalog, orders and the gateway as real servers (threads),
events by HTTP push. Tests talk to the gateway only, as clients do."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

import httpx

from tests.apps import make_app
from tests.support.servers import serve_in_thread

PASSWORD = "Sen-hong-Dong-Thap-7"


@dataclass
class FullStack:
    gw: httpx.AsyncClient
    urls: dict[str, str]
    apps: dict

    async def register(self, role: str, phone: str, name: str = "Người dùng", **extra) -> dict:
        resp = await self.gw.post("/api/v1/auth/register", json={"role": role, "name": name, "phone": phone,
                                                                 "password": PASSWORD, **extra})
        assert resp.status_code == 201, resp.text
        account = resp.json()
        tokens = (await self.gw.post("/api/v1/auth/token", json={"login": phone, "password": PASSWORD})).json()
        account["headers"] = {"Authorization": f"Bearer {tokens['access_token']}"}
        return account

    @staticmethod
    def key() -> dict:
        return {"Idempotency-Key": uuid.uuid4().hex}


@contextlib.asynccontextmanager
async def full_stack(db_urls, notify_settings: dict | None = None, **gateway_settings):
    notify = make_app("notify", db_urls, **(notify_settings or {}))
    with serve_in_thread(notify) as notify_url:
        catalog = make_app("catalog", db_urls, reservation_sweep_interval=0, notify_url=notify_url,
                           relay_poll_interval=0.5)
        with serve_in_thread(catalog) as catalog_url:
            orders = make_app("orders", db_urls, catalog_url=catalog_url, notify_url=notify_url,
                              reconcile_interval=1, relay_poll_interval=0.5)
            with serve_in_thread(orders) as orders_url:
                gateway = make_app("gateway", db_urls, catalog_url=catalog_url, orders_url=orders_url,
                                   notify_url=notify_url, **gateway_settings)
                with serve_in_thread(gateway) as gateway_url:
                    async with httpx.AsyncClient(base_url=gateway_url, timeout=15) as gw:
                        yield FullStack(gw, {"gateway": gateway_url, "catalog": catalog_url, "orders": orders_url,
                                             "notify": notify_url},
                                        {"gateway": gateway, "catalog": catalog, "orders": orders,
                                         "notify": notify})
