"""Handling events, each once: an event's id is recorded in the same transaction as every side effect
(inbox rows, queued mail, queued webhook deliveries), so a redelivered event changes nothing.

A batch (the relay's round, pushed over HTTP) is one transaction for all its events: one ``BEGIN``,
one flush and one ``COMMIT`` however many it carries. An event seen before fails that flush on its
id; the batch is then handled again one event at a time, so the new ones still land and the seen
ones count as duplicates."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common import tracing
from common.db import Database
from common.events import Envelope, Event, checked
from common.logging import request_context
from services.notify.events.models import ProcessedEvent
from services.notify.inbox import service as inbox
from services.notify.inbox.broadcast import Broadcaster

log = logging.getLogger("notify.events")

# Side effects that queue work in the event's transaction, given the event held to its contract. Each
# returns the accounts whose inbox changed (for the live stream), or an empty set; an effect that must
# read first (a preference, a subscription) may be a coroutine function.
Effect = Callable[[AsyncSession, Event], set[str] | None | Awaitable[set[str] | None]]


class MalformedEvent(ValueError):
    """The event at ``index`` of a batch does not hold to its type's contract: ``errors`` are pydantic's."""

    def __init__(self, index: int, error: ValidationError) -> None:
        super().__init__(f"event {index} is malformed: {error}")
        self.index, self.errors = index, error.errors(include_url=False)


@dataclass(frozen=True)
class Delivery:
    """An event as it arrived, with the request id and trace context its producer carried along
    (``X-Request-ID``, ``traceparent``), or None when the current context is already the event's
    (one event pushed over HTTP: the request's middleware took them from its headers)."""

    envelope: Envelope
    carried: Mapping[str, str] | None = None

    def context(self) -> contextlib.AbstractContextManager:
        if self.carried is None:
            return contextlib.nullcontext()
        return _carried_context(self.envelope.type, self.carried)


@contextlib.contextmanager
def _carried_context(kind: str, carried: Mapping[str, str]):
    with request_context(carried.get("X-Request-ID")), tracing.span(
            f"process {kind}", kind="consumer", headers=carried,
            attributes={"messaging.operation.type": "process"}):
        yield


async def handle(db: Database, envelope: Envelope, *, effects: list[Effect], broadcaster: Broadcaster) -> bool:
    """Apply ``envelope`` unless it was already; True when it was new."""
    return (await handle_many(db, [Delivery(envelope)], effects=effects, broadcaster=broadcaster))[0]


async def handle_many(db: Database, deliveries: list[Delivery], *, effects: list[Effect],
                      broadcaster: Broadcaster) -> list[bool]:
    """Apply each delivery's event unless it was already, in one unit of work committed here (the HTTP
    push and the NATS consumer alike): the live stream is told only after it. Per delivery, True when
    its event was new. A malformed event refuses the whole batch (:class:`MalformedEvent`) before
    anything is written."""
    events = []
    for index, delivery in enumerate(deliveries):
        try:
            events.append(checked(delivery.envelope))
        except ValidationError as exc:
            raise MalformedEvent(index, exc) from None
    touched = await _apply(db, deliveries, events, effects)
    if touched is None:  # an event handled before, or by a delivery at the same moment
        if len(deliveries) == 1:
            log.info("event %s (%s) already handled", deliveries[0].envelope.id, deliveries[0].envelope.type)
            return [False]
        return [await handle_many(db, [d], effects=effects, broadcaster=broadcaster) == [True] for d in deliveries]
    broadcaster.publish(touched)
    return [True] * len(deliveries)


async def _apply(db: Database, deliveries: list[Delivery], events: list[Event],
                 effects: list[Effect]) -> set[str] | None:
    """Every event's side effects, committed together; the accounts whose inbox changed, or None when
    one of the events had been handled (nothing is then written)."""
    touched: set[str] = set()
    # A writer session: its reads come before its writes (BEGIN IMMEDIATE on SQLite, so that two
    # deliveries at once queue rather than fail to upgrade their read locks).
    async with db.writer() as session:
        # Everything the events cause is written by one flush, at the commit: the effects' reads do
        # not flush what was added before them (a flush per read costs more CPU than the rows). An
        # event handled before, or concurrently by another delivery, fails that flush on its id.
        with session.no_autoflush:
            for delivery, event in zip(deliveries, events, strict=True):
                with delivery.context():
                    session.add(ProcessedEvent(event_id=delivery.envelope.id))
                    touched |= inbox.add_for_event(session, event)
                    for effect in effects:
                        result = effect(session, event)
                        if inspect.isawaitable(result):
                            result = await result
                        touched |= result or set()
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return None
    return touched
