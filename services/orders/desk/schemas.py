"""What the grower's desk replies."""

import datetime as dt

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
