"""The gateway in front of real servers: routing, request ids, limits, timeouts, failures.

The catalog is the real service on the test's backend. Where a behaviour needs an upstream that is
slow, huge or counting what reaches it, a small stand-in upstream plays that part.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.catalog.seed import seed
from services.catalog.settings import CatalogSettings
from tests.apps import make_app
from tests.support.servers import free_port, serve_in_thread

PROBLEM = "application/problem+json"


class StandIn:
    """An upstream that records what reaches it and can be slow or large on request."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.open_streams = 0

        async def anything(request: Request) -> Response:
            self.seen.append(request.url.path)
            body = await request.body()
            seconds = float(request.query_params.get("sleep", "0"))
            if seconds:
                await asyncio.sleep(seconds)
            if request.query_params.get("set-cookie"):
                reply = JSONResponse({"cookie": request.headers.get("cookie")})
                reply.set_cookie("session", request.query_params["set-cookie"])
                return reply
            if request.query_params.get("endless"):
                async def ticks():
                    self.open_streams += 1
                    try:
                        while True:
                            yield b"data: tick\n\n"
                            await asyncio.sleep(0.05)
                    finally:
                        self.open_streams -= 1
                return StreamingResponse(ticks(), media_type="text/event-stream")
            if request.query_params.get("big"):
                async def chunks():
                    for _ in range(32):
                        yield b"x" * 65536
                return StreamingResponse(chunks(), media_type="application/octet-stream")
            return JSONResponse({"path": request.url.path, "raw_query": request.scope["query_string"].decode(),
                                 "bytes": len(body),
                                 "request_id": request.headers.get("x-request-id"),
                                 "service_token": request.headers.get("x-service-token"),
                                 "authorization": request.headers.get("authorization"),
                                 "cookie": request.headers.get("cookie"),
                                 "header_values": list(request.headers.values())})

        async def health(_: Request) -> Response:
            return JSONResponse({"status": "ok"})

        async def openapi(_: Request) -> Response:
            return JSONResponse({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {
                "/api/v1/stub/x": {"get": {"responses": {"200": {"description": "ok"}}}},
                "/internal/secret": {"get": {"responses": {"200": {"description": "ok"}}}}}})

        self.app = Starlette(routes=[Route("/healthz", health), Route("/readyz", health),
                                     Route("/openapi.json", openapi),
                                     Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "HEAD"])])


@pytest.fixture
def catalog_url(db_urls: dict[str, str]) -> Iterator[str]:
    asyncio.run(seed(CatalogSettings(database_url=db_urls["catalog"])))
    with serve_in_thread(make_app("catalog", db_urls)) as url:
        yield url


@pytest.fixture
def stand_in() -> Iterator[tuple[StandIn, str]]:
    upstream = StandIn()
    with serve_in_thread(upstream.app) as url:
        yield upstream, url


