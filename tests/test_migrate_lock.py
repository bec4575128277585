"""Migrations run once under a lock: several `migrate` processes started together on one fresh
PostgreSQL database all succeed, and the schema is made once (each app's own lock key)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from common.db import lock_key
from tests.support.databases import PG_ADMIN_DSN, _admin, pg_reachable, require

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 4


@pytest.fixture
def fresh_database():
    why = pg_reachable()
    require(why is None, why or "")
    name = f"cv_test_migrate_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin([f'CREATE DATABASE "{name}"']))
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']))


async def _waiting(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    finally:
        await conn.close()


async def _tables(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    finally:
        await conn.close()


@pytest.mark.parametrize("app", ["services.orders", "gateway"])
async def test_concurrent_migrate_processes_queue_on_the_lock_and_apply_once(fresh_database, tmp_path, app) -> None:
    prefix = "GATEWAY" if app == "gateway" else app.split(".")[1].upper()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), f"{prefix}_DATABASE_URL": fresh_database}
    holder = await asyncpg.connect(fresh_database, timeout=5)  # a migration already under way elsewhere
    name = "orders" if prefix == "ORDERS" else "gateway"
    await holder.execute("SELECT pg_advisory_lock($1)", lock_key("migrate", name))
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-m", app, "migrate", env=env, cwd=tmp_path,
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
             for _ in range(PROCESSES)]
    try:
        for _ in range(600):
            if await _waiting(fresh_database) == PROCESSES:
                break
            await asyncio.sleep(0.1)
        assert await _waiting(fresh_database) == PROCESSES, "every migrate process waits for the lock"
        assert await _tables(fresh_database) == [], "none of them migrated while another held it"
    finally:
        await holder.close()  # the other migration ends: they go one after the other
    results = [(await p.wait(), (await p.stderr.read()).decode()) for p in procs]
    failed = [err for code, err in results if code != 0]
    assert not failed, failed[0][-3000:]
    conn = await asyncpg.connect(fresh_database, timeout=5)
    try:
        assert len(await conn.fetch("SELECT version_num FROM alembic_version")) == 1, "one head, recorded once"
        assert await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                                     "(SELECT oid FROM pg_database WHERE datname = current_database())") == 0, \
            "the lock ends with the migrations' transaction"
    finally:
        await conn.close()


def test_each_app_migrates_under_its_own_key() -> None:
    keys = {lock_key("migrate", app) for app in ("gateway", "catalog", "orders", "notify")}
    assert len(keys) == 4
