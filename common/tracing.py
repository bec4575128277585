"""Tracing: one trace per order, across the four apps, the outbox, NATS and notify's sends.

Off unless an OTLP endpoint is configured by the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``
keep it off). Off, OpenTelemetry is never imported and every helper here is a no-op. On, spans go
over OTLP/HTTP (protobuf) through the SDK's batch processor; the SDK reads the rest of the standard
variables itself (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and
``_ARG``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``). Decision 0026.

The spans are made at the few points every hop goes through, not by per-library instrumentation:

- ``common.observability.RequestContextMiddleware``: a server span per request (its parent taken from
  the caller's ``traceparent``), named by method and route template;
- ``common.transport.UpstreamTransport``: a client span per call to one of our services, its
  ``traceparent`` sent along (the gateway's proxy, orders → catalog, the relay → notify);
- the outbox: each row keeps the ``traceparent`` of the span that wrote it (``common.outbox``), the
  relay publishes it under a producer span, NATS carries it in the message's headers, notify's
  consumer processes it under a consumer span; the mail, webhook and push queues keep it in turn, and
  each send is a client span of that trace.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

TRACEPARENT = "traceparent"
NO_SPAN = contextlib.nullcontext(None)

_on = False
_tracer: Any = None
_provider: Any = None
_trace: Any = None  # opentelemetry.trace, once imported
_propagator: Any = None
_kinds: dict[str, Any] = {}


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard variables ask for traces to be exported."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def enabled() -> bool:
    return _on


def configure_tracing(service: str, env: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on for this process when :func:`wanted`; the first app of a process names it
    (``OTEL_SERVICE_NAME`` wins). True when tracing is on."""
    global _on, _tracer, _provider, _trace, _propagator
    if _on or not wanted(env):
        return _on
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    name = env.get("OTEL_SERVICE_NAME") or service
    _provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))  # the sampler: OTEL_TRACES_SAMPLER
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    _trace, _propagator = trace, TraceContextTextMapPropagator()
    _tracer = _provider.get_tracer("cho-vuon")
    _kinds.update(server=trace.SpanKind.SERVER, client=trace.SpanKind.CLIENT, producer=trace.SpanKind.PRODUCER,
                  consumer=trace.SpanKind.CONSUMER, internal=trace.SpanKind.INTERNAL)
    _on = True
    return True


def flush(timeout_ms: int = 5_000) -> None:
    """Export what is waiting (an app stopping); the process' exit shuts the provider down."""
    if _on:
        _provider.force_flush(timeout_ms)


def _parent(traceparent: str | None, headers: Mapping[str, str] | None = None):
    if headers is not None:
        return _propagator.extract(headers)
    if traceparent:
        return _propagator.extract({TRACEPARENT: traceparent})
    return None


def span(name: str, *, kind: str = "internal", parent: str | None = None, headers: Mapping[str, str] | None = None,
         attributes: dict | None = None, root: bool = True):
    """A context manager: a span, current while it lasts, child of ``parent`` (a ``traceparent`` kept
    with a row) or of the context in ``headers`` when given, else of the current span. ``root=False``:
    no span at all unless one is current already (background rounds start no trace of their own).
    Off, a no-op that yields None."""
    if not _on:
        return NO_SPAN
    context = _parent(parent, headers)
    if context is None and not root and not _trace.get_current_span().get_span_context().is_valid:
        return NO_SPAN
    return _tracer.start_as_current_span(name, context=context, kind=_kinds[kind], attributes=attributes)


@contextlib.contextmanager
def server_span(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Iterator[Any]:
    """The span of one HTTP request a service handles; its parent is the caller's ``traceparent``."""
    carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers
               if name in (b"traceparent", b"tracestate")}
    with span(method, kind="server", headers=carrier,
              attributes={"http.request.method": method, "url.path": path}) as current:
        yield current


def end_request(current: Any, method: str, route: str, status: int) -> None:
    """Name the request's span by its route template and note its status (5xx: an error)."""
    current.update_name(f"{method} {route}")
    current.set_attribute("http.route", route)
    current.set_attribute("http.response.status_code", status)
    if status >= 500:
        current.set_status(_trace.Status(_trace.StatusCode.ERROR))


def outcome(current: Any, status: int | None = None, error: str | None = None) -> None:
    """Note a send's answer on its span (None: tracing off); an error marks the span failed."""
    if current is None:
        return
    if status is not None:
        current.set_attribute("http.response.status_code", status)
    if error:
        current.set_status(_trace.Status(_trace.StatusCode.ERROR, error[:200]))


def inject(headers: dict[str, str] | None = None) -> dict[str, str]:
    """``headers`` with the current span's ``traceparent`` (and ``tracestate``) added."""
    headers = {} if headers is None else headers
    if _on:
        _propagator.inject(headers)
    return headers


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span, to keep with a row written now (an outbox event, a
    queued mail): whoever handles the row later continues this trace."""
    if not _on:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def current_trace_id() -> str | None:
    """The current trace's id (32 hex digits), for log lines; None when off or outside a span."""
    if not _on:
        return None
    context = _trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
