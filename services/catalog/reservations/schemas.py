"""The internal reservation API the orders service calls."""

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from common.params import StrictBody

MAX_QUANTITY = 1_000_000


class LineIn(StrictBody):
    variant_id: int = Field(ge=1, le=2**31 - 1)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class ReservationRequest(StrictBody):
    id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    shop_id: int | None = Field(None, ge=1, le=2**31 - 1, description="When given, every line must be of it")
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    ttl_seconds: int | None = Field(None, ge=10, le=3600)


class LineOut(BaseModel):
    variant_id: int
    quantity: int
    unit_price: int
    price_kind: Literal["retail", "wholesale"]
    product_id: int
    product_name: str
    variant_label: str
    weight_grams: int | None


class ShopTerms(BaseModel):
    """What orders needs about the shop to price delivery and take payment."""

    id: int
    owner_id: str
    name: str
    slug: str
    phone: str
    delivery: dict
    min_order_value: int
    bank_bin: str | None
    bank_account: str | None
    bank_holder: str | None


class ReservationOut(BaseModel):
    id: str
    status: str
    expires_at: dt.datetime
    shop: ShopTerms
    lines: list[LineOut]
