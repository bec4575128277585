"""The outbox relay: publishes what a service wrote to its outbox, in order, at least once.

- Rows are read oldest first, a round of up to ``batch`` at a time, and published together
  (``Publisher.publish_many``: one request to notify over HTTP, handled there in one transaction);
  a row is marked sent only once the bus acknowledged it (a round's rows in one statement). When a
  round fails together it goes again one by one, and the first failure ends it, so later events do
  not overtake it.
- A failed row is retried with exponential backoff and jitter; after ``max_attempts`` it is marked
  dead (a dead letter: kept, listed and replayable by an operator, never dropped).
- Several replicas: a round holds the database's advisory lock for the relay (``Database.exclusive``),
  so one replica's round reads, publishes and marks a batch before another's reads; no row goes out
  from two relays and the outbox's order is the bus's order.
- Each row is published under the request id and the trace context kept with it (``CarriedContext``):
  a producer span of the request's trace, and both carried in the message's headers (``X-Request-ID``,
  ``traceparent``), so the consumer's work joins the request that caused it.
- The relay wakes when a transaction that wrote to the outbox commits (after ``LINGER``, so that the
  events of a busy moment share a round), and otherwise polls, so it resumes after a restart with
  whatever was left unpublished.
- At each scrape of ``/metrics`` (:func:`outbox_metrics`): the backlog, its oldest event's age and the
  dead letters, from the outbox's pending index.
"""

from __future__ import annotations

import datetime as dt
import logging

from prometheus_client import Gauge
from sqlalchemy import func, select, update

from common.bus import Publisher, PublishError, carried_headers, make_publisher
from common.db import Database
from common.events import Envelope
from common.observability import capped_count
from common.outbox import continued, utcnow
from common.worker import Worker, backoff

log = logging.getLogger("relay")

OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox events not yet published, dead letters apart (counted up to 100,000)",
                       ["service"])
OUTBOX_OLDEST_AGE = Gauge("outbox_oldest_age_seconds", "Age of the oldest outbox event not yet published (0: none)",
                          ["service"])
OUTBOX_DEAD = Gauge("outbox_dead_letters", "Outbox events given up after the maximum attempts, for an operator to "
                    "replay", ["service"])

LINGER = 0.02  # seconds: what an event may wait for others to join its round


