"""Releases reservations whose time-to-live passed without a commit (a crashed or abandoned order)."""

from __future__ import annotations

import logging
from functools import partial

from fastapi import FastAPI

from common.db import Database
from common.worker import Worker
from services.catalog.reservations import service

log = logging.getLogger("catalog.sweeper")


async def sweep_once(db: Database) -> int:
    """One round; each release is a unit of work of its own, committed here."""
    released = 0
    async with db.sessionmaker() as session:
        ids = await service.expired(session)
    for reservation_id in ids:
        async with db.unit_of_work(writer=True) as session:
            _, restored = await service.release(session, reservation_id)
        released += restored
    if released:
        log.info("released %d expired reservations", released)
    return released


async def _round(db: Database) -> None:
    await sweep_once(db)


async def start(app: FastAPI) -> None:
    app.state.sweeper = Worker("reservation sweeper", partial(_round, app.state.db),
                               interval=app.state.settings.reservation_sweep_interval)
    await app.state.sweeper.start()


async def stop(app: FastAPI) -> None:
    await app.state.sweeper.stop()
