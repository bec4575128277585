"""The webhook sender: a background task that posts due deliveries, signed, and retries them.

- Woken after every commit that queued deliveries (``Database.after_commit``) and by the API
  (redeliver, test); otherwise it sleeps until the next retry is due (at most :data:`MAX_SLEEP`).
- A delivery is claimed before it is sent (``next_attempt_at`` pushed a lease ahead, only if it was
  still due), so two senders (several workers or replicas) never send it at once, and one that died
  mid-send is retried after the lease. The receiver may then see a try twice: same ``webhook-id``.
- Each try: the endpoint's URL goes through the SSRF guard again (resolved now, and the request goes
  to the address just checked), the body is signed with a fresh ``webhook-timestamp``, and it is
  posted with one pooled client (explicit timeouts, redirects never followed, ``Connection: close``
  so that no TLS connection made for one host is reused for another host at the same address).
- ``2xx``: succeeded. ``410 Gone``: the endpoint is disabled and its owner told. Anything else
  (3xx, 4xx, 5xx, timeout, refused address): the next try follows ``NOTIFY_WEBHOOKS_RETRY_SCHEDULE``
  (each delay ±20 % jitter; a longer ``Retry-After`` is honoured); after its last entry the delivery
  is dead. An endpoint that has failed, with no success, for ``NOTIFY_WEBHOOKS_DISABLE_AFTER`` is
  disabled and its owner told.
- Finished deliveries past ``service.RETENTION`` are purged every hour, by a worker of their own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from functools import partial

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import select, update

from common.crypto import FieldCipher
from common.db import Database
from common.outbox import continued
from common.tracing import outcome
from common.worker import Worker, due_in
from services.notify.inbox.broadcast import Broadcaster
from services.notify.metrics import WEBHOOK_FAILURES
from services.notify.settings import NotifySettings
from services.notify.webhooks import service, signing, ssrf
from services.notify.webhooks.models import (
    OUTSTANDING,
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)

log = logging.getLogger("notify.webhooks")

MAX_SLEEP = 30.0  # seconds between looks when nothing is due (another replica may have queued work)
BATCH = 50
CONCURRENCY = 10  # tries in flight at once (a slow receiver does not hold up the others)
JITTER = 0.2
RETRY_AFTER_CAP = 86_400
PRUNE_EVERY = 3600.0  # seconds between purges of finished deliveries past their retention
USER_AGENT = "ChoVuon-Webhooks/1.0 (+https://www.standardwebhooks.com)"


def next_delay(schedule: list[float], tries: int) -> float | None:
    """Seconds until the try after ``tries`` failed ones (jittered), or None when none is left."""
    if tries >= len(schedule):
        return None
    return schedule[tries] * random.uniform(1 - JITTER, 1 + JITTER)


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value.strip()), RETRY_AFTER_CAP)
    return None


class WebhookSender(Worker):
    """A worker whose round tries every delivery that is due; between rounds it sleeps until the next
    retry is due, at most :data:`MAX_SLEEP`."""

    def __init__(self, db: Database, *, settings: NotifySettings, broadcaster: Broadcaster) -> None:
        super().__init__("webhook-sender", self.run_once, interval=MAX_SLEEP, next_due=self._until_next_due)
        self.broadcaster = broadcaster
        self.db = db
        self.settings = settings
        self.cipher = FieldCipher(self.settings.data_key.get_secret_value())
        timeout = self.settings.webhooks_timeout
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)), follow_redirects=False, trust_env=False,
            limits=httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT})
        self._slots = asyncio.Semaphore(CONCURRENCY)

    @property
    def lease(self) -> dt.timedelta:
        """Longer than one try can take (DNS, connect, the answer)."""
        return dt.timedelta(seconds=self.settings.webhooks_timeout + ssrf.RESOLVE_TIMEOUT + 30)

    async def stop(self) -> None:
        await super().stop()
        await self.client.aclose()

    async def _until_next_due(self) -> float:
        return await due_in(self.db, WebhookDelivery.next_attempt_at, WebhookDelivery.state.in_(OUTSTANDING),
                            cap=MAX_SLEEP, floor=0.02)

    async def run_once(self) -> bool:
        """Try every delivery that is due. True when a full batch was taken (there may be more)."""
        now = utcnow()
        async with self.db.sessionmaker() as session:
            due = (await session.execute(
                select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.state.in_(OUTSTANDING), WebhookDelivery.next_attempt_at <= now,
                       WebhookEndpoint.active.is_(True))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(BATCH))).all()
        claimed = [delivery_id for delivery_id, _ in due if await self._claim(delivery_id, now)]
        await asyncio.gather(*(self._try(delivery_id) for delivery_id in claimed))
        return len(due) == BATCH

    async def _claim(self, delivery_id: int, now: dt.datetime) -> bool:
        async with self.db.sessionmaker() as session:
            result = await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                              WebhookDelivery.state.in_(OUTSTANDING),
                                              WebhookDelivery.next_attempt_at <= now)
                .values(next_attempt_at=utcnow() + self.lease))
            await session.commit()
        return result.rowcount == 1

    async def _try(self, delivery_id: int) -> None:
        async with self._slots:
            try:
                await self._attempt(delivery_id)
            except Exception:  # noqa: BLE001 - one broken delivery must not stop the round; its lease expires
                log.exception("webhook delivery %s: the try could not be completed", delivery_id)

    async def _attempt(self, delivery_id: int) -> None:
        async with self.db.sessionmaker() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
        if delivery is None or endpoint is None or not endpoint.active:
            return
        with continued(delivery, f"webhook {delivery.event_type}", **{"cv.webhook.endpoint_id": endpoint.id}) as span:
            body = orjson.dumps(delivery.payload)
            headers = {"Content-Type": "application/json", "Connection": "close",
                       **signing.headers(service.signing_secrets(endpoint, self.cipher, utcnow()),
                                         delivery.message_id, body)}
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            retry_after: float | None = None
            try:
                destination = await ssrf.check_with(self.settings, endpoint.url)
                url, host, extensions = destination.pinned()
                # The client's timeouts bound each step; this bounds the whole (a receiver trickling bytes).
                async with asyncio.timeout(self.settings.webhooks_timeout + 5), \
                        self.client.stream("POST", url, content=body, headers={**headers, **host},
                                           extensions=extensions) as response:
                    status = response.status_code  # the body is not read: nothing in it changes the outcome
                    retry_after = _retry_after(response.headers.get("retry-after"))
                    if 300 <= status < 400:
                        error = f"redirect to {response.headers.get('location', '?')[:200]} not followed; " \
                                "register the final URL"
                    elif not 200 <= status < 300:
                        error = f"HTTP {status}"
            except ssrf.SEND_FAILURES as exc:
                error = ssrf.send_failure(exc, self.settings.webhooks_timeout)
            outcome(span, status, error)
            await self._record(delivery, endpoint, status, error, int((time.monotonic() - started) * 1000),
                               retry_after)

    async def _record(self, delivery: WebhookDelivery, endpoint: WebhookEndpoint, status: int | None,
                      error: str | None, duration_ms: int, retry_after: float | None) -> None:
        now = utcnow()
        touched: set[str] = set()
        async with self.db.writer() as session:
            endpoint = await session.get(WebhookEndpoint, endpoint.id)
            if endpoint is None:  # deleted, with its deliveries, while the try was under way
                return
            session.add(WebhookAttempt(delivery_id=delivery.id, attempted_at=now, status_code=status,
                                       error=error[:500] if error else None, duration_ms=duration_ms))
            tries = delivery.attempts + 1
            values: dict = {"attempts": tries, "last_status": status, "last_error": error[:500] if error else None}
            disable_for: str | None = None
            if error is None:
                values.update(state=DeliveryState.succeeded, delivered_at=now, next_attempt_at=None)
                endpoint.failing_since = None
                log.info("webhook %s (%s) delivered to endpoint %s: %s", delivery.message_id, delivery.event_type,
                         endpoint.id, status)
            elif status == 410:
                values.update(state=DeliveryState.dead, next_attempt_at=None)
                disable_for = "410 Gone"
                WEBHOOK_FAILURES.labels("dead").inc()
            else:
                delay = next_delay(self.settings.webhooks_retry_schedule, tries)
                if delay is None:
                    values.update(state=DeliveryState.dead, next_attempt_at=None)
                else:
                    delay = max(delay, retry_after or 0)
                    values.update(state=DeliveryState.failed, next_attempt_at=now + dt.timedelta(seconds=delay))
                WEBHOOK_FAILURES.labels("retry" if delay is not None else "dead").inc()
                log.warning("webhook %s (%s) to endpoint %s, try %d failed%s: %s", delivery.message_id,
                            delivery.event_type, endpoint.id, tries, "" if delay is not None else " (dead)", error)
                endpoint.failing_since = endpoint.failing_since or now
                if (now - endpoint.failing_since).total_seconds() >= self.settings.webhooks_disable_after:
                    disable_for = f"failing since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC ({error})"
            # Only this round's claim is settled: a redelivery asked for meanwhile is not overwritten.
            await session.execute(update(WebhookDelivery).where(
                WebhookDelivery.id == delivery.id, WebhookDelivery.attempts == delivery.attempts,
                WebhookDelivery.state.in_(OUTSTANDING)).values(**values))
            if disable_for and endpoint.active:
                touched |= await service.disable(session, endpoint, disable_for, tell_owner=True)
                log.warning("endpoint %s disabled: %s", endpoint.id, disable_for)
            await session.commit()
        if touched:
            self.broadcaster.publish(touched)


async def prune(db: Database) -> None:
    async with db.unit_of_work(writer=True) as session:
        if pruned := await service.prune(session, utcnow()):
            log.info("pruned %d finished webhook deliveries older than %s", pruned, service.RETENTION)


async def start(app: FastAPI) -> None:
    """Wire webhooks into the app: the queueing effect on every event, the sender woken after each, the
    purge of finished deliveries every hour."""
    settings: NotifySettings = app.state.settings
    sender = WebhookSender(app.state.db, settings=settings, broadcaster=app.state.broadcaster)
    app.state.webhook_cipher = sender.cipher
    app.state.webhook_sender = sender
    app.state.webhook_prune = Worker("webhook prune", partial(prune, app.state.db), interval=PRUNE_EVERY)
    first_delay = settings.webhooks_retry_schedule[0]

    async def queue_deliveries(session, event) -> set[str]:
        return await service.queue_deliveries(session, event, first_delay)

    app.state.effects.append(queue_deliveries)
    app.state.db.after_commit(sender.wake, if_added=WebhookDelivery)
    await sender.start()
    await app.state.webhook_prune.start()


async def stop(app: FastAPI) -> None:
    for worker in ("webhook_prune", "webhook_sender"):
        if (running := getattr(app.state, worker, None)) is not None:
            await running.stop()
