"""The transactional outbox's table shape (as in dotnet/eShop): the business row and its event row
are written in one transaction; a relay publishes afterwards and marks the row sent.

Only shapes live here: each service declares its own tables from them in its own metadata.
"""

import datetime as dt
import uuid

from sqlalchemy import JSON, Index
from sqlmodel import Field, SQLModel

from common.db import UtcDateTime


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OutboxEventBase(SQLModel):
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


def outbox_indexes(table: str) -> tuple:
    return (Index(f"ix_{table}_pending", "published_at", "dead", "next_attempt_at"),)


class ProcessedEventBase(SQLModel):
    """A consumer's record of the events it has handled, written with the side effect (idempotency)."""

    event_id: uuid.UUID = Field(primary_key=True)
    processed_at: dt.datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, nullable=False)
