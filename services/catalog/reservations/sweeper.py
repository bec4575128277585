"""Releases reservations whose time-to-live passed without a commit (a crashed or abandoned order)."""

from __future__ import annotations

import logging
from functools import partial

from fastapi import FastAPI

from common.worker import Worker
from services.catalog.reservations import service

log = logging.getLogger("catalog.sweeper")


async def sweep_once(app: FastAPI) -> int:
    released = 0
    async with app.state.db.sessionmaker() as session:
        ids = await service.expired(session)
    for reservation_id in ids:
        async with app.state.db.writer() as session:
            _, restored = await service.release(session, reservation_id)
        released += restored
    if released:
        log.info("released %d expired reservations", released)
    return released


async def _round(app: FastAPI) -> None:
    await sweep_once(app)


async def start(app: FastAPI) -> None:
    app.state.sweeper = Worker("reservation sweeper", partial(_round, app),
                               interval=app.state.settings.reservation_sweep_interval)
    await app.state.sweeper.start()


async def stop(app: FastAPI) -> None:
    await app.state.sweeper.stop()
