"""A grower's shop: the nursery as buyers see it."""

import datetime as dt

from sqlalchemy import JSON, Column, func
from sqlmodel import Field

from common.db import UtcDateTime
from services.catalog.base import CatalogModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp() -> Column:
    return Column(UtcDateTime(), nullable=False, server_default=func.now())


class Shop(CatalogModel, table=True):
    __tablename__ = "shops"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: str = Field(max_length=64, unique=True, description="The grower's account id (one shop each)")
    slug: str = Field(max_length=80, unique=True, index=True)
    name: str = Field(max_length=120)
    description: str = Field(default="", max_length=4000)
    province_code: str = Field(max_length=2, index=True)
    ward_code: str = Field(max_length=5)
    street: str = Field(max_length=200)
    phone: str = Field(max_length=16, description="E.164")
    zalo_phone: str | None = Field(default=None, max_length=16)
    delivery: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    min_order_value: int = Field(default=0, ge=0)
    bank_bin: str | None = Field(default=None, max_length=6)
    bank_account_encrypted: str | None = Field(default=None, max_length=500)
    bank_account_last4: str | None = Field(default=None, max_length=4)
    bank_holder: str | None = Field(default=None, max_length=80)
    search_text: str = Field(default="", max_length=5000, description="Accent-free name and description")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=timestamp())
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_column=timestamp())
