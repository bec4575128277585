"""The NATS JetStream transport's consumer: a durable pull consumer with explicit acks.

A message is acked only after its event is handled (or found handled). A failure is nak'ed with a
delay; after ``max_deliver`` deliveries the message is copied to ``cv.dead.<type>`` — the dead
letters an operator lists and replays with ``python -m services.notify dead-letters`` — and
terminated, so one poisoned event cannot block the others.

Each message is handled under the request id and trace context its headers carry (``X-Request-ID``,
``traceparent``: what the relay kept with the outbox row), as a consumer span of that trace; the
mail, webhooks and pushes it queues keep them in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from common import tracing
from common.bus import Names, connect_nats, decode, ensure_stream
from common.logging import request_context
from services.notify.events.handler import handle

log = logging.getLogger("notify.nats")
DURABLE = "notify"


async def _consumer(js, names: Names, max_deliver: int, ack_wait: float, in_flight: int):
    """The one durable consumer every notify replica pulls from: each event goes to one replica.
    ``in_flight`` (``NOTIFY_EVENTS_IN_FLIGHT``) events at most are out unacknowledged across all of
    them; at 1, the default, events are handled one after another in the stream's order, whichever
    replica takes each (docs/operations.md, "Several replicas of one app"). Made, or updated to this
    configuration, at each start."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    config = ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, max_deliver=max_deliver,
                            ack_wait=ack_wait, deliver_policy=DeliverPolicy.ALL, max_ack_pending=in_flight,
                            filter_subject=f"{names.events}>")
    await js.add_consumer(names.stream, config)
    return await js.pull_subscribe_bind(durable=DURABLE, stream=names.stream)


def _carried(headers: dict) -> dict:
    """The request id and trace context of a message, kept when it is dead-lettered and replayed."""
    return {k: v for k, v in headers.items() if k in ("X-Request-ID", tracing.TRACEPARENT, "tracestate")}


async def _process(app: FastAPI, js, names: Names, msg, max_deliver: int) -> None:
    delivered = msg.metadata.num_delivered
    headers = msg.headers or {}
    try:
        state = app.state
        with request_context(headers.get("X-Request-ID")), tracing.span(
                f"process {msg.subject.removeprefix(names.events)}", kind="consumer", headers=headers, attributes={
                    "messaging.system": "nats", "messaging.destination.name": msg.subject,
                    "messaging.operation.type": "process", "messaging.message.delivery_count": delivered}):
            await handle(state.db, decode(msg.data), effects=state.effects, broadcaster=state.broadcaster)
    except Exception as exc:  # noqa: BLE001 - every failure is retried, then dead-lettered
        if delivered >= max_deliver:
            log.error("event on %s failed %d times, dead-lettered: %s", msg.subject, delivered, exc)
            await js.publish(names.dead + msg.subject.removeprefix(names.events), msg.data,
                             headers={**_carried(headers), "Cv-Error": str(exc)[:500],
                                      "Cv-Deliveries": str(delivered)})
            await msg.term()
        else:
            log.warning("event on %s failed (delivery %d), will retry: %s", msg.subject, delivered, exc)
            await msg.nak(delay=min(60, 2 ** delivered))
        return
    await msg.ack()


async def run(app: FastAPI, url: str, names: Names, max_deliver: int = 8, ack_wait: float = 30.0,
              in_flight: int = 1) -> None:
    from nats.errors import TimeoutError as NatsTimeout

    while True:
        nc = None
        try:
            nc = await connect_nats(url, "notify-consumer")
            js = nc.jetstream(timeout=5)
            await ensure_stream(js, names)
            sub = await _consumer(js, names, max_deliver, ack_wait, in_flight)
            app.state.nats_ready.set()
            while True:
                try:
                    msgs = await sub.fetch(batch=min(50, in_flight), timeout=1)
                except (NatsTimeout, TimeoutError):
                    continue
                for msg in msgs:
                    await _process(app, js, names, msg, max_deliver)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reconnect and go on
            log.warning("NATS consumer stopped (%s: %s); reconnecting", type(exc).__name__, exc)
            await asyncio.sleep(1)
        finally:
            if nc is not None and not nc.is_closed:
                with contextlib.suppress(Exception):
                    await nc.close()


async def dead_letters(url: str, names: Names, replay: bool = False) -> list[dict]:
    """List (and with ``replay``, re-publish and remove) the dead-lettered events."""
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await connect_nats(url, "notify-dead-letters")
    js = nc.jetstream(timeout=5)
    await ensure_stream(js, names)
    found = []
    sub = await js.pull_subscribe(f"{names.dead}>", stream=names.stream,
                                  config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    from nats.errors import TimeoutError as NatsTimeout

    while True:
        try:
            msgs = await sub.fetch(batch=100, timeout=1)
        except (NatsTimeout, TimeoutError):
            break
        for msg in msgs:
            envelope = decode(msg.data)
            found.append({"id": str(envelope.id), "type": envelope.type,
                          "error": (msg.headers or {}).get("Cv-Error"), "seq": msg.metadata.sequence.stream})
            if replay:
                await js.publish(names.events + envelope.type, msg.data,
                                 headers={**_carried(msg.headers or {}),
                                          "Nats-Msg-Id": f"{envelope.id}-replay-{msg.metadata.sequence.stream}"})
                await js.delete_msg(names.stream, msg.metadata.sequence.stream)
            await msg.ack()
    await nc.close()
    return found
