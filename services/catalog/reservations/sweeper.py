"""Releases reservations whose time-to-live passed without a commit (a crashed or abandoned order)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

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


async def _loop(app: FastAPI, interval: float) -> None:
    while True:
        try:
            await sweep_once(app)
        except Exception:  # the sweeper must outlive a database hiccup
            log.exception("reservation sweep failed; will retry")
        await asyncio.sleep(interval)


async def start(app: FastAPI) -> None:
    interval = app.state.settings.reservation_sweep_interval
    app.state.sweeper = asyncio.create_task(_loop(app, interval)) if interval > 0 else None


async def stop(app: FastAPI) -> None:
    task = app.state.sweeper
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
