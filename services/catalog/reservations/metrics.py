"""The catalog's gauges at each scrape of ``/metrics``: stock held by reservations not yet committed or
released (the sweeper releases those past their time), from the ``(status, expires_at)`` index."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import Gauge
from sqlalchemy import select

from common.observability import capped_count
from services.catalog.reservations.models import Reservation, ReservationStatus, utcnow

HELD = Gauge("catalog_reservations_held", "Reservations held: neither committed nor released (up to 100,000)")
HELD_EXPIRED = Gauge("catalog_reservations_held_expired",
                     "Reservations held past their expiry: the sweeper has not released them yet")


async def reservation_metrics(app: FastAPI) -> None:
    held = Reservation.status == ReservationStatus.held
    async with app.state.db.sessionmaker() as session:
        HELD.set(await session.scalar(capped_count(select(Reservation.id).where(held))) or 0)
        HELD_EXPIRED.set(await session.scalar(capped_count(
            select(Reservation.id).where(held, Reservation.expires_at < utcnow()))) or 0)