@contextlib.contextmanager
def gateway(tmp_path, **settings) -> Iterator[str]:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = {"catalog_url": dead, "orders_url": dead, "notify_url": dead, **settings}
    db = {"gateway": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"}
    with serve_in_thread(make_app("gateway", db, **settings)) as url:
        yield url


STUB_ROUTES = {"/api/v1/stub": "notify", "/api/v1/products": "catalog"}


def test_routes_to_catalog_with_one_request_id(tmp_path, catalog_url: str, caplog) -> None:
    direct = httpx.get(f"{catalog_url}/api/v1/products", params={"limit": 5})
    with gateway(tmp_path, catalog_url=catalog_url) as gw:
        resp = httpx.get(f"{gw}/api/v1/products", params={"limit": 5},
                         headers={"X-Request-ID": "trace-route-1"})
    assert resp.status_code == 200
    assert resp.json() == direct.json()
    assert len(resp.json()["items"]) == 5
    assert resp.headers["x-request-id"] == "trace-route-1"
    hops = {r.service for r in caplog.records if r.request_id == "trace-route-1"}
    assert hops == {"gateway", "catalog"}, "both hops log the caller's request id"


def test_readyz_checks_every_service(tmp_path, catalog_url: str, stand_in) -> None:
    _, stub = stand_in
    with gateway(tmp_path, catalog_url=catalog_url, orders_url=stub, notify_url=stub) as gw:
        ok = httpx.get(f"{gw}/readyz")
    assert ok.status_code == 200
    assert ok.json()["services"] == {"catalog": "ok", "orders": "ok", "notify": "ok"}
    with gateway(tmp_path, catalog_url=catalog_url, notify_url=stub) as gw:
        down = httpx.get(f"{gw}/readyz")
        alive = httpx.get(f"{gw}/healthz")
    assert down.status_code == 503
    assert down.json()["services"]["orders"].startswith("unreachable")
    assert alive.status_code == 200


def test_upstream_down_is_503_naming_it(tmp_path) -> None:
    with gateway(tmp_path) as gw:
        resp = httpx.get(f"{gw}/api/v1/orders")
    assert resp.status_code == 503
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["service"] == "orders"
    assert "orders" in resp.json()["detail"]
    assert resp.headers["retry-after"]


def _sample(metrics: str, name: str) -> float:
    prefix = name + '{upstream="notify"} '
    return next((float(line[len(prefix):]) for line in metrics.splitlines() if line.startswith(prefix)), 0.0)


def test_metrics_split_each_request_into_the_services_part_and_the_gateways(tmp_path, stand_in) -> None:
    _, stub = stand_in
    secret = "scraper-credential-for-this-test-0123456789"
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES, metrics_token=secret) as gw:
        token = {"Authorization": f"Bearer {secret}"}
        scrape = httpx.get(f"{gw}/metrics", headers=token)
        assert scrape.status_code == 200
        names = ("gateway_upstream_seconds_count", "gateway_upstream_seconds_sum",
                 "gateway_added_seconds_count", "gateway_added_seconds_sum")
        before = {n: _sample(scrape.text, n) for n in names}
        for _ in range(3):
            assert httpx.get(f"{gw}/api/v1/stub/x", params={"sleep": "0.2"}).status_code == 200
        after = httpx.get(f"{gw}/metrics", headers=token).text
    delta = {n: _sample(after, n) - before[n] for n in names}
    assert delta["gateway_upstream_seconds_count"] == 3 and delta["gateway_added_seconds_count"] == 3
    assert delta["gateway_upstream_seconds_sum"] >= 0.6  # the service's 0.2 s sleeps are its part…
    assert delta["gateway_added_seconds_sum"] < 0.3  # …and not counted as the gateway's


def test_paths_and_queries_reach_the_service_as_sent(tmp_path, stand_in) -> None:
    _, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES) as gw:
        encoded = httpx.get(f"{gw}/api/v1/stub/a%3Fb", params={"q": "hoa súng", "n": "1"}).json()
        bare = httpx.get(f"{gw}/api/v1/stub/x").json()
    assert encoded["path"] == "/api/v1/stub/a%3Fb"  # an encoded "?" stays in the path
    assert encoded["raw_query"] == "q=hoa+s%C3%BAng&n=1"
    assert bare["path"] == "/api/v1/stub/x" and bare["raw_query"] == ""


def test_upstream_too_slow_is_504(tmp_path, stand_in) -> None:
    _, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES, read_timeout=0.3) as gw:
        resp = httpx.get(f"{gw}/api/v1/stub/x", params={"sleep": "2"})
    assert resp.status_code == 504
    assert resp.json()["service"] == "notify"


def test_json_body_over_limit_is_413_before_upstream(tmp_path, stand_in) -> None:
    upstream, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES, max_json_body_bytes=1000) as gw:
        small = httpx.post(f"{gw}/api/v1/stub/a", content=b"{" + b" " * 900 + b"}",
                           headers={"content-type": "application/json"})
        declared = httpx.post(f"{gw}/api/v1/stub/b", content=b"x" * 5000,
                              headers={"content-type": "application/json"})

        def chunked():
            for _ in range(100):
                yield b"y" * 100

        undeclared = httpx.post(f"{gw}/api/v1/stub/c", content=chunked(),
                                headers={"content-type": "application/json"})
    assert small.status_code == 200 and small.json()["bytes"] == 902
    for resp in (declared, undeclared):
        assert resp.status_code == 413
        assert resp.headers["content-type"] == PROBLEM
    assert upstream.seen == ["/api/v1/stub/a"]


