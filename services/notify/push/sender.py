"""The push sender: a background worker (``common.worker``) that sends queued pushes to the devices'
push services, encrypted (RFC 8291, ``aes128gcm``) and signed (VAPID, RFC 8292), and retries them.

- Woken by every commit that queued a push; otherwise it sleeps until the next retry is due.
- A push is claimed first (``attempts`` moves on, ``next_attempt_at`` a lease ahead): two senders never
  send one push at once.
- Each try: the endpoint goes through the webhooks' SSRF guard again and the request goes to the
  address just checked (no redirects). ``2xx``: sent, the row is deleted. ``404``/``410``: the device
  unsubscribed, its subscription is removed. ``429``, ``5xx``, no answer: retried with
  ``common.worker.backoff`` (1 s, 2 s, 4 s … up to 10 minutes; a longer ``Retry-After`` is honoured)
  until ``NOTIFY_PUSH_MAX_ATTEMPTS``; any other answer (a refused VAPID signature, a payload too
  large) or the last try failing: dead, kept with its error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import httpx
import orjson
from fastapi import FastAPI
from py_vapid import Vapid
from sqlalchemy import select, update

from common.db import Database
from common.outbox import continued
from common.tracing import outcome
from common.worker import Worker, backoff, due_in
from services.notify.push import vapid as vapid_keys
from services.notify.push.models import PushDelivery, PushState, PushSubscription, utcnow
from services.notify.push.service import queue_push, remove
from services.notify.settings import NotifySettings
from services.notify.webhooks import ssrf

log = logging.getLogger("notify.push")

MAX_SLEEP = 30.0
BATCH = 50
RETRY_CAP = 600.0
TTL = 24 * 3600  # seconds a push service keeps a push for a device that is off
GONE = (404, 410)
RETRIED = (408, 425, 429)


class PushSender(Worker):
    def __init__(self, db: Database, *, settings: NotifySettings, key: Vapid) -> None:
        super().__init__("push-sender", self.run_once, interval=MAX_SLEEP, next_due=self._until_next_due)
        self.db = db
        self.settings = settings
        self.key = key
        timeout = self.settings.push_timeout
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
                                        follow_redirects=False, trust_env=False,
                                        limits=httpx.Limits(max_keepalive_connections=0))
        self.lease = dt.timedelta(seconds=timeout + ssrf.RESOLVE_TIMEOUT + 30)

    async def stop(self) -> None:
        await super().stop()
        await self.client.aclose()

    async def _until_next_due(self) -> float:
        return await due_in(self.db, PushDelivery.next_attempt_at, PushDelivery.state == PushState.pending,
                            cap=MAX_SLEEP, floor=0.05)

    async def run_once(self) -> bool:
        async with self.db.sessionmaker() as session:
            due = (await session.execute(
                select(PushDelivery.id, PushDelivery.attempts)
                .where(PushDelivery.state == PushState.pending, PushDelivery.next_attempt_at <= utcnow())
                .order_by(PushDelivery.next_attempt_at, PushDelivery.id).limit(BATCH))).all()
        claimed = [(i, n + 1) for i, n in due if await self._claim(i, n)]
        await asyncio.gather(*(self._try(i, n) for i, n in claimed))
        return len(due) == BATCH

    async def _claim(self, delivery_id: int, attempts: int) -> bool:
        async with self.db.sessionmaker() as session:
            result = await session.execute(
                update(PushDelivery).where(PushDelivery.id == delivery_id, PushDelivery.attempts == attempts,
                                           PushDelivery.state == PushState.pending)
                .values(attempts=attempts + 1, next_attempt_at=utcnow() + self.lease))
            await session.commit()
        return result.rowcount == 1

    def request_for(self, sub: PushSubscription, payload: dict) -> tuple[bytes, dict[str, str]]:
        """The encrypted body and the headers of one push (VAPID ``Authorization`` for the service's origin)."""
        # Here, not at the top: pywebpush imports requests and aiohttp (≈ 12 MB), used only for its encryption.
        from pywebpush import WebPusher

        body = WebPusher({"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}).encode(
            orjson.dumps(payload), "aes128gcm")["body"]
        url = httpx.URL(sub.endpoint)
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        headers = {**self.key.sign({"aud": origin, "sub": self.settings.vapid_subject}),
                   "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream",
                   "TTL": str(TTL), "Urgency": "high", "Topic": payload.get("tag", "")[:32].replace("-", "")}
        return body, headers

    async def _try(self, delivery_id: int, tries: int) -> None:
        try:
            await self._attempt(delivery_id, tries)
        except Exception:  # noqa: BLE001 - one broken push must not stop the round; its lease expires
            log.exception("push %s: the try could not be completed", delivery_id)

    async def _attempt(self, delivery_id: int, tries: int) -> None:
        async with self.db.sessionmaker() as session:
            delivery = await session.get(PushDelivery, delivery_id)
            sub = await session.get(PushSubscription, delivery.subscription_id) if delivery else None
        if delivery is None or sub is None:
            return
        with continued(delivery, "push", **{"cv.push.subscription_id": sub.id}) as span:
            status: int | None = None
            error: str | None = None
            retry_after = 0.0
            try:
                body, headers = self.request_for(sub, delivery.payload)
                destination = await ssrf.check_with(self.settings, sub.endpoint)
                url, host, extensions = destination.pinned()
                async with asyncio.timeout(self.settings.push_timeout + 5):
                    response = await self.client.post(url, content=body, headers={**headers, **host},
                                                      extensions=extensions)
                status = response.status_code
                if value := response.headers.get("retry-after", "").strip():
                    retry_after = min(float(value), 3600.0) if value.isdigit() else 0.0
                if not 200 <= status < 300:
                    error = f"HTTP {status}: {response.text[:200]}"
            except ssrf.SEND_FAILURES as exc:
                error = ssrf.send_failure(exc, self.settings.push_timeout)
            outcome(span, status, error)
            await self._record(delivery, sub, tries, status, error, retry_after)

    async def _record(self, delivery: PushDelivery, sub: PushSubscription, tries: int, status: int | None,
                      error: str | None, retry_after: float) -> None:
        async with self.db.writer() as session:
            if error is None:
                await session.execute(update(PushSubscription).where(PushSubscription.id == sub.id)
                                      .values(last_sent_at=utcnow()))
                await session.delete(await session.get(PushDelivery, delivery.id) or delivery)
                log.info("push %s (%s) sent to subscription %s: %s", delivery.id, delivery.payload.get("type"),
                         sub.id, status)
            elif status in GONE:
                await remove(session, sub.id)
                log.info("push subscription %s of %s removed: the push service answered %s", sub.id,
                         sub.account_id, status)
            else:
                retried = status is None or status >= 500 or status in RETRIED
                dead = not retried or tries >= self.settings.push_max_attempts
                delay = max(backoff(tries, cap=RETRY_CAP), retry_after)
                await session.execute(update(PushDelivery).where(PushDelivery.id == delivery.id).values(
                    state=PushState.dead if dead else PushState.pending, last_status=status,
                    last_error=error[:500], next_attempt_at=utcnow() + dt.timedelta(seconds=delay)))
                log.warning("push %s to subscription %s, try %d failed%s: %s", delivery.id, sub.id, tries,
                            " (dead)" if dead else "", error)
            await session.commit()


async def start(app: FastAPI) -> None:
    """Wire push into the app: the queueing effect on every event, the sender woken by a commit that
    queued a push. Without a VAPID key (outside development) push is off: nothing is queued."""
    key = vapid_keys.load(app.state.settings)
    app.state.push_key = key
    app.state.push_sender = None
    if key is None:
        return
    sender = PushSender(app.state.db, settings=app.state.settings, key=key)
    app.state.effects.append(queue_push)
    app.state.db.after_commit(sender.wake, if_added=PushDelivery)
    app.state.push_sender = sender
    await sender.start()


async def stop(app: FastAPI) -> None:
    if (sender := getattr(app.state, "push_sender", None)) is not None:
        await sender.stop()
