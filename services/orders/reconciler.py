"""Finishes what a crash or an outage interrupted: commits reservations of stored orders, and returns
the stock of cancelled ones. Runs at start and then every few seconds; every call is idempotent."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from sqlalchemy import select

from common.tasks import Periodic
from services.orders.catalog_client import CatalogRefused, CatalogUnavailable
from services.orders.orders.models import Order, OrderHistory, OrderStatus

log = logging.getLogger("orders.reconciler")


async def reconcile_once(app: FastAPI) -> int:
    catalog = app.state.catalog
    db = app.state.db
    async with db.sessionmaker() as session:
        pending = (await session.execute(select(Order.id, Order.code, Order.reservation_id, Order.reservation_state,
                                                Order.status)
                                         .where(Order.reservation_state.in_(("held", "release-pending")))
                                         .order_by(Order.id).limit(200))).all()
    done = 0
    for order_id, code, reservation_id, state, status in pending:
        releasing = state == "release-pending" or status == OrderStatus.cancelled
        try:
            if releasing:
                await catalog.release(reservation_id)
            else:
                await catalog.commit(reservation_id)
            outcome, note = ("released" if releasing else "committed"), None
        except CatalogUnavailable:
            break  # try again next round
        except CatalogRefused as exc:
            # The catalog released it first (its TTL passed while it could not be reached).
            log.error("reservation %s of %s could not be committed: %s", reservation_id, code, exc.detail)
            outcome = "lost"
            note = "The stock hold expired before the order was confirmed with the catalog; check stock by hand."
        async with db.writer() as session:
            order = await session.get(Order, order_id)
            if order.reservation_state == state:
                order.reservation_state = outcome
                if note:
                    order.history.append(OrderHistory(action="stock-lost", actor_role="system", note=note))
            await session.commit()
        done += 1
    if done:
        log.info("reconciled %d reservations", done)
    return done


async def start(app: FastAPI) -> None:
    app.state.reconciler = Periodic("reconciler", app.state.settings.reconcile_interval,
                                    lambda: reconcile_once(app))
    await app.state.reconciler.start()


async def stop(app: FastAPI) -> None:
    await app.state.reconciler.stop()
