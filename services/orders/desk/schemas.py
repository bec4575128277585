"""What the grower's desk replies."""

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field


class PackingOrder(BaseModel):
    code: str
    quantity: int


class PackingLine(BaseModel):
    """One variant to prepare: how many in all, and for which orders."""

    product_id: int
    variant_id: int
    product_name: str
    variant_label: str
    quantity: int
    order_count: int
    orders: list[PackingOrder] = Field(description="The orders that need it, oldest first, with their quantities")


class PackingList(BaseModel):
    """Always one page (``next_cursor`` is null): a shop has as many lines as it has variants."""

    items: list[PackingLine]
    next_cursor: None = None
    statuses: list[str] = Field(description="The order states counted")
    since: dt.datetime | None
    until: dt.datetime | None
    order_count: int
    total_quantity: int


class DaySales(BaseModel):
    day: dt.date = Field(description="A day in Vietnam time")
    orders: int
    revenue: int


class VarietySales(BaseModel):
    product_id: int
    product_name: str = Field(description="As in the month's newest order")
    quantity: int
    revenue: int = Field(description="What its lines came to, in đồng")


class SourceSales(BaseModel):
    source: str = Field(description="web, api, phone, facebook or zalo")
    orders: int
    revenue: int


class UnpaidTransfer(BaseModel):
    id: int
    code: str
    buyer_name: str
    total: int
    status: str
    created_at: dt.datetime


class SalesMonth(BaseModel):
    """One month of the shop's sales (Vietnam time). Cancelled orders count only in ``cancelled``;
    ``revenue`` is what the other orders came to with delivery, ``retail`` and ``wholesale`` split
    their goods by the price each line was sold at."""

    month: str = Field(description="YYYY-MM", examples=["2026-11"])
    since: dt.datetime
    until: dt.datetime
    orders: int
    cancelled: int
    revenue: int
    goods: int = Field(description="The lines alone, without delivery fees")
    retail: int
    wholesale: int
    paid: int = Field(description="Of the revenue, what is marked paid")
    days: list[DaySales] = Field(description="Every day of the month, in order, days without orders too")
    top_varieties: list[VarietySales] = Field(description="The five varieties that brought the most")
    sources: list[SourceSales]
    unpaid_transfers: list[UnpaidTransfer] = Field(
        description="Bank-transfer orders of the month not cancelled and not yet paid, oldest first (at most 50)")
    unpaid_transfer_count: int
    unpaid_transfer_amount: int


class TrackingLink(BaseModel):
    order_id: int
    code: str
    tracking_url: str | None = Field(description="The buyer's link to follow the order; null for an order placed "
                                                 "before links were kept (it was shown once, when placed)")


class TrackingLinks(BaseModel):
    """Always one page (``next_cursor`` is null): the orders asked for, those of your shop."""

    items: list[TrackingLink]
    next_cursor: None = None


class TrackingMailOut(BaseModel):
    order_id: int
    recipient: str = Field(description="The buyer's email the link goes to")
    queued: Literal["new", "duplicate"] = Field(description="`duplicate`: the same request id was sent before")
