"""Step 4 of the saga: the reconciler commits the reservations of stored orders, many in one call."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from services.orders.orders.models import Order
from services.orders.reconciler import reconcile_once
from tests.orders.market import market


@pytest.fixture
async def m(db_urls):
    async with market(db_urls) as mk:
        yield mk


async def states(m) -> dict[str, str]:
    async with m.orders_app.state.db.sessionmaker() as session:
        return dict((await session.execute(select(Order.code, Order.reservation_state))).all())


async def test_orders_placed_together_are_all_committed(m) -> None:
    replies = await asyncio.gather(*(m.place([{"variant_id": m.tuber, "quantity": 2}]) for _ in range(12)))
    assert [r.status_code for r in replies] == [201] * 12
    await m.reservations_settled()
    assert set((await states(m)).values()) == {"committed"}
    assert await m.stock(m.tuber) == 100 - 24


async def test_one_round_commits_many_and_marks_a_late_one_lost(m) -> None:
    await m.orders_app.state.reconciler.stop()  # rounds by hand from here
    replies = [await m.place([{"variant_id": m.tuber, "quantity": 2}]) for _ in range(3)]
    assert [r.status_code for r in replies] == [201] * 3, replies[0].text
    codes = [r.json()["code"] for r in replies]
    assert set((await states(m)).values()) == {"held"}
    async with m.orders_app.state.db.sessionmaker() as session:
        late = await session.scalar(select(Order).where(Order.code == codes[1]))
    # The catalog released it before the order service got through (its TTL passed meanwhile).
    await m.catalog.post(f"/internal/reservations/{late.reservation_id}/release",
                         headers={"X-Service-Token": m.catalog_app.state.settings.service_token.get_secret_value()})
    assert await reconcile_once(m.orders_app.state.db, catalog=m.orders_app.state.catalog) == 3
    assert await states(m) == {codes[0]: "committed", codes[1]: "lost", codes[2]: "committed"}
    async with m.orders_app.state.db.sessionmaker() as session:
        order = await session.get(Order, late.id)
        await session.refresh(order, ["history"])
        assert [h.action for h in order.history][-1] == "stock-lost"
    assert await reconcile_once(m.orders_app.state.db, catalog=m.orders_app.state.catalog) == 0
    assert await m.stock(m.tuber) == 100 - 2 * 2
