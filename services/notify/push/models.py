"""A device's push subscription (one per browser profile that turned push on) and the pushes queued for it."""

import datetime as dt
import enum
import uuid

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field

from common.db import UtcDateTime
from common.outbox import CarriedContext
from services.notify.base import NotifyModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PushState(enum.StrEnum):
    pending = "pending"  # waiting for its (next) try
    dead = "dead"  # refused for good (4xx other than 404/410) or out of tries; kept for an operator


class PushSubscription(NotifyModel, table=True):
    __tablename__ = "push_subscriptions"
    __table_args__ = (Index("ix_push_subscriptions_account_id", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(max_length=64)
    # The push service's URL for this device (unique: a device that subscribes again replaces its row).
    endpoint: str = Field(max_length=2048, unique=True)
    p256dh: str = Field(max_length=100, description="The device's P-256 public key, base64url")
    auth: str = Field(max_length=50, description="The device's 16-byte auth secret, base64url")
    device: str = Field(default="", max_length=120, description="What the browser said it runs on")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    last_sent_at: dt.datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))


class PushDelivery(NotifyModel, CarriedContext, table=True):
    __tablename__ = "push_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id", name="uq_push_deliveries_subscription_event"),
                      Index("ix_push_deliveries_due", "state", "next_attempt_at"))

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(sa_column=Column(Integer, ForeignKey("push_subscriptions.id", ondelete="CASCADE"),
                                                  nullable=False))
    event_id: uuid.UUID
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default=PushState.pending, max_length=8)
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
