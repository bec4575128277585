"""The PostgreSQL pool pings a connection only after it has been idle, and recovers from cut ones."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

import common.db as db


async def backend_pid(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def cut(engine, pid: int) -> None:
    """What a database restart does to one pooled connection: the server ends it."""
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()


@pytest.fixture
async def engine(postgres, monkeypatch):
    monkeypatch.setattr(db, "IDLE_BEFORE_PING", 0.3)
    engine = db.make_engine(postgres.urls["catalog"], pool_size=1, max_overflow=0)
    killer = db.make_engine(postgres.urls["catalog"], pool_size=1, max_overflow=0)
    yield engine, killer
    await engine.dispose()
    await killer.dispose()


async def test_a_connection_cut_while_idle_is_replaced_before_use(engine) -> None:
    engine, killer = engine
    pid = await backend_pid(engine)
    assert await backend_pid(engine) == pid  # busy: reused without a ping
    await cut(killer, pid)
    await asyncio.sleep(0.5)  # idle past IDLE_BEFORE_PING: pinged at checkout, found dead, replaced
    assert await backend_pid(engine) != pid


async def test_a_connection_cut_while_busy_fails_one_request_as_unreachable_then_recovers(engine) -> None:
    engine, killer = engine
    pid = await backend_pid(engine)
    await cut(killer, pid)
    with pytest.raises(Exception) as failed:
        await backend_pid(engine)
    assert db.unreachable(failed.value)  # a 503 DatabaseUnavailable for the request that met it
    assert await backend_pid(engine) != pid
