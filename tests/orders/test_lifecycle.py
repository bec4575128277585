"""Order states, who may move them, the history, stock returned exactly once on cancel; the saga's
failure at each step leaves stock right; a checkout across shops is all reserved or none."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select, update

from common.db import Database
from services.catalog.reservations.models import Reservation
from services.catalog.reservations.sweeper import sweep_once
from services.orders.orders.models import Order
from services.orders.outbox import OutboxEvent
from tests.catalog.helpers import PRODUCT, SHOP
from tests.orders.market import BUYER, GROWER, ORDER, market
from tests.support.auth import auth


@pytest.fixture
async def m(db_urls):
    async with market(db_urls) as mk:
        yield mk


async def act(m, order_id: int, action: str, headers: dict, **body):
    return await m.orders.post(f"/api/v1/orders/{order_id}/{action}", headers=headers, json=body or None)


async def test_grower_moves_the_order_and_history_records_it(m) -> None:
    order = (await m.place([{"variant_id": m.tuber, "quantity": 2}], headers=BUYER)).json()
    assert order["allowed_actions"] == ["cancel"]
    for action, status in (("confirm", "confirmed"), ("ship", "shipped"), ("mark-paid", "shipped"),
                           ("deliver", "delivered")):
        resp = await act(m, order["id"], action, GROWER)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == status
    final = resp.json()
    assert final["payment_status"] == "paid" and final["allowed_actions"] == []
    assert [(h["action"], h["actor_role"]) for h in final["history"]] == [
        ("place", "buyer"), ("confirm", "grower"), ("ship", "grower"), ("mark-paid", "grower"), ("deliver", "grower")]
    async with m.orders_app.state.db.sessionmaker() as session:
        kinds = [e.type for e in (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.occurred_at))).all()]
    assert kinds == ["order.placed", "order.confirmed", "order.shipped", "order.paid", "order.delivered"]


async def test_illegal_moves_are_409_listing_the_allowed_ones(m) -> None:
    order = (await m.place([{"variant_id": m.tuber, "quantity": 2}], headers=BUYER)).json()
    buyer_confirms = await act(m, order["id"], "confirm", BUYER)
    assert buyer_confirms.status_code == 409 and buyer_confirms.json()["allowed_actions"] == ["cancel"]
    ship_early = await act(m, order["id"], "ship", GROWER)
    assert ship_early.status_code == 409
    assert ship_early.json()["allowed_actions"] == ["confirm", "cancel", "mark-paid"]
    await act(m, order["id"], "confirm", GROWER)
    await act(m, order["id"], "ship", GROWER)
    assert (await act(m, order["id"], "cancel", BUYER)).status_code == 409  # shipped: the grower's call
    assert (await act(m, order["id"], "cancel", GROWER, reason="Hết hàng")).json()["status"] == "cancelled"
    assert (await act(m, order["id"], "deliver", GROWER)).status_code == 409
    assert (await act(m, order["id"], "nonsense", GROWER)).status_code == 404  # no such move: no such resource
    stranger = auth("grower-someone-else")
    assert (await act(m, order["id"], "cancel", stranger)).status_code == 404


async def test_cancel_returns_stock_exactly_once(m) -> None:
    order = (await m.place([{"variant_id": m.tuber, "quantity": 4}])).json()
    token = order["tracking_url"].rsplit("/", 1)[1]
    assert await m.stock(m.tuber) == 96
    replies = await asyncio.gather(*(act(m, order["id"], "cancel", GROWER) for _ in range(5)))
    assert sorted(r.status_code for r in replies) == [200, 409, 409, 409, 409]
    assert await m.stock(m.tuber) == 100
    async with m.orders_app.state.db.sessionmaker() as session:
        stored = await session.get(Order, order["id"])
    assert stored.reservation_state == "released"
    # Releasing again (a retry, a redelivered event) gives nothing back twice.
    again = await m.catalog.post(f"/internal/reservations/{stored.reservation_id}/release",
                                 headers={"X-Service-Token": m.catalog_app.state.settings.service_token
                                          .get_secret_value()})
    assert again.json()["restored"] is False and await m.stock(m.tuber) == 100
    assert (await m.orders.get(f"/api/v1/tracking/{token}")).json()["status"] == "cancelled"


@pytest.mark.parametrize("step", ["before_reserve", "storing", "after_store"])
async def test_a_failure_at_each_step_leaves_stock_right(m, step: str) -> None:
    def fail() -> None:
        raise RuntimeError(f"injected failure {step}")

    with m.failing(step, fail):
        resp = await m.place([{"variant_id": m.tuber, "quantity": 5}], key="fault-" + step)
    assert resp.status_code == 500 and "injected" not in resp.text
    async with m.orders_app.state.db.sessionmaker() as session:
        orders = await session.scalar(select(func.count()).select_from(Order))
    if step == "after_store":
        # The order was stored before the failure: the reconciler commits its reservation,
        # the key replays the stored reply, and the stock stays taken once.
        assert orders == 1
        from services.orders.reconciler import reconcile_once

        assert await reconcile_once(m.orders_app.state.db, catalog=m.orders_app.state.catalog) == 1
        replay = await m.place([{"variant_id": m.tuber, "quantity": 5}], key="fault-" + step)
        assert replay.status_code == 201
        assert await m.stock(m.tuber) == 95
    else:
        assert orders == 0
        assert await m.stock(m.tuber) == 100
        retry = await m.place([{"variant_id": m.tuber, "quantity": 5}], key="fault-" + step)
        assert retry.status_code == 201 and await m.stock(m.tuber) == 95


async def test_a_crash_after_reserving_is_healed_by_the_ttl(m, db_urls) -> None:
    """The process dies after the catalog reserved: no release is sent; the catalog's sweeper
    gives the stock back once the reservation's time-to-live has passed."""
    def die() -> None:
        raise asyncio.CancelledError()

    from services.orders.orders import service as order_service

    released: list[str] = []

    async def no_release(_catalog, ids):  # the process is gone: nobody releases
        released.extend(ids)

    original = order_service.release_quietly
    order_service.release_quietly = no_release
    try:
        with m.failing("after_reserve", die), pytest.raises(asyncio.CancelledError):
            await m.place([{"variant_id": m.tuber, "quantity": 6}])
    finally:
        order_service.release_quietly = original
    assert await m.stock(m.tuber) == 94
    catalog_db = Database(db_urls["catalog"])  # the catalog app's own pool lives in its server's thread
    try:
        async with catalog_db.sessionmaker() as session:
            await session.execute(update(Reservation).values(expires_at=dt.datetime.now(dt.UTC)))
            await session.commit()
        assert await sweep_once(catalog_db) == 1
    finally:
        await catalog_db.dispose()
    assert await m.stock(m.tuber) == 100


