"""Events between services: one envelope, and the contracts of each event's data, defined once.

Delivery is at least once; every consumer is idempotent on the envelope's ``id``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

OrderEventType = Literal["order.placed", "order.confirmed", "order.shipped", "order.delivered", "order.cancelled",
                         "order.paid"]
EventType = Literal[OrderEventType, "stock.low"]


class Envelope(BaseModel):
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: EventType
    occurred_at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    source: str = Field(description="The service that wrote the event: catalog, orders")
    version: int = 1
    data: dict


class StockLow(BaseModel):
    """``stock.low``: a variant's stock fell below the grower's threshold."""

    shop_id: int
    owner_id: str
    product_id: int
    product_name: str
    variant_id: int
    variant_label: str
    stock: int
    threshold: int


class OrderLineSummary(BaseModel):
    product_name: str
    variant_label: str
    quantity: int
    unit_price: int


class OrderChanged(BaseModel):
    """``order.placed``, ``.confirmed``, ``.shipped``, ``.delivered``, ``.cancelled``, ``.paid``."""

    order_id: int
    code: str
    shop_id: int
    shop_owner_id: str
    shop_name: str
    buyer_id: str | None
    status: str
    payment_status: str
    payment_method: str
    total: int
    contact_name: str
    contact_email: str | None
    buyer_locale: str = "vi"
    lines: list[OrderLineSummary]
    actor_role: str
    note: str = ""


class OrderEvent(Envelope):
    """An envelope whose data was checked against :class:`OrderChanged`."""

    type: OrderEventType
    data: OrderChanged


class StockLowEvent(Envelope):
    """An envelope whose data was checked against :class:`StockLow`."""

    type: Literal["stock.low"]
    data: StockLow


Event = OrderEvent | StockLowEvent
_EVENT: TypeAdapter[Event] = TypeAdapter(Annotated[Event, Field(discriminator="type")])


def checked(envelope: Envelope) -> Event:
    """The envelope with its data held to its type's contract (a ``ValidationError`` when it is not)."""
    return _EVENT.validate_python(envelope.model_dump())
