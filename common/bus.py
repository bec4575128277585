"""The event bus, two ways, chosen by ``EVENT_BUS_URL``:

- empty (the embedded default): HTTP push — the relay POSTs each round of events to notify's
  ``/internal/events/batch`` (one transaction there) and counts a 2xx as the acknowledgement of all;
- ``nats://…``: NATS JetStream — events go to the ``CV_EVENTS`` stream on ``cv.events.<type>`` with
  ``Nats-Msg-Id`` = the event id, so the server drops a re-sent duplicate; the publish returns once
  the stream has stored the event.

Either way the event's message carries the request id and trace context of the work that wrote it
(``X-Request-ID``, ``traceparent``: :func:`carried_headers`), as headers, not in the envelope.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Protocol

import httpx
import orjson

from common import tracing
from common.events import Envelope
from common.logging import request_id_var
from common.transport import ServiceClient

log = logging.getLogger("bus")

DUPLICATE_WINDOW_SECONDS = 3600


@dataclass(frozen=True)
class StreamLimits:
    """What the stream keeps (``EVENT_STREAM_MAX_AGE`` seconds, ``EVENT_STREAM_MAX_BYTES``) and on how
    many servers of a NATS cluster (``EVENT_STREAM_REPLICAS``)."""

    max_age: float = 14 * 86_400.0
    max_bytes: int = 1 << 30
    replicas: int = 1


class Names:
    """Stream and subjects of one deployment (``EVENT_NAMESPACE``, ``cv`` by default; tests use their
    own), and the stream's limits."""

    def __init__(self, namespace: str = "cv", limits: StreamLimits | None = None) -> None:
        self.stream = f"{namespace.upper()}_EVENTS"
        self.events = f"{namespace}.events."
        self.dead = f"{namespace}.dead."
        self.limits = limits or StreamLimits()


class PublishError(Exception):
    pass


class Publisher(Protocol):
    async def publish(self, envelope: Envelope) -> None:
        """One event, under the current request id and trace context."""

    async def publish_many(self, carried: list[tuple[Envelope, dict[str, str]]]) -> None:
        """Events in this order, each with the headers it carries (:func:`carried_headers` where it
        was taken up); returns once every one is acknowledged, raises ``PublishError`` otherwise
        (some may have gone out: the relay publishes again, and consumers drop what they have seen)."""

    async def aclose(self) -> None: ...


def carried_headers() -> dict[str, str]:
    """The request id and trace context (the publisher's span) an event's message carries."""
    headers = {"X-Request-ID": request_id_var.get()} if request_id_var.get() else {}
    return tracing.inject(headers)


def encode(envelope: Envelope) -> bytes:
    return orjson.dumps(envelope.model_dump(mode="json"))


def decode(raw: bytes) -> Envelope:
    return Envelope.model_validate_json(raw)


class HttpPublisher:
    """Pushes events to notify over HTTP; an event counts as delivered on a 2xx."""

    def __init__(self, notify_url: str, service_token: str, timeout: float = 5.0) -> None:
        self.client = ServiceClient(notify_url, timeout=httpx.Timeout(timeout, connect=2.0),
                                    headers={"X-Service-Token": service_token}, max_connections=4,
                                    idempotent=True)  # notify handles an event once, by its id

    async def publish(self, envelope: Envelope) -> None:
        try:
            resp = await self.client.post("/internal/events", encode(envelope), carried_headers())
        except httpx.HTTPError as exc:
            raise PublishError(f"notify unreachable: {exc}") from None
        _acknowledged(resp)

    async def publish_many(self, carried: list[tuple[Envelope, dict[str, str]]]) -> None:
        """One request, one transaction at notify, for the whole round."""
        body = orjson.dumps({"events": [
            {"envelope": envelope.model_dump(mode="json"), "request_id": headers.get("X-Request-ID"),
             "traceparent": headers.get(tracing.TRACEPARENT)} for envelope, headers in carried]})
        try:
            resp = await self.client.post("/internal/events/batch", body)
        except httpx.HTTPError as exc:
            raise PublishError(f"notify unreachable: {exc}") from None
        _acknowledged(resp)

    async def aclose(self) -> None:
        await self.client.aclose()


