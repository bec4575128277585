"""Opening and changing a shop; provinces, wards and banks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.catalog.shops.models import Shop
from tests.apps import make_app
from tests.catalog.helpers import BANK, SHOP, open_shop
from tests.conftest import asgi_client
from tests.support.auth import auth


@pytest.fixture
async def catalog(db_urls):
    app = make_app("catalog", db_urls)
    async with asgi_client(app) as client:
        client.app = app
        yield client


async def test_grower_opens_one_shop(catalog) -> None:
    grower = auth("grower-1")
    shop = await open_shop(catalog, grower, bank=BANK)
    assert shop["slug"] == "vuon-sen-ba-tu" and shop["url"].endswith("/s/vuon-sen-ba-tu")
    assert shop["province_name"] == "Thành phố Cần Thơ" and shop["ward_name"] == "Phường Ninh Kiều"
    assert shop["phone"] == "+84912345678"
    assert shop["bank_name"] == "VietinBank" and shop["bank_account_last4"] == "8888"
    assert shop["bank_holder"] == "NGUYỄN THỊ TƯ"
    again = await catalog.post("/api/v1/shops", json=SHOP, headers=grower)
    assert again.status_code == 409
    public = (await catalog.get(f"/api/v1/shops/{shop['id']}")).json()
    assert "113366668888" not in str(public) and "bank_account_last4" not in public and "owner_id" not in public
    mine = (await catalog.get("/api/v1/shops/mine", headers=grower)).json()
    assert mine["id"] == shop["id"]
    by_slug = (await catalog.get("/api/v1/shops", params={"slug": "vuon-sen-ba-tu"})).json()
    assert [s["id"] for s in by_slug["items"]] == [shop["id"]]
    assert (await catalog.get("/api/v1/shops", params={"slug": "vuon-khac"})).json()["items"] == []
    assert (await catalog.get("/api/v1/shops", params={"slug": "Vườn/../x"})).status_code == 422


async def test_bank_account_encrypted_at_rest(catalog) -> None:
    await open_shop(catalog, auth("grower-1"), bank=BANK)
    async with catalog.app.state.db.sessionmaker() as session:
        row = await session.scalar(select(Shop))
    assert "113366668888" not in (row.bank_account_encrypted or "")
    assert catalog.app.state.cipher.decrypt(row.bank_account_encrypted) == "113366668888"


async def test_only_growers_open_shops(catalog) -> None:
    assert (await catalog.post("/api/v1/shops", json=SHOP)).status_code == 401
    assert (await catalog.post("/api/v1/shops", json=SHOP, headers=auth(role="buyer"))).status_code == 403
    reader = auth(kind="api_key", scopes=["catalog:read"])
    assert (await catalog.post("/api/v1/shops", json=SHOP, headers=reader)).status_code == 403


@pytest.mark.parametrize("change,field", [
    ({"ward_code": "00004"}, "body"),  # a ward of Hà Nội, not Cần Thơ
    ({"province_code": "99"}, "body"),
    ({"phone": "02923812345"}, "body.phone"),
    ({"name": "Vườn\x00"}, "body.name"),
    ({"name": "x" * 10_000}, "body.name"),
    ({"slug": "Bad Slug!"}, "body.slug"),
    ({"delivery": {"pickup": False}}, "body.delivery"),
    ({"delivery": {"flat_fee": -1}}, "body.delivery.flat_fee"),
    ({"delivery": {"fee_by_province": {"77": 1000}}}, "body.delivery.fee_by_province"),
    ({"bank": {**BANK, "bin": "123456"}}, "body.bank.bin"),
    ({"min_order_value": 10**12}, "body.min_order_value"),
])
async def test_bad_shop_input_is_422_and_stores_nothing(catalog, change: dict, field: str) -> None:
    resp = await catalog.post("/api/v1/shops", json={**SHOP, **change}, headers=auth("grower-1"))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert any(e["field"].startswith(field) for e in resp.json()["errors"]), resp.json()
    assert (await catalog.get("/api/v1/shops")).json()["items"] == []


async def test_another_grower_cannot_change_the_shop(catalog) -> None:
    shop = await open_shop(catalog, auth("grower-1"))
    other = await catalog.patch(f"/api/v1/shops/{shop['id']}", json={"name": "Hijack"}, headers=auth("grower-2"))
    assert other.status_code == 404
    await open_shop(catalog, auth("grower-2"), name="Vườn Khác")
    still = await catalog.patch(f"/api/v1/shops/{shop['id']}", json={"name": "Hijack"}, headers=auth("grower-2"))
    assert still.status_code == 404
    own = await catalog.patch(f"/api/v1/shops/{shop['id']}", json={"name": "Vườn Sen Bà Tư 2"},
                              headers=auth("grower-1"))
    assert own.status_code == 200 and own.json()["name"] == "Vườn Sen Bà Tư 2"
    mismatch = await catalog.patch(f"/api/v1/shops/{shop['id']}", json={"province_code": "01"},
                                   headers=auth("grower-1"))
    assert mismatch.status_code == 422


async def test_provinces_wards_and_banks(catalog) -> None:
    provinces = (await catalog.get("/api/v1/provinces")).json()
    assert len(provinces) == 34
    assert {"code": "92", "name": "Thành phố Cần Thơ"} in provinces
    wards = (await catalog.get("/api/v1/provinces/92/wards")).json()
    assert {"code": "31135", "name": "Phường Ninh Kiều"} in wards
    assert (await catalog.get("/api/v1/provinces/99/wards")).status_code == 404
    assert (await catalog.get("/api/v1/provinces/abc/wards")).status_code == 422
    banks = (await catalog.get("/api/v1/banks")).json()
    assert {"bin": "970436", "name": "Vietcombank"} in banks
