"""Notification preferences, one row per account (grower or buyer), owned by notify.

Accounts live in the gateway; notify keeps only what it needs to reach someone: the address and the
language for mail. A grower without a row (or without an email, or with mail turned off) gets no mail.
"""

import datetime as dt
from typing import Literal

from pydantic import ConfigDict, EmailStr, StrictBool
from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from common.db import UtcDateTime
from services.notify.base import NotifyModel

Locale = Literal["vi", "en"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class NotificationSettingsBase(SQLModel):
    email: str | None = Field(default=None, max_length=254,
                              description="Where mail goes; null: no mail (a guest's order still uses its "
                                          "contact email)")
    locale: str = Field(default="vi", max_length=5, description="The language of mail: `vi` (default) or `en`")
    email_enabled: bool = Field(default=True, description="false: no mail at all, whatever the address")


class NotificationSettingsUpdate(NotificationSettingsBase):
    """The whole set, as ``PUT`` replaces it."""

    model_config = ConfigDict(extra="forbid")  # as every request body (common.params.StrictBody)

    email: EmailStr | None = Field(default=None, max_length=254, description="Where mail goes; null: no mail")
    locale: Locale = Field(default="vi", description="The language of mail")
    # Strict: JSON `0` or `"no"` is not a boolean (the lax default would read them as false).
    email_enabled: StrictBool = Field(default=True, description="false: no mail at all, whatever the address")


class NotificationSettings(NotifyModel, NotificationSettingsBase, table=True):
    __tablename__ = "notification_settings"

    account_id: str = Field(primary_key=True, max_length=64)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class NotificationSettingsPublic(NotificationSettingsBase):
    locale: Locale
    updated_at: dt.datetime | None = Field(description="null: never saved (these are the defaults)")
