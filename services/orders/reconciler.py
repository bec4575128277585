"""Brings the catalog's reservations in line with the orders stored here: commits the reservations of
stored orders (step 4 of the saga), and returns the stock of cancelled ones.

Placing an order wakes it once the order is stored, so a reservation is committed a moment after
its order, together with those of every order stored meanwhile: one call to the catalog and one
``UPDATE`` here for all of them, rather than a call and a transaction per order. It also runs every
few seconds (and at start), which finishes whatever a crash or an outage interrupted. Every call is
idempotent, so rounds may overlap with a cancel; the rounds of several replicas take turns (the
worker's ``exclusive`` lock), so one catalog call per reservation, not one per replica.
"""

from __future__ import annotations

import logging
from functools import partial

from fastapi import FastAPI
from sqlalchemy import select, update

from common.db import Database
from common.worker import Worker
from services.orders.catalog_client import CatalogClient, CatalogRefused, CatalogUnavailable
from services.orders.orders.models import Order, OrderHistory, OrderStatus

log = logging.getLogger("orders.reconciler")

BATCH = 200
# A woken round waits this long for other stored orders to join it: under load, one catalog call and one
# UPDATE for several orders instead of for each (the reservation's TTL is minutes; this is milliseconds).
LINGER = 0.05
LOST_NOTE = "The stock hold expired before the order was confirmed with the catalog; check stock by hand."


async def reconcile_once(db: Database, *, catalog: CatalogClient) -> int:
    """One round over up to ``BATCH`` orders whose reservation is open; the number settled. Each write
    is a unit of work of its own, committed here once the catalog has answered."""
    async with db.sessionmaker() as session:
        pending = (await session.execute(select(Order.id, Order.code, Order.reservation_id, Order.reservation_state,
                                                Order.status)
                                         .where(Order.reservation_state.in_(("held", "release-pending")))
                                         .order_by(Order.id).limit(BATCH))).all()
    releasing = [p.reservation_state == "release-pending" or p.status == OrderStatus.cancelled for p in pending]
    to_commit = [p for p, r in zip(pending, releasing, strict=True) if not r]
    to_release = [p for p, r in zip(pending, releasing, strict=True) if r]
    done = await _commit(db, catalog, to_commit) if to_commit else 0
    done += await _release(db, catalog, to_release)
    if done:
        log.info("reconciled %d reservations", done)
    return done


async def _commit(db: Database, catalog: CatalogClient, pending: list) -> int:
    try:
        statuses = await catalog.commit_many([p.reservation_id for p in pending])
    except CatalogUnavailable:
        return 0  # try again next round
    committed = [p.id for p in pending if statuses[p.reservation_id] == "committed"]
    lost = [p for p in pending if statuses[p.reservation_id] != "committed"]
    async with db.writer() as session:
        # Only orders still "held": a cancel meanwhile has its own say on the reservation.
        if committed:
            await session.execute(update(Order).where(Order.id.in_(committed), Order.reservation_state == "held")
                                  .values(reservation_state="committed").execution_options(synchronize_session=False))
        for p in lost:
            # The catalog released it first (its TTL passed while it could not be reached).
            log.error("reservation %s of %s could not be committed: %s", p.reservation_id, p.code,
                      statuses[p.reservation_id])
            await _settle(session, p.id, "held", "lost", note=LOST_NOTE)
        await session.commit()
    return len(pending)


async def _release(db: Database, catalog: CatalogClient, pending: list) -> int:
    done = 0
    for p in pending:
        try:
            await catalog.release(p.reservation_id)
        except CatalogUnavailable:
            break  # try again next round
        except CatalogRefused as exc:  # the catalog does not know it
            log.error("reservation %s of %s could not be released: %s", p.reservation_id, p.code, exc.detail)
            outcome, note = "lost", LOST_NOTE
        else:
            outcome, note = "released", None
        async with db.writer() as session:
            await _settle(session, p.id, p.reservation_state, outcome, note)
            await session.commit()
        done += 1
    return done


async def _settle(session, order_id: int, was: str, outcome: str, note: str | None = None) -> None:
    order = await session.get(Order, order_id)
    if order.reservation_state == was:
        order.reservation_state = outcome
        if note:
            order.history.append(OrderHistory(action="stock-lost", actor_role="system", note=note))


async def _round(db: Database, catalog: CatalogClient) -> bool:
    return await reconcile_once(db, catalog=catalog) >= BATCH  # a full round: there may be more


async def start(app: FastAPI) -> None:
    """Placing wakes it (``reconciler.wake()``) once an order is stored."""
    state = app.state
    state.reconciler = Worker("reconciler", partial(_round, state.db, state.catalog),
                              interval=state.settings.reconcile_interval, linger=LINGER, exclusive=state.db)
    await app.state.reconciler.start()


async def stop(app: FastAPI) -> None:
    await app.state.reconciler.stop()
