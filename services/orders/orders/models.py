"""Orders as the grower keeps them: snapshots of what was bought at what price, the history of who
did what when, and the idempotency keys that make placing an order safe to retry."""

import datetime as dt
import enum

from sqlalchemy import JSON, CheckConstraint, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, Relationship

from common.db import UtcDateTime
from services.orders.base import OrdersModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ts(nullable: bool = False) -> Column:
    return Column(UtcDateTime(), nullable=nullable)


class OrderStatus(enum.StrEnum):
    placed = "placed"
    confirmed = "confirmed"
    shipped = "shipped"
    delivered = "delivered"
    cancelled = "cancelled"


class PaymentStatus(enum.StrEnum):
    unpaid = "unpaid"
    paid = "paid"


class Order(OrdersModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_shop_status_created", "shop_id", "status", "created_at"),
        Index("ix_orders_buyer", "buyer_id", "created_at"),
        Index("ix_orders_buyer_mail", "buyer_mail"),
        Index("ix_orders_status", "status"),  # orders_by_state at each scrape counts the open states by it
        CheckConstraint("total >= 0", name="ck_orders_total_nonnegative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=12, unique=True, description="Short human code, like CV-7K3Q9")
    shop_id: int = Field(index=True)
    shop_owner_id: str = Field(max_length=64, index=True)
    shop_name: str = Field(max_length=120)
    shop_slug: str = Field(max_length=80)
    shop_phone: str = Field(max_length=16)
    buyer_id: str | None = Field(default=None, max_length=64, description="None for a guest")
    checkout_id: str | None = Field(default=None, max_length=64, index=True)
    source: str = Field(default="web", max_length=10,
                        description="web, api; or phone, facebook or zalo (taken by the grower)")
    status: str = Field(default=OrderStatus.placed, max_length=12)
    payment_method: str = Field(max_length=16)
    payment_status: str = Field(default=PaymentStatus.unpaid, max_length=8)
    delivery_method: str = Field(max_length=8)
    contact: dict = Field(sa_column=Column(JSON, nullable=False))
    address: dict = Field(sa_column=Column(JSON, nullable=False))
    note: str = Field(default="", max_length=1000)
    locale: str = Field(default="vi", max_length=5, description="The buyer's language")
    subtotal: int
    delivery_fee: int
    total: int
    bank: dict | None = Field(default=None, sa_column=Column(JSON), description="The shop's account at order time")
    consent: dict = Field(sa_column=Column(JSON, nullable=False), description="Purposes agreed to, and when")
    tracking_token_hash: str = Field(max_length=64, unique=True, description="How the buyer's link finds it")
    tracking_token_encrypted: str | None = Field(
        default=None, sa_column=Column(Text), description="The link's token, encrypted with the data key, so that "
        "the desk can show it (slips, sending it again); None for orders placed before it was kept (decision 0024)")
    buyer_mail: str | None = Field(default=None, max_length=8, description="The buyer's mail with the link: "
                                   "pending → queued (notify took it) or dropped (given up); None: no email")
    reservation_id: str = Field(max_length=64, unique=True)
    reservation_state: str = Field(default="held", max_length=16,
                                   description="held → committed; cancel: release-pending → released")
    carrier: str | None = Field(default=None, max_length=16, description="Set when it ships (shipments/)")
    tracking_code: str | None = Field(default=None, max_length=40)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=ts())
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_column=ts())

    lines: list["OrderLine"] = Relationship(
        back_populates="order", sa_relationship_kwargs={"lazy": "selectin", "order_by": "OrderLine.id",
                                                        "cascade": "all, delete-orphan"})
    history: list["OrderHistory"] = Relationship(
        back_populates="order", sa_relationship_kwargs={"lazy": "selectin", "order_by": "OrderHistory.id",
                                                        "cascade": "all, delete-orphan"})


class OrderLine(OrdersModel, table=True):
    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="ck_order_lines_quantity_positive"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", ondelete="CASCADE", index=True)
    variant_id: int
    product_id: int
    product_name: str = Field(max_length=160)
    variant_label: str = Field(max_length=80)
    quantity: int
    unit_price: int
    price_kind: str = Field(max_length=10)
    line_total: int

    order: Order = Relationship(back_populates="lines")


class OrderHistory(OrdersModel, table=True):
    """Who did what when: every state and payment change."""

    __tablename__ = "order_history"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", ondelete="CASCADE", index=True)
    action: str = Field(max_length=16)
    from_status: str | None = Field(default=None, max_length=12)
    to_status: str | None = Field(default=None, max_length=12)
    actor_id: str | None = Field(default=None, max_length=64)
    actor_role: str = Field(max_length=10, description="grower, buyer, guest, admin or system")
    note: str = Field(default="", max_length=500)
    at: dt.datetime = Field(default_factory=utcnow, sa_column=ts())

    order: Order = Relationship(back_populates="history")


class IdempotencyKey(OrdersModel, table=True):
    """IETF httpapi Idempotency-Key: one row per (caller, key), kept 24 hours."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=80, description="Whose key: an account id, or 'guest'")
    key: str = Field(max_length=255)
    fingerprint: str = Field(max_length=64, description="SHA-256 of the method, path and body")
    state: str = Field(default="in_flight", max_length=10)
    response_status: int | None = None
    response_body: dict | None = Field(default=None, sa_column=Column(JSON))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=ts())
