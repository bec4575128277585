"""Fixtures shared by every test. See tests/support/ for the servers and databases behind them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support.databases import PostgresDatabases, pg_reachable, require, sqlite_urls


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    why = pg_reachable()
    require(why is None, why or "")
    dbs = PostgresDatabases()
    dbs.create()
    try:
        yield dbs
    finally:
        dbs.drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_urls(backend: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Each app's database URL for this test, on the test's backend; isolated per test."""
    if backend == "sqlite":
        yield sqlite_urls(tmp_path)
        return
    dbs: PostgresDatabases = request.getfixturevalue("postgres")
    try:
        yield dbs.urls
    finally:
        dbs.empty()


@contextlib.asynccontextmanager
async def asgi_client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` in-process, with its lifespan (migrations, pools) run."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