def test_uploads_have_their_own_limit(tmp_path, stand_in) -> None:
    upstream, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES, max_json_body_bytes=1000,
                 max_upload_bytes=200_000) as gw:
        ok = httpx.post(f"{gw}/api/v1/stub/photo", files={"file": ("a.jpg", b"j" * 100_000, "image/jpeg")})
        too_big = httpx.post(f"{gw}/api/v1/stub/photo2",
                             files={"file": ("b.jpg", b"j" * 300_000, "image/jpeg")})
    assert ok.status_code == 200 and ok.json()["bytes"] > 100_000
    assert too_big.status_code == 413


def test_large_responses_stream_through(tmp_path, stand_in) -> None:
    _, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES) as gw:
        with httpx.stream("GET", f"{gw}/api/v1/stub/x", params={"big": "1"}) as resp:
            assert resp.headers.get("transfer-encoding") == "chunked"
            size = sum(len(c) for c in resp.iter_bytes())
    assert size == 32 * 65536


def test_a_client_leaving_a_stream_frees_the_upstream(tmp_path, stand_in) -> None:
    upstream, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES) as gw:
        for _ in range(3):
            with httpx.stream("GET", f"{gw}/api/v1/stub/live", params={"endless": "1"}) as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                assert next(resp.iter_bytes()).startswith(b"data: tick")
            # the client has gone; the gateway must close the stream at the upstream too
        deadline = time.monotonic() + 5
        while upstream.open_streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.open_streams == 0


def test_a_cookie_set_for_one_caller_never_reaches_another(tmp_path, stand_in) -> None:
    _, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES) as gw:
        first = httpx.get(f"{gw}/api/v1/stub/x", params={"set-cookie": "alice"})
        second = httpx.get(f"{gw}/api/v1/stub/x")
    assert first.cookies.get("session") == "alice"  # passed on to the caller it was meant for
    assert second.json()["cookie"] is None  # and kept by nobody in between


def test_head_and_many_requests_on_reused_connections(tmp_path, stand_in) -> None:
    upstream, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES) as gw:
        with httpx.Client(base_url=gw) as client:
            head = client.head("/api/v1/stub/h")
            replies = [client.post("/api/v1/stub/n", json={"i": i, "pad": "x" * i}) for i in range(50)]
            after = client.get("/api/v1/stub/after")
    assert head.status_code == 200 and head.content == b""
    assert [r.json()["bytes"] for r in replies] == [len(f'{{"i":{i},"pad":"{"x" * i}"}}') for i in range(50)]
    assert after.status_code == 200
    assert upstream.seen.count("/api/v1/stub/n") == 50


@pytest.mark.parametrize("path", [
    "/internal/reservations", "/api/v1/stub/internal/x", "/api/v1/stub/INTERNAL/x",
    "/api/v1/stub/../../internal/x", "/api/v1/stub/%2e%2e/%2e%2e/internal/x",
    "/api/v1/stub/%69nternal/x", "/api/v1/stub/%2569nternal/x", "/api/v1/stub/a%2f..%2f..%2finternal",
    "//internal/x", "/api/v1/stub/internal%3bx",
])
def test_internal_is_never_routed(tmp_path, stand_in, path: str) -> None:
    upstream, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes={"/api/v1/stub": "notify", "/": "notify"}) as gw:
        with socket.create_connection(("127.0.0.1", int(gw.rsplit(":", 1)[1]))) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
    status = int(reply.split(b" ", 2)[1])
    assert 400 <= status < 500, reply[:200]
    assert not any("internal" in seen.lower() for seen in upstream.seen)


