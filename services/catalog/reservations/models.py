"""Stock held for an order that is being placed: held → committed (the order exists) or released."""

import datetime as dt
import enum

from sqlalchemy import Column, Index
from sqlmodel import Field

from common.db import UtcDateTime
from services.catalog.base import CatalogModel
from services.catalog.shops.models import utcnow


class ReservationStatus(enum.StrEnum):
    held = "held"
    committed = "committed"
    released = "released"


class Reservation(CatalogModel, table=True):
    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_status_expires", "status", "expires_at"),)

    id: str = Field(primary_key=True, max_length=64, description="Chosen by the caller: retries are idempotent")
    shop_id: int
    status: str = Field(default=ReservationStatus.held, max_length=10)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    expires_at: dt.datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    committed_at: dt.datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))
    released_at: dt.datetime | None = Field(default=None, sa_column=Column(UtcDateTime()))


class ReservationLine(CatalogModel, table=True):
    __tablename__ = "reservation_lines"

    id: int | None = Field(default=None, primary_key=True)
    reservation_id: str = Field(foreign_key="reservations.id", ondelete="CASCADE", index=True, max_length=64)
    variant_id: int = Field(foreign_key="variants.id")
    quantity: int
    unit_price: int
    price_kind: str = Field(max_length=10)
