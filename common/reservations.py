"""The reservation contract between the catalog (which holds stock and answers) and orders (which asks),
defined once: the catalog replies with these models and orders validates the reply against them and
keeps it typed.

A shop's bank details are secret enough to travel only when a bank transfer needs them: the request
names the order's payment method, and only for ``bank_transfer`` does the catalog decrypt the
account and put it in the reply.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from common.params import StrictBody

MAX_QUANTITY = 1_000_000
ReservationId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Vnd = Annotated[int, Field(ge=0, le=10**12)]
PaymentMethod = Literal["cod", "bank_transfer"]


class LineIn(StrictBody):
    variant_id: int = Field(ge=1, le=2**31 - 1)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class ReservationRequest(StrictBody):
    id: ReservationId
    shop_id: int | None = Field(None, ge=1, le=2**31 - 1, description="When given, every line must be of it")
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    ttl_seconds: int | None = Field(None, ge=10, le=3600)
    payment_method: PaymentMethod | None = Field(
        None, description="Only for `bank_transfer` does the reply carry the shop's bank account")


class LineOut(BaseModel):
    variant_id: int
    quantity: int = Field(ge=1)
    unit_price: Vnd
    price_kind: Literal["retail", "wholesale"]
    product_id: int
    product_name: str = Field(max_length=500)
    variant_label: str = Field(max_length=500)
    weight_grams: int | None = None


class ShopDelivery(BaseModel):
    pickup: bool = False
    flat_fee: Vnd | None = None
    fee_by_province: dict[str, Vnd] = Field(default_factory=dict)
    free_above: Vnd | None = None


class ShopTerms(BaseModel):
    """What orders needs about the shop to price delivery and take payment. The bank fields are
    ``None`` unless the request was for a bank transfer (or the shop has no account)."""

    id: int
    owner_id: str
    name: str
    slug: str
    phone: str
    delivery: ShopDelivery
    min_order_value: Vnd
    bank_bin: str | None = None
    bank_account: str | None = None
    bank_holder: str | None = None


class ReservationOut(BaseModel):
    id: str
    status: str
    expires_at: dt.datetime
    shop: ShopTerms
    lines: list[LineOut] = Field(min_length=1)
