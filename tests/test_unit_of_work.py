"""One unit of work per request (``common.db.SessionDep``): committed once, before the reply is sent;
rolled back when the endpoint fails; a commit that fails is the reply, never a 2xx.

Through the catalog's routes, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import event, func, select

from services.catalog.shops.models import Shop
from tests.apps import make_app
from tests.catalog.helpers import SHOP
from tests.support.auth import auth


async def _shops(app) -> int:
    async with app.state.db.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Shop))


@pytest.fixture
async def catalog(db_urls):
    app = make_app("catalog", db_urls)
    async with app.router.lifespan_context(app):
        yield app


def _client(asgi) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi, raise_app_exceptions=False),
                             base_url="http://testserver")


async def test_the_write_is_committed_before_the_reply_starts(catalog) -> None:
    seen: list[int] = []

    async def watching(scope, receive, send):
        async def watched_send(message):
            if message["type"] == "http.response.start":
                seen.append(await _shops(catalog))  # another session: only what is committed
            await send(message)

        await catalog(scope, receive, watched_send)

    async with _client(watching) as client:
        resp = await client.post("/api/v1/shops", json=SHOP, headers=auth("uow-1"))
    assert resp.status_code == 201, resp.text
    assert seen == [1]


async def test_a_failed_commit_is_the_reply_and_nothing_is_stored(catalog) -> None:
    def refuse(_session) -> None:
        raise RuntimeError("the commit fails")

    session_class = catalog.state.db.sessionmaker.kw["sync_session_class"]
    event.listen(session_class, "before_commit", refuse)
    try:
        async with _client(catalog) as client:
            resp = await client.post("/api/v1/shops", json=SHOP, headers=auth("uow-2"))
    finally:
        event.remove(session_class, "before_commit", refuse)
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert await _shops(catalog) == 0


async def test_an_endpoint_that_fails_after_writing_stores_nothing(catalog) -> None:
    async with _client(catalog) as client:
        shop = (await client.post("/api/v1/shops", json=SHOP, headers=auth("uow-3"))).json()
        # The ward check fails after the fields were set on the loaded shop: none of it is kept.
        resp = await client.patch("/api/v1/shops/mine", json={"name": "Đổi tên", "ward_code": "00001"},
                                  headers=auth("uow-3"))
        assert resp.status_code == 422, resp.text
        after = (await client.get("/api/v1/shops/mine", headers=auth("uow-3"))).json()
    assert after["name"] == shop["name"]
