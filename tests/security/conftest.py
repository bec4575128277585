"""One marketplace for the security tests: notify, catalog, orders and the gateway as real servers
(threads) on SQLite, started once for the package. These tests are about who may do what and what
comes back, not about the database, so one stack serves them all; each test makes its own accounts
(fresh phone numbers), so tests never see each other's data.

Sign-up and sign-in limits are raised here (every test client is 127.0.0.1); the limits themselves are
tested on their own gateways (test_throttling.py, tests/gateway/).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.apps import make_app
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.support.databases import sqlite_urls
from tests.support.servers import serve_in_thread

PASSWORD = "Sen-hong-Dong-Thap-7"
PROBLEM = "application/problem+json"
ROOMY_LIMITS = {"login-account": (1000, 60), "login-ip": (1000, 60), "register-ip": (1000, 60),
                "api-key": (1000, 60), "order-ip": (1000, 60)}
ORDER = {"contact": {"name": "Chị Lan", "phone": "0987 111 222", "email": "lan.private@example.vn"},
         "address": {"province_code": "92", "ward_code": "31135", "street": "7 Trần Phú"},
         "payment_method": "cod", "consent": True}

# Fresh Vietnamese mobile numbers (Vinaphone 091x), never the same twice in a run.
_numbers = itertools.count(random.randrange(100_000, 800_000))


def new_phone() -> str:
    return f"0914{next(_numbers):06d}"


@dataclass
class Account:
    id: str
    role: str
    phone: str
    headers: dict[str, str]
    access_token: str
    refresh_token: str
    body: dict = field(default_factory=dict)


@dataclass
class Market:
    """The running stack: ``gw`` talks to the gateway, ``direct[name]`` to each service itself."""

    urls: dict[str, str]
    apps: dict
    gw: httpx.Client
    direct: dict[str, httpx.Client]

    def register(self, role: str, **extra) -> Account:
        phone = new_phone()
        resp = self.gw.post("/api/v1/auth/register", json={"role": role, "name": "Người thử", "phone": phone,
                                                           "password": PASSWORD, **extra})
        assert resp.status_code == 201, resp.text
        tokens = self.gw.post("/api/v1/auth/token", json={"login": phone, "password": PASSWORD}).json()
        return Account(resp.json()["id"], role, phone, {"Authorization": f"Bearer {tokens['access_token']}"},
                       tokens["access_token"], tokens["refresh_token"], resp.json())

    def grower_with_shop(self) -> tuple[Account, dict, dict]:
        """A grower with a shop (with a bank account) and one active variety."""
        grower = self.register("grower")
        shop = self.gw.post("/api/v1/shops", json={**SHOP, "slug": f"vuon-{uuid.uuid4().hex[:10]}",
                                                   "bank": BANK}, headers=grower.headers)
        assert shop.status_code == 201, shop.text
        product = self.gw.post("/api/v1/products", json=PRODUCT, headers=grower.headers)
        assert product.status_code == 201, product.text
        return grower, shop.json(), product.json()

    def place(self, variant_id: int, headers: dict | None = None, quantity: int = 2, **body) -> httpx.Response:
        return self.gw.post("/api/v1/orders", json={**ORDER, "lines": [{"variant_id": variant_id,
                                                                        "quantity": quantity}], **body},
                            headers={**(headers or {}), "Idempotency-Key": uuid.uuid4().hex})

    @staticmethod
    def service_token(app) -> str:
        return app.state.settings.service_token.get_secret_value()


@contextlib.contextmanager
def running_market(folder) -> Iterator[Market]:
    db_urls = sqlite_urls(folder)
    notify = make_app("notify", db_urls)
    with serve_in_thread(notify) as notify_url:
        catalog = make_app("catalog", db_urls, reservation_sweep_interval=0, notify_url=notify_url,
                           relay_poll_interval=0.5, media_dir=str(folder / "media"))
        with serve_in_thread(catalog) as catalog_url:
            orders = make_app("orders", db_urls, catalog_url=catalog_url, notify_url=notify_url,
                              reconcile_interval=0, relay_poll_interval=0.5)
            with serve_in_thread(orders) as orders_url:
                gateway = make_app("gateway", db_urls, catalog_url=catalog_url, orders_url=orders_url,
                                   notify_url=notify_url, rate_limits=ROOMY_LIMITS)
                with serve_in_thread(gateway) as gateway_url:
                    urls = {"gateway": gateway_url, "catalog": catalog_url, "orders": orders_url,
                            "notify": notify_url}
                    apps = {"gateway": gateway, "catalog": catalog, "orders": orders, "notify": notify}
                    clients = {name: httpx.Client(base_url=url, timeout=15) for name, url in urls.items()}
                    try:
                        yield Market(urls, apps, clients["gateway"], clients)
                    finally:
                        for client in clients.values():
                            client.close()


def serve_as_in_production(app) -> contextlib.AbstractContextManager[str]:
    """``app`` under uvicorn as ``python -m <app> serve`` runs it (``proxy_headers=False``)."""
    return serve_in_thread(app)


@pytest.fixture(scope="package")
def market(tmp_path_factory) -> Iterator[Market]:
    with running_market(tmp_path_factory.mktemp("security")) as m:
        yield m
