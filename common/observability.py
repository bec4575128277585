"""Per-request plumbing shared by every app, as one pure-ASGI middleware.

- ``X-Request-ID``: taken from the caller when it looks sane, else made; set in the logging context,
  returned on the reply (the gateway forwards it to the services, so every hop logs the same id).
- One access log line per request with method, route template, status and duration.
- Prometheus ``http_requests_total`` and ``http_request_duration_seconds`` by route and status.
- With tracing on (``common.tracing``), a server span per request, child of the caller's
  ``traceparent``, named by method and route template (health and metrics scrapes are not traced).
- ``/metrics`` first runs the app's probes (``app.state.metrics_probes``, given to
  ``create_service_app`` as ``metrics``): gauges of what is queued or held (outbox backlog, queues,
  reservations, orders by state…) computed at scrape time from bounded queries (:func:`capped_count`),
  each within :data:`PROBE_TIMEOUT`; one that fails is logged and counted, and the scrape goes on.
- Any exception that escapes the app becomes a 500 problem+json with the request id; the trace
  goes to the log only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Select, func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common import tracing
from common.errors import DEFAULT_BASE_URL, problem_base_var, problem_response
from common.logging import request_id_var, route_var, service_var

log = logging.getLogger("http")

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

REQUESTS = Counter("http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds", "Time to handle an HTTP request", ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PROBE_FAILURES = Counter("metrics_probe_failures_total", "Scrape-time probes that failed or took too long",
                         ["service", "probe"])
PROBE_TIMEOUT = 2.0  # seconds one probe may take before the scrape goes on without it
COUNT_CAP = 100_000  # a queue's count stops here: a scrape never scans more than this many rows
Probe = Callable[[Any], Awaitable[None]]  # given the app; sets its gauges
# Health and metrics scrapes would drown the access log; they are still counted.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_ID.match(candidate):
                return candidate
            break
    return new_request_id()


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths are grouped so that a bot's random URLs cannot explode the metric labels.
    return path if path else "<unmatched>"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, service: str, public_base_url: Callable[[], str] = lambda: DEFAULT_BASE_URL
                 ) -> None:
        self.app = app
        self.service = service
        self.public_base_url = public_base_url  # read per request: problem types are made on it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_from(scope["headers"])
        rid_token = request_id_var.set(rid)
        route_token = route_var.set(None)
        service_token = service_var.set(self.service)
        base_token = problem_base_var.set(self.public_base_url())
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        state["request_id"], state["started"] = rid, started
        status = 500
        response_started = False
        rid_header = (b"x-request-id", rid.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        traced = tracing.enabled() and scope["path"] not in QUIET_PATHS
        with tracing.server_span(scope["method"], scope["path"], scope["headers"]) if traced else tracing.NO_SPAN \
                as span:
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception:
                route_var.set(route_template(scope))
                log.exception("unhandled error")
                if not response_started:
                    resp = problem_response(500, "internal-error", "Internal server error",
                                            "Something went wrong on our side. Quote the request id "
                                            "if you report it.")
                    await resp(scope, receive, send_wrapper)
                status = 500
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                route_var.set(route)
                method = scope["method"]
                REQUESTS.labels(self.service, method, route, str(status)).inc()
                LATENCY.labels(self.service, method, route).observe(elapsed)
                if span is not None:
                    tracing.end_request(span, method, route, status)
                if scope["path"] not in QUIET_PATHS:
                    log.info(
                        "%s %s %s %.1fms", method, scope["path"], status, elapsed * 1000,
                        extra={"method": method, "status": status, "duration_ms": round(elapsed * 1000, 2),
                               # The gateway's is the real client's (behind a trusted proxy, see
                               # GATEWAY_TRUSTED_PROXIES); a service's is the gateway's.
                               "client": (scope.get("client") or ("",))[0]},
                    )
                route_var.reset(route_token)
                request_id_var.reset(rid_token)
                service_var.reset(service_token)
                problem_base_var.reset(base_token)


async def bind_route(request: Request) -> None:
    """App-wide dependency: log lines written while handling a request name its route."""
    route_var.set(route_template(request.scope))


def capped_count(rows: Select, cap: int = COUNT_CAP) -> Select:
    """``SELECT count(*)`` of at most ``cap`` of the rows ``rows`` selects (a select of one narrow column,
    on an index): bounded work at every scrape, however long a queue has grown."""
    return select(func.count()).select_from(rows.limit(cap).subquery())


async def run_probes(app: Any) -> None:
    for probe in getattr(app.state, "metrics_probes", ()):
        name = getattr(probe, "__name__", "probe")
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await probe(app)
        except Exception as exc:  # noqa: BLE001 - a probe's failure must not cost the whole scrape
            PROBE_FAILURES.labels(app.state.settings.service_name, name).inc()
            log.warning("metrics probe %s failed: %s: %s", name, type(exc).__name__, exc)


def metrics_registry() -> CollectorRegistry:
    """This process's metrics. Under ``serve --workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set for the
    workers by common/cli.py) every worker writes its samples to files there, and a scrape, whichever
    worker answers it, adds up all of them: a counter is the process's whole count, never one worker's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


async def metrics_endpoint(request: Request) -> Response:
    await run_probes(request.app)
    return Response(generate_latest(metrics_registry()), media_type=CONTENT_TYPE_LATEST)


async def guarded_metrics_endpoint(request: Request) -> Response:
    """``/metrics`` on a public port: only for a scraper holding the metrics credential
    (``METRICS_TOKEN``, a credential of its own, not the services'), as ``Authorization: Bearer``
    (Prometheus' ``authorization`` setting); to anyone else it does not exist."""
    expected = request.app.state.settings.metrics_token.get_secret_value().encode()
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    given = credentials.strip() if scheme.lower() == "bearer" else ""
    if not given or not hmac.compare_digest(given.encode(), expected):
        return problem_response(404, "not-found", "Not found", "No such resource")
    return await metrics_endpoint(request)