class OutboxRelay(Worker):
    """A worker whose round publishes one batch. Woken by a commit, it lingers, so that the commits
    of the next moment join the round (a round costs two transactions however many rows it carries)."""

    def __init__(self, db: Database, model, publisher: Publisher, *, poll_interval: float = 2.0,
                 batch: int = 100, max_attempts: int = 12, linger: float = LINGER) -> None:
        super().__init__("outbox-relay", self.run_once, interval=poll_interval, linger=linger)
        self.db, self.model, self.publisher = db, model, publisher
        self.batch, self.max_attempts = batch, max_attempts
        db.after_commit(self.wake, if_added=model)

    async def stop(self) -> None:
        await super().stop()
        await self.publisher.aclose()

    async def run_once(self) -> bool:
        """Publish one batch. True when a full batch went out (there may be more). Under the relay's
        lock on this database: another replica's round waits until this one marked what it sent."""
        async with self.db.exclusive("outbox-relay"):
            return await self._round()

    async def _round(self) -> bool:
        model = self.model
        async with self.db.sessionmaker() as session:
            rows = (await session.scalars(
                select(model).where(model.published_at.is_(None), model.dead.is_(False),
                                    model.next_attempt_at <= utcnow())
                .order_by(model.occurred_at, model.id).limit(self.batch))).all()
        if len(rows) > 1 and await self._publish_round(rows):
            return len(rows) == self.batch
        sent: list = []
        try:
            for row in rows:
                try:
                    with self._producing(row):
                        await self.publisher.publish(self._envelope(row))
                except PublishError as exc:
                    await self._failed(row, str(exc))
                    return False
                sent.append(row.id)
        finally:
            await self._sent(sent)
        return len(sent) == self.batch

    async def _publish_round(self, rows: list) -> bool:
        """The round's rows in one publication (one request and one transaction at notify over HTTP),
        marked sent together. False when it failed: then they go one by one, so the row that fails is
        the one retried with backoff, and the ones before it are not held back by it."""
        carried = []
        for row in rows:
            with self._producing(row):
                carried.append((self._envelope(row), carried_headers()))
        try:
            await self.publisher.publish_many(carried)
        except PublishError as exc:
            log.info("a round of %d events not published together (%s); one by one", len(rows), exc)
            return False
        await self._sent([row.id for row in rows])
        return True

    def _envelope(self, row) -> Envelope:
        return Envelope(id=row.id, type=row.type, occurred_at=row.occurred_at, source=self.db.name,
                        version=row.version, data=row.data)

    @staticmethod
    def _producing(row):
        return continued(row, f"publish {row.type}", kind="producer", **{
            "messaging.operation.type": "send", "messaging.message.id": str(row.id)})

    async def _sent(self, ids: list) -> None:
        """Mark a round's published rows in one statement. A crash before it re-publishes them on
        restart (at least once: consumers drop what they have seen)."""
        if not ids:
            return
        model = self.model
        async with self.db.sessionmaker() as session:
            await session.execute(update(model).where(model.id.in_(ids), model.published_at.is_(None))
                                  .values(published_at=utcnow(), attempts=model.attempts + 1))
            await session.commit()

    async def _failed(self, row, error: str) -> None:
        attempts = row.attempts + 1
        dead = attempts >= self.max_attempts
        log.warning("event %s (%s) not published, try %d%s: %s", row.id, row.type, attempts,
                    " — dead-lettered" if dead else "", error)
        async with self.db.sessionmaker() as session:
            await session.execute(update(self.model).where(self.model.id == row.id).values(
                attempts=attempts, last_error=error[:2000], dead=dead,
                next_attempt_at=utcnow() + dt.timedelta(seconds=backoff(attempts))))
            await session.commit()

    async def measure(self, service: str) -> None:
        model = self.model
        waiting = (model.published_at.is_(None), model.dead.is_(False))
        async with self.db.sessionmaker() as session:
            backlog = await session.scalar(capped_count(select(model.id).where(*waiting)))
            oldest = await session.scalar(select(func.min(model.occurred_at)).where(*waiting))
            dead = await session.scalar(capped_count(select(model.id).where(model.published_at.is_(None),
                                                                            model.dead.is_(True))))
        OUTBOX_BACKLOG.labels(service).set(backlog or 0)
        OUTBOX_OLDEST_AGE.labels(service).set(max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0)
        OUTBOX_DEAD.labels(service).set(dead or 0)

    async def replay_dead(self) -> int:
        """An operator's second chance for dead-lettered events: they are tried again from now."""
        async with self.db.sessionmaker() as session:
            result = await session.execute(update(self.model).where(self.model.dead.is_(True),
                                                                    self.model.published_at.is_(None))
                                           .values(dead=False, attempts=0, next_attempt_at=utcnow()))
            await session.commit()
        self.wake()
        return result.rowcount


async def start_relay(app, model) -> None:
    """A start-up hook (``create_service_app(on_startup=…)``, with ``model`` bound): ``app.state.relay``
    publishes ``model``'s outbox over the bus the app's settings name (NATS, or HTTP push to notify), and
    runs unless ``relay_poll_interval`` is 0. Its shutdown is ``app.state.relay.stop()``."""
    settings = app.state.settings
    publisher = make_publisher(settings.event_bus_url, settings.notify_url, settings.service_token.get_secret_value(),
                               settings.service_name, settings.event_names())
    app.state.relay = OutboxRelay(app.state.db, model, publisher, poll_interval=settings.relay_poll_interval)
    if settings.relay_poll_interval > 0:
        await app.state.relay.start()


async def outbox_metrics(app) -> None:
    """A ``/metrics`` probe (``create_service_app(metrics=…)``) for an app whose relay is ``app.state.relay``."""
    await app.state.relay.measure(app.state.settings.service_name)
