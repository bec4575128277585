"""A month's sales for the desk: real orders placed through the endpoints, some moved back a month in
the database; the sums checked against what was placed."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import update

from common.vietnam import VN_TZ
from services.orders.desk.sales import month_bounds
from services.orders.orders.models import Order
from tests.orders.market import GROWER, ORDER, market
from tests.support.auth import auth


@pytest.fixture
async def m(db_urls):
    async with market(db_urls) as running:
        yield running


async def place(m, lines, **body) -> dict:
    resp = await m.place(lines, **body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def move_to(m, order: dict, when: dt.datetime) -> None:
    async with m.orders_app.state.db.sessionmaker() as session:
        await session.execute(update(Order).where(Order.id == order["id"]).values(created_at=when))
        await session.commit()


async def test_a_month_and_the_one_before(m) -> None:
    retail = await place(m, [{"variant_id": m.tuber, "quantity": 3}, {"variant_id": m.pot, "quantity": 1}])
    wholesale = await place(m, [{"variant_id": m.tuber, "quantity": 10}], payment_method="bank_transfer")
    zalo = (await m.orders.post("/api/v1/orders/phone", headers={**GROWER, "Idempotency-Key": uuid.uuid4().hex},
                                json={**ORDER, "lines": [{"variant_id": m.pot, "quantity": 2}], "source": "zalo",
                                      "payment_method": "bank_transfer"})).json()
    assert (await m.orders.post(f"/api/v1/orders/{zalo['id']}/mark-paid", headers=GROWER)).status_code == 200
    gone = await place(m, [{"variant_id": m.tuber, "quantity": 2}])
    assert (await m.orders.post(f"/api/v1/orders/{gone['id']}/cancel", headers=GROWER)).status_code == 200
    old = await place(m, [{"variant_id": m.tuber, "quantity": 2}], payment_method="bank_transfer")
    this_month, start, _ = month_bounds(None)
    last_month = (start - dt.timedelta(days=1)).strftime("%Y-%m")
    await move_to(m, old, start - dt.timedelta(hours=1))  # 23:00 on the last day, Vietnam time

    resp = await m.orders.get("/api/v1/orders/sales", headers=GROWER)
    assert resp.status_code == 200, resp.text
    now = resp.json()
    assert now["month"] == this_month and now["since"].startswith(start.date().isoformat())
    assert (now["orders"], now["cancelled"]) == (3, 1)
    kept = (retail, wholesale, zalo)
    assert now["revenue"] == sum(o["total"] for o in kept)
    assert now["goods"] == sum(o["subtotal"] for o in kept) == now["retail"] + now["wholesale"]
    assert now["wholesale"] == sum(ln["line_total"] for o in kept for ln in o["lines"]
                                   if ln["price_kind"] == "wholesale") > 0
    assert now["paid"] == zalo["total"]
    assert [(u["code"], u["total"]) for u in now["unpaid_transfers"]] == [(wholesale["code"], wholesale["total"])]
    assert (now["unpaid_transfer_count"], now["unpaid_transfer_amount"]) == (1, wholesale["total"])
    today = dt.datetime.now(VN_TZ).date().isoformat()
    assert [d for d in now["days"] if d["orders"]] == [{"day": today, "orders": 3, "revenue": now["revenue"]}]
    assert now["days"][0]["day"] == start.date().isoformat() and len(now["days"]) >= 28
    top = now["top_varieties"]
    assert [t["product_name"] for t in top] == [retail["lines"][0]["product_name"]]
    assert top[0]["quantity"] == 3 + 1 + 10 + 2  # the tuber and the pot are one variety
    assert {s["source"]: s["orders"] for s in now["sources"]} == {"web": 2, "zalo": 1}

    before = (await m.orders.get("/api/v1/orders/sales", params={"month": last_month}, headers=GROWER)).json()
    assert (before["month"], before["orders"], before["revenue"]) == (last_month, 1, old["total"])
    assert before["days"][-1] == {"day": (start - dt.timedelta(days=1)).date().isoformat(), "orders": 1,
                                  "revenue": old["total"]}
    assert before["unpaid_transfer_count"] == 1

    other = (await m.orders.get("/api/v1/orders/sales", headers=auth("another-grower"))).json()
    assert (other["orders"], other["revenue"], other["top_varieties"]) == (0, 0, [])


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "1999-12", "x"])
async def test_a_month_that_is_not_one_is_a_422(m, month) -> None:
    resp = await m.orders.get("/api/v1/orders/sales", params={"month": month}, headers=GROWER)
    assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["errors"][0]["field"] == "query.month"


async def test_buyers_cannot_read_sales(m) -> None:
    resp = await m.orders.get("/api/v1/orders/sales", headers=auth("buyer-9", role="buyer"))
    assert resp.status_code == 403


def test_december_runs_to_january() -> None:
    name, since, until = month_bounds("2026-12")
    assert (name, since.date(), until.date()) == ("2026-12", dt.date(2026, 12, 1), dt.date(2027, 1, 1))
