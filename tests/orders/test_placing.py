"""Placing an order: server-side prices, delivery fees, minimums, idempotency, bad input, the saga's
failures. A real catalog answers the reservations."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import func, select

from services.orders.orders.models import IdempotencyKey, Order
from services.orders.orders.schemas import OrderCreated
from services.orders.outbox import OutboxEvent
from tests.orders.market import BUYER, ORDER, market
from tests.support.auth import auth


@pytest.fixture
async def m(db_urls):
    async with market(db_urls) as mk:
        yield mk


async def count_orders(m) -> int:
    async with m.orders_app.state.db.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Order))


async def test_guest_places_a_retail_order(m) -> None:
    resp = await m.place([{"variant_id": m.tuber, "quantity": 3}, {"variant_id": m.pot, "quantity": 1}])
    assert resp.status_code == 201, resp.text
    order = resp.json()
    assert re.fullmatch(r"CV-[2-9A-HJKMNP-TV-Z]{5}", order["code"])
    assert [(ln["quantity"], ln["unit_price"], ln["price_kind"]) for ln in order["lines"]] == [
        (3, 45000, "retail"), (1, 150000, "retail")]
    assert order["subtotal"] == 285000 and order["delivery_fee"] == 30000 and order["total"] == 315000
    assert order["status"] == "placed" and order["payment_status"] == "unpaid"
    assert order["tracking_url"].startswith("http://localhost:8000/t/")
    assert order["contact"]["phone"] == "+84987654321"
    assert await m.stock(m.tuber) == 97 and await m.stock(m.pot) == 4
    async with m.orders_app.state.db.sessionmaker() as session:
        events = (await session.scalars(select(OutboxEvent))).all()
        stored = await session.get(Order, order["id"])
    assert [e.type for e in events] == ["order.placed"] and events[0].data["code"] == order["code"]
    await m.reservations_settled()  # step 4: the reconciler, woken by the stored order
    async with m.orders_app.state.db.sessionmaker() as session:
        stored = await session.get(Order, order["id"])
    assert stored.reservation_state == "committed"
    token = order["tracking_url"].rsplit("/", 1)[1]
    tracked = await m.orders.get(f"/api/v1/tracking/{token}")
    assert tracked.status_code == 200 and tracked.json()["code"] == order["code"]
    assert (await m.orders.get(f"/api/v1/tracking/{token[:-3]}abc")).status_code == 404


async def test_the_201_is_the_documented_order_created(m) -> None:
    """The 201 is built from the plain rows that were stored: exactly ``OrderCreated`` (its fields in
    their order, its JSON forms), and the order as a read of it gives it back, plus the link."""
    resp = await m.place([{"variant_id": m.tuber, "quantity": 2}], headers=BUYER,
                         contact={"name": "Lan", "phone": "0987654321", "email": "lan@example.com"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert list(body) == list(OrderCreated.model_fields)
    assert OrderCreated.model_validate(body).model_dump(mode="json") == body
    read = await m.orders.get(f"/api/v1/orders/{body['id']}", headers=BUYER)
    assert read.status_code == 200, read.text
    assert read.json() == {k: v for k, v in body.items() if k != "tracking_url"}
    assert body["allowed_actions"] == ["cancel"] and body["shipment"] is None
    assert [h["action"] for h in body["history"]] == ["place"]


async def test_wholesale_tiers_and_delivery_by_province(m) -> None:
    body = await m.place([{"variant_id": m.tuber, "quantity": 10}],
                         address={"province_code": "92", "ward_code": "31135", "street": "1 Hòa Bình"})
    order = body.json()
    assert order["lines"][0]["unit_price"] == 38000 and order["lines"][0]["price_kind"] == "wholesale"
    assert order["delivery_fee"] == 15000
    free = (await m.place([{"variant_id": m.tuber, "quantity": 50}])).json()
    assert free["lines"][0]["unit_price"] == 32000 and free["subtotal"] == 1_600_000 and free["delivery_fee"] == 0
    pickup = (await m.place([{"variant_id": m.tuber, "quantity": 2}], delivery_method="pickup")).json()
    assert pickup["delivery_fee"] == 0 and pickup["delivery_method"] == "pickup"


async def test_pickup_needs_no_address_shipping_does(m) -> None:
    body = {**ORDER, "lines": [{"variant_id": m.tuber, "quantity": 2}], "delivery_method": "pickup"}
    body.pop("address")
    resp = await m.orders.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "pickup-no-address"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["address"] == {} and resp.json()["delivery_fee"] == 0
    # An address sent with a pickup is not kept (the order does not need it).
    kept = (await m.place([{"variant_id": m.tuber, "quantity": 2}], delivery_method="pickup")).json()
    assert kept.get("address") == {}, kept
    body["delivery_method"] = "ship"
    resp = await m.orders.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "ship-no-address"})
    assert resp.status_code == 422, resp.text
    assert [(e["field"], e["type"]) for e in resp.json()["errors"]] == [("body.address", "missing")]
    body.pop("delivery_method")  # shipping is the default
    resp = await m.orders.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "default-no-address"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "body.address"


@pytest.mark.parametrize("tamper", [
    {"total": 1}, {"subtotal": 1}, {"delivery_fee": 0}, {"status": "delivered"}, {"payment_status": "paid"},
])
async def test_client_prices_and_states_are_refused(m, tamper) -> None:
    resp = await m.place([{"variant_id": m.tuber, "quantity": 1}], **tamper)
    assert resp.status_code == 422
    line_price = await m.place([{"variant_id": m.tuber, "quantity": 1, "unit_price": 1}])
    assert line_price.status_code == 422 and line_price.json()["errors"][0]["field"] == "body.lines[0].unit_price"
    assert await count_orders(m) == 0 and await m.stock(m.tuber) == 100


@pytest.mark.parametrize("change,field", [
    ({"lines": [{"variant_id": 0, "quantity": 1}]}, "body.lines[0].variant_id"),
    ({"lines": [{"variant_id": "T", "quantity": 0}]}, "body.lines[0].quantity"),
    ({"lines": [{"variant_id": "T", "quantity": -2}]}, "body.lines[0].quantity"),
    ({"lines": [{"variant_id": "T", "quantity": 10**9}]}, "body.lines[0].quantity"),
    ({"lines": [{"variant_id": 999999, "quantity": 1}]}, "body.lines[0].variant_id"),
    ({"address": {"ward_code": "31135", "street": "x"}}, "body.address.province_code"),
    ({"address": {"province_code": "92", "ward_code": "00004", "street": "x"}}, "body.address"),
    ({"contact": {"name": "A", "phone": "123"}}, "body.contact.phone"),
    ({"contact": {"name": "A\x00", "phone": "0987654321"}}, "body.contact.name"),
    ({"consent": False}, "body.consent"),
    ({"consent": None}, "body.consent"),
    ({"payment_method": "crypto"}, "body.payment_method"),
])
async def test_bad_input_is_422_with_field_paths_and_no_stock_touched(m, change, field) -> None:
    body = {**ORDER, "lines": [{"variant_id": m.tuber, "quantity": 1}]}
    for key, value in change.items():
        if key == "lines":
            value = [{**ln, "variant_id": m.tuber if ln["variant_id"] == "T" else ln["variant_id"]} for ln in value]
        body[key] = value
    if change.get("consent", True) is None:
        body.pop("consent")
    resp = await m.orders.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "k-" + field})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert any(e["field"].startswith(field) for e in resp.json()["errors"]), resp.json()
    assert await count_orders(m) == 0 and await m.stock(m.tuber) == 100


async def test_other_shops_archived_and_minimums(m) -> None:
    other = auth("grower-orders-2")
    from tests.catalog.helpers import PRODUCT, SHOP

    await m.catalog.post("/api/v1/shops", json={**SHOP, "name": "Vườn Khác"}, headers=other)
    foreign = (await m.catalog.post("/api/v1/products", json=PRODUCT, headers=other)).json()
    mixed = await m.place([{"variant_id": m.tuber, "quantity": 1}, {"variant_id": foreign["variants"][0]["id"],
                                                                     "quantity": 1}])
    assert mixed.status_code == 422
    wrong_shop = await m.place([{"variant_id": foreign["variants"][0]["id"], "quantity": 1}], shop_id=m.shop["id"])
    assert wrong_shop.status_code == 422
    await m.catalog.delete(f"/api/v1/products/{foreign['id']}", headers=other)
    archived = await m.place([{"variant_id": foreign["variants"][0]["id"], "quantity": 1}])
    assert archived.status_code == 422
    below = await m.place([{"variant_id": m.tuber, "quantity": 1}])  # 45.000 < the shop's 50.000 minimum
    assert below.status_code == 422 and below.json()["errors"][0]["type"] == "below_min_order_value"
    assert await count_orders(m) == 0
    assert await m.stock(m.tuber) == 100 and await m.stock(foreign["variants"][0]["id"], other) == 100


async def test_out_of_stock_is_409_and_all_or_nothing(m) -> None:
    resp = await m.place([{"variant_id": m.tuber, "quantity": 5}, {"variant_id": m.pot, "quantity": 6}])
    assert resp.status_code == 409 and resp.json()["type"].endswith("/out-of-stock")
    assert resp.json()["errors"][0]["field"] == "body.lines[1].variant_id"
    assert await m.stock(m.tuber) == 100 and await count_orders(m) == 0


async def test_idempotency_key_semantics(m) -> None:
    lines = [{"variant_id": m.tuber, "quantity": 2}]
    missing = await m.place(lines, key="")
    assert missing.status_code == 400 and missing.json()["type"].endswith("/idempotency-key-missing")
    first = await m.place(lines, key="order-abc")
    again = await m.place(lines, key="order-abc")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert await count_orders(m) == 1 and await m.stock(m.tuber) == 98
    other_body = await m.place([{"variant_id": m.tuber, "quantity": 3}], key="order-abc")
    assert other_body.status_code == 422 and other_body.json()["type"].endswith("/idempotency-key-reused")
    # Keys are the caller's own: a signed-in buyer's "order-abc" is another order.
    mine = await m.place(lines, key="order-abc", headers=BUYER)
    assert mine.status_code == 201 and mine.json()["id"] != first.json()["id"]


async def test_a_code_already_taken_is_drawn_again_and_the_reply_names_the_stored_one(m, monkeypatch) -> None:
    """Order codes are drawn at random: a second order drawing a code already taken is stored under a
    new draw, in one piece (its events, its key's reply), not refused or half-written."""
    from services.orders.orders import service

    first = (await m.place([{"variant_id": m.tuber, "quantity": 2}])).json()
    draws = iter([first["code"], first["code"], "CV-22222"])
    monkeypatch.setattr(service, "new_code", lambda: next(draws))
    second = await m.place([{"variant_id": m.tuber, "quantity": 3}], key="drawn-again")
    assert second.status_code == 201, second.text
    assert second.json()["code"] == "CV-22222" and await count_orders(m) == 2
    async with m.orders_app.state.db.sessionmaker() as session:
        stored = await session.get(Order, second.json()["id"])
        events = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.occurred_at))).all()
        key = await session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "drawn-again"))
    assert stored.code == "CV-22222" and [e.data["code"] for e in events] == [first["code"], "CV-22222"]
    assert key.state == "completed" and key.response_body == second.json()
    assert (await m.place([{"variant_id": m.tuber, "quantity": 3}], key="drawn-again")).json() == second.json()
    assert await m.stock(m.tuber) == 95


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_on_postgresql_an_order_is_three_statements_without_a_transaction(m) -> None:
    """At the orders database, an order on PostgreSQL is the key's claim, the order's id and one
    statement that writes the rest, each in autocommit: no BEGIN and COMMIT round trips around them;
    and the next order of the same shape finds all three compiled already (SQLAlchemy's cache).
    (The request's own statements only: the workers run in tasks of their own.)"""
    from contextvars import ContextVar

    from sqlalchemy import event
    from sqlalchemy.engine.default import CACHE_HIT

    mine: ContextVar[bool] = ContextVar("mine", default=False)
    seen: list[tuple[str, str | None, bool]] = []

    def note(conn, _cursor, statement: str, _parameters, context, _many) -> None:
        if mine.get():
            seen.append((" ".join(statement.split()[:3]), conn.get_execution_options().get("isolation_level"),
                         context.cache_hit == CACHE_HIT))

    engine = m.orders_app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    mine.set(True)
    try:
        replies = [await m.place([{"variant_id": m.tuber, "quantity": 2}, {"variant_id": m.pot, "quantity": 1}])
                   for _ in range(2)]
    finally:
        mine.set(False)
        event.remove(engine, "before_cursor_execute", note)
    assert [r.status_code for r in replies] == [201, 201], replies[0].text
    statements = [("INSERT INTO idempotency_keys", "AUTOCOMMIT"),
                  ("SELECT nextval(pg_get_serial_sequence('orders', 'id'))", "AUTOCOMMIT"),
                  ("WITH write_orders AS", "AUTOCOMMIT")]
    assert [s[:2] for s in seen] == statements * 2
    assert [s[2] for s in seen[3:]] == [True, True, True]
    async with m.orders_app.state.db.sessionmaker() as session:
        stored = await session.get(Order, replies[1].json()["id"])
        await session.refresh(stored, ["lines", "history"])
        events = (await session.scalars(select(OutboxEvent))).all()
    assert [ln.quantity for ln in stored.lines] == [2, 1] and [h.action for h in stored.history] == ["place"]
    assert sorted(e.data["order_id"] for e in events) == sorted(r.json()["id"] for r in replies)


