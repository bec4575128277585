"""One trace per order (common/tracing.py, decision 0026) and log lines that join up (common/logging.py).

The four apps run as real processes with tracing on (``OTEL_EXPORTER_OTLP_ENDPOINT``), events on a
private NATS JetStream; an OTLP/HTTP receiver here decodes what they export (``ExportTraceServiceRequest``,
protobuf). One order placed through the gateway must come back as one trace: the gateway's request,
orders, the catalog's reservation, the relay's publish, notify's consumption of the NATS message and
the webhook delivery it queued. Their JSON log lines carry that request's id and that trace's id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.apps import PRIVATE_KEY, PUBLIC_KEY
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.events.stack import GROWER, ORDER
from tests.support.databases import require, sqlite_urls
from tests.support.nats_server import PrivateNats, unavailable
from tests.support.processes import AppProcess
from tests.support.servers import ROOT, free_port

APPS = {"notify": "services.notify", "catalog": "services.catalog", "orders": "services.orders",
        "gateway": "gateway"}
PREFIX = {"gateway": "GATEWAY_", "catalog": "CATALOG_", "orders": "ORDERS_", "notify": "NOTIFY_"}
UPSTREAMS = {"gateway": ("catalog", "orders", "notify"), "orders": ("catalog", "notify"), "catalog": ("notify",),
             "notify": ()}
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


class Collected:
    """What the receivers were sent: spans as dicts, webhook bodies."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.hooks: list[dict] = []
        self.lock = threading.Lock()

    def trace(self, trace_id: str) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]


def _decode(body: bytes) -> list[dict]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource in request.resource_spans:
        service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
        for scope in resource.scope_spans:
            for span in scope.spans:
                spans.append({"service": service, "name": span.name, "kind": KINDS[span.kind],
                              "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                              "parent_id": span.parent_span_id.hex() or None,
                              "attributes": {a.key: a.value.string_value or a.value.int_value
                                             for a in span.attributes}})
    return spans