def _acknowledged(resp: httpx.Response) -> None:
    if resp.status_code >= 300:
        raise PublishError(f"notify answered {resp.status_code}: {resp.text[:200]}")


async def ensure_stream(js, names: Names) -> None:
    """The stream, made with the configured limits, or brought to them when they changed (an update
    keeps the stored events; lowering a limit drops the oldest beyond it)."""
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    limits = names.limits
    config = StreamConfig(name=names.stream, subjects=[f"{names.events}>", f"{names.dead}>"],
                          duplicate_window=DUPLICATE_WINDOW_SECONDS, max_age=limits.max_age,
                          max_bytes=limits.max_bytes, num_replicas=limits.replicas)
    try:
        info = await js.stream_info(names.stream)
    except NotFoundError:
        await js.add_stream(config)
        return
    now = info.config
    if (now.max_age, now.max_bytes, now.num_replicas) != (limits.max_age, limits.max_bytes, limits.replicas):
        log.info("stream %s: limits now max_age=%ss max_bytes=%s replicas=%s", names.stream, limits.max_age,
                 limits.max_bytes, limits.replicas)
        await js.update_stream(config)


def nats_servers(url: str) -> list[str]:
    """``EVENT_BUS_URL`` as the client takes it: one server, or several of a cluster (comma-separated)."""
    return [part.strip() for part in url.split(",") if part.strip()]


def import_nats(url: str):
    """nats-py, without the aiohttp it imports for its WebSocket transport (≈ 5 MB in each process) when
    the URL is ``nats://`` (TCP): aiohttp is hidden while nats imports, then importable again (notify's
    push sender imports it through pywebpush). A ``ws://`` or ``wss://`` URL keeps the transport."""
    if "nats" in sys.modules or "aiohttp" in sys.modules or "ws://" in url or "wss://" in url:
        import nats
        return nats
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # `import aiohttp` raises ImportError
    try:
        import nats
    finally:
        del sys.modules["aiohttp"]
    return nats


async def connect_nats(url: str, name: str):
    nats = import_nats(url)

    async def on_error(exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    return await nats.connect(servers=nats_servers(url), name=name, max_reconnect_attempts=-1,
                              reconnect_time_wait=1, error_cb=on_error, connect_timeout=3)


class NatsPublisher:
    """Publishes to JetStream and waits for the stream's acknowledgement."""

    def __init__(self, url: str, name: str, names: Names) -> None:
        self.url, self.name, self.names = url, name, names
        self.nc = None
        self.js = None

    async def _connect(self) -> None:
        if self.nc is None or self.nc.is_closed:
            self.nc = await connect_nats(self.url, self.name)
            self.js = self.nc.jetstream(timeout=5)
            await ensure_stream(self.js, self.names)

    async def publish(self, envelope: Envelope) -> None:
        await self.publish_many([(envelope, carried_headers())])

    async def publish_many(self, carried: list[tuple[Envelope, dict[str, str]]]) -> None:
        """One after another, each acknowledged by the stream before the next (the stream's order)."""
        try:
            await self._connect()
            for envelope, headers in carried:
                await self.js.publish(self.names.events + envelope.type, encode(envelope),
                                      headers={"Nats-Msg-Id": str(envelope.id), **headers})
        except Exception as exc:  # noqa: BLE001 - any failure is "not acknowledged": retry later
            raise PublishError(f"JetStream did not acknowledge: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.drain()


def make_publisher(event_bus_url: str, notify_url: str, service_token: str, name: str,
                   names: Names | None = None) -> Publisher:
    if event_bus_url.startswith("nats://") or event_bus_url.startswith("tls://"):
        return NatsPublisher(event_bus_url, name, names or Names())
    return HttpPublisher(notify_url, service_token)
