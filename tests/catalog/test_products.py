"""Varieties with variants, retail and wholesale prices, stock; who sees and changes what."""

from __future__ import annotations

import copy

import pytest

from tests.apps import make_app
from tests.catalog.helpers import PRODUCT, add_product, open_shop
from tests.conftest import asgi_client
from tests.support.auth import auth

GROWER = auth("grower-1")


@pytest.fixture
async def catalog(db_urls):
    app = make_app("catalog", db_urls)
    async with asgi_client(app) as client:
        client.app = app
        await open_shop(client, GROWER)
        yield client


async def test_create_and_read_a_variety(catalog) -> None:
    product = await add_product(catalog, GROWER)
    assert product["url"].endswith(f"/p/{product['id']}")
    assert [v["label"] for v in product["variants"]] == ["Củ giống", "Chậu 30 cm"]
    assert product["variants"][0]["wholesale_tiers"][1] == {"min_quantity": 50, "unit_price": 32000}
    public = (await catalog.get(f"/api/v1/products/{product['id']}")).json()
    assert public == product
    listed = (await catalog.get("/api/v1/products")).json()["items"]
    assert [p["id"] for p in listed] == [product["id"]]


def variant(**changes) -> dict:
    body = copy.deepcopy(PRODUCT)
    body["variants"][0].update(changes)
    return body


@pytest.mark.parametrize("body,field", [
    (variant(retail_price=0), "body.variants[0].retail_price"),
    (variant(retail_price=-5), "body.variants[0].retail_price"),
    (variant(retail_price=1.5), "body.variants[0].retail_price"),
    (variant(stock=10**9), "body.variants[0].stock"),
    (variant(stock=-1), "body.variants[0].stock"),
    (variant(wholesale_tiers=[{"min_quantity": 50, "unit_price": 30000}, {"min_quantity": 10, "unit_price": 35000}]),
     "body.variants[0]"),
    (variant(wholesale_tiers=[{"min_quantity": 10, "unit_price": 50000}]), "body.variants[0]"),
    (variant(label="\x00"), "body.variants[0].label"),
    ({**PRODUCT, "name": "x" * 10_000}, "body.name"),
    ({**PRODUCT, "name": "Súng\x00"}, "body.name"),
    ({**PRODUCT, "variants": []}, "body.variants"),
    ({**PRODUCT, "category": "weapons"}, "body.category"),
])
async def test_bad_product_input_is_422_and_stores_nothing(catalog, body: dict, field: str) -> None:
    resp = await catalog.post("/api/v1/products", json=body, headers=GROWER)
    assert resp.status_code == 422, resp.text
    assert any(e["field"].startswith(field) for e in resp.json()["errors"]), resp.json()
    mine = await catalog.get("/api/v1/products", params={"mine": True}, headers=GROWER)
    assert mine.json()["items"] == []


async def test_drafts_are_seen_by_their_owner_only(catalog) -> None:
    draft = await add_product(catalog, GROWER, status="draft")
    assert (await catalog.get(f"/api/v1/products/{draft['id']}")).status_code == 404
    assert (await catalog.get(f"/api/v1/products/{draft['id']}", headers=auth("grower-2"))).status_code == 404
    assert (await catalog.get(f"/api/v1/products/{draft['id']}", headers=GROWER)).status_code == 200
    assert (await catalog.get("/api/v1/products")).json()["items"] == []
    mine = (await catalog.get("/api/v1/products", params={"mine": True, "status": "draft"}, headers=GROWER)).json()
    assert [p["id"] for p in mine["items"]] == [draft["id"]]
    assert (await catalog.get("/api/v1/products", params={"mine": True})).status_code == 403


