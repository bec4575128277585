"""The transactional outbox's table shape (as in dotnet/eShop): the business row and its event row
are written in one transaction; a relay publishes afterwards and marks the row sent.

Only shapes live here: each service declares its own tables from them in its own metadata.
"""

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator

from sqlalchemy import JSON, Index
from sqlmodel import Field, SQLModel

from common import tracing
from common.db import UtcDateTime
from common.events import Envelope
from common.logging import current_request_id, request_context
from common.tracing import current_traceparent


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CarriedContext(SQLModel):
    """Who asked for this row's work, kept with it so that the work done later joins up: the request id
    (its log lines) and the trace context (its spans), both as they are where the row is written."""

    request_id: str | None = Field(default_factory=current_request_id, max_length=128, nullable=True,
                                   description="X-Request-ID of the request that led to this row")
    trace_context: str | None = Field(default_factory=current_traceparent, max_length=128, nullable=True,
                                      description="W3C traceparent of the span that wrote it (tracing on)")


@contextlib.contextmanager
def continued(row: CarriedContext, name: str, kind: str = "client", **attributes) -> Iterator[object | None]:
    """The work a row was queued for, done under the context kept with it: its log lines carry the
    request id, and (tracing on) a span ``name`` of the row's trace is current; yields that span (None
    when off), for :func:`common.tracing.outcome`."""
    with request_context(row.request_id), tracing.span(name, kind=kind, parent=row.trace_context,
                                                       attributes=attributes or None) as span:
        yield span


class OutboxEventBase(CarriedContext):
    """Subclass with ``table=True`` and ``__tablename__ = "outbox_events"`` in the service that owns it."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    type: str = Field(max_length=64)
    version: int = Field(default=1)
    data: dict = Field(default_factory=dict, sa_type=JSON, nullable=False)
    occurred_at: dt.datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, nullable=False)
    published_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime, nullable=True)
    attempts: int = Field(default=0)
    next_attempt_at: dt.datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, nullable=False)
    last_error: str | None = Field(default=None, max_length=2000)
    dead: bool = Field(default=False, description="Given up after the maximum attempts; an operator replays it")


def outbox_values(envelope: Envelope) -> dict:
    """An outbox row's columns for a Core ``INSERT`` (the busiest paths: no ORM instance to build and
    flush), with the same defaults as a row made from :class:`OutboxEventBase`; the caller notes it
    with :func:`common.db.note_added`, so that the commit still wakes the relay."""
    return {"id": envelope.id, "type": envelope.type, "version": envelope.version, "data": envelope.data,
            "occurred_at": envelope.occurred_at, "published_at": None, "attempts": 0,
            "next_attempt_at": utcnow(), "last_error": None, "dead": False,
            "request_id": current_request_id(), "trace_context": current_traceparent()}


def outbox_indexes(table: str) -> tuple:
    return (Index(f"ix_{table}_pending", "published_at", "dead", "next_attempt_at"),)


class ProcessedEventBase(SQLModel):
    """A consumer's record of the events it has handled, written with the side effect (idempotency)."""

    event_id: uuid.UUID = Field(primary_key=True)
    processed_at: dt.datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, nullable=False)
