"""Notify's metrics: its queues at each scrape of ``/metrics`` (mail, webhook deliveries, pushes, by
state, from their ``(state, next_attempt_at)`` indexes, each up to 100,000), the NATS consumer's lag and
dead letters (asked of JetStream), the open live streams of this replica; and the failed tries, counted
as they happen (``notify_mail_failures_total``, ``notify_webhook_failures_total``)."""

from __future__ import annotations

import math

from fastapi import FastAPI
from prometheus_client import Counter, Gauge
from sqlalchemy import select

from common.bus import connect_nats
from common.observability import capped_count
from services.notify.mail.models import MailJob, MailState
from services.notify.push.models import PushDelivery, PushState
from services.notify.webhooks.models import DeliveryState, WebhookDelivery

MAIL_QUEUE = Gauge("notify_mail_queue", "Mail waiting to be sent (pending) or given up (dead)", ["state"])
WEBHOOK_QUEUE = Gauge("notify_webhook_queue", "Webhook deliveries waiting for a first try (pending), a retry "
                      "(failed), or given up (dead; kept until purged)", ["state"])
PUSH_QUEUE = Gauge("notify_push_queue", "Web pushes waiting to be sent (pending) or given up (dead)", ["state"])
MAIL_FAILURES = Counter("notify_mail_failures", "Mail tries that failed: retried later, or dead", ["outcome"])
WEBHOOK_FAILURES = Counter("notify_webhook_failures", "Webhook tries that failed: retried later, or dead",
                           ["outcome"])
NATS_PENDING = Gauge("notify_nats_consumer_pending", "Events on the stream the notify consumer has not been "
                     "delivered yet (NaN: JetStream not reachable from notify)")
NATS_ACK_PENDING = Gauge("notify_nats_consumer_ack_pending", "Events delivered to notify and not acknowledged yet")
NATS_DEAD = Gauge("notify_nats_dead_letters", "Events on the dead-letter subjects, for an operator to replay")
LIVE_STREAMS = Gauge("notify_live_streams", "Notification streams (server-sent events) open on this replica")


async def _by_state(session, model, states) -> dict[str, int]:
    return {state: await session.scalar(capped_count(select(model.id).where(model.state == state))) or 0
            for state in states}


async def queue_metrics(app: FastAPI) -> None:
    async with app.state.db.sessionmaker() as session:
        for gauge, model, states in (
                (MAIL_QUEUE, MailJob, (MailState.pending, MailState.dead)),
                (WEBHOOK_QUEUE, WebhookDelivery, (DeliveryState.pending, DeliveryState.failed, DeliveryState.dead)),
                (PUSH_QUEUE, PushDelivery, (PushState.pending, PushState.dead))):
            for state, count in (await _by_state(session, model, states)).items():
                gauge.labels(state.value).set(count)
    LIVE_STREAMS.set(app.state.broadcaster.open_streams())


async def nats_metrics(app: FastAPI) -> None:
    """Asked of JetStream on a connection of its own, so that a consumer that stopped still shows its lag."""
    settings = app.state.settings
    if not settings.uses_nats:
        return
    from services.notify.events.nats_consumer import DURABLE

    names = settings.event_names()
    try:
        if getattr(app.state, "nats_metrics", None) is None or app.state.nats_metrics.is_closed:
            app.state.nats_metrics = await connect_nats(settings.event_bus_url, "notify-metrics")
        js = app.state.nats_metrics.jetstream(timeout=1)
        info = await js.consumer_info(names.stream, DURABLE)
        stream = await js.stream_info(names.stream, subjects_filter=f"{names.dead}>")
    except BaseException:
        for gauge in (NATS_PENDING, NATS_ACK_PENDING, NATS_DEAD):
            gauge.set(math.nan)  # no figure rather than an old one
        raise
    NATS_PENDING.set(info.num_pending or 0)
    NATS_ACK_PENDING.set(info.num_ack_pending or 0)
    NATS_DEAD.set(sum((stream.state.subjects or {}).values()))


async def stop(app: FastAPI) -> None:
    if (nc := getattr(app.state, "nats_metrics", None)) is not None and not nc.is_closed:
        await nc.close()
