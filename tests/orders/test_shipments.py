"""The carrier and tracking code of an order: set by its grower once it is confirmed, shown in the order
and on the buyer's tracking link with the carrier's page; refused for others and for the wrong states."""

from __future__ import annotations

import pytest

from services.orders.shipments.carriers import tracking_url
from tests.orders.market import BUYER, GROWER, market
from tests.support.auth import auth


@pytest.fixture
async def m(db_urls):
    async with market(db_urls) as running:
        yield running


async def test_a_shipment_from_confirm_to_the_buyers_link(m) -> None:
    placed = (await m.place([{"variant_id": m.tuber, "quantity": 2}])).json()
    oid, path = placed["id"], f"/api/v1/orders/{placed['id']}/shipment"
    assert placed["shipment"] is None
    early = await m.orders.put(path, json={"carrier": "ghn", "tracking_code": "GHN123"}, headers=GROWER)
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"
    assert (await m.orders.post(f"/api/v1/orders/{oid}/confirm", headers=GROWER)).status_code == 200
    assert (await m.orders.post(f"/api/v1/orders/{oid}/ship", headers=GROWER)).status_code == 200
    resp = await m.orders.put(path, json={"carrier": "ghtk", "tracking_code": "S1234.BO5.A1"}, headers=GROWER)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"carrier": "ghtk", "carrier_name": "Giao Hàng Tiết Kiệm (GHTK)",
                           "tracking_code": "S1234.BO5.A1", "tracking_url": "https://i.ghtk.vn/S1234.BO5.A1"}
    token = placed["tracking_url"].rsplit("/", 1)[-1]
    seen = (await m.orders.get(f"/api/v1/tracking/{token}")).json()["shipment"]
    assert seen["tracking_url"] == "https://i.ghtk.vn/S1234.BO5.A1"
    fixed = await m.orders.put(path, json={"carrier": "other"}, headers=GROWER)  # a typo corrected
    assert fixed.json() == {"carrier": "other", "carrier_name": "Khác", "tracking_code": None, "tracking_url": None}
    assert (await m.orders.get(f"/api/v1/orders/{oid}", headers=GROWER)).json()["shipment"]["carrier"] == "other"


async def test_what_is_refused(m) -> None:
    placed = (await m.place([{"variant_id": m.tuber, "quantity": 2}])).json()
    path = f"/api/v1/orders/{placed['id']}/shipment"
    assert (await m.orders.post(f"/api/v1/orders/{placed['id']}/confirm", headers=GROWER)).status_code == 200
    for body in ({"carrier": "dhl"}, {"carrier": "ghn", "tracking_code": "a b"}, {"carrier": "ghn", "x": 1},
                 {"tracking_code": "GHN1"}, {"carrier": "ghn", "tracking_code": "=1+1"}):
        resp = await m.orders.put(path, json=body, headers=GROWER)
        assert resp.status_code == 422, (body, resp.text)
    assert (await m.orders.put(path, json={"carrier": "ghn"}, headers=auth("another-grower"))).status_code == 404
    assert (await m.orders.put(path, json={"carrier": "ghn"}, headers=BUYER)).status_code in (403, 404)
    assert (await m.orders.put(path, json={"carrier": "ghn"})).status_code == 401


def test_each_carriers_page() -> None:
    assert tracking_url("ghn", "GAB12") == "https://donhang.ghn.vn/?order_code=GAB12"
    assert tracking_url("jt", "8612") == "https://jtexpress.vn/vi/tracking?type=track&billcode=8612"
    assert tracking_url("vnpost", "EB1VN") == "https://vnpost.vn/vi-vn/dinh-vi/buu-pham?key=EB1VN"
    assert tracking_url("viettel_post", "V1").startswith("https://viettelpost.com.vn/")
    assert tracking_url("other", "X1") is None and tracking_url("ghn", None) is None
