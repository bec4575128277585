"""A grower's shop: the nursery as buyers see it."""

import datetime as dt

from sqlalchemy import Column, DateTime, func
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ShopBase(SQLModel):
    name: str = Field(max_length=120)
    description: str = Field(default="", max_length=4000)
    province_code: str = Field(max_length=2, description="Province code (34 provinces since 1 July 2025)")
    ward_code: str = Field(max_length=5)
    street: str = Field(max_length=200)
    phone: str = Field(max_length=16, description="E.164")


class Shop(ShopBase, table=True):
    __tablename__ = "shops"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=80, unique=True, index=True)
    owner_id: str = Field(max_length=64, unique=True, description="The grower's account id (a grower has one shop)")
    search_text: str = Field(default="", max_length=5000, description="Accent-free name and description")
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


class ShopPublic(ShopBase):
    id: int
    slug: str
    url: str
