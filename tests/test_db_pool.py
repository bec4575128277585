"""The PostgreSQL pool pings a connection only after it has been idle, and recovers from cut ones."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

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


async def test_a_server_out_of_connection_slots_is_unreachable_not_a_bug(postgres) -> None:
    """PostgreSQL refusing a connection with "too many clients" (SQLSTATE 53300) is a 503 with
    Retry-After, like a server that is down, not a 500: a role limited to no connections stands in
    for a server whose max_connections are all taken."""
    admin = db.make_engine(postgres.urls["catalog"], pool_size=1, max_overflow=0)
    role = f"cv_no_slots_{uuid.uuid4().hex[:8]}"  # roles are the whole server's
    async with admin.connect() as conn:
        await conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        await conn.execute(text(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0"))
        await conn.commit()
    url = make_url(postgres.urls["catalog"]).set(username=role)
    limited = db.make_engine(url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    try:
        with pytest.raises(Exception) as failed:
            await backend_pid(limited)
        assert "too many connections" in str(failed.value)
        assert db.unreachable(failed.value)
    finally:
        await limited.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
            await conn.commit()
        await admin.dispose()
