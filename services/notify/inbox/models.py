"""The grower's (and a signed-in buyer's) inbox."""

import datetime as dt

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field

from common.db import UtcDateTime
from services.notify.base import NotifyModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Notification(NotifyModel, table=True):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_account_id_id", "account_id", "id"),
                      Index("ix_notifications_account_unread", "account_id", "read_at"))

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(max_length=64)
    event_id: str = Field(max_length=36, description="The event it came from")
    type: str = Field(max_length=40)
    title: str = Field(max_length=200)
    body: str = Field(default="", max_length=1000)
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    read_at: dt.datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))
