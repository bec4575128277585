"""PgBouncer in transaction mode in front of PostgreSQL: the apps work through it with
``DB_PGBOUNCER=true`` (no prepared statements kept per connection), migrations included; without the
setting, asyncpg's prepared statements collide on PgBouncer's shared server connections."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from common.db import Database
from services.orders.app import MIGRATIONS
from services.orders.outbox import OutboxEvent
from tests.apps import make_app
from tests.conftest import asgi_client
from tests.gateway.test_identity import grower, sign_in
from tests.support.pgbouncer import pgbouncer, through

CLIENTS = 12  # sessions at once over 2 server connections: each transaction may land on either


@pytest.fixture
def bouncer(postgres):
    with pgbouncer(server_connections=2) as port:
        yield port
    postgres.empty()


async def _busy(db: Database) -> None:
    """Many sessions running the same statements, so that a statement prepared on one server
    connection is met again on another."""
    async def one(n: int) -> None:
        for i in range(15):
            async with db.sessionmaker() as session:
                session.add(OutboxEvent(type="order.placed", data={"n": n * 100 + i}))
                await session.commit()
            async with db.sessionmaker() as session:
                await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "order.placed").limit(3))
                await session.execute(text("SELECT pg_backend_pid()"))

    await asyncio.gather(*(one(n) for n in range(CLIENTS)))


async def test_migrations_and_busy_sessions_through_pgbouncer(postgres, bouncer) -> None:
    db = Database(through(postgres.urls["orders"], bouncer), MIGRATIONS, "orders", pool_size=CLIENTS,
                  max_overflow=0, pgbouncer=True)
    try:
        await db.migrate()  # its advisory lock is transaction-scoped: it holds through PgBouncer
        await _busy(db)
        async with db.sessionmaker() as session:
            count = await session.scalar(select(text("count(*)")).select_from(OutboxEvent))
        assert count == CLIENTS * 15
    finally:
        await db.dispose()


async def test_without_the_setting_prepared_statements_collide(postgres, bouncer) -> None:
    setup = Database(postgres.urls["orders"], MIGRATIONS, "orders")
    await setup.migrate()
    await setup.dispose()
    db = Database(through(postgres.urls["orders"], bouncer), MIGRATIONS, "orders", pool_size=CLIENTS,
                  max_overflow=0, pgbouncer=False)
    try:
        with pytest.raises(Exception, match="prepared statement"):
            await _busy(db)
    finally:
        await db.dispose()


async def test_the_gateway_app_through_pgbouncer(postgres, bouncer) -> None:
    urls = {**postgres.urls, "gateway": through(postgres.urls["gateway"], bouncer)}
    app = make_app("gateway", urls, db_pgbouncer=True, db_pool_size=4, db_max_overflow=0)
    async with asgi_client(app) as client:
        assert (await client.post("/api/v1/auth/register", json=grower())).status_code == 201
        tokens = await asyncio.gather(*(sign_in(client, "0912345678") for _ in range(8)))
        answers = await asyncio.gather(*(client.post("/api/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
                                         for t in tokens))
        assert [r.status_code for r in answers] == [200] * 8
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {answers[0].json()['access_token']}"})
        assert me.status_code == 200, me.text