async def test_in_flight_duplicate_is_409(m) -> None:
    gate = asyncio.Event()

    lines = [{"variant_id": m.tuber, "quantity": 2}]
    with m.failing("after_reserve", gate.wait):  # the first request waits once the catalog reserved
        first = asyncio.create_task(m.place(lines, key="same"))
        await asyncio.sleep(0.3)
        second = await m.place(lines, key="same")
        gate.set()
        assert (await first).status_code == 201
    assert second.status_code == 409 and second.headers["retry-after"]
    assert await count_orders(m) == 1 and await m.stock(m.tuber) == 98


async def test_catalog_down_is_503_and_nothing_written(db_urls) -> None:
    async with market(db_urls, catalog_timeout=1.0) as mk:
        mk.orders_app.state.catalog.client.base_url = "http://127.0.0.1:9"
        resp = await mk.place([{"variant_id": mk.tuber, "quantity": 2}], key="retry-me")
        assert resp.status_code == 503 and resp.json()["service"] == "catalog"
        assert await count_orders(mk) == 0
        async with mk.orders_app.state.db.sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
        assert await mk.stock(mk.tuber) == 100


async def test_concurrent_guests_never_oversell(m) -> None:
    replies = await asyncio.gather(*(m.place([{"variant_id": m.pot, "quantity": 1}]) for _ in range(15)))
    codes = [r.status_code for r in replies]
    assert codes.count(201) == 5 and codes.count(409) == 10, codes
    assert await m.stock(m.pot) == 0 and await count_orders(m) == 5
