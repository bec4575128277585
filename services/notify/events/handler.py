"""Handling one event, once: the event id is recorded in the same transaction as every side effect
(inbox rows, queued mail, queued webhook deliveries), so a redelivered event changes nothing."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database
from common.events import Envelope, Event, checked
from services.notify.events.models import ProcessedEvent
from services.notify.inbox import service as inbox
from services.notify.inbox.broadcast import Broadcaster

log = logging.getLogger("notify.events")

# Side effects that queue work in the event's transaction, given the event held to its contract. Each
# returns the accounts whose inbox changed (for the live stream), or an empty set; an effect that must
# read first (a preference, a subscription) may be a coroutine function.
Effect = Callable[[AsyncSession, Event], set[str] | None | Awaitable[set[str] | None]]


async def handle(db: Database, envelope: Envelope, *, effects: list[Effect], broadcaster: Broadcaster) -> bool:
    """Apply ``envelope`` unless it was already; True when it was new. One unit of work of its own,
    committed here (the HTTP push and the NATS consumer alike): the live stream is told only after it."""
    event = checked(envelope)  # a malformed event is refused, not half-applied
    touched: set[str] = set()
    # A writer session: its reads come before its writes (BEGIN IMMEDIATE on SQLite, so that two
    # deliveries at once queue rather than fail to upgrade their read locks).
    async with db.writer() as session:
        # Everything the event causes is written by one flush, at the commit: the effects' reads do
        # not flush what was added before them (a flush per read costs more CPU than the rows). An
        # event handled before, or concurrently by another delivery, fails that flush on its id.
        with session.no_autoflush:
            session.add(ProcessedEvent(event_id=envelope.id))
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
            log.info("event %s (%s) already handled", envelope.id, envelope.type)
            return False
    broadcaster.publish(touched)
    return True