def test_callers_cannot_forge_service_credentials(tmp_path, stand_in) -> None:
    _, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES) as gw:
        resp = httpx.get(f"{gw}/api/v1/stub/x", headers={"X-Service-Token": "forged"})
    assert resp.json()["service_token"] is None


def test_bad_paths_are_4xx_through_the_gateway(tmp_path, catalog_url: str) -> None:
    with gateway(tmp_path, catalog_url=catalog_url) as gw:
        for path in (f"/api/v1/products/{2**64}", "/api/v1/products/%00", "/api/v1/products/%ff%fe"):
            resp = httpx.get(gw + path)
            assert 400 <= resp.status_code < 500, (path, resp.status_code)
            assert resp.headers["content-type"] == PROBLEM


def test_pool_exhaustion_is_503_and_recovers(tmp_path, stand_in) -> None:
    _, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES, max_connections=1, pool_timeout=0.3) as gw:
        slow = threading.Thread(target=httpx.get, args=(f"{gw}/api/v1/stub/slow",),
                                kwargs={"params": {"sleep": "1.5"}, "timeout": 10})
        slow.start()
        time.sleep(0.4)
        crowded = httpx.get(f"{gw}/api/v1/stub/x")
        slow.join()
        after = httpx.get(f"{gw}/api/v1/stub/x")
    assert crowded.status_code == 503
    assert crowded.json()["service"] == "notify"
    assert after.status_code == 200


def test_slow_client_cannot_hold_the_pool(tmp_path, stand_in) -> None:
    upstream, stub = stand_in
    with gateway(tmp_path, notify_url=stub, routes=STUB_ROUTES, max_connections=1, pool_timeout=0.3,
                 body_timeout=1.0) as gw:
        port = int(gw.rsplit(":", 1)[1])
        trickler = socket.create_connection(("127.0.0.1", port))
        trickler.sendall(b"POST /api/v1/stub/trickle HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"a\":")
        time.sleep(0.2)
        others = [httpx.get(f"{gw}/api/v1/stub/x", timeout=5) for _ in range(3)]
        trickler.settimeout(5)
        reply = trickler.recv(65536)
        trickler.close()
    assert [r.status_code for r in others] == [200, 200, 200]
    assert b" 408 " in reply.split(b"\r\n", 1)[0]
    assert "/api/v1/stub/trickle" not in upstream.seen


def test_merged_openapi_and_docs(tmp_path, catalog_url: str, stand_in) -> None:
    _, stub = stand_in
    with gateway(tmp_path, catalog_url=catalog_url, orders_url=stub, notify_url=stub) as gw:
        doc = httpx.get(f"{gw}/openapi.json").json()
        docs = httpx.get(f"{gw}/docs")
    assert "/api/v1/products" in doc["paths"] and "/api/v1/products/{product_id}" in doc["paths"]
    assert "/api/v1/stub/x" in doc["paths"]
    assert not [p for p in doc["paths"] if p.startswith("/internal")]
    assert "ProductPublic" in doc["components"]["schemas"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_order_creation_is_limited_per_address(tmp_path, stand_in) -> None:
    upstream, stub = stand_in
    limits = {"login-account": (10, 60), "login-ip": (10, 60), "register-ip": (10, 60), "api-key": (10, 60),
              "order-ip": (3, 60)}
    with gateway(tmp_path, orders_url=stub, rate_limits=limits) as gw:
        codes = [httpx.post(f"{gw}/api/v1/orders", json={}).status_code for _ in range(4)]
        checkout = httpx.post(f"{gw}/api/v1/checkouts", json={})
        reads = [httpx.get(f"{gw}/api/v1/orders").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429]
    assert checkout.status_code == 429 and checkout.json()["policy"] == "order-ip"
    assert checkout.headers["retry-after"] and checkout.headers["ratelimit"].startswith('"order-ip";r=0')
    assert reads == [200] * 5
    assert upstream.seen.count("/api/v1/orders") == 3 + 5
