"""What every app shares: health, readiness, metrics, request ids and problem+json errors.

Runs for each of the four apps on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel
from sqlalchemy import inspect

from tests.apps import make_app
from tests.conftest import asgi_client

PROBLEM = "application/problem+json"
SERVICES = ["catalog", "orders", "notify"]
EXPECTED_TABLES = {"catalog": {"shops", "products", "variants"}, "orders": {"outbox_events"},
                   "notify": {"processed_events"}, "gateway": set()}


def assert_problem(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


@pytest.mark.parametrize("name", [*SERVICES, "gateway"])
async def test_migrations_applied_at_start(name: str, db_urls: dict[str, str]) -> None:
    app = make_app(name, db_urls)
    async with asgi_client(app) as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        async with app.state.db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert "alembic_version" in tables
    assert EXPECTED_TABLES[name] <= tables


@pytest.mark.parametrize("name", SERVICES)
async def test_ready_when_database_answers(name: str, db_urls: dict[str, str]) -> None:
    async with asgi_client(make_app(name, db_urls)) as client:
        resp = await client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "service": name, "database": "ok"}


@pytest.mark.parametrize("name", SERVICES)
async def test_not_ready_when_database_is_gone(name: str, db_urls: dict[str, str]) -> None:
    app = make_app(name, db_urls)
    async with asgi_client(app) as client:
        await app.state.db.engine.dispose()
        app.state.db.engine.pool._creator = _refuse  # the database is unreachable from now on
        body = assert_problem(await client.get("/readyz"), 503)
    assert name in body["detail"]


def _refuse(*_a, **_k):
    raise OSError("connection refused")


@pytest.mark.parametrize("name", SERVICES)
async def test_errors_are_problem_json(name: str, db_urls: dict[str, str]) -> None:
    async with asgi_client(make_app(name, db_urls)) as client:
        body = assert_problem(await client.get("/no/such/route"), 404)
        assert body["type"].endswith("/not-found")
        assert body["request_id"]
        assert_problem(await client.post("/healthz"), 405)


async def test_validation_errors_name_their_fields(db_urls: dict[str, str]) -> None:
    async with asgi_client(make_app("catalog", db_urls)) as client:
        body = assert_problem(await client.get("/api/v1/products", params={"limit": 1000}), 422)
        assert body["errors"][0]["field"] == "query.limit"
        body = assert_problem(await client.get("/api/v1/products/not-a-number"), 422)
        assert body["errors"][0]["field"] == "path.product_id"
        # Past 64 bits, and a NUL byte: refused as input, never a database error.
        assert_problem(await client.get(f"/api/v1/products/{2**64 + 1}"), 422)
        assert_problem(await client.get("/api/v1/products/%00"), 422)
        assert_problem(await client.get("/api/v1/products", params={"cursor": "!!"}), 422)


class Line(BaseModel):
    variant_id: int
    quantity: int


class Body(BaseModel):
    lines: list[Line]


async def test_body_validation_and_malformed_json(db_urls: dict[str, str]) -> None:
    app = make_app("orders", db_urls)

    @app.post("/test-body")
    async def echo(body: Body) -> Body:
        return body

    async with asgi_client(app) as client:
        body = assert_problem(await client.post("/test-body", json={"lines": [{"variant_id": 1,
                                                                               "quantity": "x"}]}), 422)
        assert [e["field"] for e in body["errors"]] == ["body.lines[0].quantity"]
        body = assert_problem(await client.post("/test-body", content=b'{"lines": [',
                                                headers={"content-type": "application/json"}), 400)
        assert body["type"].endswith("/malformed-json")


async def test_unhandled_error_is_500_without_trace(db_urls: dict[str, str], caplog) -> None:
    app = make_app("notify", db_urls)

    @app.get("/explode")
    async def explode() -> None:
        raise RuntimeError("secret internals: /etc/passwd")

    async with asgi_client(app) as client:
        with caplog.at_level(logging.ERROR):
            resp = await client.get("/explode", headers={"X-Request-ID": "req-500-test"})
    body = assert_problem(resp, 500)
    assert body["request_id"] == "req-500-test"
    assert "secret" not in resp.text and "Traceback" not in resp.text
    logged = [r for r in caplog.records if r.request_id == "req-500-test" and r.exc_info]
    assert logged, "the trace goes to the log, with the request id"


@pytest.mark.parametrize("name", SERVICES)
async def test_request_id_taken_or_made(name: str, db_urls: dict[str, str]) -> None:
    async with asgi_client(make_app(name, db_urls)) as client:
        given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        made = await client.get("/healthz")
        hostile = await client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "x" * 500


@pytest.mark.parametrize("name", SERVICES)
async def test_metrics_count_requests_by_route_and_status(name: str, db_urls: dict[str, str]) -> None:
    app = make_app(name, db_urls)
    # The gateway's port is public: there the scraper shows the metrics credential.
    metrics_token = getattr(app.state.settings, "metrics_token", None)
    scraper = {"Authorization": f"Bearer {metrics_token.get_secret_value()}"} if metrics_token else {}
    async with asgi_client(app) as client:
        await client.get("/healthz")
        await client.get("/no/such/thing/at/all")
        text = (await client.get("/metrics", headers=scraper)).text
    assert f'http_requests_total{{method="GET",route="/healthz",service="{name}",status="200"}}' in text
    assert f'route="<unmatched>",service="{name}",status="404"' in text
    assert "http_request_duration_seconds_bucket" in text