@contextmanager
def receivers(collected: Collected) -> Iterator[tuple[str, str]]:
    """An OTLP/HTTP trace receiver (POST /v1/traces, protobuf) and a webhook receiver (POST /hook)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path == "/v1/traces":
                assert self.headers["content-type"] == "application/x-protobuf"
                with collected.lock:
                    collected.spans += _decode(body)
                reply, kind = ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"
            else:
                with collected.lock:
                    collected.hooks.append({"headers": dict(self.headers), "body": json.loads(body)})
                reply, kind = b"{}", "application/json"
            self.send_response(200)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        yield url, url + "/hook"
    finally:
        server.shutdown()
        server.server_close()


def wait_for(what: str, done: Callable[[], object], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := done():
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def json_lines(proc: AppProcess) -> list[dict]:
    lines = []
    for line in proc.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


@pytest.mark.slow
def test_one_order_is_one_trace_across_the_four_apps_nats_and_the_webhook(tmp_path: Path) -> None:
    why = unavailable()
    require(why is None, why or "")
    collected = Collected()
    urls = sqlite_urls(tmp_path)
    ports = {app: free_port() for app in APPS}
    with PrivateNats(tmp_path) as bus, receivers(collected) as (otlp, hook_url):
        procs = {}
        for app, module in APPS.items():
            env = {"ENVIRONMENT": "development", "SERVICE_TOKEN": "service-" + "t" * 40,
                   "JWT_PUBLIC_KEY": PUBLIC_KEY, f"{PREFIX[app]}DATABASE_URL": urls[app],
                   "EVENT_BUS_URL": bus.url, "EVENT_NAMESPACE": "cvtrace", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_BSP_SCHEDULE_DELAY": "100"}
            env |= {f"{PREFIX[app]}{other.upper()}_URL": f"http://127.0.0.1:{ports[other]}" for other in UPSTREAMS[app]}
            if app == "gateway":
                env["GATEWAY_JWT_PRIVATE_KEY"] = PRIVATE_KEY
            if app == "notify":
                env["NOTIFY_WEBHOOKS_ALLOW_LOOPBACK"] = "true"
            if app in ("catalog", "orders"):
                env[f"{PREFIX[app]}RELAY_POLL_INTERVAL"] = "0.5"
            folder = tmp_path / app
            folder.mkdir()
            procs[app] = AppProcess(module, env, folder, ports[app])
        try:
            for app in APPS:
                procs[app].start()
            gw = httpx.Client(base_url=procs["gateway"].url, timeout=20)
            assert gw.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=GROWER).status_code == 201
            product = gw.post("/api/v1/products", headers=GROWER, json=PRODUCT).json()
            hook = gw.post("/api/v1/webhooks", json={"url": hook_url, "event_types": ["order.placed"]}, headers=GROWER)
            assert hook.status_code == 201, hook.text
            request_id = "order-" + uuid.uuid4().hex
            lines = [{"variant_id": product["variants"][0]["id"], "quantity": 2}]
            placed = gw.post("/api/v1/orders", json={**ORDER, "lines": lines},
                             headers={"Idempotency-Key": uuid.uuid4().hex, "X-Request-ID": request_id})
            assert placed.status_code == 201, placed.text
            assert placed.headers["x-request-id"] == request_id
            code = placed.json()["code"]
            wait_for("the webhook delivered", lambda: [h for h in collected.hooks if h["body"]["data"]["code"] == code])

            def the_order_span() -> dict | None:
                with collected.lock:
                    return next((s for s in collected.spans if s["service"] == "gateway" and s["kind"] == "server"
                                 and s["attributes"].get("url.path") == "/api/v1/orders"), None)

            root = wait_for("the gateway's span of the order", the_order_span)
            trace_id = root["trace_id"]

            def whole_trace() -> list[dict] | None:
                spans = collected.trace(trace_id)
                names = {(s["service"], s["kind"], s["name"]) for s in spans}
                wanted = {("orders", "producer", "publish order.placed"),
                          ("notify", "consumer", "process order.placed"), ("notify", "client", "webhook order.placed")}
                return spans if wanted <= names and {s["service"] for s in spans} == set(APPS) else None

            spans = wait_for("the order's trace through the relay, NATS and the webhook", whole_trace)
            by_id = {s["span_id"]: s for s in spans}
            # One tree: the gateway's request is its root, every other span's parent is in the trace.
            assert root["parent_id"] is None
            assert [s for s in spans if s["parent_id"] is None] == [root]
            assert all(s["parent_id"] in by_id for s in spans if s is not root), spans
            assert root["name"].startswith("POST ")
            servers = {(s["service"], s["name"]) for s in spans if s["kind"] == "server"}
            assert ("orders", "POST /api/v1/orders") in servers, servers
            assert ("catalog", "POST /internal/reservations") in servers, servers

            def parent(span: dict) -> dict:
                return by_id[span["parent_id"]]

            consume = next(s for s in spans if s["name"] == "process order.placed")
            webhook = next(s for s in spans if s["name"] == "webhook order.placed")
            assert parent(consume)["name"] == "publish order.placed"  # through NATS' headers
            assert parent(webhook) is consume  # through the delivery's row
            assert parent(parent(consume))["service"] == "orders"  # through the outbox row
            # The webhook's receiver is not one of ours: no traceparent goes out to it.
            assert not any("traceparent" in {k.lower() for k in h["headers"]} for h in collected.hooks)

            # Logs that join up: notify's lines about this order's event carry the request's id and its trace.
            def notify_lines() -> list[dict]:
                return [e for e in json_lines(procs["notify"]) if e.get("request_id") == request_id]

            logged = wait_for("notify's log lines for the order", notify_lines)
            assert any(e["logger"] == "notify.webhooks" and "delivered" in e["msg"] for e in logged), logged
            assert {e["trace_id"] for e in logged} == {trace_id}, logged
            for app in ("gateway", "orders", "catalog"):
                mine = [e for e in json_lines(procs[app]) if e.get("request_id") == request_id]
                assert mine and {e["trace_id"] for e in mine} == {trace_id}, (app, mine)
            # Every JSON line has both keys (null outside a request or a trace).
            assert all("request_id" in e and "trace_id" in e for app in APPS for e in json_lines(procs[app]))
        finally:
            for proc in procs.values():
                proc.stop()


def test_tracing_is_off_by_default_and_the_sdk_is_not_imported() -> None:
    """Without an OTLP endpoint the four apps are built and serve a request with no OpenTelemetry SDK
    loaded (FastAPI loads the small API package when it is installed; its own telemetry stays off)."""
    code = """
import sys, asyncio, httpx
from tests.support.databases import sqlite_urls
from tests.apps import make_app
import tempfile, pathlib
folder = pathlib.Path(tempfile.mkdtemp())
apps = [make_app(name, sqlite_urls(folder)) for name in ("gateway", "catalog", "orders", "notify")]
async def main():
    app = apps[1]
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.get("/api/v1/products")).status_code == 200
asyncio.run(main())
from common import tracing
assert not tracing.enabled()
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter")))
assert not loaded, loaded
print("ok")
"""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr


def test_the_standard_variables_decide() -> None:
    from common.tracing import wanted

    assert not wanted({})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"})
    assert not wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"})