async def test_only_the_owner_changes_a_variety(catalog) -> None:
    product = await add_product(catalog, GROWER)
    other = auth("grower-2")
    await open_shop(catalog, other, name="Vườn Hai")
    pid = product["id"]
    assert (await catalog.patch(f"/api/v1/products/{pid}", json={"name": "x"}, headers=other)).status_code == 404
    assert (await catalog.delete(f"/api/v1/products/{pid}", headers=other)).status_code == 404
    assert (await catalog.patch(f"/api/v1/products/{pid}", json={"name": "x"},
                                headers=auth(role="buyer"))).status_code == 403
    # A variant id of another product cannot be pulled into this one.
    theirs = await add_product(catalog, other)
    stolen = {"variants": [{"id": theirs["variants"][0]["id"], "label": "x", "retail_price": 1000}]}
    assert (await catalog.patch(f"/api/v1/products/{pid}", json=stolen, headers=GROWER)).status_code == 422


async def test_update_replaces_variants_and_archives_the_missing(catalog) -> None:
    product = await add_product(catalog, GROWER)
    keep = product["variants"][0]
    changed = await catalog.patch(f"/api/v1/products/{product['id']}", headers=GROWER, json={
        "name": "Súng Thái đỏ thẫm",
        "variants": [{**{k: keep[k] for k in ("id", "label", "wholesale_tiers", "min_order_quantity")},
                      "retail_price": 48000, "stock": 0},
                     {"label": "Cây con", "retail_price": 60000, "stock": 30}]})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "Súng Thái đỏ thẫm"
    assert [(v["label"], v["retail_price"], v["in_stock"]) for v in body["variants"]] == [
        ("Củ giống", 48000, False), ("Cây con", 60000, True)]
    assert body["variants"][0]["id"] == keep["id"]


async def test_updating_a_variant_keeps_what_was_not_sent(catalog) -> None:
    product = await add_product(catalog, GROWER)
    keep = product["variants"][0]
    assert keep["wholesale_tiers"] and keep["stock"] > 0
    await catalog.patch(f"/api/v1/products/{product['id']}", headers=GROWER, json={"variants": [
        {"id": keep["id"], "label": keep["label"], "retail_price": keep["retail_price"],
         "low_stock_threshold": 7, "weight_grams": 250}]})
    renamed = await catalog.patch(f"/api/v1/products/{product['id']}", headers=GROWER, json={"variants": [
        {"id": keep["id"], "label": "Củ giống loại 1", "retail_price": keep["retail_price"]}]})
    assert renamed.status_code == 200, renamed.text
    variant = renamed.json()["variants"][0]
    assert variant["label"] == "Củ giống loại 1"
    assert (variant["stock"], variant["wholesale_tiers"], variant["min_order_quantity"],
            variant["low_stock_threshold"], variant["weight_grams"]) == (
        keep["stock"], keep["wholesale_tiers"], keep["min_order_quantity"], 7, 250)
    # A retail price at or under a kept wholesale tier is refused, and nothing changes.
    lowest_tier = min(t["unit_price"] for t in keep["wholesale_tiers"])
    refused = await catalog.patch(f"/api/v1/products/{product['id']}", headers=GROWER, json={"variants": [
        {"id": keep["id"], "label": "x", "retail_price": lowest_tier}]})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "body.variants[0].retail_price"
    again = (await catalog.get(f"/api/v1/products/{product['id']}", headers=GROWER)).json()["variants"][0]
    assert (again["label"], again["retail_price"]) == ("Củ giống loại 1", keep["retail_price"])


async def test_archive_hides_from_buyers(catalog) -> None:
    product = await add_product(catalog, GROWER)
    assert (await catalog.delete(f"/api/v1/products/{product['id']}", headers=GROWER)).status_code == 204
    assert (await catalog.get(f"/api/v1/products/{product['id']}")).status_code == 404
    mine = (await catalog.get(f"/api/v1/products/{product['id']}", headers=GROWER)).json()
    assert mine["status"] == "archived"


async def test_growers_without_a_shop_are_told_to_open_one(catalog) -> None:
    resp = await catalog.post("/api/v1/products", json=PRODUCT, headers=auth("grower-without-shop"))
    assert resp.status_code == 404 and "open one" in resp.json()["detail"]
