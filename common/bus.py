"""The event bus, two ways, chosen by ``EVENT_BUS_URL``:

- empty (the embedded default): HTTP push — the relay POSTs each event to notify's
  ``/internal/events`` and counts a 2xx as the acknowledgement;
- ``nats://…``: NATS JetStream — events go to the ``CV_EVENTS`` stream on ``cv.events.<type>`` with
  ``Nats-Msg-Id`` = the event id, so the server drops a re-sent duplicate; the publish returns once
  the stream has stored the event.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx
import orjson

from common.events import Envelope
from common.transport import ServiceClient

log = logging.getLogger("bus")

DUPLICATE_WINDOW_SECONDS = 3600


class Names:
    """Stream and subjects of one deployment (``EVENT_NAMESPACE``, ``cv`` by default; tests use their own)."""

    def __init__(self, namespace: str = "cv") -> None:
        self.stream = f"{namespace.upper()}_EVENTS"
        self.events = f"{namespace}.events."
        self.dead = f"{namespace}.dead."


class PublishError(Exception):
    pass


class Publisher(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...
    async def aclose(self) -> None: ...


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
            resp = await self.client.post("/internal/events", encode(envelope))
        except httpx.HTTPError as exc:
            raise PublishError(f"notify unreachable: {exc}") from None
        if resp.status_code >= 300:
            raise PublishError(f"notify answered {resp.status_code}: {resp.text[:200]}")

    async def aclose(self) -> None:
        await self.client.aclose()


async def ensure_stream(js, names: Names) -> None:
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    config = StreamConfig(name=names.stream, subjects=[f"{names.events}>", f"{names.dead}>"],
                          duplicate_window=DUPLICATE_WINDOW_SECONDS)
    try:
        await js.stream_info(names.stream)
    except NotFoundError:
        await js.add_stream(config)


async def connect_nats(url: str, name: str):
    import nats

    async def on_error(exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    return await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=1,
                              error_cb=on_error, connect_timeout=3)


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
        try:
            await self._connect()
            await self.js.publish(self.names.events + envelope.type, encode(envelope),
                                  headers={"Nats-Msg-Id": str(envelope.id)})
        except Exception as exc:  # noqa: BLE001 - any failure is "not acknowledged": retry later
            raise PublishError(f"JetStream did not acknowledge: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.drain()


def make_publisher(event_bus_url: str, notify_url: str, service_token: str, name: str,
                   namespace: str = "cv") -> Publisher:
    if event_bus_url.startswith("nats://") or event_bus_url.startswith("tls://"):
        return NatsPublisher(event_bus_url, name, Names(namespace))
    return HttpPublisher(notify_url, service_token)
