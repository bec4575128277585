"""Webhook endpoints, their deliveries (one per event and endpoint) and each delivery's attempts."""

import datetime as dt
import enum
import uuid

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field

from common.db import UtcDateTime
from common.outbox import CarriedContext
from services.notify.base import NotifyModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_message_id() -> str:
    """The ``webhook-id`` of a delivery: the same on every try, so receivers can drop repeats."""
    return f"msg_{uuid.uuid4().hex}"


class DeliveryState(enum.StrEnum):
    pending = "pending"  # waiting for its first try (or a redelivery)
    failed = "failed"  # the last try failed; the next one is scheduled at next_attempt_at
    succeeded = "succeeded"  # the receiver answered 2xx
    dead = "dead"  # every try of the schedule failed, or the endpoint was disabled; kept, redeliverable


OUTSTANDING = (DeliveryState.pending, DeliveryState.failed)


class WebhookEndpoint(NotifyModel, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_owner_id_id", "owner_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: str = Field(max_length=64, description="The grower's account id")
    url: str = Field(max_length=2048)
    description: str = Field(default="", max_length=200)
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The ``whsec_…`` signing secret, encrypted with NOTIFY_DATA_KEY (common.crypto.FieldCipher).
    secret_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    # After a rotation the old secret also signs until this time, so receivers can switch over.
    previous_secret_encrypted: str | None = Field(default=None, sa_column=Column(Text))
    previous_secret_expires_at: dt.datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))
    active: bool = True
    disabled_reason: str | None = Field(default=None, max_length=200)
    disabled_at: dt.datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))
    # Set by the first failure after a success; cleared by a success. Too old: the endpoint is disabled.
    failing_since: dt.datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class WebhookDelivery(NotifyModel, CarriedContext, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
                      Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
                      Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"))

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="webhook_endpoints.id", ondelete="CASCADE")
    message_id: str = Field(default_factory=new_message_id, max_length=40, unique=True,
                            description="Sent as webhook-id on every try")
    event_id: uuid.UUID = Field(description="The event delivered (a fresh id for a test ping)")
    event_type: str = Field(max_length=40)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default=DeliveryState.pending, max_length=10)
    attempts: int = Field(default=0, description="Tries in the current round (a redelivery starts a new one)")
    next_attempt_at: dt.datetime | None = Field(default_factory=utcnow, sa_column=Column(UtcDateTime()))
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    delivered_at: dt.datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))


class WebhookAttempt(NotifyModel, table=True):
    """One try of a delivery: what the receiver answered, or why nothing was sent."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id_id", "delivery_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_deliveries.id", ondelete="CASCADE")
    attempted_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    duration_ms: int = 0
