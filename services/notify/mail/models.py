"""The mail queue: one row per mail to send, written in the event's transaction.

Unique on (event, recipient, template): however often an event arrives, it queues each mail once.
"""

import datetime as dt
import enum
import uuid

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field

from common.db import UtcDateTime
from common.outbox import CarriedContext
from services.notify.base import NotifyModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MailState(enum.StrEnum):
    pending = "pending"  # waiting for its (next) try
    sent = "sent"  # the SMTP server took it (or, with no SMTP_URL, it was logged)
    dead = "dead"  # given up after the maximum tries, or refused for good; kept for an operator


class MailJob(NotifyModel, CarriedContext, table=True):
    __tablename__ = "mail_jobs"
    __table_args__ = (UniqueConstraint("event_id", "recipient", "template", name="uq_mail_jobs_event_recipient"),
                      Index("ix_mail_jobs_due", "state", "next_attempt_at"))

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True, description="Also the Message-ID's")
    event_id: uuid.UUID = Field(description="The event that asked for this mail")
    recipient: str = Field(max_length=254)
    locale: str = Field(max_length=5)
    template: str = Field(max_length=40, description="A name under mail/templates/<locale>/")
    context: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default=MailState.pending, max_length=8)
    attempts: int = Field(default=0, description="Tries started")
    next_attempt_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    sent_at: dt.datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))