async def test_checkout_across_shops_all_or_none(m) -> None:
    other = auth("grower-orders-2")
    await m.catalog.post("/api/v1/shops", json={**SHOP, "name": "Vườn Sen Hai"}, headers=other)
    theirs = (await m.catalog.post("/api/v1/products", json=PRODUCT, headers=other)).json()
    lines = [{"variant_id": m.tuber, "quantity": 2}, {"variant_id": theirs["variants"][0]["id"], "quantity": 3}]
    resp = await m.orders.post("/api/v1/checkouts", json={**ORDER, "lines": lines},
                               headers={"Idempotency-Key": uuid.uuid4().hex})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert sorted(o["shop_name"] for o in body["orders"]) == ["Vườn Sen Bà Tư", "Vườn Sen Hai"]
    assert body["total"] == sum(o["total"] for o in body["orders"])
    assert await m.stock(m.tuber) == 98 and await m.stock(theirs["variants"][0]["id"], other) == 97
    short = [{"variant_id": m.tuber, "quantity": 2}, {"variant_id": theirs["variants"][1]["id"], "quantity": 99}]
    refused = await m.orders.post("/api/v1/checkouts", json={**ORDER, "lines": short},
                                  headers={"Idempotency-Key": uuid.uuid4().hex})
    assert refused.status_code == 409
    assert await m.stock(m.tuber) == 98, "the first shop's reservation was released"
