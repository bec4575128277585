"""Databases for tests: SQLite files, or PostgreSQL databases made per test session and dropped after.

Every database-backed test runs twice, on SQLite and on PostgreSQL (the ``backend`` fixture). When
the PostgreSQL server cannot be reached the PostgreSQL half is skipped with the reason — except under
CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
import pytest

APPS = ("gateway", "catalog", "orders", "notify")
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://root@127.0.0.1:5432/postgres")


def require(condition: bool, reason: str) -> None:
    """Skip (or, under CI, fail) a test whose server is not there."""
    if condition:
        return
    if CI:
        pytest.fail(f"{reason} (CI=true: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def sqlite_urls(folder: Path) -> dict[str, str]:
    return {app: f"sqlite+aiosqlite:///{folder / f'{app}.db'}" for app in APPS}


async def _admin(statements: list[str]) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        for stmt in statements:
            await conn.execute(stmt)
    finally:
        await conn.close()


def pg_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        asyncio.run(_admin(["SELECT 1"]))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {PG_ADMIN_DSN} is not reachable: {exc}"
    return None


class PostgresDatabases:
    """One database per app for this test session; emptied after each test, dropped at the end."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.names = {app: f"cv_test_{tag}_{app}" for app in APPS}
        base = PG_ADMIN_DSN.rsplit("/", 1)[0]
        self.urls = {app: f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
                     for app, name in self.names.items()}
        self.dsns = {app: f"{base}/{name}" for app, name in self.names.items()}

    def create(self) -> None:
        asyncio.run(_admin([f'CREATE DATABASE "{n}"' for n in self.names.values()]))

    def drop(self) -> None:
        asyncio.run(_admin([f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in self.names.values()]))

    def empty(self) -> None:
        async def go() -> None:
            for dsn in self.dsns.values():
                conn = await asyncpg.connect(dsn, timeout=5)
                try:
                    tables = [r["tablename"] for r in await conn.fetch(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'")]
                    if tables:
                        await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)
                                           + " RESTART IDENTITY CASCADE")
                finally:
                    await conn.close()

        asyncio.run(go())
