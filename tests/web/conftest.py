"""The web pages' tests: one marketplace (real servers, SQLite) for the module, a grower with a shop, a
variety with a photo, and a client that behaves like a browser without JavaScript (cookies, forms)."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from tests.support.databases import sqlite_urls
from tests.support.fullstack import FullStack, full_stack

PROVINCE, WARD = "01", "00004"  # Hà Nội, Ba Đình


def jpeg(size: tuple[int, int] = (2000, 1500), colour=(200, 60, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@dataclass
class Market:
    stack: FullStack
    url: str
    grower: dict
    shop: dict
    product: dict

    def browser(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        """A client with its own cookies, asking for HTML as a browser does."""
        return httpx.AsyncClient(base_url=self.url, timeout=15, headers={"Accept": "text/html", **(headers or {})})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def market(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Market]:
    folder = tmp_path_factory.mktemp("web")
    old = os.environ.get("CATALOG_MEDIA_DIR")
    os.environ["CATALOG_MEDIA_DIR"] = str(folder / "media")
    try:
        async with full_stack(sqlite_urls(folder)) as stack:
            for name in ("catalog", "orders", "gateway"):
                stack.apps[name].state.settings.public_base_url = stack.urls["gateway"]
            gw = stack.gw
            grower = await stack.register("grower", "0912345670", "Chị Sen")
            shop = (await gw.post("/api/v1/shops", headers=grower["headers"], json={
                "name": "Vườn Súng Đồng Tháp", "province_code": PROVINCE, "ward_code": WARD, "street": "12 Lê Lợi",
                "phone": "0912345670", "delivery": {"pickup": True, "flat_fee": 30000, "free_above": 2000000},
                "bank": {"bin": "970415", "account_number": "113366668888", "holder": "Nguyen Thi Sen"}})).json()
            product = (await gw.post("/api/v1/products", headers=grower["headers"], json={
                "name": "Súng Thái Mini Pink", "description": "Hoa hồng phấn, nở quanh năm.", "status": "active",
                "variants": [{"label": "Củ giống", "retail_price": 150000, "stock": 100, "min_order_quantity": 1,
                              "wholesale_tiers": [{"min_quantity": 10, "unit_price": 120000}]},
                             {"label": "Chậu 30 cm", "retail_price": 350000, "stock": 5}]})).json()
            photo = await gw.post(f"/api/v1/products/{product['id']}/photos", headers={
                **grower["headers"], "Content-Type": "image/jpeg"}, content=jpeg())
            assert photo.status_code == 201, photo.text
            product = (await gw.get(f"/api/v1/products/{product['id']}")).json()
            yield Market(stack, stack.urls["gateway"], grower, shop, product)
    finally:
        if old is None:
            os.environ.pop("CATALOG_MEDIA_DIR", None)
        else:
            os.environ["CATALOG_MEDIA_DIR"] = old


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert found, f"no hidden field {name}"
    return found.group(1)


@contextlib.asynccontextmanager
async def signed_in(market: Market) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client signed in as the market's grower."""
    from tests.support.fullstack import PASSWORD

    async with market.browser() as b:
        html = (await b.get("/grower/login")).text
        resp = await b.post("/grower/login", data={"csrf": hidden(html, "csrf"), "login": "0912345670",
                                                   "password": PASSWORD, "next": "/grower/"})
        assert resp.status_code == 303, resp.text
        yield b


async def place(market: Market, name: str, quantity: int, payment: str = "cod") -> dict:
    """A guest's order of ``quantity`` of the market's first variant, shipped to Hà Nội."""
    tuber = market.product["variants"][0]
    resp = await market.stack.gw.post("/api/v1/orders", headers=market.stack.key(), json={
        "shop_id": market.shop["id"], "lines": [{"variant_id": tuber["id"], "quantity": quantity}],
        "contact": {"name": name, "phone": "0977000222"},
        "address": {"province_code": PROVINCE, "ward_code": WARD, "street": "15 Hàng Bông"},
        "payment_method": payment, "consent": True})
    assert resp.status_code == 201, resp.text
    return resp.json()
