"""Builds a service's FastAPI app with everything every service shares.

Health (``/healthz`` alive, ``/readyz`` database reachable), Prometheus ``/metrics``, request ids and
access logs, problem+json errors, and the database's lifecycle with migrations applied at start.
A service's ``app.py`` calls :func:`create_service_app` with its settings and routers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request

from common.auth import TokenVerifier
from common.db import Database, install_unavailable_handler
from common.errors import ServiceUnavailable, install_problem_handlers
from common.limits import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware
from common.logging import configure_logging
from common.observability import Probe, RequestContextMiddleware, bind_route, guarded_metrics_endpoint, metrics_endpoint
from common.openapi import install_openapi
from common.settings import AppSettings, SharedSettings
from common.tracing import configure_tracing, flush

log = logging.getLogger("app")

Hook = Callable[[FastAPI], Awaitable[None]]
GC_YOUNG_THRESHOLD = 5_000


def from_state(name: str) -> Callable[[Request], Any]:
    """A dependency provider for an app's ``deps.py``: what start-up put on ``app.state`` as ``name``."""
    def provide(request: Request) -> Any:
        return getattr(request.app.state, name)

    provide.__name__ = provide.__qualname__ = name
    return provide


def state_dependency(name: str) -> Callable[[Request], Awaitable[Any]]:
    """As :func:`from_state`, for routes only: a coroutine function, which FastAPI awaits in place;
    a plain function it runs in its thread pool, a thread hop per dependency per request (on the
    busiest routes, more CPU than the route's own work). Code that calls the provider itself
    (``deps.settings(request)``) keeps :func:`from_state`."""
    async def provide(request: Request) -> Any:
        return getattr(request.app.state, name)

    provide.__name__ = provide.__qualname__ = name
    return provide


def create_service_app(
    settings: AppSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    migrations: Path | None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    readiness_checks: Sequence[Callable[[FastAPI], Awaitable[dict]]] = (),
    openapi_url: str | None = "/openapi.json",
    version: str = "1.0.0",
    public_port: bool = False,
    webhooks: APIRouter | None = None,
    metrics: Sequence[Probe] = (),
) -> FastAPI:
    shared = SharedSettings()
    configure_logging(settings.service_name, shared.log_format, shared.log_level)
    configure_tracing(settings.service_name)  # only when the OTEL_* variables ask for it
    db = Database(settings.database_url, migrations, settings.service_name, **settings.pool())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.migrate()
        for hook in on_startup:
            await hook(app)
        # What start-up built lives as long as the process: keep it out of the collector's full
        # passes, which otherwise pause a request for 50–100 ms now and then.
        gc.collect()
        gc.freeze()
        # The collector's youngest generation is swept every 700 allocations by default: under load that
        # was 4–5 % of the orders and catalog services' CPU (py-spy --native), spent mostly on a request's
        # own objects that reference counting frees a moment later anyway. Sweep it 7× less often (20,000 saved
        # a little more CPU but added ≈ 5 MB to the catalog under bench/load.py; the four apps' target is 400 MB).
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        log.info("%s ready on %s", settings.service_name, db.engine.url.render_as_string())
        try:
            yield
        finally:
            for hook in on_shutdown:
                await hook(app)
            await db.dispose()
            flush()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan,
                  openapi_url=openapi_url, docs_url="/docs" if openapi_url else None, redoc_url=None,
                  dependencies=[Depends(bind_route)],
                  # FastAPI's own spans would double ours (common.tracing: the request's span is made by
                  # RequestContextMiddleware, for the gateway's proxy too); its metrics and logs are
                  # Prometheus' and ours.
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.settings = settings
    app.state.db = db
    app.state.metrics_probes = list(metrics)  # run at each scrape of /metrics (common/observability.py)
    app.state.verifier = TokenVerifier.from_setting(settings.jwt_public_key)
    install_problem_handlers(app)
    # A database that cannot be reached (restarting, pool exhausted) is a 503 with Retry-After, not a 500.
    install_unavailable_handler(app)
    # Inside the request context (added first), so that a 413 carries the request id.
    app.add_middleware(BodyLimitMiddleware,
                       max_bytes=getattr(settings, "max_json_body_bytes", DEFAULT_MAX_BODY_BYTES))
    app.add_middleware(RequestContextMiddleware, service=settings.service_name,
                       public_base_url=lambda: settings.public_base_url)

    @app.get("/healthz", tags=["health"], operation_id="health_alive", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get("/readyz", tags=["health"], operation_id="health_ready",
             summary="The service, its database and what it depends on answer")
    async def readyz() -> dict:
        try:
            await db.ping()
        except Exception as exc:  # any failure to reach the database means not ready
            log.warning("database not reachable: %s", exc)
            raise ServiceUnavailable(f"{settings.service_name}: database not reachable",
                                     service=settings.service_name) from None
        reply: dict = {"status": "ok", "service": settings.service_name, "database": "ok"}
        for check in readiness_checks:
            reply.update(await check(app))  # raises a Problem when something is not ready
        return reply

    # A service's port is private (127.0.0.1, or the compose network); the gateway's is public, so there
    # the scraper shows the service credential.
    app.add_route("/metrics", guarded_metrics_endpoint if public_port else metrics_endpoint,
                  include_in_schema=False)
    for router in routers:
        app.include_router(router)
    if webhooks is not None:  # the requests the app sends, described in the document's `webhooks`
        app.webhooks.include_router(webhooks)
    install_openapi(app)
    return app


def on_stop_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` as soon as the process is told to stop (SIGTERM, SIGINT), before the server's
    own handling of the signal, which then waits for open requests to finish: for work that would
    otherwise hold the shutdown, such as a live stream. Returns what puts the handlers back (call it
    at shutdown). Only in the main thread (a test's server in a thread has no signals of its own)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: object) -> None:
        loop.call_soon_threadsafe(callback)
        if callable(previous[signum]):
            previous[signum](signum, frame)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, old)

    return restore
